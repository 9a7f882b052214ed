/* engine.c — RocksDB with the data column families, atomic batches and snapshot readers. */
#include "store/engine.h"

#include "store/keys.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct engine {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_writeoptions_t *wopts;
    rocksdb_writeoptions_t *wopts_sync;
    rocksdb_writeoptions_t *wopts_nosync;
    rocksdb_column_family_handle_t *cfs[ENGINE_CF_COUNT];
    rocksdb_block_based_table_options_t *table_opts;
    rocksdb_cache_t *cache;
    /* Crash model (tests): where the WAL stood after the last synced write. */
    int crash_model;
    char path[1024];
    uint64_t synced_wal;      /* number of the newest WAL file then */
    long long synced_wal_len; /* its length then */
};

struct engine_reader {
    struct storage_reader base;
    struct engine *e;
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ropts;
    char *lo, *hi; /* iterate bounds (owned; the read options point at them) */
    size_t lo_len, hi_len;
};

struct engine_iter {
    struct storage_iter base;
    rocksdb_iterator_t *it;
};

static const char *const cf_names[ENGINE_CF_COUNT] = {"default", "lock", "write", "meta"};

const char *storage_cf_name(enum storage_cf cf)
{
    return (unsigned)cf < STORAGE_CF_COUNT ? cf_names[cf] : "?";
}

int storage_cf_parse(const char *name, size_t len)
{
    if (len == 0)
        return STORAGE_CF_DEFAULT;
    for (int i = 0; i < STORAGE_CF_COUNT; i++)
        if (strlen(cf_names[i]) == len && memcmp(cf_names[i], name, len) == 0)
            return i;
    return -1;
}

const char *storage_strerror(int code)
{
    switch (code) {
    case STORAGE_OK:
        return "ok";
    case STORAGE_ERR_NOT_FOUND:
        return "not found";
    case STORAGE_ERR_NOMEM:
        return "out of memory";
    case STORAGE_ERR_IO:
        return "storage engine error";
    case STORAGE_ERR_INVALID:
        return "invalid argument";
    case STORAGE_ERR_REGION:
        return "region error";
    case STORAGE_ERR_CLOSED:
        return "storage closed";
    default:
        return "unknown storage error";
    }
}

static int open_impl(const char *path, int sync, int crash_model, struct engine **out, char *errbuf,
                     size_t errbuf_len);
static uint64_t newest_wal(const char *dir, long long *len);

int engine_open(const char *path, int sync, struct engine **out, char *errbuf, size_t errbuf_len)
{
    return open_impl(path, sync, 0, out, errbuf, errbuf_len);
}

int engine_open_crash_model(const char *path, int sync, struct engine **out, char *errbuf,
                            size_t errbuf_len)
{
    return open_impl(path, sync, 1, out, errbuf, errbuf_len);
}

static int open_impl(const char *path, int sync, int crash_model, struct engine **out, char *errbuf,
                     size_t errbuf_len)
{
    struct engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(errbuf, errbuf_len, "out of memory");
        return STORAGE_ERR_NOMEM;
    }
    e->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(e->opts, 1);
    rocksdb_options_set_create_missing_column_families(e->opts, 1);
    rocksdb_options_increase_parallelism(e->opts, 2);
    /* 16 MiB memtables, not RocksDB's 64 MiB: a memtable keeps every version of a key written
     * since the last flush, so under a stream of overwrites of a hot set it grows to hundreds of
     * thousands of entries, and each insert walks a skiplist far larger than the caches
     * (RawPut at 128 in flight over 1,000 keys: about 20% fewer writes/s and 35% more follower CPU
     * per write once a 64 MiB memtable has filled). Level 1 is sized to what four flushed memtables
     * hold, as RocksDB's tuning guide advises, so an L0 compaction does not rewrite a level many
     * times its own size. */
    rocksdb_options_set_write_buffer_size(e->opts, 16 << 20);
    rocksdb_options_set_max_bytes_for_level_base(e->opts, 64 << 20);
    rocksdb_options_set_target_file_size_base(e->opts, 16 << 20);
    e->cache = rocksdb_cache_create_lru(64 << 20);
    e->table_opts = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(e->table_opts, e->cache);
    rocksdb_block_based_options_set_filter_policy(e->table_opts,
                                                  rocksdb_filterpolicy_create_bloom(10));
    rocksdb_options_set_block_based_table_factory(e->opts, e->table_opts);
    e->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(e->wopts, sync);
    e->wopts_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(e->wopts_sync, 1);
    e->wopts_nosync = rocksdb_writeoptions_create();

    char *err = NULL;
    if (crash_model) {
        /* Memtables flushed at close would make unsynced writes durable. */
        rocksdb_options_t *o = rocksdb_options_create();
        rocksdb_get_options_from_string(e->opts, "avoid_flush_during_shutdown=true", o, &err);
        if (err) {
            snprintf(errbuf, errbuf_len, "crash model: %s", err);
            rocksdb_free(err);
            rocksdb_options_destroy(o);
            e->db = NULL;
            engine_close(e);
            return STORAGE_ERR_IO;
        }
        rocksdb_options_destroy(e->opts);
        e->opts = o;
        e->crash_model = 1;
    }
    const rocksdb_options_t *cf_opts[ENGINE_CF_COUNT] = {e->opts, e->opts, e->opts, e->opts};
    e->db = rocksdb_open_column_families(e->opts, path, ENGINE_CF_COUNT,
                                         (const char *const *)cf_names, cf_opts, e->cfs, &err);
    if (err) {
        snprintf(errbuf, errbuf_len, "open %s: %s", path, err);
        rocksdb_free(err);
        e->db = NULL;
        engine_close(e);
        return STORAGE_ERR_IO;
    }
    snprintf(e->path, sizeof e->path, "%s", path);
    if (e->crash_model)
        e->synced_wal = newest_wal(e->path, &e->synced_wal_len);
    *out = e;
    return 0;
}

static int engine_is_empty(struct engine *e)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    int empty = 1;
    for (int cf = 0; cf < ENGINE_CF_COUNT && empty; cf++) {
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(e->db, ro, e->cfs[cf]);
        rocksdb_iter_seek_to_first(it);
        empty = !rocksdb_iter_valid(it);
        rocksdb_iter_destroy(it);
    }
    rocksdb_readoptions_destroy(ro);
    return empty;
}

int engine_format_check(struct engine *e, char *errbuf, size_t errbuf_len)
{
    static const char stamp[] = KEYS_FORMAT_STAMP;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *err = NULL;
    size_t len = 0;
    char *v = rocksdb_get_cf(e->db, ro, e->cfs[ENGINE_CF_META], (const char *)KEYS_FORMAT_KEY,
                             sizeof KEYS_FORMAT_KEY, &len, &err);
    rocksdb_readoptions_destroy(ro);
    if (err) {
        snprintf(errbuf, errbuf_len, "reading the format stamp: %s", err);
        rocksdb_free(err);
        return STORAGE_ERR_IO;
    }
    if (v) {
        int same = len == sizeof stamp - 1 && memcmp(v, stamp, len) == 0;
        if (!same)
            snprintf(errbuf, errbuf_len, "the data directory has format \"%.*s\", not \"%s\"",
                     (int)(len < 120 ? len : 120), v, stamp);
        rocksdb_free(v);
        return same ? 0 : STORAGE_ERR_INVALID;
    }
    if (!engine_is_empty(e)) {
        snprintf(errbuf, errbuf_len,
                 "the data directory was written by an older TinyKV-C key layout (no format "
                 "stamp); this version cannot read it: move it away and start with an empty one");
        return STORAGE_ERR_INVALID;
    }
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_writebatch_put_cf(wb, e->cfs[ENGINE_CF_META], (const char *)KEYS_FORMAT_KEY,
                              sizeof KEYS_FORMAT_KEY, stamp, sizeof stamp - 1);
    int rc = engine_write_batch(e, wb, 1, errbuf, errbuf_len);
    rocksdb_writebatch_destroy(wb);
    return rc;
}

/* The newest WAL file of the DB (number and length); 0 if none. */
static uint64_t newest_wal(const char *dir, long long *len)
{
    DIR *d = opendir(dir);
    uint64_t best = 0;
    *len = 0;
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".log") != 0)
            continue;
        uint64_t num = strtoull(de->d_name, NULL, 10);
        if (num > best) {
            char p[1400];
            struct stat st;
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            if (stat(p, &st) == 0) {
                best = num;
                *len = (long long)st.st_size;
            }
        }
    }
    closedir(d);
    return best;
}

static void note_synced(struct engine *e, int sync)
{
    if (e->crash_model && sync)
        e->synced_wal = newest_wal(e->path, &e->synced_wal_len);
}

void engine_close_crashed(struct engine *e)
{
    if (!e)
        return;
    char dir[sizeof e->path];
    snprintf(dir, sizeof dir, "%s", e->path);
    uint64_t keep = e->synced_wal;
    long long keep_len = e->synced_wal_len;
    engine_close(e);
    /* What a machine crash leaves: the WAL as of the last fsync, nothing after. */
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".log") != 0)
            continue;
        uint64_t num = strtoull(de->d_name, NULL, 10);
        char p[1400];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (num == keep && truncate(p, keep_len) != 0)
            perror("engine_close_crashed: truncate");
        else if (num > keep && truncate(p, 0) != 0)
            perror("engine_close_crashed: truncate");
    }
    closedir(d);
}

void engine_close(struct engine *e)
{
    if (!e)
        return;
    if (e->db) {
        for (int i = 0; i < ENGINE_CF_COUNT; i++)
            rocksdb_column_family_handle_destroy(e->cfs[i]);
        rocksdb_close(e->db);
    }
    rocksdb_writeoptions_destroy(e->wopts);
    rocksdb_writeoptions_destroy(e->wopts_sync);
    rocksdb_writeoptions_destroy(e->wopts_nosync);
    rocksdb_options_destroy(e->opts);
    rocksdb_block_based_options_destroy(e->table_opts);
    rocksdb_cache_destroy(e->cache);
    free(e);
}

rocksdb_t *engine_db(struct engine *e)
{
    return e->db;
}

rocksdb_column_family_handle_t *engine_cf(struct engine *e, int cf)
{
    return e->cfs[cf];
}

int engine_write_batch(struct engine *e, rocksdb_writebatch_t *wb, int sync, char *errbuf,
                       size_t errbuf_len)
{
    char *err = NULL;
    rocksdb_write(e->db, sync ? e->wopts_sync : e->wopts_nosync, wb, &err);
    if (!err)
        note_synced(e, sync);
    if (err) {
        snprintf(errbuf, errbuf_len, "write: %s", err);
        rocksdb_free(err);
        return STORAGE_ERR_IO;
    }
    return 0;
}

int engine_write(struct engine *e, const struct storage_modify *mods, size_t n, char *errbuf,
                 size_t errbuf_len)
{
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    for (size_t i = 0; i < n; i++) {
        const struct storage_modify *m = &mods[i];
        if ((unsigned)m->cf >= STORAGE_CF_COUNT) {
            rocksdb_writebatch_destroy(wb);
            snprintf(errbuf, errbuf_len, "unknown column family %d", (int)m->cf);
            return STORAGE_ERR_INVALID;
        }
        if (m->kind == STORAGE_MODIFY_PUT)
            rocksdb_writebatch_put_cf(wb, e->cfs[m->cf], m->key, m->key_len, m->value,
                                      m->value_len);
        else
            rocksdb_writebatch_delete_cf(wb, e->cfs[m->cf], m->key, m->key_len);
    }
    char *err = NULL;
    rocksdb_write(e->db, e->wopts, wb, &err);
    rocksdb_writebatch_destroy(wb);
    if (!err)
        note_synced(e, rocksdb_writeoptions_get_sync(e->wopts));
    if (err) {
        snprintf(errbuf, errbuf_len, "write: %s", err);
        rocksdb_free(err);
        return STORAGE_ERR_IO;
    }
    return 0;
}

uint64_t engine_approximate_size(struct engine *e, const void *start, size_t start_len,
                                 const void *end, size_t end_len)
{
    /* An unbounded range ends past any key (keys are at most 8 KiB plus encoding). */
    static const char max_key[] =
        "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff";
    const char *limit = end_len ? end : max_key;
    size_t limit_len = end_len ? end_len : sizeof max_key - 1;
    const char *starts[1] = {start};
    size_t start_lens[1] = {start_len};
    const char *limits[1] = {limit};
    size_t limit_lens[1] = {limit_len};
    uint64_t total = 0;
    for (int cf = 0; cf < STORAGE_CF_COUNT; cf++) {
        uint64_t size = 0;
        char *err = NULL;
        rocksdb_approximate_sizes_cf(e->db, e->cfs[cf], 1, starts, start_lens, limits, limit_lens,
                                     &size, &err);
        if (err)
            rocksdb_free(err);
        else
            total += size;
        /* Unflushed data can be placed only when the range is every key. */
        if (start_len == 0 && end_len == 0) {
            uint64_t mem = 0;
            if (rocksdb_property_int_cf(e->db, e->cfs[cf], "rocksdb.cur-size-all-mem-tables",
                                        &mem) == 0)
                total += mem;
        }
    }
    return total;
}

static int reader_get(struct storage_reader *base, enum storage_cf cf, const void *key,
                      size_t key_len, void **value, size_t *value_len)
{
    struct engine_reader *r = (struct engine_reader *)base;
    *value = NULL;
    *value_len = 0;
    if ((unsigned)cf >= STORAGE_CF_COUNT)
        return STORAGE_ERR_INVALID;
    char *err = NULL;
    size_t len = 0;
    char *v = rocksdb_get_cf(r->e->db, r->ropts, r->e->cfs[cf], key, key_len, &len, &err);
    if (err) {
        rocksdb_free(err);
        return STORAGE_ERR_IO;
    }
    if (!v)
        return STORAGE_ERR_NOT_FOUND;
    /* Hand out a malloc'd copy so callers free() it whatever the engine. */
    *value = malloc(len ? len : 1);
    if (!*value) {
        rocksdb_free(v);
        return STORAGE_ERR_NOMEM;
    }
    memcpy(*value, v, len);
    rocksdb_free(v);
    *value_len = len;
    return 0;
}

static void iter_seek(struct storage_iter *base, const void *key, size_t key_len)
{
    rocksdb_iter_seek(((struct engine_iter *)base)->it, key, key_len);
}

static int iter_valid(const struct storage_iter *base)
{
    return rocksdb_iter_valid(((const struct engine_iter *)base)->it);
}

static void iter_next(struct storage_iter *base)
{
    rocksdb_iter_next(((struct engine_iter *)base)->it);
}

static const void *iter_key(const struct storage_iter *base, size_t *len)
{
    return rocksdb_iter_key(((const struct engine_iter *)base)->it, len);
}

static const void *iter_value(const struct storage_iter *base, size_t *len)
{
    return rocksdb_iter_value(((const struct engine_iter *)base)->it, len);
}

static void iter_free(struct storage_iter *base)
{
    struct engine_iter *it = (struct engine_iter *)base;
    rocksdb_iter_destroy(it->it);
    free(it);
}

static const struct storage_iter_ops engine_iter_ops = {
    .seek = iter_seek,
    .valid = iter_valid,
    .next = iter_next,
    .key = iter_key,
    .value = iter_value,
    .free = iter_free,
};

static int reader_iter(struct storage_reader *base, enum storage_cf cf, struct storage_iter **out)
{
    struct engine_reader *r = (struct engine_reader *)base;
    if ((unsigned)cf >= STORAGE_CF_COUNT)
        return STORAGE_ERR_INVALID;
    struct engine_iter *it = calloc(1, sizeof *it);
    if (!it)
        return STORAGE_ERR_NOMEM;
    it->base.ops = &engine_iter_ops;
    it->it = rocksdb_create_iterator_cf(r->e->db, r->ropts, r->e->cfs[cf]);
    *out = &it->base;
    return 0;
}

static void reader_free(struct storage_reader *base)
{
    struct engine_reader *r = (struct engine_reader *)base;
    rocksdb_readoptions_destroy(r->ropts);
    rocksdb_release_snapshot(r->e->db, r->snap);
    free(r->lo);
    free(r->hi);
    free(r);
}

static const struct storage_reader_ops engine_reader_ops = {
    .get = reader_get,
    .iter = reader_iter,
    .free = reader_free,
};

int engine_snapshot_reader(struct engine *e, struct storage_reader **out)
{
    struct engine_reader *r = calloc(1, sizeof *r);
    if (!r)
        return STORAGE_ERR_NOMEM;
    r->base.ops = &engine_reader_ops;
    r->e = e;
    r->snap = rocksdb_create_snapshot(e->db);
    r->ropts = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(r->ropts, r->snap);
    *out = &r->base;
    return 0;
}

int engine_snapshot_reader_bounded(struct engine *e, const void *lo, size_t lo_len, const void *hi,
                                   size_t hi_len, struct storage_reader **out)
{
    char *lo_copy = lo_len ? malloc(lo_len) : NULL;
    char *hi_copy = hi_len ? malloc(hi_len) : NULL;
    if ((lo_len && !lo_copy) || (hi_len && !hi_copy)) {
        free(lo_copy);
        free(hi_copy);
        return STORAGE_ERR_NOMEM;
    }
    int rc = engine_snapshot_reader(e, out);
    if (rc) {
        free(lo_copy);
        free(hi_copy);
        return rc;
    }
    struct engine_reader *r = (struct engine_reader *)*out;
    if (lo_len) {
        memcpy(lo_copy, lo, lo_len);
        rocksdb_readoptions_set_iterate_lower_bound(r->ropts, lo_copy, lo_len);
    }
    if (hi_len) {
        memcpy(hi_copy, hi, hi_len);
        rocksdb_readoptions_set_iterate_upper_bound(r->ropts, hi_copy, hi_len);
    }
    r->lo = lo_copy;
    r->hi = hi_copy;
    r->lo_len = lo_len;
    r->hi_len = hi_len;
    return 0;
}

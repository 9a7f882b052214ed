/* meta.c — the metadata layout (meta.h documents it): record codec, defaults, node look-up. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs_internal.h"
#include "fs/meta.h"

size_t fs_meta_key(const uint8_t *key, size_t key_len, uint8_t *out)
{
    memcpy(out, FS_META_PREFIX, FS_META_PREFIX_LEN);
    memcpy(out + FS_META_PREFIX_LEN, key, key_len);
    return FS_META_PREFIX_LEN + key_len;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

size_t fs_chunk_ptr_key(uint64_t id, uint64_t index, uint8_t *out)
{
    memcpy(out, FS_CHUNK_PREFIX, FS_CHUNK_PREFIX_LEN);
    put_be64(out + FS_CHUNK_PREFIX_LEN, id);
    out[FS_CHUNK_PREFIX_LEN + 8] = 'p';
    put_be64(out + FS_CHUNK_PREFIX_LEN + 9, index);
    return FS_CHUNK_PTR_KEY_BYTES;
}

size_t fs_chunk_data_key(uint64_t id, uint64_t index, uint64_t gen, uint8_t *out)
{
    fs_chunk_ptr_key(id, index, out);
    out[FS_CHUNK_PREFIX_LEN + 8] = 'd';
    put_be64(out + FS_CHUNK_PTR_KEY_BYTES, gen);
    return FS_CHUNK_DATA_KEY_BYTES;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int64_t ts_to_ns(struct timespec t)
{
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static struct timespec ns_to_ts(int64_t ns)
{
    struct timespec t;
    t.tv_sec = (time_t)(ns / 1000000000LL);
    t.tv_nsec = (long)(ns % 1000000000LL);
    if (t.tv_nsec < 0) {
        t.tv_nsec += 1000000000L;
        t.tv_sec--;
    }
    return t;
}

void fs_meta_encode(const struct fs_meta *m, uint8_t *buf)
{
    memset(buf, 0, FS_META_RECORD_BYTES);
    buf[0] = FS_META_VERSION;
    buf[1] = (uint8_t)m->flags;
    put_u32(buf + 4, m->mode);
    put_u32(buf + 8, m->uid);
    put_u32(buf + 12, m->gid);
    put_u32(buf + 16, m->subdirs);
    put_u64(buf + 24, m->size);
    put_u64(buf + 32, (uint64_t)ts_to_ns(m->atime));
    put_u64(buf + 40, (uint64_t)ts_to_ns(m->mtime));
    put_u64(buf + 48, (uint64_t)ts_to_ns(m->ctime));
    put_u64(buf + 56, m->rdev);
    put_u64(buf + 64, m->chunk_id);
}

int fs_meta_decode(const void *buf, size_t len, struct fs_meta *m)
{
    const uint8_t *b = buf;

    if (len != FS_META_RECORD_BYTES || b[0] != FS_META_VERSION)
        return -1;
    m->mode = get_u32(b + 4);
    m->uid = get_u32(b + 8);
    m->gid = get_u32(b + 12);
    m->subdirs = get_u32(b + 16);
    m->size = get_u64(b + 24);
    m->atime = ns_to_ts((int64_t)get_u64(b + 32));
    m->mtime = ns_to_ts((int64_t)get_u64(b + 40));
    m->ctime = ns_to_ts((int64_t)get_u64(b + 48));
    m->rdev = get_u64(b + 56);
    m->flags = b[1];
    m->chunk_id = get_u64(b + 64);
    return 0;
}

struct timespec fs_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return t;
}

void fs_meta_default(const struct fs *fs, uint32_t type, uint64_t size, struct fs_meta *m)
{
    memset(m, 0, sizeof *m);
    m->mode = type | (type == S_IFDIR ? 0755u : 0644u);
    m->uid = (uint32_t)fs->uid;
    m->gid = (uint32_t)fs->gid;
    m->size = size;
    m->atime = m->mtime = m->ctime = fs->mount_time;
}

void fs_meta_new(uint32_t mode, struct fs_meta *m)
{
    struct fuse_context *ctx = fuse_get_context();

    memset(m, 0, sizeof *m);
    m->mode = mode;
    m->uid = ctx ? (uint32_t)ctx->uid : (uint32_t)getuid();
    m->gid = ctx ? (uint32_t)ctx->gid : (uint32_t)getgid();
    m->atime = m->mtime = m->ctime = fs_now();
}

void fs_meta_to_stat(const struct fs_meta *m, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_mode = m->mode;
    st->st_nlink = S_ISDIR(m->mode) ? 2 + m->subdirs : 1;
    st->st_uid = m->uid;
    st->st_gid = m->gid;
    st->st_size = S_ISDIR(m->mode) ? 0 : (off_t)m->size;
    st->st_blksize = 128 * 1024; /* one FUSE request: tools size their reads by it */
    st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
    st->st_rdev = (dev_t)m->rdev;
    st->st_atim = m->atime;
    st->st_mtim = m->mtime;
    st->st_ctim = m->ctime;
}

int fs_meta_get(struct client_txn *txn, const uint8_t *key, size_t key_len, struct fs_meta *m,
                int *found)
{
    uint8_t mkey[CLIENT_MAX_KEY_BYTES + FS_META_PREFIX_LEN];
    void *v = NULL;
    size_t vlen = 0;
    int rc;

    *found = 0;
    rc = client_txn_get(txn, mkey, fs_meta_key(key, key_len, mkey), &v, &vlen);
    if (rc == CLIENT_ERR_NOT_FOUND)
        return CLIENT_OK;
    if (rc != CLIENT_OK)
        return rc;
    *found = fs_meta_decode(v, vlen, m) == 0;
    free(v);
    return CLIENT_OK;
}

int fs_meta_put(struct client_txn *txn, const uint8_t *key, size_t key_len, const struct fs_meta *m)
{
    uint8_t mkey[CLIENT_MAX_KEY_BYTES + FS_META_PREFIX_LEN], rec[FS_META_RECORD_BYTES];

    fs_meta_encode(m, rec);
    return client_txn_put(txn, mkey, fs_meta_key(key, key_len, mkey), rec, sizeof rec);
}

int fs_meta_delete(struct client_txn *txn, const uint8_t *key, size_t key_len)
{
    uint8_t mkey[CLIENT_MAX_KEY_BYTES + FS_META_PREFIX_LEN];

    return client_txn_delete(txn, mkey, fs_meta_key(key, key_len, mkey));
}

/* Keys read by probe_names: enough to pass the usual siblings "name.c", "name-x"... */
#define PROBE_KEYS 16

/*
 * One keys-only scan of [key, key + '0'): *file = the key itself exists;
 * *dir = 1 if a key below "key/" was met, 0 if the range holds none for sure,
 * -1 if the scan stopped at PROBE_KEYS first (siblings sorting before '/').
 */
static int probe_names(struct client_txn *txn, const struct fs_path *p, int *file, int *dir)
{
    uint8_t end[CLIENT_MAX_KEY_BYTES + 1];
    struct client_kv *kvs = NULL;
    size_t n = 0;
    int rc;

    memcpy(end, p->key, p->key_len);
    end[p->key_len] = '/' + 1;
    rc = client_txn_scan_keys(txn, p->key, p->key_len, end, p->key_len + 1, PROBE_KEYS, &kvs, &n);
    if (rc != CLIENT_OK)
        return rc;
    *file = 0;
    *dir = n == PROBE_KEYS ? -1 : 0;
    for (size_t i = 0; i < n; i++) {
        if (kvs[i].key_len == p->key_len)
            *file = 1;
        else if (kvs[i].key[p->key_len] == '/')
            *dir = 1;
    }
    client_kvs_free(kvs, n);
    return CLIENT_OK;
}

int fs_node_lookup(struct fs *fs, struct client_txn *txn, const struct fs_path *p,
                   struct fs_meta *m, int *has_record, void **value, size_t *value_len)
{
    uint8_t prefix[CLIENT_MAX_KEY_BYTES];
    size_t prefix_len;
    struct fs_meta rec;
    void *v = NULL;
    size_t vlen = 0;
    int rc, found = 0, exists = 0, dir_seen = 0;

    *has_record = 0;
    if (value)
        *value = NULL;
    if (p->kind != FS_PATH_NODE) {
        /* A root: always there; its record is that of the empty key. */
        rc = fs_meta_get(txn, p->key, 0, &rec, &found);
        if (rc != CLIENT_OK)
            return fs_neg_errno(rc);
        if (found && S_ISDIR(rec.mode)) {
            *m = rec;
            *has_record = 1;
        } else {
            fs_meta_default(fs, S_IFDIR, 0, m);
        }
        return 0;
    }
    rc = fs_meta_get(txn, p->key, p->key_len, &rec, &found);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    if (!found && !p->last_empty) {
        /* No record: one scan of keys from `key` up to `key/` + 1 answers both
         * "is it a file" and, mostly, "is it a directory". */
        rc = probe_names(txn, p, &exists, &dir_seen);
        if (rc != CLIENT_OK)
            return fs_neg_errno(rc);
        if (exists) {
            /* Without a record the size is the value's: read it. */
            rc = client_txn_get(txn, p->key, p->key_len, &v, &vlen);
            if (rc != CLIENT_OK && rc != CLIENT_ERR_NOT_FOUND)
                return fs_neg_errno(rc);
            exists = rc == CLIENT_OK;
        }
        if (exists) {
            fs_meta_default(fs, S_IFREG, vlen, m);
            if (value) {
                *value = v;
                *value_len = vlen;
            } else {
                free(v);
            }
            return 0;
        }
        if (dir_seen == 0)
            return -ENOENT;
        if (dir_seen == 1) {
            fs_meta_default(fs, S_IFDIR, 0, m);
            return 0;
        }
        /* Undecided (many siblings share the name's prefix): ask the directory range. */
    } else if (found && !value && (S_ISDIR(rec.mode) || !p->last_empty)) {
        /* Attributes only (getattr, lookup, the checks of a change): the record is the
         * node, so one read answers (meta.h says what a KV-API delete then leaves). */
        *m = rec;
        *has_record = 1;
        return 0;
    } else if (!p->last_empty && !S_ISDIR(rec.mode)) {
        /* The content is asked for (open, readlink): its key decides. */
        rc = client_txn_get(txn, p->key, p->key_len, &v, &vlen);
        if (rc == CLIENT_OK) {
            *m = rec;
            *has_record = 1;
            if (S_ISREG(rec.mode) && !(rec.flags & FS_META_CHUNKED))
                m->size = vlen; /* the content wins over a stale record */
            *value = v;
            *value_len = vlen;
            return 0;
        }
        if (rc != CLIENT_ERR_NOT_FOUND)
            return fs_neg_errno(rc);
    }
    prefix_len = fs_dir_prefix(p, prefix);
    rc = fs_prefix_has_keys(txn, prefix, prefix_len, 0, &exists);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    if (!exists)
        return -ENOENT;
    if (found && S_ISDIR(rec.mode)) {
        *m = rec;
        *has_record = 1;
    } else {
        fs_meta_default(fs, S_IFDIR, 0, m);
    }
    return 0;
}

int fs_meta_parent_adjust(struct fs *fs, struct client_txn *txn, const struct fs_path *p, int delta)
{
    const uint8_t *slash = NULL;
    size_t plen = 0;
    struct fs_meta m;
    int rc, found = 0;

    if (p->kind != FS_PATH_NODE)
        return 0;
    for (size_t i = p->key_len; i > 0; i--) {
        if (p->key[i - 1] == '/') {
            slash = p->key + i - 1;
            break;
        }
    }
    plen = slash ? (size_t)(slash - p->key) : 0;
    rc = fs_meta_get(txn, p->key, plen, &m, &found);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    if (!found || !S_ISDIR(m.mode))
        fs_meta_default(fs, S_IFDIR, 0, &m);
    if (delta < 0 && m.subdirs < (uint32_t)-delta)
        m.subdirs = 0;
    else
        m.subdirs = (uint32_t)((int64_t)m.subdirs + delta);
    return fs_neg_errno(fs_meta_put(txn, p->key, plen, &m));
}

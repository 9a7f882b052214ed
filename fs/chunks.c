/* chunks.c — large files in chunks (layout in fs/meta.h): an open file's chunk cache, writes,
 * pointers, collection. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_internal.h"
#include "proto/log.h"

/* Times one batch of data keys is tried when the cluster misses a deadline. */
#define FS_CHUNK_WRITE_TRIES 3

/* Keys deleted per transaction when collecting chunks. */
#define DROP_BATCH 256

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Index of `index` in the sorted pending list, or where it would go (*found = 0). */
static size_t pending_find(const struct fs_handle *h, uint64_t index, int *found)
{
    size_t lo = 0, hi = h->n_pending;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (h->pending[mid].index == index) {
            *found = 1;
            return mid;
        }
        if (h->pending[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static int pending_set(struct fs_handle *h, uint64_t index, uint64_t gen)
{
    int found;
    size_t at = pending_find(h, index, &found);

    if (found) {
        h->pending[at].gen = gen;
        return 0;
    }
    if (h->n_pending == h->cap_pending) {
        size_t cap = h->cap_pending ? h->cap_pending * 2 : 64;
        struct fs_chunk_ptr *v = realloc(h->pending, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        h->pending = v;
        h->cap_pending = cap;
    }
    memmove(h->pending + at + 1, h->pending + at, (h->n_pending - at) * sizeof *h->pending);
    h->pending[at].index = index;
    h->pending[at].gen = gen;
    h->n_pending++;
    return 0;
}

/* Reads the data key of (id, index, gen) into out (FS_CHUNK_BYTES, zero-filled past it). */
static int read_data(struct client_txn *txn, uint64_t id, uint64_t index, uint64_t gen,
                     uint8_t *out)
{
    uint8_t key[FS_CHUNK_DATA_KEY_BYTES];
    void *v = NULL;
    size_t vlen = 0;
    int rc;

    rc = client_txn_get(txn, key, fs_chunk_data_key(id, index, gen, key), &v, &vlen);
    if (rc == CLIENT_ERR_NOT_FOUND) {
        LOG(LOG_WARN, "chunk %llu/%llu of generation %llu is missing: read as zeros",
            (unsigned long long)id, (unsigned long long)index, (unsigned long long)gen);
        vlen = 0;
        rc = CLIENT_OK;
    }
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    if (vlen > FS_CHUNK_BYTES)
        vlen = FS_CHUNK_BYTES;
    if (vlen)
        memcpy(out, v, vlen);
    memset(out + vlen, 0, FS_CHUNK_BYTES - vlen);
    free(v);
    return 0;
}

/* Reads chunk `index` of `id` as `txn` sees it (no pointer: zeros). */
static int read_chunk(struct client_txn *txn, uint64_t id, uint64_t index, uint8_t *out)
{
    uint8_t key[FS_CHUNK_PTR_KEY_BYTES];
    void *v = NULL;
    size_t vlen = 0;
    uint64_t gen;
    int rc;

    rc = client_txn_get(txn, key, fs_chunk_ptr_key(id, index, key), &v, &vlen);
    if (rc == CLIENT_ERR_NOT_FOUND) {
        memset(out, 0, FS_CHUNK_BYTES);
        return 0;
    }
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    gen = vlen == 8 ? get_be64(v) : 0;
    free(v);
    if (gen == 0) {
        memset(out, 0, FS_CHUNK_BYTES);
        return 0;
    }
    return read_data(txn, id, index, gen, out);
}

/* One transaction's worth of dirty chunks, written by flush_batch (maybe on its own thread). */
struct chunk_batch {
    struct fs *fs;
    uint64_t id;
    uint64_t file_len;
    struct fs_chunk_slot *slots[FS_CHUNK_WRITE_BATCH];
    size_t n;
    uint64_t gen;     /* out: the generation written */
    int rc;           /* out: 0 or a negative errno */
    int undetermined; /* out: a try may have landed */
};

/* Writes the batch's chunks as data keys of one transaction. Reads the slots only: the
 * caller holds the handle's lock and applies the outcome after. */
static void flush_batch(struct chunk_batch *b)
{
    int rc = CLIENT_OK;

    for (int attempt = 0; attempt < FS_CONFLICT_RETRIES; attempt++) {
        struct client_txn *txn = NULL;
        uint64_t gen;

        rc = client_txn_begin(b->fs->client, &txn);
        if (rc != CLIENT_OK)
            break;
        gen = client_txn_start_ts(txn);
        for (size_t i = 0; i < b->n && rc == CLIENT_OK; i++) {
            uint8_t key[FS_CHUNK_DATA_KEY_BYTES];
            uint64_t start = b->slots[i]->index * FS_CHUNK_BYTES;
            size_t len = b->file_len - start < FS_CHUNK_BYTES ? (size_t)(b->file_len - start)
                                                              : FS_CHUNK_BYTES;
            rc = client_txn_put(txn, key, fs_chunk_data_key(b->id, b->slots[i]->index, gen, key),
                                b->slots[i]->data, len);
        }
        if (rc == CLIENT_OK)
            rc = client_txn_commit(txn, NULL);
        else
            client_txn_rollback(txn);
        client_txn_free(txn);
        if (rc == CLIENT_OK) {
            b->gen = gen;
            b->rc = 0;
            return;
        }
        if (rc == CLIENT_ERR_UNDETERMINED)
            b->undetermined = 1; /* it may have landed: collect what no pointer names */
        if (rc == CLIENT_ERR_CONFLICT) {
            fs_conflict_backoff(attempt);
        } else if ((rc == CLIENT_ERR_TIMEOUT || rc == CLIENT_ERR_UNAVAILABLE ||
                    rc == CLIENT_ERR_UNDETERMINED) &&
                   attempt < FS_CHUNK_WRITE_TRIES - 1) {
            /* Fresh keys every time (a new generation): trying again is safe. A cluster
             * busy with a large copy can miss one deadline. */
            struct timespec pause = {0, 200L * 1000 * 1000 * (attempt + 1)};
            LOG(LOG_INFO, "writing chunks: %s, again", client_strerror(rc));
            nanosleep(&pause, NULL);
        } else {
            break;
        }
    }
    LOG(LOG_WARN, "writing chunks failed: %s (%s)", client_strerror(rc),
        client_last_error(b->fs->client));
    b->rc = fs_neg_errno(rc);
}

static void *flush_batch_thread(void *arg)
{
    flush_batch(arg);
    return NULL;
}

int fs_handle_chunk_flush(struct fs *fs, struct fs_handle *h)
{
    struct chunk_batch batches[FS_CHUNK_CACHE];
    pthread_t threads[FS_CHUNK_CACHE];
    int started[FS_CHUNK_CACHE];
    size_t nb = 0;
    int rc = 0;

    memset(batches, 0, sizeof batches);
    for (int i = 0; i < FS_CHUNK_CACHE; i++) {
        struct fs_chunk_slot *s = &h->cache[i];
        if (!s->data || !s->dirty)
            continue;
        if (s->index * FS_CHUNK_BYTES >= h->len) {
            s->dirty = 0; /* past the end (a truncate): nothing to write */
            continue;
        }
        if (nb == 0 || batches[nb - 1].n == FS_CHUNK_WRITE_BATCH) {
            batches[nb].fs = fs;
            batches[nb].id = h->chunk_id;
            batches[nb].file_len = h->len;
            nb++;
        }
        batches[nb - 1].slots[batches[nb - 1].n++] = s;
    }
    /* The batches go out together: the cluster takes several transactions at once much
     * faster than one after another. */
    for (size_t i = 1; i < nb; i++)
        started[i] = pthread_create(&threads[i], NULL, flush_batch_thread, &batches[i]) == 0;
    if (nb > 0)
        flush_batch(&batches[0]);
    for (size_t i = 1; i < nb; i++) {
        if (started[i])
            pthread_join(threads[i], NULL);
        else
            flush_batch(&batches[i]);
    }
    for (size_t i = 0; i < nb; i++) {
        struct chunk_batch *b = &batches[i];
        if (b->undetermined)
            h->dropped = 1;
        if (b->rc != 0) {
            rc = rc ? rc : b->rc;
            continue;
        }
        for (size_t k = 0; k < b->n; k++) {
            int e = pending_set(h, b->slots[k]->index, b->gen);
            if (e != 0) {
                rc = rc ? rc : e;
                h->dropped = 1; /* written, but no pointer will name it */
                continue;
            }
            b->slots[k]->dirty = 0;
        }
    }
    return rc;
}

/* The view reads of chunks not written by this open file use. */
static int snap_txn(struct fs *fs, struct fs_handle *h, struct client_txn **out)
{
    if (!h->snap) {
        int rc = h->path.snapshot_ts
                     ? client_txn_begin_at(fs->client, h->path.snapshot_ts, &h->snap)
                     : client_txn_begin(fs->client, &h->snap);
        if (rc != CLIENT_OK)
            return fs_neg_errno(rc);
    }
    *out = h->snap;
    return 0;
}

/* Fills `out` with chunk `index` as this open file has it (before its cached changes). */
static int load_chunk(struct fs *fs, struct fs_handle *h, uint64_t index, uint8_t *out)
{
    uint64_t start = index * FS_CHUNK_BYTES;
    struct client_txn *txn = NULL;
    int found, rc;
    size_t at;

    if (start >= h->len) {
        memset(out, 0, FS_CHUNK_BYTES);
        return 0;
    }
    at = pending_find(h, index, &found);
    if (found) {
        /* Written by us since the view: read it fresh. */
        rc = client_txn_begin(fs->client, &txn);
        if (rc != CLIENT_OK)
            return fs_neg_errno(rc);
        rc = read_data(txn, h->chunk_id, index, h->pending[at].gen, out);
        client_txn_rollback(txn);
        client_txn_free(txn);
        return rc;
    }
    if (h->fresh_id || start >= h->floor) {
        memset(out, 0, FS_CHUNK_BYTES);
        return 0;
    }
    rc = snap_txn(fs, h, &txn);
    if (rc == 0)
        rc = read_chunk(txn, h->chunk_id, index, out);
    if (rc == 0 && h->floor < start + FS_CHUNK_BYTES)
        memset(out + (h->floor - start), 0, (size_t)(start + FS_CHUNK_BYTES - h->floor));
    return rc;
}

/* The cached slot of chunk `index`, loading it (and writing dirty ones out to make room). */
static int chunk_slot(struct fs *fs, struct fs_handle *h, uint64_t index,
                      struct fs_chunk_slot **out)
{
    struct fs_chunk_slot *victim = NULL;
    int rc;

    h->tick++;
    for (int i = 0; i < FS_CHUNK_CACHE; i++) {
        struct fs_chunk_slot *s = &h->cache[i];
        if (s->data && s->index == index) {
            s->last_use = h->tick;
            *out = s;
            return 0;
        }
        if (!victim || !s->data || (victim->data && s->last_use < victim->last_use))
            victim = s;
    }
    if (victim->data && victim->dirty) {
        rc = fs_handle_chunk_flush(fs, h); /* memory stays bounded: write what is dirty */
        if (rc != 0)
            return rc;
    }
    if (!victim->data) {
        victim->data = malloc(FS_CHUNK_BYTES);
        if (!victim->data)
            return -ENOMEM;
    }
    victim->index = index;
    victim->dirty = 0;
    rc = load_chunk(fs, h, index, victim->data);
    if (rc != 0) {
        free(victim->data);
        victim->data = NULL;
        return rc;
    }
    victim->last_use = h->tick;
    *out = victim;
    return 0;
}

int fs_handle_make_chunked(struct fs *fs, struct fs_handle *h)
{
    uint8_t *data = h->data;
    size_t len = h->len;
    client_ts id;
    int rc = client_tso(fs->client, &id);

    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    memset(h->cache, 0, sizeof h->cache);
    h->data = NULL;
    h->cap = 0;
    h->chunked = 1;
    h->chunk_id = id;
    h->fresh_id = 1;
    h->floor = h->len;
    h->dirty = 1;
    /* The inline content (up to CLIENT_MAX_VALUE_BYTES if the file was written before the
     * chunked layout or through the KV API) becomes the first chunks. */
    for (uint64_t off = 0; off < len && rc == 0; off += FS_CHUNK_BYTES) {
        struct fs_chunk_slot *s;
        size_t n = len - off < FS_CHUNK_BYTES ? (size_t)(len - off) : FS_CHUNK_BYTES;
        rc = chunk_slot(fs, h, off / FS_CHUNK_BYTES, &s);
        if (rc == 0) {
            memcpy(s->data, data + off, n);
            s->dirty = 1;
        }
    }
    free(data);
    if (rc != 0)
        h->sticky_err = rc; /* part of the content is gone from memory: never commit it */
    return rc;
}

/* A chunk read ahead on its own thread, in its own view at the handle's view's timestamp. */
struct prefetch {
    struct fs *fs;
    uint64_t id, index, floor;
    client_ts ts;
    uint8_t *data;
    int rc;
};

static void *prefetch_thread(void *arg)
{
    struct prefetch *p = arg;
    struct client_txn *txn = NULL;
    uint64_t start = p->index * FS_CHUNK_BYTES;

    p->rc = fs_neg_errno(client_txn_begin_at(p->fs->client, p->ts, &txn));
    if (p->rc == 0)
        p->rc = read_chunk(txn, p->id, p->index, p->data);
    if (p->rc == 0 && p->floor < start + FS_CHUNK_BYTES)
        memset(p->data + (p->floor - start), 0, (size_t)(start + FS_CHUNK_BYTES - p->floor));
    if (txn) {
        client_txn_rollback(txn);
        client_txn_free(txn);
    }
    return NULL;
}

/* 1 if chunk `index` is read from the view (not cached, not written here, holding data). */
static int readable_from_view(const struct fs_handle *h, uint64_t index)
{
    int found;

    if (h->fresh_id || index * FS_CHUNK_BYTES >= h->floor || index * FS_CHUNK_BYTES >= h->len)
        return 0;
    for (int i = 0; i < FS_CHUNK_CACHE; i++)
        if (h->cache[i].data && h->cache[i].index == index)
            return 0;
    pending_find(h, index, &found);
    return !found;
}

/* Chunks read ahead of a sequential reader, while it waits for the one it asked for. */
#define FS_READ_AHEAD 3

int fs_handle_chunk_read(struct fs *fs, struct fs_handle *h, char *buf, size_t size, uint64_t off)
{
    struct prefetch ahead[FS_READ_AHEAD];
    pthread_t threads[FS_READ_AHEAD];
    struct client_txn *view = NULL;
    size_t done = 0, n_ahead = 0;
    uint64_t first = off / FS_CHUNK_BYTES;

    if (off >= h->len)
        return 0;
    if (size > h->len - off)
        size = (size_t)(h->len - off);
    /* A miss on the chunk after the last one read: fetch the next ones too, in parallel. */
    if (readable_from_view(h, first) && h->last_read_index + 1 == first &&
        snap_txn(fs, h, &view) == 0) {
        for (uint64_t i = first + 1; i <= first + FS_READ_AHEAD && n_ahead < FS_READ_AHEAD; i++) {
            struct prefetch *p = &ahead[n_ahead];
            if (!readable_from_view(h, i))
                break;
            p->fs = fs;
            p->id = h->chunk_id;
            p->index = i;
            p->floor = h->floor;
            p->ts = client_txn_start_ts(view);
            p->data = malloc(FS_CHUNK_BYTES);
            if (!p->data)
                break;
            if (pthread_create(&threads[n_ahead], NULL, prefetch_thread, p) != 0) {
                free(p->data);
                break;
            }
            n_ahead++;
        }
    }
    while (done < size) {
        uint64_t pos = off + done, index = pos / FS_CHUNK_BYTES;
        size_t in = (size_t)(pos % FS_CHUNK_BYTES), n = FS_CHUNK_BYTES - in;
        struct fs_chunk_slot *s;
        int rc = chunk_slot(fs, h, index, &s);
        if (rc != 0)
            return done ? (int)done : rc;
        if (n > size - done)
            n = size - done;
        memcpy(buf + done, s->data + in, n);
        done += n;
        h->last_read_index = index;
    }
    /* Read-ahead chunks take clean slots (the least recently used first). */
    for (size_t k = 0; k < n_ahead; k++) {
        struct fs_chunk_slot *victim = NULL;
        pthread_join(threads[k], NULL);
        if (ahead[k].rc == 0 && readable_from_view(h, ahead[k].index)) {
            for (int i = 0; i < FS_CHUNK_CACHE; i++) {
                struct fs_chunk_slot *sl = &h->cache[i];
                if (sl->dirty ||
                    (sl->data && sl->index >= first && sl->index <= first + FS_READ_AHEAD))
                    continue;
                if (!victim || !sl->data || (victim->data && sl->last_use < victim->last_use))
                    victim = sl;
            }
        }
        if (victim) {
            free(victim->data);
            victim->data = ahead[k].data;
            victim->index = ahead[k].index;
            victim->dirty = 0;
            victim->last_use = ++h->tick;
        } else {
            free(ahead[k].data);
        }
    }
    return (int)done;
}

int fs_handle_chunk_write(struct fs *fs, struct fs_handle *h, const char *buf, size_t size,
                          uint64_t off)
{
    size_t done = 0;

    if (off > FS_MAX_FILE_BYTES || size > FS_MAX_FILE_BYTES - off)
        return -EFBIG;
    while (done < size) {
        uint64_t pos = off + done, index = pos / FS_CHUNK_BYTES;
        size_t in = (size_t)(pos % FS_CHUNK_BYTES), n = FS_CHUNK_BYTES - in;
        struct fs_chunk_slot *s;
        int rc = chunk_slot(fs, h, index, &s);
        if (rc != 0)
            return done ? (int)done : rc;
        if (n > size - done)
            n = size - done;
        memcpy(s->data + in, buf + done, n);
        s->dirty = 1;
        done += n;
        if (pos + n > h->len)
            h->len = pos + n;
    }
    h->dirty = 1;
    h->meta.mtime = h->meta.ctime = fs_now();
    return (int)size;
}

int fs_handle_chunk_truncate(struct fs *fs, struct fs_handle *h, uint64_t size)
{
    uint64_t keep = (size + FS_CHUNK_BYTES - 1) / FS_CHUNK_BYTES; /* chunks still holding data */
    size_t at;
    int found, rc;

    if (size > FS_MAX_FILE_BYTES)
        return -EFBIG;
    h->dirty = 1;
    h->meta.mtime = h->meta.ctime = fs_now();
    if (size >= h->len) {
        h->len = size; /* growth reads as zeros: nothing past the old end has a pointer */
        return 0;
    }
    if (size % FS_CHUNK_BYTES) {
        /* The chunk the new end cuts is rewritten with zeros after it, so a later growth
         * does not bring its old bytes back. */
        struct fs_chunk_slot *s;
        rc = chunk_slot(fs, h, size / FS_CHUNK_BYTES, &s);
        if (rc != 0)
            return rc;
        memset(s->data + size % FS_CHUNK_BYTES, 0, FS_CHUNK_BYTES - size % FS_CHUNK_BYTES);
        s->dirty = 1;
    }
    for (int i = 0; i < FS_CHUNK_CACHE; i++) {
        if (h->cache[i].data && h->cache[i].index >= keep) {
            free(h->cache[i].data);
            h->cache[i].data = NULL;
        }
    }
    at = pending_find(h, keep, &found);
    if (at < h->n_pending)
        h->dropped = 1; /* their data keys are collected after the next commit */
    h->n_pending = at;  /* chunks written past the new end must not be pointed at */
    h->len = size;
    if (size < h->floor)
        h->floor = size;
    return 0;
}

/* Visits the keys of [start, end) (keys only) in batches; fn returns 0 to go on. */
static int scan_keys_range(struct client_txn *txn, const uint8_t *start, size_t start_len,
                           const uint8_t *end, size_t end_len,
                           int (*fn)(void *arg, const uint8_t *key, size_t len), void *arg)
{
    uint8_t from[FS_CHUNK_DATA_KEY_BYTES + 1];
    size_t from_len = start_len;
    int rc;

    memcpy(from, start, start_len);
    for (;;) {
        struct client_kv *kvs = NULL;
        size_t n = 0;

        rc = client_txn_scan_keys(txn, from, from_len, end, end_len, DROP_BATCH, &kvs, &n);
        if (rc != CLIENT_OK)
            return fs_neg_errno(rc);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = fn(arg, kvs[i].key, kvs[i].key_len);
        if (rc == 0 && n == DROP_BATCH && kvs[n - 1].key_len <= FS_CHUNK_DATA_KEY_BYTES) {
            memcpy(from, kvs[n - 1].key, kvs[n - 1].key_len);
            from[kvs[n - 1].key_len] = 0;
            from_len = kvs[n - 1].key_len + 1;
        }
        client_kvs_free(kvs, n);
        if (rc != 0 || n < DROP_BATCH)
            return rc;
    }
}

struct ptr_drop {
    struct client_txn *txn;
};

static int drop_in_txn(void *arg, const uint8_t *key, size_t len)
{
    struct ptr_drop *d = arg;
    return fs_neg_errno(client_txn_delete(d->txn, key, len));
}

int fs_handle_chunk_pointers(struct fs_handle *h, struct client_txn *txn)
{
    uint8_t key[FS_CHUNK_PTR_KEY_BYTES], end[FS_CHUNK_PTR_KEY_BYTES];
    uint8_t gen[8];
    int rc;

    if (!h->fresh_id && h->floor < h->base_len) {
        /* Pointers past the truncation point go (those rewritten since come back below). */
        struct ptr_drop d = {txn};
        fs_chunk_ptr_key(h->chunk_id, (h->floor + FS_CHUNK_BYTES - 1) / FS_CHUNK_BYTES, key);
        fs_chunk_ptr_key(h->chunk_id, 0, end);
        end[FS_CHUNK_PREFIX_LEN + 8] = 'p' + 1;
        rc = scan_keys_range(txn, key, sizeof key, end, FS_CHUNK_PREFIX_LEN + 9, drop_in_txn, &d);
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < h->n_pending; i++) {
        put_be64(gen, h->pending[i].gen);
        rc = client_txn_put(txn, key, fs_chunk_ptr_key(h->chunk_id, h->pending[i].index, key), gen,
                            sizeof gen);
        if (rc != CLIENT_OK)
            return fs_neg_errno(rc);
    }
    return 0;
}

/* Collecting keys in transactions of DROP_BATCH deletes. */
struct collector {
    struct fs *fs;
    struct client_txn *txn;
    size_t n;
    const struct fs_handle *keep; /* NULL: delete everything visited */
    uint64_t keep_below;          /* data keys of chunks below this index that no write replaced */
    int rc;
};

static void collector_commit(struct collector *c)
{
    if (c->txn) {
        int rc = client_txn_commit(c->txn, NULL);
        client_txn_free(c->txn);
        c->txn = NULL;
        if (rc != CLIENT_OK && c->rc == 0)
            c->rc = fs_neg_errno(rc);
    }
    c->n = 0;
}

static int collect_key(void *arg, const uint8_t *key, size_t len)
{
    struct collector *c = arg;

    if (c->keep && len == FS_CHUNK_DATA_KEY_BYTES) {
        uint64_t index = get_be64(key + FS_CHUNK_PREFIX_LEN + 9);
        uint64_t gen = get_be64(key + FS_CHUNK_PTR_KEY_BYTES);
        int found;
        size_t at = pending_find(c->keep, index, &found);
        if (found ? c->keep->pending[at].gen == gen : index < c->keep_below)
            return 0; /* still pointed at */
    }
    if (!c->txn) {
        int rc = client_txn_begin(c->fs->client, &c->txn);
        if (rc != CLIENT_OK)
            return fs_neg_errno(rc);
    }
    if (client_txn_delete(c->txn, key, len) != CLIENT_OK)
        return -ENOMEM;
    if (++c->n == DROP_BATCH)
        collector_commit(c);
    return c->rc;
}

/* Deletes the keys of `id` (with keep: the data keys its pointers no longer name). */
static void collect(struct fs *fs, uint64_t id, const struct fs_handle *keep, uint64_t keep_below)
{
    uint8_t start[FS_CHUNK_PTR_KEY_BYTES], end[FS_CHUNK_PTR_KEY_BYTES];
    struct client_txn *view = NULL;
    struct collector c = {fs, NULL, 0, keep, keep_below, 0};
    size_t start_len = FS_CHUNK_PREFIX_LEN + 8, end_len = FS_CHUNK_PREFIX_LEN + 8;
    int rc;

    memcpy(start, FS_CHUNK_PREFIX, FS_CHUNK_PREFIX_LEN);
    put_be64(start + FS_CHUNK_PREFIX_LEN, id);
    memcpy(end, start, end_len);
    if (keep) {
        start[start_len++] = 'd'; /* only data keys: the pointers are the file's */
        end[end_len++] = 'd' + 1;
    } else {
        fs_prefix_end(start, start_len, end, &end_len);
    }
    if (client_txn_begin(fs->client, &view) != CLIENT_OK)
        return;
    rc = scan_keys_range(view, start, start_len, end, end_len, collect_key, &c);
    collector_commit(&c);
    client_txn_rollback(view);
    client_txn_free(view);
    if (rc != 0 || c.rc != 0)
        LOG(LOG_WARN, "collecting chunks of %llu failed (%d): some stay behind",
            (unsigned long long)id, rc ? rc : c.rc);
}

void fs_chunks_drop(struct fs *fs, uint64_t id)
{
    if (id)
        collect(fs, id, NULL, 0);
}

void fs_handle_chunk_committed(struct fs *fs, struct fs_handle *h, client_ts commit_ts)
{
    /* Replaced generations, chunks past a truncation, chunks written and then cut off. */
    if (h->chunked && (h->dropped || (!h->fresh_id && (h->n_pending || h->floor < h->base_len))))
        collect(fs, h->chunk_id, h,
                h->fresh_id ? 0 : (h->floor + FS_CHUNK_BYTES - 1) / FS_CHUNK_BYTES);
    h->dropped = 0;
    if (h->old_chunk_id && h->old_chunk_id != h->chunk_id)
        fs_chunks_drop(fs, h->old_chunk_id);
    h->old_chunk_id = 0;
    h->n_pending = 0;
    h->fresh_id = 0;
    h->floor = h->base_len = h->len;
    /* Later reads see what this close committed. */
    if (h->snap) {
        client_txn_rollback(h->snap);
        client_txn_free(h->snap);
        h->snap = NULL;
    }
    if (h->chunked && client_txn_begin_at(fs->client, commit_ts, &h->snap) != CLIENT_OK)
        h->snap = NULL;
}

void fs_handle_chunk_release(struct fs *fs, struct fs_handle *h)
{
    if (h->n_pending && !h->path.snapshot_ts) {
        /* Written but never committed (a failed close, an unlinked file): no pointer names
         * them, so they go. */
        struct client_txn *txn = NULL;
        if (client_txn_begin(fs->client, &txn) == CLIENT_OK) {
            for (size_t i = 0; i < h->n_pending; i++) {
                uint8_t key[FS_CHUNK_DATA_KEY_BYTES];
                client_txn_delete(
                    txn, key,
                    fs_chunk_data_key(h->chunk_id, h->pending[i].index, h->pending[i].gen, key));
            }
            if (client_txn_commit(txn, NULL) != CLIENT_OK)
                LOG(LOG_WARN, "uncommitted chunks of %llu stay behind",
                    (unsigned long long)h->chunk_id);
            client_txn_free(txn);
        }
    }
    for (int i = 0; i < FS_CHUNK_CACHE; i++) {
        free(h->cache[i].data);
        h->cache[i].data = NULL;
    }
    free(h->pending);
    h->pending = NULL;
    h->n_pending = h->cap_pending = 0;
    if (h->snap) {
        client_txn_rollback(h->snap);
        client_txn_free(h->snap);
        h->snap = NULL;
    }
}

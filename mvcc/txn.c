/* txn.c — MvccTxn: one command's snapshot reads and its buffered writes. */
#include <stdlib.h>
#include <string.h>

#include "mvcc/mvcc_internal.h"

void mvcc_txn_init(struct mvcc_txn *txn, struct storage_reader *reader, uint64_t start_ts)
{
    memset(txn, 0, sizeof(*txn));
    txn->reader = reader;
    txn->start_ts = start_ts;
}

void mvcc_txn_close(struct mvcc_txn *txn)
{
    for (size_t i = 0; i < txn->n_mods; i++) {
        free(txn->mods[i].key);
        free(txn->mods[i].value);
    }
    free(txn->mods);
    txn->mods = NULL;
    txn->n_mods = txn->cap_mods = 0;
}

/* Appends a modification, taking ownership of key and value (freed on failure too). */
static int txn_push(struct mvcc_txn *txn, enum storage_modify_kind kind, enum storage_cf cf,
                    uint8_t *key, size_t key_len, uint8_t *value, size_t value_len)
{
    if (txn->n_mods == txn->cap_mods) {
        size_t cap = txn->cap_mods ? txn->cap_mods * 2 : 8;
        struct mvcc_txn_mod *m = realloc(txn->mods, cap * sizeof(*m));
        if (!m) {
            free(key);
            free(value);
            return MVCC_ERR_NOMEM;
        }
        txn->mods = m;
        txn->cap_mods = cap;
    }
    txn->mods[txn->n_mods++] = (struct mvcc_txn_mod){
        .kind = kind,
        .cf = cf,
        .key = key,
        .key_len = key_len,
        .value = value,
        .value_len = value_len,
    };
    return MVCC_OK;
}

int mvcc_txn_put_lock(struct mvcc_txn *txn, const void *key, size_t key_len,
                      const struct mvcc_lock *lock)
{
    size_t vlen = mvcc_lock_encoded_len(lock), klen;
    uint8_t *k = NULL;
    uint8_t *v = malloc(vlen);
    if (!v || mvcc_lock_key_encode(key, key_len, &k, &klen) != MVCC_OK) {
        free(v);
        return MVCC_ERR_NOMEM;
    }
    mvcc_lock_encode(lock, v);
    return txn_push(txn, STORAGE_MODIFY_PUT, STORAGE_CF_LOCK, k, klen, v, vlen);
}

int mvcc_txn_delete_lock(struct mvcc_txn *txn, const void *key, size_t key_len)
{
    uint8_t *k;
    size_t klen;
    if (mvcc_lock_key_encode(key, key_len, &k, &klen) != MVCC_OK)
        return MVCC_ERR_NOMEM;
    return txn_push(txn, STORAGE_MODIFY_DELETE, STORAGE_CF_LOCK, k, klen, NULL, 0);
}

int mvcc_txn_put_value(struct mvcc_txn *txn, const void *key, size_t key_len, const void *value,
                       size_t value_len)
{
    uint8_t *k, *v;
    size_t klen;
    if (mvcc_key_encode(key, key_len, txn->start_ts, &k, &klen) != MVCC_OK)
        return MVCC_ERR_NOMEM;
    v = mvcc_memdup(value, value_len);
    if (!v) {
        free(k);
        return MVCC_ERR_NOMEM;
    }
    return txn_push(txn, STORAGE_MODIFY_PUT, STORAGE_CF_DEFAULT, k, klen, v, value_len);
}

int mvcc_txn_delete_value(struct mvcc_txn *txn, const void *key, size_t key_len)
{
    uint8_t *k;
    size_t klen;
    if (mvcc_key_encode(key, key_len, txn->start_ts, &k, &klen) != MVCC_OK)
        return MVCC_ERR_NOMEM;
    return txn_push(txn, STORAGE_MODIFY_DELETE, STORAGE_CF_DEFAULT, k, klen, NULL, 0);
}

int mvcc_txn_put_write(struct mvcc_txn *txn, const void *key, size_t key_len, uint64_t commit_ts,
                       const struct mvcc_write *w)
{
    uint8_t *k, *v;
    size_t klen;
    if (mvcc_key_encode(key, key_len, commit_ts, &k, &klen) != MVCC_OK)
        return MVCC_ERR_NOMEM;
    uint8_t rec[MVCC_WRITE_RECORD_MAX];
    size_t len = mvcc_write_encode(w, rec);
    v = malloc(len);
    if (!v) {
        free(k);
        return MVCC_ERR_NOMEM;
    }
    memcpy(v, rec, len);
    return txn_push(txn, STORAGE_MODIFY_PUT, STORAGE_CF_WRITE, k, klen, v, len);
}

/* Decodes a lock from a value buffer the lock then owns (freed on failure). */
static int lock_from_owned(void *buf, size_t len, struct mvcc_lock *out)
{
    int rc = mvcc_lock_decode(buf, len, out);
    if (rc != MVCC_OK) {
        free(buf);
        return rc;
    }
    out->buf = buf;
    return MVCC_OK;
}

int mvcc_txn_get_lock(struct mvcc_txn *txn, const void *key, size_t key_len, struct mvcc_lock *out,
                      int *found)
{
    void *val = NULL;
    size_t vlen = 0;
    int rc;

    uint8_t *lk;
    size_t lk_len;

    *found = 0;
    memset(out, 0, sizeof(*out));
    if (mvcc_lock_key_encode(key, key_len, &lk, &lk_len) != MVCC_OK)
        return MVCC_ERR_NOMEM;
    /* A command that touches a key twice must see its own first change. */
    for (size_t i = txn->n_mods; i-- > 0;) {
        const struct mvcc_txn_mod *m = &txn->mods[i];
        if (m->cf != STORAGE_CF_LOCK || m->key_len != lk_len || memcmp(m->key, lk, lk_len) != 0)
            continue;
        free(lk);
        if (m->kind == STORAGE_MODIFY_DELETE)
            return MVCC_OK;
        val = mvcc_memdup(m->value, m->value_len);
        if (!val)
            return MVCC_ERR_NOMEM;
        rc = lock_from_owned(val, m->value_len, out);
        if (rc == MVCC_OK)
            *found = 1;
        return rc;
    }
    rc = storage_reader_get(txn->reader, STORAGE_CF_LOCK, lk, lk_len, &val, &vlen);
    free(lk);
    if (rc == STORAGE_ERR_NOT_FOUND)
        return MVCC_OK;
    if (rc != STORAGE_OK)
        return mvcc_from_storage(rc);
    rc = lock_from_owned(val, vlen, out);
    if (rc == MVCC_OK)
        *found = 1;
    return rc;
}

static uint64_t tail_ts(const uint8_t *k, size_t len)
{
    uint64_t inv = 0;
    for (size_t i = len - 8; i < len; i++)
        inv = (inv << 8) | k[i];
    return ~inv;
}

/*
 * Walks key's write records from newest, starting at commit_ts <= from_ts.
 * For each, calls visit; a nonzero visit return stops the walk (1 = stop
 * successfully, else an error code).
 */
typedef int (*write_visit_fn)(void *arg, uint64_t commit_ts, const struct mvcc_write *w);

static int walk_writes(struct mvcc_txn *txn, const void *key, size_t key_len, uint64_t from_ts,
                       write_visit_fn visit, void *arg)
{
    struct storage_iter *it = NULL;
    uint8_t *seek_key = NULL;
    size_t seek_len, prefix_len = codec_key_len(key_len);
    int rc;

    rc = mvcc_key_encode(key, key_len, from_ts, &seek_key, &seek_len);
    if (rc != MVCC_OK)
        goto out;
    rc = storage_reader_iter(txn->reader, STORAGE_CF_WRITE, &it);
    if (rc != STORAGE_OK) {
        rc = mvcc_from_storage(rc);
        it = NULL;
        goto out;
    }
    for (storage_iter_seek(it, seek_key, seek_len); storage_iter_valid(it); storage_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *k = storage_iter_key(it, &klen);
        if (!mvcc_key_has_prefix(k, klen, seek_key, prefix_len))
            break;
        const void *v = storage_iter_value(it, &vlen);
        struct mvcc_write w;
        rc = mvcc_write_decode(v, vlen, &w);
        if (rc != MVCC_OK)
            goto out;
        rc = visit(arg, tail_ts(k, klen), &w);
        if (rc == 1) {
            rc = MVCC_OK;
            goto out;
        }
        if (rc != 0)
            goto out;
    }
    rc = MVCC_OK;
out:
    storage_iter_free(it);
    free(seek_key);
    return rc;
}

struct visible_arg {
    struct mvcc_write w; /* its short value copied into `value` */
    uint64_t commit_ts;
    int found;
    void *value;
};

static int visit_visible(void *arg, uint64_t commit_ts, const struct mvcc_write *w)
{
    struct visible_arg *a = arg;
    if (w->kind == MVCC_WRITE_ROLLBACK || w->kind == MVCC_WRITE_LOCK)
        return 0;
    if (w->has_short) {
        /* The record's bytes go with the iterator. */
        a->value = mvcc_memdup(w->short_value, w->short_len);
        if (!a->value)
            return MVCC_ERR_NOMEM;
    }
    a->w = *w;
    a->commit_ts = commit_ts;
    a->found = 1;
    return 1;
}

int mvcc_txn_get_value(struct mvcc_txn *txn, const void *key, size_t key_len, void **value,
                       size_t *value_len, int *found)
{
    return mvcc_txn_get_version(txn, key, key_len, value, value_len, NULL, found);
}

int mvcc_txn_get_version(struct mvcc_txn *txn, const void *key, size_t key_len, void **value,
                         size_t *value_len, uint64_t *commit_ts, int *found)
{
    struct visible_arg a = {.found = 0};
    uint8_t *dkey = NULL;
    size_t dlen;
    int rc;

    *found = 0;
    *value = NULL;
    *value_len = 0;
    rc = walk_writes(txn, key, key_len, txn->start_ts, visit_visible, &a);
    if (rc != MVCC_OK || !a.found || a.w.kind == MVCC_WRITE_DELETE)
        return rc;
    if (a.w.has_short) {
        *value = a.value;
        *value_len = a.w.short_len;
        *found = 1;
        if (commit_ts)
            *commit_ts = a.commit_ts;
        return MVCC_OK;
    }
    rc = mvcc_key_encode(key, key_len, a.w.start_ts, &dkey, &dlen);
    if (rc != MVCC_OK)
        return rc;
    rc = storage_reader_get(txn->reader, STORAGE_CF_DEFAULT, dkey, dlen, value, value_len);
    free(dkey);
    if (rc == STORAGE_ERR_NOT_FOUND)
        return MVCC_ERR_CORRUPT; /* a put record without its value */
    if (rc != STORAGE_OK)
        return mvcc_from_storage(rc);
    *found = 1;
    if (commit_ts)
        *commit_ts = a.commit_ts;
    return MVCC_OK;
}

struct current_arg {
    uint64_t start_ts;
    struct mvcc_write w;
    uint64_t commit_ts;
    int found;
};

/* Keeps the record the walk stands on; returns 1 (stop). */
static int keep_record(struct current_arg *a, uint64_t commit_ts, const struct mvcc_write *w)
{
    a->w = *w;
    a->w.short_value = NULL; /* its bytes go with the walk's iterator */
    a->commit_ts = commit_ts;
    a->found = 1;
    return 1;
}

static int visit_current(void *arg, uint64_t commit_ts, const struct mvcc_write *w)
{
    struct current_arg *a = arg;
    /* commit_ts >= start_ts always, so older records cannot be ours. */
    if (commit_ts < a->start_ts)
        return 1;
    if (w->start_ts != a->start_ts)
        return 0;
    return keep_record(a, commit_ts, w);
}

int mvcc_txn_current_write(struct mvcc_txn *txn, const void *key, size_t key_len,
                           struct mvcc_write *w, uint64_t *commit_ts, int *found)
{
    struct current_arg a = {.start_ts = txn->start_ts};
    int rc = walk_writes(txn, key, key_len, MVCC_TS_MAX, visit_current, &a);
    *found = rc == MVCC_OK && a.found;
    if (*found) {
        *w = a.w;
        *commit_ts = a.commit_ts;
    }
    return rc;
}

static int visit_at_start(void *arg, uint64_t commit_ts, const struct mvcc_write *w)
{
    struct current_arg *a = arg;
    /* The walk starts at start_ts: the first record is there or older. */
    return commit_ts == a->start_ts ? keep_record(a, commit_ts, w) : 1;
}

int mvcc_txn_write_at_start(struct mvcc_txn *txn, const void *key, size_t key_len,
                            struct mvcc_write *w, int *found)
{
    struct current_arg a = {.start_ts = txn->start_ts};
    int rc = walk_writes(txn, key, key_len, txn->start_ts, visit_at_start, &a);
    *found = rc == MVCC_OK && a.found;
    if (*found)
        *w = a.w;
    return rc;
}

static int visit_first(void *arg, uint64_t commit_ts, const struct mvcc_write *w)
{
    return keep_record(arg, commit_ts, w);
}

int mvcc_txn_most_recent_write(struct mvcc_txn *txn, const void *key, size_t key_len,
                               struct mvcc_write *w, uint64_t *commit_ts, int *found)
{
    struct current_arg a = {.found = 0};
    int rc = walk_writes(txn, key, key_len, MVCC_TS_MAX, visit_first, &a);
    *found = rc == MVCC_OK && a.found;
    if (*found) {
        *w = a.w;
        *commit_ts = a.commit_ts;
    }
    return rc;
}

/* The buffered modifications as a storage batch borrowing their bytes; NULL on OOM. */
static struct storage_modify *txn_batch(const struct mvcc_txn *txn)
{
    struct storage_modify *mods = calloc(txn->n_mods, sizeof(*mods));
    if (!mods)
        return NULL;
    for (size_t i = 0; i < txn->n_mods; i++) {
        const struct mvcc_txn_mod *m = &txn->mods[i];
        mods[i] = (struct storage_modify){
            .kind = m->kind,
            .cf = m->cf,
            .key = m->key,
            .key_len = m->key_len,
            .value = m->value,
            .value_len = m->value_len,
        };
    }
    return mods;
}

int mvcc_txn_write(struct mvcc_txn *txn, struct storage *s, const struct storage_ctx *ctx,
                   struct storage_error *err)
{
    if (txn->n_mods == 0)
        return MVCC_OK;
    struct storage_modify *mods = txn_batch(txn);
    if (!mods)
        return MVCC_ERR_NOMEM;
    int rc = storage_write(s, ctx, mods, txn->n_mods, err);
    free(mods);
    if (rc != STORAGE_OK)
        return mvcc_from_storage(rc);
    return MVCC_OK;
}

void mvcc_txn_write_async(struct mvcc_txn *txn, struct storage *s, const struct storage_ctx *ctx,
                          storage_write_cb cb, void *arg)
{
    if (txn->n_mods == 0) {
        cb(arg, STORAGE_OK, NULL);
        return;
    }
    struct storage_modify *mods = txn_batch(txn);
    if (!mods) {
        struct storage_error err = {.code = STORAGE_ERR_NOMEM};
        cb(arg, STORAGE_ERR_NOMEM, &err);
        return;
    }
    /* cb may have run (and the command ended) before this returns: mods is ours alone. */
    size_t n = txn->n_mods;
    storage_write_async(s, ctx, mods, n, cb, arg);
    free(mods);
}

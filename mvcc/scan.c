/* scan.c — KvScan: visible pairs of a key range at a version, merging the lock and write CFs. */
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "mvcc/mvcc_internal.h"

struct scan_state {
    struct storage_reader *reader;
    struct storage_iter *lit; /* CF lock, enc(user key) */
    struct storage_iter *wit; /* CF write, enc(user key) ++ ~commit_ts */
    const uint8_t *end;
    size_t end_len;
    uint64_t version;
    size_t max_bytes;
    size_t bytes; /* keys and values collected so far */
    int key_only;
    int full; /* the byte cap stopped the scan */
    size_t cap;
    struct mvcc_scan_result *out;
};

static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int before_end(const struct scan_state *st, const void *key, size_t len)
{
    return st->end_len == 0 || key_cmp(key, len, st->end, st->end_len) < 0;
}

/* Appends a pair with a copy of key; *pair points at it. */
static int push_pair(struct scan_state *st, const void *key, size_t key_len,
                     struct mvcc_kv_pair **pair)
{
    struct mvcc_scan_result *r = st->out;
    if (r->n_pairs == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 16;
        struct mvcc_kv_pair *p = realloc(r->pairs, cap * sizeof(*p));
        if (!p)
            return MVCC_ERR_NOMEM;
        r->pairs = p;
        st->cap = cap;
    }
    struct mvcc_kv_pair *p = &r->pairs[r->n_pairs];
    memset(p, 0, sizeof(*p));
    p->key = mvcc_memdup(key, key_len);
    if (!p->key)
        return MVCC_ERR_NOMEM;
    p->key_len = key_len;
    r->n_pairs++;
    *pair = p;
    return MVCC_OK;
}

/* A seek costs far more than a step when a key has few versions: the scan steps over up to this
 * many records of a key before it seeks instead. */
#define SCAN_STEPS_BEFORE_SEEK 4

/* Moves wit, standing on a record of the user key whose encoding is prefix[0, prefix_len), to
 * the first record that is not the key's or whose ts is at most below_ts: a few steps, then a
 * seek to `seek` (enc(key) ++ ~below_ts). */
static void step_to(struct storage_iter *wit, const uint8_t *seek, size_t seek_len,
                    size_t prefix_len, uint64_t below_ts)
{
    for (int steps = 0; storage_iter_valid(wit); steps++) {
        size_t klen;
        const uint8_t *k = storage_iter_key(wit, &klen);
        if (!mvcc_key_has_prefix(k, klen, seek, prefix_len) ||
            codec_ts_decode(k + prefix_len) <= below_ts)
            return;
        if (steps == SCAN_STEPS_BEFORE_SEEK) {
            storage_iter_seek(wit, seek, seek_len);
            return;
        }
        storage_iter_next(wit);
    }
}

/*
 * With wit positioned at the newest record of user key `key`, finds the value visible at
 * st->version and leaves wit at the next user key.
 */
static int visible_and_skip(struct scan_state *st, const uint8_t *key, size_t key_len, void **value,
                            size_t *value_len, int *found)
{
    uint8_t *seek = NULL, *dkey = NULL;
    size_t seek_len, dlen, prefix_len = codec_key_len(key_len);
    int rc;

    *found = 0;
    rc = mvcc_key_encode(key, key_len, st->version, &seek, &seek_len);
    if (rc != MVCC_OK)
        return rc;
    step_to(st->wit, seek, seek_len, prefix_len, st->version);
    for (; storage_iter_valid(st->wit); storage_iter_next(st->wit)) {
        size_t klen, vlen;
        const void *k = storage_iter_key(st->wit, &klen);
        if (!mvcc_key_has_prefix(k, klen, seek, prefix_len))
            break;
        const void *v = storage_iter_value(st->wit, &vlen);
        struct mvcc_write w;
        rc = mvcc_write_decode(v, vlen, &w);
        if (rc != MVCC_OK)
            goto cleanup;
        if (w.kind == MVCC_WRITE_ROLLBACK || w.kind == MVCC_WRITE_LOCK)
            continue;
        if (w.kind == MVCC_WRITE_PUT && st->key_only) {
            *found = 1;
        } else if (w.kind == MVCC_WRITE_PUT && w.has_short) {
            *value = mvcc_memdup(w.short_value, w.short_len);
            if (!*value) {
                rc = MVCC_ERR_NOMEM;
                goto cleanup;
            }
            *value_len = w.short_len;
            *found = 1;
        } else if (w.kind == MVCC_WRITE_PUT) {
            rc = mvcc_key_encode(key, key_len, w.start_ts, &dkey, &dlen);
            if (rc != MVCC_OK)
                goto cleanup;
            rc = storage_reader_get(st->reader, STORAGE_CF_DEFAULT, dkey, dlen, value, value_len);
            if (rc == STORAGE_ERR_NOT_FOUND) {
                rc = MVCC_ERR_CORRUPT;
                goto cleanup;
            }
            if (rc != STORAGE_OK) {
                rc = mvcc_from_storage(rc);
                goto cleanup;
            }
            *found = 1;
        }
        break;
    }

    /* enc(key) ++ ~0 is the oldest possible version of key: step over it. */
    memset(seek + prefix_len, 0xFF, 8);
    step_to(st->wit, seek, seek_len, prefix_len, 0);
    if (storage_iter_valid(st->wit)) {
        size_t klen;
        const void *k = storage_iter_key(st->wit, &klen);
        if (mvcc_key_has_prefix(k, klen, seek, prefix_len))
            storage_iter_next(st->wit);
    }
    rc = MVCC_OK;
cleanup:
    free(seek);
    free(dkey);
    return rc;
}

/* Would a pair of `len` more bytes pass the byte cap? The first pair always fits. */
static int over_cap(const struct scan_state *st, size_t len)
{
    return st->max_bytes && st->out->n_pairs > 0 && st->bytes + len > st->max_bytes;
}

int mvcc_scan(struct mvcc_engine *e, const struct storage_ctx *ctx, const struct mvcc_scan_req *req,
              struct mvcc_scan_result *out)
{
    struct scan_state st = {0};
    uint8_t *wkey = NULL, *lkey = NULL, *seek = NULL;
    size_t seek_len;
    int rc;

    if (!out)
        return MVCC_ERR_ARG;
    memset(out, 0, sizeof(*out));
    if (!e || !req)
        return MVCC_ERR_ARG;
    const void *start_key = req->start_key, *end_key = req->end_key;
    size_t start_key_len = req->start_key_len, end_key_len = req->end_key_len;
    uint32_t limit = req->limit;
    uint64_t version = req->version;
    if (start_key_len > MVCC_MAX_KEY_BYTES || end_key_len > MVCC_MAX_KEY_BYTES) {
        mvcc_key_error_set(&out->error, MVCC_KEY_ERR_INVALID,
                           "scan bound is longer than the %d bytes allowed", MVCC_MAX_KEY_BYTES);
        return MVCC_OK;
    }
    if (limit == 0)
        return MVCC_OK;

    st.out = out;
    st.version = version;
    st.end = end_key;
    st.end_len = end_key_len;
    st.max_bytes = req->max_bytes;
    st.key_only = req->key_only;
    /* Before the snapshot: a one-phase commit gone from the table has applied. */
    rc = mvcc_wait_mem_locks(e, start_key ? start_key : "", start_key_len, end_key ? end_key : "",
                             end_key_len, version, &out->storage_err);
    if (rc == MVCC_OK)
        rc = mvcc_open_reader(e, ctx, &st.reader, &out->storage_err, out->errmsg);
    if (rc != MVCC_OK) {
        mvcc_errmsg_default(out->errmsg, rc, &out->storage_err);
        return rc;
    }
    rc = storage_reader_iter(st.reader, STORAGE_CF_LOCK, &st.lit);
    if (rc == STORAGE_OK)
        rc = storage_reader_iter(st.reader, STORAGE_CF_WRITE, &st.wit);
    if (rc != STORAGE_OK) {
        rc = mvcc_from_storage(rc);
        goto cleanup;
    }
    /* enc(start) sorts before every version of start and after smaller keys. */
    seek_len = codec_key_len(start_key_len);
    seek = malloc(seek_len);
    if (!seek) {
        rc = MVCC_ERR_NOMEM;
        goto cleanup;
    }
    codec_key_encode(start_key_len ? start_key : "", start_key_len, seek);
    storage_iter_seek(st.lit, seek, seek_len);
    storage_iter_seek(st.wit, seek, seek_len);

    while (out->n_pairs < limit && !st.full) {
        const void *lk = NULL;
        size_t lk_len = 0, wk_len = 0;
        int have_l = 0, have_w = 0;

        free(wkey);
        free(lkey);
        wkey = lkey = NULL;
        if (storage_iter_valid(st.lit)) {
            size_t klen;
            const void *k = storage_iter_key(st.lit, &klen);
            rc = mvcc_lock_key_decode(k, klen, &lkey, &lk_len);
            if (rc != MVCC_OK)
                goto cleanup;
            lk = lkey;
            have_l = before_end(&st, lk, lk_len);
        }
        if (storage_iter_valid(st.wit)) {
            size_t klen;
            const void *k = storage_iter_key(st.wit, &klen);
            rc = mvcc_key_decode(k, klen, &wkey, &wk_len, NULL);
            if (rc != MVCC_OK)
                goto cleanup;
            have_w = before_end(&st, wkey, wk_len);
        }
        if (!have_l && !have_w)
            break;

        int c = !have_l ? 1 : !have_w ? -1 : key_cmp(lk, lk_len, wkey, wk_len);
        /* The current user key, copied: the lock iterator moves below. */
        const uint8_t *cur = c <= 0 ? lk : wkey;
        size_t cur_len = c <= 0 ? lk_len : wk_len;
        uint8_t *cur_copy = mvcc_memdup(cur, cur_len);
        struct mvcc_kv_pair *pair;
        int locked = 0;
        if (!cur_copy) {
            rc = MVCC_ERR_NOMEM;
            goto cleanup;
        }

        if (c <= 0) {
            size_t vlen;
            const void *v = storage_iter_value(st.lit, &vlen);
            struct mvcc_lock lock;
            rc = mvcc_lock_decode(v, vlen, &lock);
            if (rc == MVCC_OK && lock.kind != MVCC_WRITE_LOCK && lock.start_ts <= version) {
                locked = 1;
                st.full = over_cap(&st, cur_len);
                if (!st.full)
                    rc = push_pair(&st, cur_copy, cur_len, &pair);
                if (rc == MVCC_OK && !st.full) {
                    st.bytes += cur_len;
                    rc = mvcc_key_error_locked(&pair->error, cur_copy, cur_len, &lock);
                }
            }
            storage_iter_next(st.lit);
        }
        if (rc == MVCC_OK && c >= 0 && !st.full) {
            void *value = NULL;
            size_t value_len = 0;
            int found;
            rc = visible_and_skip(&st, cur_copy, cur_len, &value, &value_len, &found);
            if (rc == MVCC_OK && found && !locked) {
                st.full = over_cap(&st, cur_len + value_len);
                if (!st.full)
                    rc = push_pair(&st, cur_copy, cur_len, &pair);
                if (rc == MVCC_OK && !st.full) {
                    st.bytes += cur_len + value_len;
                    pair->value = value;
                    pair->value_len = value_len;
                    value = NULL;
                }
            }
            free(value);
        }
        free(cur_copy);
        if (rc != MVCC_OK)
            goto cleanup;
    }
    rc = MVCC_OK;

cleanup:
    free(wkey);
    free(lkey);
    free(seek);
    storage_iter_free(st.lit);
    storage_iter_free(st.wit);
    storage_reader_free(st.reader);
    if (rc != MVCC_OK) {
        struct storage_error keep = out->storage_err;
        char msg[256];
        memcpy(msg, out->errmsg, sizeof(msg));
        mvcc_scan_result_free(out);
        out->storage_err = keep;
        memcpy(out->errmsg, msg, sizeof(msg));
    }
    mvcc_errmsg_default(out->errmsg, rc, &out->storage_err);
    return rc;
}

/* resolve_lock.c — KvResolveLock: commit or roll back every lock a transaction left behind. */
#include <stdlib.h>
#include <string.h>

#include "mvcc/mvcc_internal.h"

struct key_list {
    struct mvcc_key_slice *keys; /* data owned (malloc'd copies) */
    size_t n, cap;
};

static void key_list_free(struct key_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free((void *)l->keys[i].data);
    free(l->keys);
    memset(l, 0, sizeof(*l));
}

static int key_list_push(struct key_list *l, const void *key, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct mvcc_key_slice *k = realloc(l->keys, cap * sizeof(*k));
        if (!k)
            return MVCC_ERR_NOMEM;
        l->keys = k;
        l->cap = cap;
    }
    void *copy = mvcc_memdup(key, len);
    if (!copy)
        return MVCC_ERR_NOMEM;
    l->keys[l->n++] = (struct mvcc_key_slice){copy, len};
    return MVCC_OK;
}

/* Collects the keys of every lock with start_ts from a snapshot of the lock CF. */
static int find_locks(struct mvcc_engine *e, const struct storage_ctx *ctx, uint64_t start_ts,
                      struct key_list *out, struct mvcc_write_result *res)
{
    struct storage_reader *reader = NULL;
    struct storage_iter *it = NULL;
    int rc;

    rc = mvcc_open_reader(e, ctx, &reader, &res->storage_err, res->errmsg);
    if (rc != MVCC_OK)
        return rc;
    rc = storage_reader_iter(reader, STORAGE_CF_LOCK, &it);
    if (rc != STORAGE_OK) {
        rc = mvcc_from_storage(rc);
        it = NULL;
        goto cleanup;
    }
    for (storage_iter_seek(it, "", 0); storage_iter_valid(it); storage_iter_next(it)) {
        size_t klen, vlen;
        const void *k = storage_iter_key(it, &klen);
        const void *v = storage_iter_value(it, &vlen);
        struct mvcc_lock lock;
        rc = mvcc_lock_decode(v, vlen, &lock);
        if (rc != MVCC_OK)
            goto cleanup;
        if (lock.start_ts == start_ts) {
            uint8_t *user;
            size_t user_len;
            rc = mvcc_lock_key_decode(k, klen, &user, &user_len);
            if (rc != MVCC_OK)
                goto cleanup;
            rc = key_list_push(out, user, user_len);
            free(user);
            if (rc != MVCC_OK)
                goto cleanup;
        }
    }
    rc = MVCC_OK;
cleanup:
    storage_iter_free(it);
    storage_reader_free(reader);
    return rc;
}

int mvcc_resolve_lock(struct mvcc_engine *e, const struct storage_ctx *ctx, uint64_t start_ts,
                      uint64_t commit_ts, struct mvcc_write_result *out)
{
    struct key_list locks = {0};
    struct mvcc_latch_guard guard = {0};
    struct storage_reader *reader = NULL;
    struct mvcc_txn txn;
    int rc, have_txn = 0;

    if (!out)
        return MVCC_ERR_ARG;
    memset(out, 0, sizeof(*out));
    if (!e)
        return MVCC_ERR_ARG;
    if (start_ts == 0) {
        /* No transaction starts at 0: an empty request, not a lock to find. */
        mvcc_key_error_set(&out->error, MVCC_KEY_ERR_INVALID, "start version is 0");
        return MVCC_OK;
    }
    if (commit_ts != 0 && commit_ts <= start_ts) {
        mvcc_key_error_set(&out->error, MVCC_KEY_ERR_INVALID,
                           "commit ts %llu is not after start ts %llu",
                           (unsigned long long)commit_ts, (unsigned long long)start_ts);
        return MVCC_OK;
    }

    rc = find_locks(e, ctx, start_ts, &locks, out);
    if (rc != MVCC_OK || locks.n == 0)
        goto cleanup;
    /* Re-read under the latches: the locks may have been resolved meanwhile,
     * which the per-key steps treat as already done. */
    rc = mvcc_latches_acquire(&e->latches, locks.keys, locks.n, &guard);
    if (rc != MVCC_OK)
        goto cleanup;
    rc = mvcc_open_reader(e, ctx, &reader, &out->storage_err, out->errmsg);
    if (rc != MVCC_OK)
        goto cleanup;
    mvcc_txn_init(&txn, reader, start_ts);
    have_txn = 1;
    for (size_t i = 0; i < locks.n; i++) {
        const struct mvcc_key_slice *k = &locks.keys[i];
        if (commit_ts)
            rc = mvcc_commit_key(&txn, k->data, k->len, commit_ts, &out->error);
        else
            rc = mvcc_rollback_key(&txn, k->data, k->len, &out->error);
        if (rc != MVCC_OK || out->error.kind != MVCC_KEY_ERR_NONE)
            goto cleanup;
    }
    rc = mvcc_txn_write(&txn, e->storage, ctx, &out->storage_err);

cleanup:
    if (have_txn)
        mvcc_txn_close(&txn);
    storage_reader_free(reader);
    mvcc_latches_release(&e->latches, &guard);
    key_list_free(&locks);
    if (rc != MVCC_OK)
        mvcc_key_error_clear(&out->error);
    mvcc_errmsg_default(out->errmsg, rc, &out->storage_err);
    return rc;
}

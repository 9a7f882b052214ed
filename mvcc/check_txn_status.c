/* check_txn_status.c — KvCheckTxnStatus: decide a transaction's fate from its primary key. */
#include <stdlib.h>
#include <string.h>

#include "mvcc/mvcc_internal.h"

/* physical(lock) + ttl < physical(current), without overflow. */
static int lock_expired(const struct mvcc_lock *lock, uint64_t current_ts)
{
    uint64_t lock_ms = mvcc_ts_physical_ms(lock->start_ts);
    uint64_t now_ms = mvcc_ts_physical_ms(current_ts);
    return now_ms > lock_ms && now_ms - lock_ms > lock->ttl_ms;
}

int mvcc_check_txn_status(struct mvcc_engine *e, const struct storage_ctx *ctx, const void *primary,
                          size_t primary_len, uint64_t lock_ts, uint64_t current_ts,
                          struct mvcc_check_txn_status_result *out)
{
    struct mvcc_key_slice key = {primary, primary_len};
    struct mvcc_latch_guard guard = {0};
    struct storage_reader *reader = NULL;
    struct mvcc_lock lock = {0};
    struct mvcc_write w;
    struct mvcc_txn txn;
    uint64_t cts;
    int rc, found, have_txn = 0;

    if (!out)
        return MVCC_ERR_ARG;
    memset(out, 0, sizeof(*out));
    if (!e)
        return MVCC_ERR_ARG;
    if (mvcc_check_key(&out->error, "primary key", primary, primary_len))
        return MVCC_OK;

    rc = mvcc_latches_acquire(&e->latches, &key, 1, &guard);
    if (rc != MVCC_OK)
        goto cleanup;
    rc = mvcc_open_reader(e, ctx, &reader, &out->storage_err, out->errmsg);
    if (rc != MVCC_OK)
        goto cleanup;
    mvcc_txn_init(&txn, reader, lock_ts);
    have_txn = 1;

    rc = mvcc_txn_get_lock(&txn, primary, primary_len, &lock, &found);
    if (rc != MVCC_OK)
        goto cleanup;
    if (found && lock.start_ts == lock_ts) {
        if (!lock_expired(&lock, current_ts)) {
            out->lock_ttl = lock.ttl_ms;
            out->action = MVCC_ACTION_NO_ACTION;
            goto cleanup;
        }
        rc = mvcc_rollback_key(&txn, primary, primary_len, &out->error);
        if (rc == MVCC_OK && out->error.kind == MVCC_KEY_ERR_NONE)
            rc = mvcc_txn_write(&txn, e->storage, ctx, &out->storage_err);
        if (rc == MVCC_OK && out->error.kind == MVCC_KEY_ERR_NONE)
            out->action = MVCC_ACTION_TTL_EXPIRE_ROLLBACK;
        goto cleanup;
    }

    rc = mvcc_txn_current_write(&txn, primary, primary_len, &w, &cts, &found);
    if (rc != MVCC_OK)
        goto cleanup;
    if (found) {
        if (w.kind != MVCC_WRITE_ROLLBACK)
            out->commit_version = cts;
        out->action = MVCC_ACTION_NO_ACTION;
        goto cleanup;
    }
    /* No trace of the transaction: fence it so a late prewrite cannot land. */
    rc = mvcc_rollback_key(&txn, primary, primary_len, &out->error);
    if (rc == MVCC_OK && out->error.kind == MVCC_KEY_ERR_NONE)
        rc = mvcc_txn_write(&txn, e->storage, ctx, &out->storage_err);
    if (rc == MVCC_OK && out->error.kind == MVCC_KEY_ERR_NONE)
        out->action = MVCC_ACTION_LOCK_NOT_EXIST_ROLLBACK;

cleanup:
    mvcc_lock_release(&lock);
    if (have_txn)
        mvcc_txn_close(&txn);
    storage_reader_free(reader);
    mvcc_latches_release(&e->latches, &guard);
    if (rc != MVCC_OK) {
        mvcc_key_error_clear(&out->error);
        out->lock_ttl = out->commit_version = 0;
        out->action = MVCC_ACTION_NO_ACTION;
    }
    mvcc_errmsg_default(out->errmsg, rc, &out->storage_err);
    return rc;
}

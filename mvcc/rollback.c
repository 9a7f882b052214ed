/* rollback.c — KvBatchRollback: undo prewrites and fence them with rollback records. */
#include <stdlib.h>
#include <string.h>

#include "mvcc/mvcc_internal.h"

/* Buffers the removal of the txn's own lock and value (if any) and a rollback record. */
static int rollback_own(struct mvcc_txn *txn, const void *key, size_t key_len,
                        const struct mvcc_lock *lock)
{
    struct mvcc_write rb = {.start_ts = txn->start_ts, .kind = MVCC_WRITE_ROLLBACK};
    int rc = MVCC_OK;

    if (lock) {
        rc = mvcc_txn_delete_lock(txn, key, key_len);
        if (rc == MVCC_OK && lock->kind == MVCC_WRITE_PUT)
            rc = mvcc_txn_delete_value(txn, key, key_len);
    }
    /* Stored at commit_ts == start_ts: a later prewrite of this txn sees it
     * as a write at its start ts and fails; a commit finds it and aborts. */
    if (rc != MVCC_OK)
        return rc;
    /* Unless another transaction committed the key at exactly our start ts (a one-phase
     * commit ts chosen by a store rather than the TSO may equal one): that record stays, and
     * fences this txn as well, since a prewrite finds a record at its start ts and fails. */
    struct mvcc_write other;
    int taken;
    rc = mvcc_txn_write_at_start(txn, key, key_len, &other, &taken);
    if (rc == MVCC_OK && !taken)
        rc = mvcc_txn_put_write(txn, key, key_len, txn->start_ts, &rb);
    return rc;
}

int mvcc_rollback_key(struct mvcc_txn *txn, const void *key, size_t key_len,
                      struct mvcc_key_error *kerr)
{
    struct mvcc_lock lock = {0};
    struct mvcc_write w;
    uint64_t cts;
    int found, rc;

    rc = mvcc_txn_current_write(txn, key, key_len, &w, &cts, &found);
    if (rc != MVCC_OK)
        return rc;
    if (found && w.kind == MVCC_WRITE_ROLLBACK)
        return MVCC_OK;
    if (found) {
        mvcc_key_error_set(kerr, MVCC_KEY_ERR_ABORT,
                           "transaction %llu is already committed at %llu",
                           (unsigned long long)txn->start_ts, (unsigned long long)cts);
        return MVCC_OK;
    }
    rc = mvcc_txn_get_lock(txn, key, key_len, &lock, &found);
    if (rc != MVCC_OK)
        return rc;
    /* Another transaction's lock stays; ours goes. */
    rc = rollback_own(txn, key, key_len, found && lock.start_ts == txn->start_ts ? &lock : NULL);
    mvcc_lock_release(&lock);
    return rc;
}

int mvcc_batch_rollback(struct mvcc_engine *e, const struct storage_ctx *ctx,
                        const struct mvcc_key_slice *keys, size_t n_keys, uint64_t start_ts,
                        struct mvcc_write_result *out)
{
    struct mvcc_latch_guard guard = {0};
    struct storage_reader *reader = NULL;
    struct mvcc_txn txn;
    int rc, have_txn = 0;

    if (!out)
        return MVCC_ERR_ARG;
    memset(out, 0, sizeof(*out));
    if (!e || (n_keys && !keys))
        return MVCC_ERR_ARG;
    for (size_t i = 0; i < n_keys; i++)
        if (mvcc_check_key(&out->error, "rollback key", keys[i].data, keys[i].len))
            return MVCC_OK;
    if (n_keys == 0)
        return MVCC_OK;

    rc = mvcc_latches_acquire(&e->latches, keys, n_keys, &guard);
    if (rc != MVCC_OK)
        goto cleanup;
    rc = mvcc_open_reader(e, ctx, &reader, &out->storage_err, out->errmsg);
    if (rc != MVCC_OK)
        goto cleanup;
    mvcc_txn_init(&txn, reader, start_ts);
    have_txn = 1;
    for (size_t i = 0; i < n_keys; i++) {
        rc = mvcc_rollback_key(&txn, keys[i].data, keys[i].len, &out->error);
        if (rc != MVCC_OK || out->error.kind != MVCC_KEY_ERR_NONE)
            goto cleanup;
    }
    rc = mvcc_txn_write(&txn, e->storage, ctx, &out->storage_err);

cleanup:
    if (have_txn)
        mvcc_txn_close(&txn);
    storage_reader_free(reader);
    mvcc_latches_release(&e->latches, &guard);
    if (rc != MVCC_OK)
        mvcc_key_error_clear(&out->error);
    mvcc_errmsg_default(out->errmsg, rc, &out->storage_err);
    return rc;
}

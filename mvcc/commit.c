/* commit.c — KvCommit: the second phase of two-phase commit, turning locks into write records. */
#include <stdlib.h>
#include <string.h>

#include "mvcc/mvcc_internal.h"

int mvcc_commit_key(struct mvcc_txn *txn, const void *key, size_t key_len, uint64_t commit_ts,
                    struct mvcc_key_error *kerr)
{
    struct mvcc_lock lock = {0};
    struct mvcc_write w;
    uint64_t cts;
    int found_lock, found, rc;

    rc = mvcc_txn_get_lock(txn, key, key_len, &lock, &found_lock);
    if (rc != MVCC_OK)
        return rc;
    if (found_lock && lock.start_ts == txn->start_ts) {
        struct mvcc_write nw = {.start_ts = txn->start_ts, .kind = lock.kind};
        rc = mvcc_txn_put_write(txn, key, key_len, commit_ts, &nw);
        if (rc == MVCC_OK)
            rc = mvcc_txn_delete_lock(txn, key, key_len);
        goto cleanup;
    }

    rc = mvcc_txn_current_write(txn, key, key_len, &w, &cts, &found);
    if (rc != MVCC_OK)
        goto cleanup;
    if (found && w.kind == MVCC_WRITE_ROLLBACK) {
        mvcc_key_error_set(kerr, MVCC_KEY_ERR_ABORT,
                           "transaction %llu was rolled back and cannot commit",
                           (unsigned long long)txn->start_ts);
    } else if (found) {
        /* Already committed (a repeated commit): nothing to do. */
    } else if (found_lock) {
        mvcc_key_error_set(kerr, MVCC_KEY_ERR_RETRYABLE,
                           "key is locked by transaction %llu, not by %llu",
                           (unsigned long long)lock.start_ts, (unsigned long long)txn->start_ts);
    }
    /* Neither lock nor record: the prewrite never arrived here; nothing to do. */

cleanup:
    mvcc_lock_release(&lock);
    return rc;
}

int mvcc_commit(struct mvcc_engine *e, const struct storage_ctx *ctx,
                const struct mvcc_key_slice *keys, size_t n_keys, uint64_t start_ts,
                uint64_t commit_ts, struct mvcc_write_result *out)
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
    if (commit_ts <= start_ts) {
        mvcc_key_error_set(&out->error, MVCC_KEY_ERR_INVALID,
                           "commit ts %llu is not after start ts %llu",
                           (unsigned long long)commit_ts, (unsigned long long)start_ts);
        return MVCC_OK;
    }
    for (size_t i = 0; i < n_keys; i++)
        if (mvcc_check_key(&out->error, "commit key", keys[i].data, keys[i].len))
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
        rc = mvcc_commit_key(&txn, keys[i].data, keys[i].len, commit_ts, &out->error);
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

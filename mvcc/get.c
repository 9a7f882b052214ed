/* get.c — KvGet: the value of one key visible at a version, or the lock that blocks it. */
#include <stdlib.h>
#include <string.h>

#include "mvcc/mvcc_internal.h"

int mvcc_get(struct mvcc_engine *e, const struct storage_ctx *ctx, const void *key, size_t key_len,
             uint64_t version, struct mvcc_get_result *out)
{
    struct storage_reader *reader = NULL;
    struct mvcc_txn txn;
    struct mvcc_lock lock = {0};
    int rc, found;

    if (!out)
        return MVCC_ERR_ARG;
    memset(out, 0, sizeof(*out));
    if (!e)
        return MVCC_ERR_ARG;
    if (mvcc_check_key(&out->error, "key", key, key_len))
        return MVCC_OK;

    /* Before the snapshot: a one-phase commit gone from the table has applied. */
    rc = mvcc_wait_mem_locks(e, key, key_len, NULL, 0, version, &out->storage_err);
    if (rc == MVCC_OK)
        rc = mvcc_open_reader(e, ctx, &reader, &out->storage_err, out->errmsg);
    if (rc != MVCC_OK) {
        mvcc_errmsg_default(out->errmsg, rc, &out->storage_err);
        return rc;
    }
    mvcc_txn_init(&txn, reader, version);

    rc = mvcc_txn_get_lock(&txn, key, key_len, &lock, &found);
    if (rc != MVCC_OK)
        goto cleanup;
    /* Lock-only locks (op LOCK) change no value, so they do not block reads. */
    if (found && lock.kind != MVCC_WRITE_LOCK && lock.start_ts <= version) {
        rc = mvcc_key_error_locked(&out->error, key, key_len, &lock);
        goto cleanup;
    }
    rc = mvcc_txn_get_version(&txn, key, key_len, &out->value, &out->value_len, &out->commit_ts,
                              &found);
    if (rc != MVCC_OK)
        goto cleanup;
    out->not_found = !found;

cleanup:
    if (rc != MVCC_OK) {
        free(out->value);
        out->value = NULL;
        out->value_len = 0;
    }
    mvcc_lock_release(&lock);
    mvcc_txn_close(&txn);
    storage_reader_free(reader);
    mvcc_errmsg_default(out->errmsg, rc, &out->storage_err);
    return rc;
}

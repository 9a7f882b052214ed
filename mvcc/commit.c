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

/* One commit in flight: latches, a snapshot, the per-key steps, the write (prewrite.c's shape). */
struct commit_op {
    struct mvcc_engine *e;
    struct storage_ctx ctx;
    const struct storage_ctx *pctx; /* &ctx, or NULL for none */
    const struct mvcc_key_slice *keys;
    size_t n_keys;
    uint64_t start_ts, commit_ts;
    struct mvcc_write_result *out;
    mvcc_done_fn done;
    void *done_arg;
    struct mvcc_latch_guard guard;
    struct storage_reader *reader;
    struct mvcc_txn txn;
    int have_txn;
};

static void commit_finish(struct commit_op *op, int rc)
{
    if (op->have_txn)
        mvcc_txn_close(&op->txn);
    storage_reader_free(op->reader);
    mvcc_latches_release(&op->e->latches, &op->guard);
    if (rc != MVCC_OK)
        mvcc_key_error_clear(&op->out->error);
    mvcc_errmsg_default(op->out->errmsg, rc, &op->out->storage_err);
    mvcc_done_fn done = op->done;
    void *arg = op->done_arg;
    free(op);
    done(arg, rc);
}

static void commit_written(void *arg, int rc, const struct storage_error *err)
{
    struct commit_op *op = arg;
    commit_finish(op, mvcc_write_outcome(rc, err, &op->out->storage_err));
}

static void commit_on_reader(void *arg, int rc, struct storage_reader *reader,
                             const struct storage_error *err)
{
    struct commit_op *op = arg;
    struct mvcc_write_result *out = op->out;
    rc = mvcc_reader_outcome(rc, err, &out->storage_err, out->errmsg);
    if (rc != MVCC_OK) {
        commit_finish(op, rc);
        return;
    }
    op->reader = reader;
    mvcc_txn_init(&op->txn, reader, op->start_ts);
    op->have_txn = 1;
    for (size_t i = 0; i < op->n_keys; i++) {
        rc = mvcc_commit_key(&op->txn, op->keys[i].data, op->keys[i].len, op->commit_ts,
                             &out->error);
        if (rc != MVCC_OK || out->error.kind != MVCC_KEY_ERR_NONE) {
            commit_finish(op, rc);
            return;
        }
    }
    mvcc_txn_write_async(&op->txn, op->e->storage, op->pctx, commit_written, op);
}

static void commit_on_latched(void *arg)
{
    struct commit_op *op = arg;
    storage_reader_async(op->e->storage, op->pctx, commit_on_reader, op);
}

void mvcc_commit_async(struct mvcc_engine *e, const struct storage_ctx *ctx,
                       const struct mvcc_key_slice *keys, size_t n_keys, uint64_t start_ts,
                       uint64_t commit_ts, struct mvcc_write_result *out, mvcc_done_fn done,
                       void *arg)
{
    if (!out) {
        done(arg, MVCC_ERR_ARG);
        return;
    }
    memset(out, 0, sizeof(*out));
    if (!e || (n_keys && !keys)) {
        done(arg, MVCC_ERR_ARG);
        return;
    }
    if (commit_ts <= start_ts) {
        mvcc_key_error_set(&out->error, MVCC_KEY_ERR_INVALID,
                           "commit ts %llu is not after start ts %llu",
                           (unsigned long long)commit_ts, (unsigned long long)start_ts);
        done(arg, MVCC_OK);
        return;
    }
    for (size_t i = 0; i < n_keys; i++) {
        if (mvcc_check_key(&out->error, "commit key", keys[i].data, keys[i].len)) {
            done(arg, MVCC_OK);
            return;
        }
    }
    if (n_keys == 0) {
        done(arg, MVCC_OK);
        return;
    }
    struct commit_op *op = calloc(1, sizeof(*op));
    if (!op) {
        mvcc_errmsg_default(out->errmsg, MVCC_ERR_NOMEM, &out->storage_err);
        done(arg, MVCC_ERR_NOMEM);
        return;
    }
    *op = (struct commit_op){
        .e = e,
        .keys = keys,
        .n_keys = n_keys,
        .start_ts = start_ts,
        .commit_ts = commit_ts,
        .out = out,
        .done = done,
        .done_arg = arg,
    };
    if (ctx) {
        op->ctx = *ctx;
        op->pctx = &op->ctx;
    }
    int got =
        mvcc_latches_acquire_async(&e->latches, keys, n_keys, &op->guard, commit_on_latched, op);
    if (got < 0)
        commit_finish(op, -got);
    else if (got > 0)
        commit_on_latched(op);
}

int mvcc_commit(struct mvcc_engine *e, const struct storage_ctx *ctx,
                const struct mvcc_key_slice *keys, size_t n_keys, uint64_t start_ts,
                uint64_t commit_ts, struct mvcc_write_result *out)
{
    struct mvcc_sync w;
    if (!out)
        return MVCC_ERR_ARG;
    mvcc_sync_init(&w);
    mvcc_commit_async(e, ctx, keys, n_keys, start_ts, commit_ts, out, mvcc_sync_done, &w);
    return mvcc_sync_wait(&w);
}

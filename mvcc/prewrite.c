/* prewrite.c — KvPrewrite: two-phase commit's first phase, locking every key, or a one-phase
 * commit; run as a chain of asynchronous steps. */
#include <stdlib.h>
#include <string.h>

#include "mvcc/mvcc_internal.h"

/* Reports bad input as INVALID errors in out; returns the number found. */
static size_t validate(const struct mvcc_prewrite_req *req, struct mvcc_prewrite_result *out)
{
    if (req->n_mutations && req->primary_len == 0)
        mvcc_key_error_set(&out->errors[out->n_errors++], MVCC_KEY_ERR_INVALID,
                           "prewrite of %zu mutations has an empty primary key", req->n_mutations);
    else if (req->n_mutations && mvcc_check_key(&out->errors[out->n_errors], "primary key",
                                                req->primary, req->primary_len))
        out->n_errors++;
    for (size_t i = 0; i < req->n_mutations; i++) {
        const struct mvcc_mutation *m = &req->mutations[i];
        struct mvcc_key_error *ke = &out->errors[out->n_errors];
        if (mvcc_check_key(ke, "mutation key", m->key, m->key_len)) {
            out->n_errors++;
        } else if (m->op != MVCC_OP_PUT && m->op != MVCC_OP_DEL && m->op != MVCC_OP_LOCK) {
            mvcc_key_error_set(ke, MVCC_KEY_ERR_INVALID, "mutation %zu has unsupported op %d", i,
                               (int)m->op);
            out->n_errors++;
        } else if (m->op == MVCC_OP_PUT && m->value_len > MVCC_MAX_VALUE_BYTES) {
            mvcc_key_error_set(ke, MVCC_KEY_ERR_INVALID,
                               "mutation %zu value is %zu bytes, more than the %u allowed", i,
                               m->value_len, MVCC_MAX_VALUE_BYTES);
            out->n_errors++;
        }
    }
    return out->n_errors;
}

static int conflict_error(struct mvcc_key_error *ke, const struct mvcc_prewrite_req *req,
                          const struct mvcc_mutation *m, uint64_t conflict_ts)
{
    ke->conflict.key = mvcc_memdup(m->key, m->key_len);
    ke->conflict.primary = mvcc_memdup(req->primary, req->primary_len);
    if (!ke->conflict.key || !ke->conflict.primary) {
        mvcc_key_error_clear(ke);
        return MVCC_ERR_NOMEM;
    }
    ke->conflict.key_len = m->key_len;
    ke->conflict.primary_len = req->primary_len;
    ke->conflict.start_ts = req->start_ts;
    ke->conflict.conflict_ts = conflict_ts;
    mvcc_key_error_set(ke, MVCC_KEY_ERR_CONFLICT,
                       "write conflict: a record at %llu is not older than start ts %llu",
                       (unsigned long long)conflict_ts, (unsigned long long)req->start_ts);
    return MVCC_OK;
}

/* Buffers the transaction's lock on m's key. */
static int put_lock(struct mvcc_txn *txn, const struct mvcc_prewrite_req *req,
                    const struct mvcc_mutation *m)
{
    struct mvcc_lock nl = {
        .primary = req->primary,
        .primary_len = req->primary_len,
        .start_ts = req->start_ts,
        .ttl_ms = req->lock_ttl_ms,
        .kind = mvcc_write_kind_of_op(m->op),
    };
    return mvcc_txn_put_lock(txn, m->key, m->key_len, &nl);
}

/* What prewrite_one found on a key besides errors. */
struct key_state {
    uint64_t self_commit_ts; /* nonzero: this transaction's own commit record is there */
    int own_lock;            /* this transaction's lock is there (an earlier two-phase attempt) */
    int short_value;         /* a one-phase put whose value is not buffered yet: it goes in the
                              * commit record, or into CF default if the commit locks instead */
};

/* Checks one mutation and, if it passes and nothing failed yet, buffers its value (and, for a
 * two-phase prewrite, its lock). */
static int prewrite_one(struct mvcc_txn *txn, const struct mvcc_prewrite_req *req,
                        const struct mvcc_mutation *m, int one_pc, struct key_state *ks,
                        struct mvcc_prewrite_result *out)
{
    struct mvcc_write w;
    struct mvcc_lock lock = {0};
    uint64_t commit_ts;
    int found, rc;

    memset(ks, 0, sizeof(*ks));
    /* Any record at or after start_ts — a newer commit, or our own rollback
     * — means this transaction can no longer write the key, unless it is our
     * own commit: then an earlier attempt committed in one phase. */
    rc = mvcc_txn_most_recent_write(txn, m->key, m->key_len, &w, &commit_ts, &found);
    if (rc != MVCC_OK)
        return rc;
    if (found && commit_ts >= req->start_ts) {
        uint64_t own_ts;
        rc = mvcc_txn_current_write(txn, m->key, m->key_len, &w, &own_ts, &found);
        if (rc != MVCC_OK)
            return rc;
        if (found && w.kind != MVCC_WRITE_ROLLBACK) {
            ks->self_commit_ts = own_ts;
            return MVCC_OK;
        }
        return conflict_error(&out->errors[out->n_errors++], req, m, commit_ts);
    }

    rc = mvcc_txn_get_lock(txn, m->key, m->key_len, &lock, &found);
    if (rc != MVCC_OK)
        return rc;
    if (found && lock.start_ts != req->start_ts) {
        rc = mvcc_key_error_locked(&out->errors[out->n_errors++], m->key, m->key_len, &lock);
        mvcc_lock_release(&lock);
        return rc;
    }
    ks->own_lock = found;
    /* Our own put lock (an earlier mutation of this request, or a retried
     * prewrite) has a value that a delete or lock-only mutation must not
     * leave behind: nothing would ever remove it. */
    int drop_value = found && lock.kind == MVCC_WRITE_PUT && m->op != MVCC_OP_PUT;
    mvcc_lock_release(&lock);
    if (out->n_errors)
        return MVCC_OK; /* nothing will be written: skip buffering */

    if (!one_pc) {
        rc = put_lock(txn, req, m);
        if (rc != MVCC_OK)
            return rc;
    }
    if (m->op == MVCC_OP_PUT && one_pc && !found && m->value_len <= MVCC_SHORT_VALUE_MAX)
        ks->short_value = 1;
    else if (m->op == MVCC_OP_PUT)
        rc = mvcc_txn_put_value(txn, m->key, m->key_len, m->value, m->value_len);
    else if (drop_value)
        rc = mvcc_txn_delete_value(txn, m->key, m->key_len);
    return rc;
}

/*
 * One prewrite in flight: latches, then a snapshot, then the checks (prewrite_one), then for a
 * one-phase commit a commit ts (chosen on this store when the snapshot's leadership term allows,
 * see mvcc_mem_locks, else from the TSO), then the write; each step is started by the one before
 * from whatever thread answered it, and finish() ends the command.
 */
struct prewrite_op {
    struct mvcc_engine *e;
    struct storage_ctx ctx;         /* copy of the caller's (its keys borrowed) */
    const struct storage_ctx *pctx; /* &ctx, or NULL for none */
    const struct mvcc_prewrite_req *req;
    struct mvcc_prewrite_result *out;
    mvcc_done_fn done;
    void *done_arg;
    struct mvcc_key_slice *keys;
    struct key_state *ks;
    struct mvcc_latch_guard guard;
    struct storage_reader *reader;
    struct mvcc_txn txn;
    int have_txn;
    int one_pc;
    struct mvcc_mem_lock ml;
    int ml_listed;
    uint64_t commit_ts; /* the one-phase commit ts being written, else 0 */
    uint64_t term;      /* nonzero: the commit ts was chosen here, for this leadership term */
};

enum { AFTER_FINISH, AFTER_WRITE, AFTER_ONE_PC };

static void finish(struct prewrite_op *op, int rc)
{
    struct mvcc_prewrite_result *out = op->out;
    /* Applied (readers now see it in their snapshots) or failed (nothing to see; past the long
     * timeout, or with the peer gone, this store serves no reads of the region that could miss
     * it before it applies). */
    if (op->ml_listed)
        mvcc_mem_locks_remove(&op->e->mem_locks, &op->ml);
    if (op->have_txn)
        mvcc_txn_close(&op->txn);
    storage_reader_free(op->reader);
    mvcc_latches_release(&op->e->latches, &op->guard);
    free(op->keys);
    free(op->ks);
    if (rc != MVCC_OK) {
        out->one_pc_commit_ts = 0;
        for (size_t i = 0; i < out->n_errors; i++)
            mvcc_key_error_clear(&out->errors[i]);
        out->n_errors = 0;
    }
    if (out->n_errors == 0) {
        free(out->errors);
        out->errors = NULL;
    }
    mvcc_errmsg_default(out->errmsg, rc, &out->storage_err);
    mvcc_done_fn done = op->done;
    void *arg = op->done_arg;
    free(op);
    done(arg, rc);
}

static void on_written(void *arg, int rc, const struct storage_error *err)
{
    struct prewrite_op *op = arg;
    rc = mvcc_write_outcome(rc, err, &op->out->storage_err);
    if (rc == MVCC_OK && op->commit_ts) {
        op->out->one_pc_commit_ts = op->commit_ts;
        op->out->one_pc_ts_origin = op->term ? MVCC_TS_STORE : MVCC_TS_TSO;
    }
    finish(op, rc);
}

static void write_buffered(struct prewrite_op *op, const struct storage_ctx *ctx)
{
    mvcc_txn_write_async(&op->txn, op->e->storage, ctx, on_written, op);
}

/* The values held back for commit records, buffered into CF default after all (the prewrite
 * writes locks, or only some of its keys). */
static int buffer_short_values(struct prewrite_op *op)
{
    const struct mvcc_prewrite_req *req = op->req;
    int rc = MVCC_OK;
    for (size_t i = 0; i < req->n_mutations && rc == MVCC_OK; i++) {
        const struct mvcc_mutation *m = &req->mutations[i];
        if (op->ks[i].short_value)
            rc = mvcc_txn_put_value(&op->txn, m->key, m->key_len, m->value, m->value_len);
        op->ks[i].short_value = 0;
    }
    return rc;
}

/*
 * The one-phase end of a prewrite whose checks passed with values buffered, once a commit ts is
 * in (the keys are in the in-memory lock table): buffers the write records (dropping any lock of
 * an earlier two-phase attempt) and writes. If no commit ts could be had, it buffers locks
 * instead: a two-phase prewrite.
 */
static void on_commit_ts(void *arg, int ts_rc, uint64_t commit_ts)
{
    struct prewrite_op *op = arg;
    const struct mvcc_prewrite_req *req = op->req;
    struct mvcc_engine *e = op->e;
    int rc = MVCC_OK;

    if (ts_rc != 0 || commit_ts <= req->start_ts) {
        mvcc_mem_locks_remove(&e->mem_locks, &op->ml);
        op->ml_listed = 0;
        rc = buffer_short_values(op);
        for (size_t i = 0; i < req->n_mutations && rc == MVCC_OK; i++)
            rc = put_lock(&op->txn, req, &req->mutations[i]);
        if (rc != MVCC_OK) {
            finish(op, rc);
            return;
        }
        write_buffered(op, op->pctx);
        return;
    }
    mvcc_mem_locks_set_commit_ts(&e->mem_locks, &op->ml, commit_ts);
    for (size_t i = 0; i < req->n_mutations && rc == MVCC_OK; i++) {
        const struct mvcc_mutation *m = &req->mutations[i];
        struct mvcc_write w = {.kind = mvcc_write_kind_of_op(m->op),
                               .start_ts = req->start_ts,
                               .has_short = op->ks[i].short_value,
                               .short_value = m->value,
                               .short_len = m->value_len};
        if (op->ks[i].own_lock)
            rc = mvcc_txn_delete_lock(&op->txn, m->key, m->key_len);
        if (rc == MVCC_OK)
            rc = mvcc_txn_put_write(&op->txn, m->key, m->key_len, commit_ts, &w);
    }
    if (rc != MVCC_OK) {
        finish(op, rc);
        return;
    }
    op->commit_ts = commit_ts;
    /* The in-memory lock must stay until the write's fate is known, so the write waits for
     * Raft's own answer (applied, or dropped) well past the usual timeout rather than come
     * back undetermined while it may still apply. */
    struct storage_ctx wctx = op->ctx;
    wctx.timeout_ms = MVCC_ONE_PC_WRITE_TIMEOUT_MS;
    wctx.term = op->term;
    write_buffered(op, op->pctx || op->term ? &wctx : NULL);
}

/* The TSO's answer, asked for after the snapshot: in the snapshot's term, so it syncs it. */
static void on_tso(void *arg, int rc, uint64_t ts)
{
    struct prewrite_op *op = arg;
    if (rc == 0)
        mvcc_mem_locks_tso_seen(&op->e->mem_locks, op->ctx.region_id, op->reader->term, ts);
    on_commit_ts(op, rc, ts);
}

/* After the checks: a commit ts chosen here if the snapshot's term allows, else from the TSO
 * (the keys listed first, either way), then the write. */
static void one_pc_commit_ts(struct prewrite_op *op)
{
    struct mvcc_engine *e = op->e;
    uint64_t ts = 0;
    op->ml = (struct mvcc_mem_lock){.keys = op->keys, .n_keys = op->req->n_mutations};
    if (mvcc_mem_locks_add_local(&e->mem_locks, &op->ml, op->ctx.region_id, op->reader->term,
                                 op->req->start_ts, &ts)) {
        op->ml_listed = 1;
        op->term = op->reader->term;
        on_commit_ts(op, 0, ts);
        return;
    }
    /* Listed before the ts is asked for: a reader whose ts is above ours asked the TSO after we
     * were listed, so it finds us and waits for the write. */
    mvcc_mem_locks_add(&e->mem_locks, &op->ml);
    op->ml_listed = 1;
    if (e->ts_source_async) {
        e->ts_source_async(e->ts_source_async_arg, on_tso, op);
        return;
    }
    int rc = e->ts_source(e->ts_source_arg, &ts);
    on_tso(op, rc, ts);
}

/* The checks are in: what they decided (AFTER_*), with rc for a finish. */
static void after_read(struct prewrite_op *op, int next, int rc)
{
    switch (next) {
    case AFTER_FINISH:
        finish(op, rc);
        return;
    case AFTER_WRITE:
        rc = buffer_short_values(op);
        if (rc != MVCC_OK) {
            finish(op, rc);
            return;
        }
        write_buffered(op, op->pctx);
        return;
    default:
        one_pc_commit_ts(op);
        return;
    }
}

/* Runs the checks on the snapshot; returns what comes next (AFTER_*) with *rc_out for a finish. */
static int check_snapshot(struct prewrite_op *op, int rc, struct storage_reader *reader,
                          const struct storage_error *err, int *rc_out)
{
    const struct mvcc_prewrite_req *req = op->req;
    struct mvcc_prewrite_result *out = op->out;

    *rc_out = rc = mvcc_reader_outcome(rc, err, &out->storage_err, out->errmsg);
    if (rc != MVCC_OK)
        return AFTER_FINISH;
    op->reader = reader;
    mvcc_txn_init(&op->txn, reader, req->start_ts);
    op->have_txn = 1;

    uint64_t self_commit_ts = 0;
    for (size_t i = 0; i < req->n_mutations; i++) {
        *rc_out = rc = prewrite_one(&op->txn, req, &req->mutations[i], op->one_pc, &op->ks[i], out);
        if (rc != MVCC_OK)
            return AFTER_FINISH;
        if (op->ks[i].self_commit_ts)
            self_commit_ts = op->ks[i].self_commit_ts;
    }
    if (out->n_errors)
        return AFTER_FINISH;
    if (self_commit_ts && op->one_pc) {
        /* An earlier one-phase attempt committed every key at once: answer its ts. */
        out->one_pc_commit_ts = self_commit_ts;
        return AFTER_FINISH;
    }
    /* Committed already (keys without their commit record, none after a one-phase commit, are
     * still locked and committed as usual), or a two-phase prewrite. */
    if (self_commit_ts || !op->one_pc)
        return AFTER_WRITE;
    return AFTER_ONE_PC;
}

/* The snapshot is in (or failed): the checks, then the write the outcome asks for. */
static void on_reader(void *arg, int rc, struct storage_reader *reader,
                      const struct storage_error *err)
{
    struct prewrite_op *op = arg;
    int next_rc;
    int next = check_snapshot(op, rc, reader, err, &next_rc);
    after_read(op, next, next_rc);
}

static void on_latched(void *arg)
{
    struct prewrite_op *op = arg;
    storage_reader_async(op->e->storage, op->pctx, on_reader, op);
}

void mvcc_prewrite_async(struct mvcc_engine *e, const struct storage_ctx *ctx,
                         const struct mvcc_prewrite_req *req, struct mvcc_prewrite_result *out,
                         mvcc_done_fn done, void *arg)
{
    if (!out) {
        done(arg, MVCC_ERR_ARG);
        return;
    }
    memset(out, 0, sizeof(*out));
    if (!e || !req || (req->n_mutations && !req->mutations)) {
        done(arg, MVCC_ERR_ARG);
        return;
    }
    if (req->n_mutations == 0) {
        done(arg, MVCC_OK);
        return;
    }
    struct prewrite_op *op = calloc(1, sizeof(*op));
    if (!op) {
        mvcc_errmsg_default(out->errmsg, MVCC_ERR_NOMEM, &out->storage_err);
        done(arg, MVCC_ERR_NOMEM);
        return;
    }
    op->e = e;
    if (ctx) {
        op->ctx = *ctx;
        op->pctx = &op->ctx;
    }
    op->req = req;
    op->out = out;
    op->done = done;
    op->done_arg = arg;
    op->one_pc = req->try_one_pc && (e->ts_source || e->ts_source_async);
    /* At most one error per mutation plus one for the primary. */
    out->errors = calloc(req->n_mutations + 1, sizeof(*out->errors));
    if (!out->errors) {
        finish(op, MVCC_ERR_NOMEM);
        return;
    }
    if (validate(req, out)) {
        finish(op, MVCC_OK);
        return;
    }
    op->keys = malloc(req->n_mutations * sizeof(*op->keys));
    op->ks = malloc(req->n_mutations * sizeof(*op->ks));
    if (!op->keys || !op->ks) {
        finish(op, MVCC_ERR_NOMEM);
        return;
    }
    for (size_t i = 0; i < req->n_mutations; i++)
        op->keys[i] = (struct mvcc_key_slice){req->mutations[i].key, req->mutations[i].key_len};
    int got = mvcc_latches_acquire_async(&e->latches, op->keys, req->n_mutations, &op->guard,
                                         on_latched, op);
    if (got < 0)
        finish(op, -got);
    else if (got > 0)
        on_latched(op);
}

int mvcc_prewrite(struct mvcc_engine *e, const struct storage_ctx *ctx,
                  const struct mvcc_prewrite_req *req, struct mvcc_prewrite_result *out)
{
    struct mvcc_sync w;
    if (!out)
        return MVCC_ERR_ARG;
    mvcc_sync_init(&w);
    mvcc_prewrite_async(e, ctx, req, out, mvcc_sync_done, &w);
    return mvcc_sync_wait(&w);
}

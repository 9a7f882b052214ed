/* prewrite.c — KvPrewrite: two-phase commit's first phase, locking every key. */
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
    if (m->op == MVCC_OP_PUT)
        rc = mvcc_txn_put_value(txn, m->key, m->key_len, m->value, m->value_len);
    else if (drop_value)
        rc = mvcc_txn_delete_value(txn, m->key, m->key_len);
    return rc;
}

/*
 * The one-phase end of a prewrite whose checks passed with values buffered: takes a commit ts
 * with the keys in the in-memory lock table, buffers the write records (dropping any lock of
 * an earlier two-phase attempt) and writes. If no commit ts can be had, it buffers locks
 * instead and *one_pc becomes 0: a two-phase prewrite.
 */
static int write_one_pc(struct mvcc_engine *e, const struct storage_ctx *ctx, struct mvcc_txn *txn,
                        const struct mvcc_prewrite_req *req, const struct mvcc_key_slice *keys,
                        const struct key_state *ks, int *one_pc, struct mvcc_prewrite_result *out)
{
    struct mvcc_mem_lock ml = {.keys = keys, .n_keys = req->n_mutations};
    uint64_t commit_ts = 0;
    int rc = MVCC_OK;

    /* Listed before the ts is taken: a reader whose ts is above ours asked the TSO after we
     * were listed, so it finds us and waits for the write. */
    mvcc_mem_locks_add(&e->mem_locks, &ml);
    if (e->ts_source(e->ts_source_arg, &commit_ts) != 0 || commit_ts <= req->start_ts) {
        mvcc_mem_locks_remove(&e->mem_locks, &ml);
        *one_pc = 0;
        for (size_t i = 0; i < req->n_mutations && rc == MVCC_OK; i++) {
            rc = put_lock(txn, req, &req->mutations[i]);
        }
        return rc == MVCC_OK ? mvcc_txn_write(txn, e->storage, ctx, &out->storage_err) : rc;
    }
    mvcc_mem_locks_set_commit_ts(&e->mem_locks, &ml, commit_ts);
    for (size_t i = 0; i < req->n_mutations && rc == MVCC_OK; i++) {
        const struct mvcc_mutation *m = &req->mutations[i];
        struct mvcc_write w = {.kind = mvcc_write_kind_of_op(m->op), .start_ts = req->start_ts};
        if (ks[i].own_lock)
            rc = mvcc_txn_delete_lock(txn, m->key, m->key_len);
        if (rc == MVCC_OK)
            rc = mvcc_txn_put_write(txn, m->key, m->key_len, commit_ts, &w);
    }
    /* The in-memory lock must stay until the write's fate is known, so the write waits for
     * Raft's own answer (applied, or dropped) well past the usual timeout rather than come
     * back undetermined while it may still apply. */
    struct storage_ctx wctx;
    if (ctx) {
        wctx = *ctx;
        wctx.timeout_ms = MVCC_ONE_PC_WRITE_TIMEOUT_MS;
    }
    if (rc == MVCC_OK)
        rc = mvcc_txn_write(txn, e->storage, ctx ? &wctx : NULL, &out->storage_err);
    /* Applied (readers now see it in their snapshots) or failed (nothing to see; past the
     * long timeout, or with the peer gone, this store serves no reads of the region that
     * could miss it before it applies). */
    mvcc_mem_locks_remove(&e->mem_locks, &ml);
    if (rc == MVCC_OK)
        out->one_pc_commit_ts = commit_ts;
    return rc;
}

int mvcc_prewrite(struct mvcc_engine *e, const struct storage_ctx *ctx,
                  const struct mvcc_prewrite_req *req, struct mvcc_prewrite_result *out)
{
    struct mvcc_key_slice *keys = NULL;
    struct mvcc_latch_guard guard = {0};
    struct storage_reader *reader = NULL;
    struct key_state *ks = NULL;
    struct mvcc_txn txn;
    int rc, have_txn = 0;
    int one_pc = req && req->try_one_pc && e && e->ts_source;

    if (!out)
        return MVCC_ERR_ARG;
    memset(out, 0, sizeof(*out));
    if (!e || !req || (req->n_mutations && !req->mutations))
        return MVCC_ERR_ARG;
    if (req->n_mutations == 0)
        return MVCC_OK;
    /* At most one error per mutation plus one for the primary. */
    out->errors = calloc(req->n_mutations + 1, sizeof(*out->errors));
    if (!out->errors) {
        rc = MVCC_ERR_NOMEM;
        goto cleanup;
    }
    if (validate(req, out)) {
        rc = MVCC_OK;
        goto cleanup;
    }

    keys = malloc(req->n_mutations * sizeof(*keys));
    ks = malloc(req->n_mutations * sizeof(*ks));
    if (!keys || !ks) {
        rc = MVCC_ERR_NOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < req->n_mutations; i++)
        keys[i] = (struct mvcc_key_slice){req->mutations[i].key, req->mutations[i].key_len};
    rc = mvcc_latches_acquire(&e->latches, keys, req->n_mutations, &guard);
    if (rc != MVCC_OK)
        goto cleanup;
    rc = mvcc_open_reader(e, ctx, &reader, &out->storage_err, out->errmsg);
    if (rc != MVCC_OK)
        goto cleanup;
    mvcc_txn_init(&txn, reader, req->start_ts);
    have_txn = 1;

    uint64_t self_commit_ts = 0;
    for (size_t i = 0; i < req->n_mutations; i++) {
        rc = prewrite_one(&txn, req, &req->mutations[i], one_pc, &ks[i], out);
        if (rc != MVCC_OK)
            goto cleanup;
        if (ks[i].self_commit_ts)
            self_commit_ts = ks[i].self_commit_ts;
    }
    if (out->n_errors)
        goto cleanup;
    if (self_commit_ts && one_pc) {
        /* An earlier one-phase attempt committed every key at once: answer its ts. */
        out->one_pc_commit_ts = self_commit_ts;
    } else if (self_commit_ts) {
        /* Committed already; keys without their commit record (none, after a one-phase
         * commit) are still locked and committed as usual. */
        rc = mvcc_txn_write(&txn, e->storage, ctx, &out->storage_err);
    } else if (one_pc) {
        rc = write_one_pc(e, ctx, &txn, req, keys, ks, &one_pc, out);
    } else {
        rc = mvcc_txn_write(&txn, e->storage, ctx, &out->storage_err);
    }

cleanup:
    if (have_txn)
        mvcc_txn_close(&txn);
    storage_reader_free(reader);
    mvcc_latches_release(&e->latches, &guard);
    free(keys);
    free(ks);
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
    return rc;
}

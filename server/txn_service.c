/* txn_service.c — the seven transactional Kv* handlers of TinyKv over mvcc/. */
#include "server/txn_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errorpb.pb-c.h"
#include "kvrpcpb.pb-c.h"
#include "metrics/metrics.h"
#include "server/kv_service.h"

/* A KeyError with its sub-messages; fields point into the mvcc key error (borrowed). */
struct pb_key_error {
    Kvrpcpb__KeyError ke;
    Kvrpcpb__LockInfo locked;
    Kvrpcpb__WriteConflict conflict;
};

static void pb_key_error_fill(struct kv_service *svc, struct pb_key_error *p,
                              struct mvcc_key_error *e)
{
    if (e->kind == MVCC_KEY_ERR_LOCKED)
        metrics_counter_inc(svc->txn_locks_met);
    else if (e->kind == MVCC_KEY_ERR_CONFLICT)
        metrics_counter_inc(svc->txn_conflicts);
    kvrpcpb__key_error__init(&p->ke);
    kvrpcpb__lock_info__init(&p->locked);
    kvrpcpb__write_conflict__init(&p->conflict);
    switch (e->kind) {
    case MVCC_KEY_ERR_LOCKED:
        p->locked.primary_lock = (ProtobufCBinaryData){e->locked.primary_len, e->locked.primary};
        p->locked.lock_version = e->locked.lock_version;
        p->locked.key = (ProtobufCBinaryData){e->locked.key_len, e->locked.key};
        p->locked.lock_ttl = e->locked.lock_ttl;
        p->ke.locked = &p->locked;
        break;
    case MVCC_KEY_ERR_CONFLICT:
        p->conflict.start_ts = e->conflict.start_ts;
        p->conflict.conflict_ts = e->conflict.conflict_ts;
        p->conflict.key = (ProtobufCBinaryData){e->conflict.key_len, e->conflict.key};
        p->conflict.primary = (ProtobufCBinaryData){e->conflict.primary_len, e->conflict.primary};
        p->ke.conflict = &p->conflict;
        break;
    case MVCC_KEY_ERR_RETRYABLE:
        p->ke.retryable = e->msg;
        break;
    case MVCC_KEY_ERR_ABORT:
    case MVCC_KEY_ERR_INVALID:
        p->ke.abort = e->msg;
        break;
    case MVCC_KEY_ERR_NONE:
        break;
    }
}

/*
 * Handles a command's failure (rc != 0): a region error is put in
 * *region_error (then 0 is returned and the caller replies normally); any
 * other failure ends the call with a gRPC status (then 1 is returned).
 */
static int failure(const struct kv_service *svc, const struct storage_ctx *ctx,
                   struct rpc_call *call, int rc, const struct storage_error *serr,
                   const char *errmsg, Errorpb__Error **region_error)
{
    if (rc == MVCC_ERR_REGION) {
        *region_error = kv_region_error_new(svc, ctx, serr);
        if (*region_error)
            return 0;
    }
    enum rpc_status st = rc == MVCC_ERR_TS_AHEAD            ? RPC_INVALID_ARGUMENT
                         : serr->code == STORAGE_ERR_CLOSED ? RPC_UNAVAILABLE
                                                            : RPC_INTERNAL;
    rpc_call_finish(call, st, errmsg[0] ? errmsg : mvcc_strerror(rc));
    return 1;
}

static void reply_and_free_region(struct rpc_call *call, ProtobufCMessage *resp,
                                  Errorpb__Error *region_error)
{
    rpc_call_reply(call, resp);
    if (region_error)
        protobuf_c_message_free_unpacked(&region_error->base, NULL);
}

static void kv_get(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    struct kv_service *svc = arg;
    const Kvrpcpb__GetRequest *req = (const Kvrpcpb__GetRequest *)msg;
    Kvrpcpb__GetResponse resp = KVRPCPB__GET_RESPONSE__INIT;
    struct mvcc_get_result r;
    struct pb_key_error ke;
    struct storage_ctx ctx;

    struct storage_key touched = {req->key.data, req->key.len};
    kv_ctx_from_proto(req->context, &ctx);
    ctx.keys = &touched;
    ctx.n_keys = 1;
    int rc = mvcc_get(svc->mvcc, &ctx, req->key.data, req->key.len, req->version, &r);
    if (rc && failure(svc, &ctx, call, rc, &r.storage_err, r.errmsg, &resp.region_error))
        goto cleanup;
    if (!rc) {
        if (r.error.kind != MVCC_KEY_ERR_NONE) {
            pb_key_error_fill(svc, &ke, &r.error);
            resp.error = &ke.ke;
        } else if (r.not_found) {
            resp.not_found = 1;
        } else {
            resp.value = (ProtobufCBinaryData){r.value_len, r.value};
            resp.commit_ts = r.commit_ts;
        }
    }
    reply_and_free_region(call, &resp.base, resp.region_error);
cleanup:
    mvcc_get_result_free(&r);
}

static void kv_scan(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    struct kv_service *svc = arg;
    const Kvrpcpb__ScanRequest *req = (const Kvrpcpb__ScanRequest *)msg;
    Kvrpcpb__ScanResponse resp = KVRPCPB__SCAN_RESPONSE__INIT;
    struct mvcc_scan_result r;
    struct storage_ctx ctx;
    Kvrpcpb__KvPair *pairs = NULL, **ptrs = NULL;
    struct pb_key_error *kes = NULL;

    struct storage_key touched = {req->start_key.data, req->start_key.len};
    kv_ctx_from_proto(req->context, &ctx);
    ctx.keys = &touched;
    ctx.n_keys = 1;
    struct mvcc_scan_req sreq = {
        .start_key = req->start_key.data,
        .start_key_len = req->start_key.len,
        .end_key = req->end_key.data,
        .end_key_len = req->end_key.len,
        .limit = req->limit,
        .version = req->version,
        .max_bytes = KV_MAX_SCAN_RESPONSE_BYTES,
        .key_only = req->key_only,
    };
    int rc = mvcc_scan(svc->mvcc, &ctx, &sreq, &r);
    if (rc && failure(svc, &ctx, call, rc, &r.storage_err, r.errmsg, &resp.region_error))
        goto cleanup;
    if (!rc && r.error.kind != MVCC_KEY_ERR_NONE) {
        /* ScanResponse has no request-level KeyError: bad input ends the call. */
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, r.error.msg);
        goto cleanup;
    }
    if (!rc && r.n_pairs) {
        pairs = calloc(r.n_pairs, sizeof(*pairs));
        ptrs = calloc(r.n_pairs, sizeof(*ptrs));
        kes = calloc(r.n_pairs, sizeof(*kes));
        if (!pairs || !ptrs || !kes) {
            rpc_call_finish(call, RPC_INTERNAL, "out of memory");
            goto cleanup;
        }
        /* mvcc capped the pairs' bytes to keep the message under the limit;
         * the client goes on from the last key. */
        size_t n = 0;
        for (; n < r.n_pairs; n++) {
            struct mvcc_kv_pair *p = &r.pairs[n];
            kvrpcpb__kv_pair__init(&pairs[n]);
            pairs[n].key = (ProtobufCBinaryData){p->key_len, p->key};
            if (p->error.kind != MVCC_KEY_ERR_NONE) {
                pb_key_error_fill(svc, &kes[n], &p->error);
                pairs[n].error = &kes[n].ke;
            } else {
                pairs[n].value = (ProtobufCBinaryData){p->value_len, p->value};
            }
            ptrs[n] = &pairs[n];
        }
        resp.pairs = ptrs;
        resp.n_pairs = n;
    }
    reply_and_free_region(call, &resp.base, resp.region_error);
cleanup:
    free(pairs);
    free(ptrs);
    free(kes);
    mvcc_scan_result_free(&r);
}

/*
 * KvPrewrite and KvCommit answer from their command's completion (mvcc_prewrite_async,
 * mvcc_commit_async): over Raft the handler returns at once and the answer comes from whatever
 * thread ends the command (the store loop for the write, the ts batcher, a latch release), so
 * no thread is parked per request. The pending call owns the request message, whose bytes the
 * command borrows until it is done.
 */
struct txn_pending {
    struct rpc_call *call;
    struct kv_service *svc;
    ProtobufCMessage *msg; /* owned (owns_message) */
    struct storage_ctx ctx;
    struct storage_key *touched;
    struct mvcc_prewrite_req preq;  /* prewrite; borrows msg's bytes */
    struct mvcc_mutation *muts;     /* prewrite */
    struct mvcc_key_slice *keys;    /* commit */
    struct mvcc_prewrite_result pr; /* prewrite */
    struct mvcc_write_result wr;    /* commit */
};

static void pending_free(struct txn_pending *p)
{
    protobuf_c_message_free_unpacked(p->msg, NULL);
    free(p->touched);
    free(p->muts);
    free(p->keys);
    mvcc_prewrite_result_free(&p->pr);
    mvcc_write_result_free(&p->wr);
    free(p);
}

/* A pending command for `call`, owning the request `msg` (NULL when out of memory). */
static struct txn_pending *pending_new(struct rpc_call *call, const ProtobufCMessage *msg,
                                       struct kv_service *svc)
{
    struct txn_pending *p = calloc(1, sizeof(*p));
    if (p) {
        p->msg = (ProtobufCMessage *)msg;
        p->call = call;
        p->svc = svc;
    }
    return p;
}

/* Answers INTERNAL and frees what a handler that ran out of memory holds (p may be NULL). */
static void pending_out_of_memory(struct rpc_call *call, const ProtobufCMessage *msg,
                                  struct txn_pending *p)
{
    rpc_call_finish(call, RPC_INTERNAL, "out of memory");
    if (p)
        pending_free(p);
    else
        protobuf_c_message_free_unpacked((ProtobufCMessage *)msg, NULL);
}

static void prewrite_done(void *arg, int rc)
{
    struct txn_pending *p = arg;
    struct kv_service *svc = p->svc;
    struct rpc_call *call = p->call;
    struct mvcc_prewrite_result *r = &p->pr;
    Kvrpcpb__PrewriteResponse resp = KVRPCPB__PREWRITE_RESPONSE__INIT;
    struct pb_key_error *kes = NULL;
    Kvrpcpb__KeyError **ptrs = NULL;

    if (rc && failure(svc, &p->ctx, call, rc, &r->storage_err, r->errmsg, &resp.region_error))
        goto cleanup;
    if (!rc && r->n_errors) {
        kes = calloc(r->n_errors, sizeof(*kes));
        ptrs = calloc(r->n_errors, sizeof(*ptrs));
        if (!kes || !ptrs) {
            rpc_call_finish(call, RPC_INTERNAL, "out of memory");
            goto cleanup;
        }
        for (size_t i = 0; i < r->n_errors; i++) {
            pb_key_error_fill(svc, &kes[i], &r->errors[i]);
            ptrs[i] = &kes[i].ke;
        }
        resp.errors = ptrs;
        resp.n_errors = r->n_errors;
    }
    if (!rc && !r->n_errors) {
        resp.one_pc_commit_ts = r->one_pc_commit_ts;
        metrics_counter_inc(r->one_pc_commit_ts ? svc->txn_prewrites_one_pc
                                                : svc->txn_prewrites_two_pc);
        if (r->one_pc_ts_origin != MVCC_TS_NONE)
            metrics_counter_inc(r->one_pc_ts_origin == MVCC_TS_STORE ? svc->txn_one_pc_ts_store
                                                                     : svc->txn_one_pc_ts_tso);
    }
    reply_and_free_region(call, &resp.base, resp.region_error);
cleanup:
    free(kes);
    free(ptrs);
    pending_free(p);
}

/* Whether a prewrite puts more keys than it deletes: what a store short of disk space refuses (a
 * delete beside a few puts, as a file's unlink that also updates its directory, goes through). */
static int adds_data(const Kvrpcpb__PrewriteRequest *req)
{
    size_t puts = 0, deletes = 0;
    for (size_t i = 0; i < req->n_mutations; i++) {
        puts += req->mutations[i]->op == KVRPCPB__OP__Put;
        deletes += req->mutations[i]->op == KVRPCPB__OP__Del;
    }
    return puts > deletes;
}

static void kv_prewrite(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    struct kv_service *svc = arg;
    const Kvrpcpb__PrewriteRequest *req = (const Kvrpcpb__PrewriteRequest *)msg;
    if (adds_data(req)) {
        Errorpb__Error *full = kv_disk_refusal(svc, req->context);
        if (full) {
            Kvrpcpb__PrewriteResponse resp = KVRPCPB__PREWRITE_RESPONSE__INIT;
            resp.region_error = full;
            reply_and_free_region(call, &resp.base, full);
            return;
        }
    }
    struct txn_pending *p = pending_new(call, msg, svc);
    if (p) {
        p->muts = calloc(req->n_mutations ? req->n_mutations : 1, sizeof(*p->muts));
        p->touched = calloc(req->n_mutations ? req->n_mutations : 1, sizeof(*p->touched));
    }
    if (!p || !p->muts || !p->touched) {
        pending_out_of_memory(call, msg, p);
        return;
    }
    for (size_t i = 0; i < req->n_mutations; i++) {
        const Kvrpcpb__Mutation *m = req->mutations[i];
        /* kvrpcpb.Op and mvcc_op share their numbers; unknown ops are mvcc's to reject. */
        p->muts[i] = (struct mvcc_mutation){
            .op = (enum mvcc_op)m->op,
            .key = m->key.data,
            .key_len = m->key.len,
            .value = m->value.data,
            .value_len = m->value.len,
        };
        p->touched[i] = (struct storage_key){m->key.data, m->key.len};
    }
    kv_ctx_from_proto(req->context, &p->ctx);
    p->ctx.keys = p->touched;
    p->ctx.n_keys = req->n_mutations;
    p->preq = (struct mvcc_prewrite_req){
        .mutations = p->muts,
        .n_mutations = req->n_mutations,
        .primary = req->primary_lock.data,
        .primary_len = req->primary_lock.len,
        .start_ts = req->start_version,
        .lock_ttl_ms = req->lock_ttl,
        .try_one_pc = req->try_one_pc,
    };
    mvcc_prewrite_async(svc->mvcc, &p->ctx, &p->preq, &p->pr, prewrite_done, p);
}

/* Borrowed views of a request's repeated bytes keys; NULL on allocation failure (n > 0). */
static struct mvcc_key_slice *key_slices(const ProtobufCBinaryData *keys, size_t n)
{
    struct mvcc_key_slice *s = calloc(n ? n : 1, sizeof(*s));
    for (size_t i = 0; s && i < n; i++)
        s[i] = (struct mvcc_key_slice){keys[i].data, keys[i].len};
    return s;
}

/* The same keys as the storage_ctx's touched keys; NULL on allocation failure. */
static struct storage_key *touched_keys(const ProtobufCBinaryData *keys, size_t n)
{
    struct storage_key *s = calloc(n ? n : 1, sizeof(*s));
    for (size_t i = 0; s && i < n; i++)
        s[i] = (struct storage_key){keys[i].data, keys[i].len};
    return s;
}

/*
 * Answers a Commit/BatchRollback/ResolveLock call: `resp` is the response
 * whose region_error and error fields are given; a failure other than a
 * region error ends the call with a gRPC status instead.
 */
static void write_reply(struct kv_service *svc, const struct storage_ctx *ctx,
                        struct rpc_call *call, int rc, struct mvcc_write_result *r,
                        ProtobufCMessage *resp, Errorpb__Error **region_error,
                        Kvrpcpb__KeyError **error)
{
    struct pb_key_error ke;
    if (rc && failure(svc, ctx, call, rc, &r->storage_err, r->errmsg, region_error))
        return;
    if (!rc && r->error.kind != MVCC_KEY_ERR_NONE) {
        pb_key_error_fill(svc, &ke, &r->error);
        *error = &ke.ke;
    }
    reply_and_free_region(call, resp, *region_error);
}

static void commit_done(void *arg, int rc)
{
    struct txn_pending *p = arg;
    Kvrpcpb__CommitResponse resp = KVRPCPB__COMMIT_RESPONSE__INIT;
    write_reply(p->svc, &p->ctx, p->call, rc, &p->wr, &resp.base, &resp.region_error, &resp.error);
    pending_free(p);
}

static void kv_commit(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    struct kv_service *svc = arg;
    const Kvrpcpb__CommitRequest *req = (const Kvrpcpb__CommitRequest *)msg;
    struct txn_pending *p = pending_new(call, msg, svc);
    if (p) {
        p->keys = key_slices(req->keys, req->n_keys);
        p->touched = touched_keys(req->keys, req->n_keys);
    }
    if (!p || !p->keys || !p->touched) {
        pending_out_of_memory(call, msg, p);
        return;
    }
    kv_ctx_from_proto(req->context, &p->ctx);
    p->ctx.keys = p->touched;
    p->ctx.n_keys = req->n_keys;
    mvcc_commit_async(svc->mvcc, &p->ctx, p->keys, req->n_keys, req->start_version,
                      req->commit_version, &p->wr, commit_done, p);
}

static void kv_batch_rollback(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    struct kv_service *svc = arg;
    const Kvrpcpb__BatchRollbackRequest *req = (const Kvrpcpb__BatchRollbackRequest *)msg;
    Kvrpcpb__BatchRollbackResponse resp = KVRPCPB__BATCH_ROLLBACK_RESPONSE__INIT;
    struct mvcc_write_result r;
    struct storage_ctx ctx;
    struct mvcc_key_slice *keys = key_slices(req->keys, req->n_keys);
    struct storage_key *touched = touched_keys(req->keys, req->n_keys);

    if (!keys || !touched) {
        free(keys);
        free(touched);
        rpc_call_finish(call, RPC_INTERNAL, "out of memory");
        return;
    }
    kv_ctx_from_proto(req->context, &ctx);
    ctx.keys = touched;
    ctx.n_keys = req->n_keys;
    int rc = mvcc_batch_rollback(svc->mvcc, &ctx, keys, req->n_keys, req->start_version, &r);
    write_reply(svc, &ctx, call, rc, &r, &resp.base, &resp.region_error, &resp.error);
    free(keys);
    free(touched);
    mvcc_write_result_free(&r);
}

static void kv_resolve_lock(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    struct kv_service *svc = arg;
    const Kvrpcpb__ResolveLockRequest *req = (const Kvrpcpb__ResolveLockRequest *)msg;
    Kvrpcpb__ResolveLockResponse resp = KVRPCPB__RESOLVE_LOCK_RESPONSE__INIT;
    struct mvcc_write_result r;
    struct storage_ctx ctx;

    kv_ctx_from_proto(req->context, &ctx);
    int rc = mvcc_resolve_lock(svc->mvcc, &ctx, req->start_version, req->commit_version, &r);
    if (rc == 0 && r.error.kind == MVCC_KEY_ERR_NONE)
        metrics_counter_inc(req->commit_version ? svc->txn_locks_committed
                                                : svc->txn_locks_rolled_back);
    write_reply(svc, &ctx, call, rc, &r, &resp.base, &resp.region_error, &resp.error);
    mvcc_write_result_free(&r);
}

static void kv_check_txn_status(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    struct kv_service *svc = arg;
    const Kvrpcpb__CheckTxnStatusRequest *req = (const Kvrpcpb__CheckTxnStatusRequest *)msg;
    Kvrpcpb__CheckTxnStatusResponse resp = KVRPCPB__CHECK_TXN_STATUS_RESPONSE__INIT;
    struct mvcc_check_txn_status_result r;
    struct storage_ctx ctx;

    struct storage_key touched = {req->primary_key.data, req->primary_key.len};
    kv_ctx_from_proto(req->context, &ctx);
    ctx.keys = &touched;
    ctx.n_keys = 1;
    int rc = mvcc_check_txn_status(svc->mvcc, &ctx, req->primary_key.data, req->primary_key.len,
                                   req->lock_ts, req->current_ts, &r);
    if (rc && failure(svc, &ctx, call, rc, &r.storage_err, r.errmsg, &resp.region_error))
        goto cleanup;
    if (!rc && r.error.kind != MVCC_KEY_ERR_NONE) {
        /* CheckTxnStatusResponse has no KeyError: bad input ends the call. */
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, r.error.msg);
        goto cleanup;
    }
    if (!rc) {
        resp.lock_ttl = r.lock_ttl;
        resp.commit_version = r.commit_version;
        /* mvcc_action and kvrpcpb.Action share their numbers. */
        resp.action = (Kvrpcpb__Action)r.action;
    }
    reply_and_free_region(call, &resp.base, resp.region_error);
cleanup:
    mvcc_check_txn_status_result_free(&r);
}

size_t kv_txn_methods(struct kv_service *svc, struct rpc_method *out)
{
    static const char met[] = "Key errors answered to transactions, by kind.";
    svc->txn_locks_met =
        metrics_counter(svc->metrics, "tinykv_txn_key_errors_total", met, "kind=\"locked\"");
    svc->txn_conflicts = metrics_counter(svc->metrics, "tinykv_txn_key_errors_total", met,
                                         "kind=\"write_conflict\"");
    static const char pw[] =
        "KvPrewrite calls that succeeded, by phase: one (committed at once) or two (keys locked).";
    svc->txn_prewrites_one_pc =
        metrics_counter(svc->metrics, "tinykv_txn_prewrites_total", pw, "phases=\"one\"");
    svc->txn_prewrites_two_pc =
        metrics_counter(svc->metrics, "tinykv_txn_prewrites_total", pw, "phases=\"two\"");
    static const char ts[] = "One-phase commits written, by where their commit ts came from: "
                             "chosen on the store, or asked of the TSO.";
    svc->txn_one_pc_ts_store =
        metrics_counter(svc->metrics, "tinykv_txn_one_pc_commit_ts_total", ts, "source=\"store\"");
    svc->txn_one_pc_ts_tso =
        metrics_counter(svc->metrics, "tinykv_txn_one_pc_commit_ts_total", ts, "source=\"tso\"");
    static const char res[] = "KvResolveLock calls that resolved a transaction's locks, by action.";
    svc->txn_locks_committed =
        metrics_counter(svc->metrics, "tinykv_txn_resolve_locks_total", res, "action=\"commit\"");
    svc->txn_locks_rolled_back =
        metrics_counter(svc->metrics, "tinykv_txn_resolve_locks_total", res, "action=\"rollback\"");
    /* The others block a worker: they wait on latches, the disk and Raft. */
    const struct rpc_method methods[KV_TXN_METHODS] = {
        {.name = "/tinykvpb.TinyKv/KvGet",
         .request = &kvrpcpb__get_request__descriptor,
         .on_message = kv_get},
        {.name = "/tinykvpb.TinyKv/KvScan",
         .request = &kvrpcpb__scan_request__descriptor,
         .on_message = kv_scan},
        {.name = "/tinykvpb.TinyKv/KvPrewrite",
         .request = &kvrpcpb__prewrite_request__descriptor,
         .on_message = kv_prewrite},
        {.name = "/tinykvpb.TinyKv/KvCommit",
         .request = &kvrpcpb__commit_request__descriptor,
         .on_message = kv_commit},
        {.name = "/tinykvpb.TinyKv/KvCheckTxnStatus",
         .request = &kvrpcpb__check_txn_status_request__descriptor,
         .on_message = kv_check_txn_status},
        {.name = "/tinykvpb.TinyKv/KvBatchRollback",
         .request = &kvrpcpb__batch_rollback_request__descriptor,
         .on_message = kv_batch_rollback},
        {.name = "/tinykvpb.TinyKv/KvResolveLock",
         .request = &kvrpcpb__resolve_lock_request__descriptor,
         .on_message = kv_resolve_lock},
    };
    /* Prewrite and commit answer from their command's completion: no thread of their own over
     * Raft; a worker over a storage that answers at once (the command then runs inside the
     * handler, on the disk). */
    int parked = !storage_is_async(svc->storage);
    for (size_t i = 0; i < KV_TXN_METHODS; i++) {
        out[i] = methods[i];
        out[i].kind = RPC_UNARY;
        out[i].arg = svc;
        int async = methods[i].on_message == kv_prewrite || methods[i].on_message == kv_commit;
        out[i].blocking = !async || parked;
        out[i].owns_message = async;
    }
    return KV_TXN_METHODS;
}

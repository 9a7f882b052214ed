/* debug_service.c — debugpb.Debug: start a region consistency check at its leader, and read what
 * one replica found. */
#include "store/debug_service.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "debugpb.pb-c.h"

/* Shared by the handler thread and the store loop's callback; the last one out frees it. */
struct check_wait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int refs, done;
    struct raftstore_result res;
    uint64_t index;
};

static void check_wait_unref(struct check_wait *w)
{
    int last = --w->refs == 0;
    pthread_mutex_unlock(&w->mu);
    if (!last)
        return;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
    free(w);
}

static void on_checked(void *arg, const struct raftstore_result *res, uint64_t index)
{
    struct check_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->res = *res;
    w->res.reader = NULL;
    w->index = index;
    w->done = 1;
    pthread_cond_signal(&w->cond);
    check_wait_unref(w);
}

static void check_region(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    struct raftstore *rs = arg;
    const Debugpb__RegionConsistencyCheckRequest *req =
        (const Debugpb__RegionConsistencyCheckRequest *)msg;
    Debugpb__RegionConsistencyCheckResponse resp = DEBUGPB__REGION_CONSISTENCY_CHECK_RESPONSE__INIT;
    char errmsg[sizeof((struct storage_error *)0)->msg + 64];
    struct check_wait *w = calloc(1, sizeof *w);
    if (!w) {
        rpc_call_finish(call, RPC_INTERNAL, "out of memory");
        return;
    }
    /* A monotonic deadline: a wall clock stepped back (skew faults) must not stretch it. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    w->refs = 2;
    raftstore_check_consistency(rs, req->region_id, on_checked, w);

    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)DEBUG_SERVICE_CHECK_TIMEOUT_MS * 1000000u;
    until.tv_sec += (time_t)(ns / 1000000000u);
    until.tv_nsec = (long)(ns % 1000000000u);
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    while (!w->done && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w->cond, &w->mu, &until);
    if (!w->done) {
        snprintf(errmsg, sizeof errmsg, "timed out waiting for the ComputeHash entry to apply");
    } else if (w->res.code) {
        snprintf(errmsg, sizeof errmsg, "%s", w->res.err.msg);
        if (w->res.err.region_kind == STORAGE_REGION_ERR_NOT_LEADER)
            resp.leader_store_id = w->res.err.leader_store_id;
    } else {
        errmsg[0] = '\0';
        resp.index = w->index;
    }
    check_wait_unref(w);
    resp.error = errmsg;
    rpc_call_reply(call, &resp.base);
}

static void region_consistency(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    struct raftstore *rs = arg;
    const Debugpb__RegionConsistencyRequest *req = (const Debugpb__RegionConsistencyRequest *)msg;
    Debugpb__RegionConsistencyResponse resp = DEBUGPB__REGION_CONSISTENCY_RESPONSE__INIT;
    struct raftstore_peer_info info;
    resp.store_id = raftstore_store_id(rs);
    if (raftstore_peer_info_of(rs, req->region_id, &info) != 0) {
        resp.error = "region not found on this store";
        rpc_call_reply(call, &resp.base);
        return;
    }
    const struct raftstore_consistency *cs = &info.consistency;
    resp.peer_id = info.peer_id;
    resp.is_leader = info.is_leader != 0;
    resp.applied_index = info.applied_index;
    resp.index = cs->index;
    resp.state = (Debugpb__ConsistencyState)cs->state;
    resp.hash = cs->hash;
    resp.leader_hash = cs->leader_hash;
    resp.mismatch_index = cs->mismatch_index;
    resp.mismatches = cs->mismatches;
    rpc_call_reply(call, &resp.base);
}

size_t debug_service_methods(struct raftstore *rs, struct rpc_method *out)
{
    out[0] = (struct rpc_method){.name = "/debugpb.Debug/CheckRegionConsistency",
                                 .kind = RPC_UNARY,
                                 .request = &debugpb__region_consistency_check_request__descriptor,
                                 .on_message = check_region,
                                 .arg = rs,
                                 .blocking = 1};
    out[1] = (struct rpc_method){.name = "/debugpb.Debug/RegionConsistency",
                                 .kind = RPC_UNARY,
                                 .request = &debugpb__region_consistency_request__descriptor,
                                 .on_message = region_consistency,
                                 .arg = rs};
    return DEBUG_SERVICE_METHODS;
}

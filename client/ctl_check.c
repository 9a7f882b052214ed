/* ctl_check.c — tinykv-ctl's region consistency check over debugpb.Debug: start it at the leader,
 * then gather each replica's verdict. */
#include "client/ctl_check.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "debugpb.pb-c.h"
#include "proto/rpc.h"

#define POLL_INTERVAL_MS 50

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int left_ms(uint64_t deadline)
{
    uint64_t now = now_ms();
    return now >= deadline ? 0 : (int)(deadline - now);
}

static struct ctl_check_replica *on_store(struct ctl_check_replica *r, size_t n, uint64_t store)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].store_id == store)
            return &r[i];
    return NULL;
}

/* Asks the store of `at` to start the check; 0 with *index, else -1 with *hint (a leader's
 * store, 0 if none) and the reason in errbuf. */
static int start_at(struct rpc_client *rpc, uint64_t region_id, const struct ctl_check_replica *at,
                    int timeout_ms, uint64_t *index, uint64_t *hint, char *errbuf,
                    size_t errbuf_len)
{
    Debugpb__RegionConsistencyCheckRequest req = DEBUGPB__REGION_CONSISTENCY_CHECK_REQUEST__INIT;
    req.region_id = region_id;
    ProtobufCMessage *m = NULL;
    struct rpc_error err;
    *hint = 0;
    int rc = rpc_client_unary(rpc, at->addr, "/debugpb.Debug/CheckRegionConsistency", &req.base,
                              &debugpb__region_consistency_check_response__descriptor, &m,
                              timeout_ms, &err);
    if (rc) {
        snprintf(errbuf, errbuf_len, "store %llu (%s): %s", (unsigned long long)at->store_id,
                 at->addr, err.msg);
        return -1;
    }
    Debugpb__RegionConsistencyCheckResponse *resp = (Debugpb__RegionConsistencyCheckResponse *)m;
    int ok = resp->index && !(resp->error && resp->error[0]);
    if (ok) {
        *index = resp->index;
    } else {
        *hint = resp->leader_store_id;
        snprintf(errbuf, errbuf_len, "store %llu: %s", (unsigned long long)at->store_id,
                 resp->error && resp->error[0] ? resp->error : "no index");
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return ok ? 0 : -1;
}

/* Refreshes r from its store's answer. */
static void poll_replica(struct rpc_client *rpc, uint64_t region_id, struct ctl_check_replica *r,
                         int timeout_ms)
{
    Debugpb__RegionConsistencyRequest req = DEBUGPB__REGION_CONSISTENCY_REQUEST__INIT;
    req.region_id = region_id;
    ProtobufCMessage *m = NULL;
    struct rpc_error err;
    if (rpc_client_unary(rpc, r->addr, "/debugpb.Debug/RegionConsistency", &req.base,
                         &debugpb__region_consistency_response__descriptor, &m, timeout_ms,
                         &err) != 0) {
        snprintf(r->error, sizeof r->error, "unreachable: %s", err.msg);
        return;
    }
    Debugpb__RegionConsistencyResponse *resp = (Debugpb__RegionConsistencyResponse *)m;
    if (resp->error && resp->error[0]) {
        snprintf(r->error, sizeof r->error, "%s", resp->error);
    } else {
        r->error[0] = '\0';
        r->answered = true;
        r->is_leader = resp->is_leader;
        r->applied_index = resp->applied_index;
        r->index = resp->index;
        r->state = (int)resp->state;
        r->hash = resp->hash;
        r->leader_hash = resp->leader_hash;
        r->mismatch_index = resp->mismatch_index;
    }
    protobuf_c_message_free_unpacked(m, NULL);
}

static bool has_verdict(const struct ctl_check_replica *r, uint64_t index)
{
    return r->answered && r->index == index && r->state >= CTL_CHECK_STATE_CONSISTENT;
}

int ctl_check_region(uint64_t region_id, struct ctl_check_replica *r, size_t n,
                     uint64_t leader_store_id, int timeout_ms, uint64_t *index, char *errbuf,
                     size_t errbuf_len)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    struct rpc_client *rpc = rpc_client_new();
    *index = 0;
    errbuf[0] = '\0';
    if (!rpc || n == 0) {
        snprintf(errbuf, errbuf_len, rpc ? "the region has no replicas" : "out of memory");
        rpc_client_free(rpc);
        return CTL_CHECK_NOT_STARTED;
    }
    /* The leader first, then whichever store a refusal names, else each in turn. */
    const struct ctl_check_replica *at = on_store(r, n, leader_store_id);
    size_t next = 0;
    while (!*index && left_ms(deadline) > 0) {
        if (!at)
            at = &r[next++ % n];
        uint64_t hint = 0;
        if (start_at(rpc, region_id, at, left_ms(deadline), index, &hint, errbuf, errbuf_len) == 0)
            break;
        at = hint ? on_store(r, n, hint) : NULL;
        if (!hint)
            usleep(POLL_INTERVAL_MS * 1000); /* an election may be under way */
    }
    if (!*index) {
        rpc_client_free(rpc);
        return CTL_CHECK_NOT_STARTED;
    }
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++) {
            if (!has_verdict(&r[i], *index) && left_ms(deadline) > 0)
                poll_replica(rpc, region_id, &r[i], left_ms(deadline));
            done += has_verdict(&r[i], *index);
        }
        if (done == n || left_ms(deadline) == 0)
            break;
        usleep(POLL_INTERVAL_MS * 1000);
    }
    rpc_client_free(rpc);
    for (size_t i = 0; i < n; i++)
        if (!has_verdict(&r[i], *index)) {
            snprintf(errbuf, errbuf_len, "no verdict from store %llu by the deadline",
                     (unsigned long long)r[i].store_id);
            return CTL_CHECK_INCOMPLETE;
        }
    return CTL_CHECK_OK;
}

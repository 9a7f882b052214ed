/* pd_worker.c — schedulerpb calls of a store, the address cache and the heartbeat thread. */
#include "store/pd_worker.h"

#include <pthread.h>
#include <sys/statvfs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/metrics.h"
#include "proto/log.h"
#include "schedulerpb.pb-c.h"

#define CALL_TIMEOUT_MS 3000
#define MAX_REPORTS 1024

struct addr_entry {
    uint64_t store_id;
    char addr[128];
};

/* The newest report of one region, waiting to be sent. */
struct report {
    uint64_t region_id;
    Metapb__Region *region; /* owned */
    uint64_t leader_peer_id, leader_store_id;
    uint64_t *pending;
    size_t n_pending;
    uint64_t approximate_size;
    uint64_t approximate_keys;
};

/* A split the store's own split check asked for, waiting for the thread. */
struct split_ask {
    uint64_t region_id, version;
    uint8_t *key;
    size_t key_len;
};

struct pd_worker {
    struct rpc_client *rpc;
    char addr[256];
    uint64_t cluster_id;
    char errmsg[1024];

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cond;
    struct addr_entry *addrs;
    size_t n_addrs;
    struct report *reports;
    size_t n_reports;
    struct split_ask *asks;
    size_t n_asks;
    int stopping;

    pthread_t thread;
    int started;
    struct raftstore *rs;
    uint64_t store_id;
    char store_addr[128];
    char data_dir[1024];
    int store_heartbeat_ms;

    /* Set before pd_worker_start, read by the heartbeat thread (all NULL without a registry). */
    struct metrics_counter *store_hbs, *store_hb_failures, *region_hbs, *region_hb_failures;
    struct metrics_counter *stream_failures;
};

struct pd_worker *pd_worker_new(struct rpc_client *rpc, const char *pd_addr)
{
    struct pd_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->rpc = rpc;
    snprintf(w->addr, sizeof w->addr, "%s", pd_addr);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    return w;
}

static void report_free(struct report *r)
{
    if (r->region)
        protobuf_c_message_free_unpacked(&r->region->base, NULL);
    free(r->pending);
    memset(r, 0, sizeof *r);
}

void pd_worker_stop(struct pd_worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    if (w->started)
        pthread_join(w->thread, NULL);
    w->started = 0;
}

void pd_worker_free(struct pd_worker *w)
{
    if (!w)
        return;
    pd_worker_stop(w);
    for (size_t i = 0; i < w->n_reports; i++)
        report_free(&w->reports[i]);
    free(w->reports);
    for (size_t i = 0; i < w->n_asks; i++)
        free(w->asks[i].key);
    free(w->asks);
    free(w->addrs);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
    free(w);
}

const char *pd_worker_errmsg(const struct pd_worker *w)
{
    return w->errmsg;
}

/* A unary call; checks the response header's error. */
static int call(struct pd_worker *w, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp,
                Schedulerpb__ResponseHeader *(*header_of)(ProtobufCMessage *))
{
    struct rpc_error err;
    int rc = rpc_client_unary(w->rpc, w->addr, method, req, desc, resp, CALL_TIMEOUT_MS, &err);
    if (rc) {
        snprintf(w->errmsg, sizeof w->errmsg, "scheduler %s: %s: %s", w->addr, method, err.msg);
        return PD_WORKER_ERR_UNAVAILABLE;
    }
    Schedulerpb__ResponseHeader *h = header_of(*resp);
    if (h && h->error && h->error->type != SCHEDULERPB__ERROR_TYPE__OK) {
        snprintf(w->errmsg, sizeof w->errmsg, "scheduler %s: %s", method,
                 h->error->message ? h->error->message : "error");
        int type = h->error->type;
        protobuf_c_message_free_unpacked(*resp, NULL);
        *resp = NULL;
        if (type == SCHEDULERPB__ERROR_TYPE__ALREADY_BOOTSTRAPPED)
            return PD_WORKER_ERR_ALREADY_BOOTSTRAPPED;
        if (type == SCHEDULERPB__ERROR_TYPE__NOT_BOOTSTRAPPED)
            return PD_WORKER_ERR_NOT_BOOTSTRAPPED;
        return PD_WORKER_ERR_REFUSED;
    }
    return 0;
}

#define HEADER_OF(type)                                                                            \
    static Schedulerpb__ResponseHeader *header_of_##type(ProtobufCMessage *m)                      \
    {                                                                                              \
        return ((Schedulerpb__##type *)m)->header;                                                 \
    }

HEADER_OF(AllocIDResponse)
HEADER_OF(IsBootstrappedResponse)
HEADER_OF(BootstrapResponse)
HEADER_OF(PutStoreResponse)
HEADER_OF(GetStoreResponse)
HEADER_OF(StoreHeartbeatResponse)
HEADER_OF(AskSplitResponse)

static Schedulerpb__RequestHeader header(struct pd_worker *w)
{
    Schedulerpb__RequestHeader h = SCHEDULERPB__REQUEST_HEADER__INIT;
    h.cluster_id = w->cluster_id;
    return h;
}

int pd_worker_connect(struct pd_worker *w, int timeout_ms)
{
    Schedulerpb__RequestHeader h = header(w);
    Schedulerpb__GetMembersRequest req = SCHEDULERPB__GET_MEMBERS_REQUEST__INIT;
    req.header = &h;
    ProtobufCMessage *resp;
    struct rpc_error err;
    int rc =
        rpc_client_unary(w->rpc, w->addr, "/schedulerpb.Scheduler/GetMembers", &req.base,
                         &schedulerpb__get_members_response__descriptor, &resp, timeout_ms, &err);
    if (rc) {
        snprintf(w->errmsg, sizeof w->errmsg, "cannot reach the scheduler at %s: %s", w->addr,
                 err.msg);
        return PD_WORKER_ERR_UNAVAILABLE;
    }
    Schedulerpb__GetMembersResponse *r = (Schedulerpb__GetMembersResponse *)resp;
    if (r->header)
        w->cluster_id = r->header->cluster_id;
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

uint64_t pd_worker_cluster_id(const struct pd_worker *w)
{
    return w->cluster_id;
}

int pd_worker_alloc_id(struct pd_worker *w, uint64_t *id)
{
    Schedulerpb__RequestHeader h = header(w);
    Schedulerpb__AllocIDRequest req = SCHEDULERPB__ALLOC_IDREQUEST__INIT;
    req.header = &h;
    ProtobufCMessage *resp;
    int rc = call(w, "/schedulerpb.Scheduler/AllocID", &req.base,
                  &schedulerpb__alloc_idresponse__descriptor, &resp, header_of_AllocIDResponse);
    if (rc)
        return rc;
    *id = ((Schedulerpb__AllocIDResponse *)resp)->id;
    protobuf_c_message_free_unpacked(resp, NULL);
    return *id ? 0 : PD_WORKER_ERR_REFUSED;
}

int pd_worker_is_bootstrapped(struct pd_worker *w, int *bootstrapped)
{
    Schedulerpb__RequestHeader h = header(w);
    Schedulerpb__IsBootstrappedRequest req = SCHEDULERPB__IS_BOOTSTRAPPED_REQUEST__INIT;
    req.header = &h;
    ProtobufCMessage *resp;
    int rc = call(w, "/schedulerpb.Scheduler/IsBootstrapped", &req.base,
                  &schedulerpb__is_bootstrapped_response__descriptor, &resp,
                  header_of_IsBootstrappedResponse);
    if (rc)
        return rc;
    *bootstrapped = ((Schedulerpb__IsBootstrappedResponse *)resp)->bootstrapped;
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

int pd_worker_bootstrap(struct pd_worker *w, uint64_t store_id, const char *store_addr,
                        const struct region *region)
{
    (void)region; /* the scheduler learns the first region from its first heartbeat */
    Schedulerpb__RequestHeader h = header(w);
    Metapb__Store store = METAPB__STORE__INIT;
    store.id = store_id;
    store.address = (char *)store_addr;
    Schedulerpb__BootstrapRequest req = SCHEDULERPB__BOOTSTRAP_REQUEST__INIT;
    req.header = &h;
    req.store = &store;
    ProtobufCMessage *resp;
    int rc = call(w, "/schedulerpb.Scheduler/Bootstrap", &req.base,
                  &schedulerpb__bootstrap_response__descriptor, &resp, header_of_BootstrapResponse);
    if (!rc)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

int pd_worker_put_store(struct pd_worker *w, uint64_t store_id, const char *store_addr)
{
    Schedulerpb__RequestHeader h = header(w);
    Metapb__Store store = METAPB__STORE__INIT;
    store.id = store_id;
    store.address = (char *)store_addr;
    Schedulerpb__PutStoreRequest req = SCHEDULERPB__PUT_STORE_REQUEST__INIT;
    req.header = &h;
    req.store = &store;
    ProtobufCMessage *resp;
    int rc = call(w, "/schedulerpb.Scheduler/PutStore", &req.base,
                  &schedulerpb__put_store_response__descriptor, &resp, header_of_PutStoreResponse);
    if (!rc)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

int pd_worker_resolve(void *ctx, uint64_t store_id, char *addr, size_t len)
{
    struct pd_worker *w = ctx;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < w->n_addrs; i++) {
        if (w->addrs[i].store_id == store_id) {
            snprintf(addr, len, "%s", w->addrs[i].addr);
            pthread_mutex_unlock(&w->mu);
            return 0;
        }
    }
    pthread_mutex_unlock(&w->mu);
    Schedulerpb__RequestHeader h = header(w);
    Schedulerpb__GetStoreRequest req = SCHEDULERPB__GET_STORE_REQUEST__INIT;
    req.header = &h;
    req.store_id = store_id;
    ProtobufCMessage *resp;
    if (call(w, "/schedulerpb.Scheduler/GetStore", &req.base,
             &schedulerpb__get_store_response__descriptor, &resp, header_of_GetStoreResponse))
        return -1;
    Schedulerpb__GetStoreResponse *r = (Schedulerpb__GetStoreResponse *)resp;
    int rc = -1;
    if (r->store && r->store->address && r->store->address[0]) {
        snprintf(addr, len, "%s", r->store->address);
        pthread_mutex_lock(&w->mu);
        struct addr_entry *grown = realloc(w->addrs, (w->n_addrs + 1) * sizeof *grown);
        if (grown) {
            w->addrs = grown;
            w->addrs[w->n_addrs].store_id = store_id;
            snprintf(w->addrs[w->n_addrs].addr, sizeof w->addrs[0].addr, "%s", addr);
            w->n_addrs++;
        }
        pthread_mutex_unlock(&w->mu);
        rc = 0;
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

void pd_worker_region_heartbeat(void *ctx, const struct raftstore_region_report *rep)
{
    struct pd_worker *w = ctx;
    struct report r;
    memset(&r, 0, sizeof r);
    r.region_id = rep->region->id;
    r.region = store_region_to_proto(rep->region);
    r.leader_peer_id = rep->leader_peer_id;
    const struct region_peer *lp = store_region_peer_by_id(rep->region, rep->leader_peer_id);
    r.leader_store_id = lp ? lp->store_id : 0;
    r.approximate_size = rep->approximate_size_bytes;
    r.approximate_keys = rep->approximate_keys;
    if (rep->n_pending_peer_ids) {
        r.pending = malloc(rep->n_pending_peer_ids * sizeof *r.pending);
        if (r.pending) {
            memcpy(r.pending, rep->pending_peer_ids, rep->n_pending_peer_ids * sizeof *r.pending);
            r.n_pending = rep->n_pending_peer_ids;
        }
    }
    if (!r.region) {
        report_free(&r);
        return;
    }
    pthread_mutex_lock(&w->mu);
    size_t i;
    for (i = 0; i < w->n_reports; i++)
        if (w->reports[i].region_id == r.region_id)
            break;
    if (i < w->n_reports) {
        report_free(&w->reports[i]);
        w->reports[i] = r;
    } else if (w->n_reports < MAX_REPORTS) {
        struct report *grown = realloc(w->reports, (w->n_reports + 1) * sizeof *grown);
        if (grown) {
            w->reports = grown;
            w->reports[w->n_reports++] = r;
        } else {
            report_free(&r);
        }
    } else {
        report_free(&r);
    }
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

void pd_worker_peer_destroyed(void *ctx, uint64_t region_id, uint64_t peer_id)
{
    (void)ctx;
    LOG(LOG_INFO, "region=%llu peer=%llu: destroyed; the scheduler learns it from the leader",
        (unsigned long long)region_id, (unsigned long long)peer_id);
}

static int send_report(struct pd_worker *w, struct rpc_stream *st, struct report *r)
{
    Schedulerpb__RequestHeader h = header(w);
    Metapb__Peer leader = METAPB__PEER__INIT;
    leader.id = r->leader_peer_id;
    leader.store_id = r->leader_store_id;
    Metapb__Peer *pending = calloc(r->n_pending ? r->n_pending : 1, sizeof *pending);
    Metapb__Peer **pending_ptrs = calloc(r->n_pending ? r->n_pending : 1, sizeof *pending_ptrs);
    if (!pending || !pending_ptrs) {
        free(pending);
        free(pending_ptrs);
        return -1;
    }
    for (size_t i = 0; i < r->n_pending; i++) {
        metapb__peer__init(&pending[i]);
        pending[i].id = r->pending[i];
        for (size_t k = 0; k < r->region->n_peers; k++)
            if (r->region->peers[k]->id == r->pending[i])
                pending[i].store_id = r->region->peers[k]->store_id;
        pending_ptrs[i] = &pending[i];
    }
    Schedulerpb__RegionHeartbeatRequest req = SCHEDULERPB__REGION_HEARTBEAT_REQUEST__INIT;
    req.header = &h;
    req.region = r->region;
    req.leader = &leader;
    req.pending_peers = pending_ptrs;
    req.n_pending_peers = r->n_pending;
    req.approximate_size = r->approximate_size;
    req.approximate_keys = r->approximate_keys;
    struct rpc_error err;
    int rc = rpc_stream_send(st, &req.base, CALL_TIMEOUT_MS, &err);
    free(pending);
    free(pending_ptrs);
    return rc;
}

/* Waits for one split's outcome on the store loop. */
struct split_wait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done, code;
    int abandoned; /* the waiter gave up: the callback frees */
};

static void split_done(void *arg, struct raftstore_result *res)
{
    struct split_wait *sw = arg;
    pthread_mutex_lock(&sw->mu);
    sw->done = 1;
    sw->code = res->code;
    int abandoned = sw->abandoned;
    pthread_cond_signal(&sw->cond);
    pthread_mutex_unlock(&sw->mu);
    if (abandoned) {
        pthread_mutex_destroy(&sw->mu);
        pthread_cond_destroy(&sw->cond);
        free(sw);
    }
}

/* The ids of one split: the new region's and one new peer id per peer. */
struct split_ids {
    uint64_t region_id;
    uint64_t *peer_ids; /* owned */
    size_t n_peer_ids;
};

/* Asks the scheduler for the ids of one split of region_id. */
static int ask_split_ids(struct pd_worker *w, uint64_t region_id, struct split_ids *out)
{
    memset(out, 0, sizeof *out);
    Schedulerpb__RequestHeader h = header(w);
    Metapb__Region region = METAPB__REGION__INIT;
    region.id = region_id;
    Schedulerpb__AskSplitRequest req = SCHEDULERPB__ASK_SPLIT_REQUEST__INIT;
    req.header = &h;
    req.region = &region;
    ProtobufCMessage *m;
    if (call(w, "/schedulerpb.Scheduler/AskSplit", &req.base,
             &schedulerpb__ask_split_response__descriptor, &m, header_of_AskSplitResponse) != 0) {
        LOG(LOG_WARN, "region=%llu: split: %s", (unsigned long long)region_id, w->errmsg);
        return -1;
    }
    Schedulerpb__AskSplitResponse *resp = (Schedulerpb__AskSplitResponse *)m;
    out->peer_ids = malloc((resp->n_new_peer_ids ? resp->n_new_peer_ids : 1) * sizeof(uint64_t));
    if (!out->peer_ids) {
        protobuf_c_message_free_unpacked(m, NULL);
        return -1;
    }
    out->region_id = resp->new_region_id;
    out->n_peer_ids = resp->n_new_peer_ids;
    if (resp->n_new_peer_ids)
        memcpy(out->peer_ids, resp->new_peer_ids, resp->n_new_peer_ids * sizeof(uint64_t));
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

/* Splits region_id at key with ids from ask_split_ids, waiting (bounded) for the apply. */
static int split_with_ids(struct pd_worker *w, uint64_t region_id, const ProtobufCBinaryData *key,
                          const struct split_ids *ids)
{
    struct split_wait *sw = calloc(1, sizeof *sw);
    if (!sw)
        return -1;
    pthread_mutex_init(&sw->mu, NULL);
    pthread_cond_init(&sw->cond, NULL);
    raftstore_split(w->rs, region_id, 0, key->data, key->len, ids->region_id, ids->peer_ids,
                    ids->n_peer_ids, split_done, sw);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&sw->mu);
    int rc = 0;
    while (!sw->done && rc == 0)
        rc = pthread_cond_timedwait(&sw->cond, &sw->mu, &until);
    int done = sw->done, code = sw->code;
    sw->abandoned = !done;
    pthread_mutex_unlock(&sw->mu);
    if (done) {
        pthread_mutex_destroy(&sw->mu);
        pthread_cond_destroy(&sw->cond);
        free(sw);
    }
    return done && code == 0 ? 0 : -1;
}

/* Asks the scheduler for ids and splits region_id at key, waiting (bounded) for the apply. */
static int split_one(struct pd_worker *w, uint64_t region_id, const ProtobufCBinaryData *key)
{
    struct split_ids ids;
    if (ask_split_ids(w, region_id, &ids) != 0)
        return -1;
    int rc = split_with_ids(w, region_id, key, &ids);
    free(ids.peer_ids);
    return rc;
}

static int key_desc(const void *a, const void *b)
{
    const ProtobufCBinaryData *x = *(ProtobufCBinaryData *const *)a;
    const ProtobufCBinaryData *y = *(ProtobufCBinaryData *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->data, y->data, n) : 0;
    if (!c)
        c = x->len < y->len ? -1 : x->len > y->len;
    return -c;
}

/*
 * A split operator: the keys are split from the highest down, so the region
 * keeps its id and every next key is still inside it; each waits for the
 * previous split to apply (a split proposed under the old epoch would be
 * refused). Every split's ids are asked for before the first split: once one
 * applies, a new region's report can replace the parent's record at the
 * scheduler (they overlap) until the parent reports again, and an AskSplit in
 * that window would find no region.
 */
static void handle_split(struct pd_worker *w, uint64_t region_id, const Metapb__RegionEpoch *epoch,
                         const Schedulerpb__SplitRegion *sr)
{
    if (!sr->n_keys)
        return;
    /* The scheduler repeats the split in every answer until a heartbeat shows
     * it done: one whose epoch is no longer the region's is a repeat. */
    struct region now;
    if (raftstore_region(w->rs, region_id, &now) != 0)
        return;
    uint64_t version = now.version;
    store_region_free(&now);
    if (epoch && epoch->version != version)
        return;
    const ProtobufCBinaryData **keys = malloc(sr->n_keys * sizeof *keys);
    struct split_ids *ids = calloc(sr->n_keys, sizeof *ids);
    if (!keys || !ids)
        goto cleanup;
    size_t n = 0;
    for (size_t i = 0; i < sr->n_keys; i++)
        keys[i] = &sr->keys[i];
    qsort(keys, sr->n_keys, sizeof *keys, key_desc);
    for (size_t i = 0; i < sr->n_keys; i++)
        if (n == 0 || key_desc(&keys[n - 1], &keys[i]) != 0)
            keys[n++] = keys[i];
    size_t asked = 0;
    while (asked < n && ask_split_ids(w, region_id, &ids[asked]) == 0)
        asked++;
    for (size_t i = 0; i < asked; i++)
        if (split_with_ids(w, region_id, keys[i], &ids[i]) != 0)
            break;
    for (size_t i = 0; i < asked; i++)
        free(ids[i].peer_ids);
cleanup:
    free(ids);
    free(keys);
}

static void handle_operator(struct pd_worker *w, const Schedulerpb__RegionHeartbeatResponse *resp)
{
    if (resp->split_region) {
        handle_split(w, resp->region_id, resp->region_epoch, resp->split_region);
        return;
    }
    if (resp->change_peer && resp->change_peer->peer) {
        int remove = resp->change_peer->change_type == ERAFTPB__CONF_CHANGE_TYPE__RemoveNode;
        struct region_peer p = {resp->change_peer->peer->id, resp->change_peer->peer->store_id};
        raftstore_change_peer(w->rs, resp->region_id, remove, p);
    } else if (resp->transfer_leader && resp->transfer_leader->peer) {
        raftstore_transfer_leader(w->rs, resp->region_id, resp->transfer_leader->peer->id);
    }
}

static void store_heartbeat(struct pd_worker *w)
{
    struct raftstore_peer_info infos[256];
    size_t n = raftstore_peers(w->rs, infos, 256);
    Schedulerpb__RequestHeader h = header(w);
    Schedulerpb__StoreStats stats = SCHEDULERPB__STORE_STATS__INIT;
    stats.store_id = w->store_id;
    stats.region_count = (uint32_t)n;
    raftstore_snapshot_counts(w->rs, &stats.sending_snap_count, &stats.receiving_snap_count,
                              &stats.applying_snap_count);
    struct statvfs fs;
    if (statvfs(w->data_dir, &fs) == 0) {
        stats.capacity = (uint64_t)fs.f_blocks * fs.f_frsize;
        stats.available = (uint64_t)fs.f_bavail * fs.f_frsize;
    }
    Schedulerpb__StoreHeartbeatRequest req = SCHEDULERPB__STORE_HEARTBEAT_REQUEST__INIT;
    req.header = &h;
    req.stats = &stats;
    ProtobufCMessage *resp;
    metrics_counter_inc(w->store_hbs);
    if (call(w, "/schedulerpb.Scheduler/StoreHeartbeat", &req.base,
             &schedulerpb__store_heartbeat_response__descriptor, &resp,
             header_of_StoreHeartbeatResponse) == 0)
        protobuf_c_message_free_unpacked(resp, NULL);
    else
        metrics_counter_inc(w->store_hb_failures);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void pd_worker_ask_split(void *ctx, uint64_t region_id, uint64_t version, const void *key,
                         size_t key_len)
{
    struct pd_worker *w = ctx;
    uint8_t *copy = malloc(key_len ? key_len : 1);
    if (!copy)
        return; /* the next split check asks again */
    memcpy(copy, key, key_len);
    pthread_mutex_lock(&w->mu);
    size_t i;
    for (i = 0; i < w->n_asks; i++)
        if (w->asks[i].region_id == region_id)
            break;
    if (i == w->n_asks) {
        struct split_ask *grown = realloc(w->asks, (w->n_asks + 1) * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&w->mu);
            free(copy);
            return;
        }
        w->asks = grown;
        w->n_asks++;
    } else {
        free(w->asks[i].key); /* the newest measurement wins */
    }
    w->asks[i] = (struct split_ask){region_id, version, copy, key_len};
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

/* Runs the split checks' asks: AskSplit, then the split, for regions still at their version. */
static void run_split_asks(struct pd_worker *w)
{
    pthread_mutex_lock(&w->mu);
    struct split_ask *asks = w->asks;
    size_t n = w->n_asks;
    w->asks = NULL;
    w->n_asks = 0;
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < n; i++) {
        struct region now;
        if (raftstore_region(w->rs, asks[i].region_id, &now) == 0) {
            uint64_t version = now.version;
            store_region_free(&now);
            ProtobufCBinaryData key = {asks[i].key_len, asks[i].key};
            if (version == asks[i].version)
                split_one(w, asks[i].region_id, &key);
        }
        free(asks[i].key);
    }
    free(asks);
}

static void *heartbeat_thread(void *arg)
{
    pthread_setname_np(pthread_self(), "pd-heartbeat");
    struct pd_worker *w = arg;
    struct rpc_stream *st = NULL;
    uint64_t next_store_hb = 0;
    int backoff_ms = 0;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        int stopping = w->stopping;
        struct report *reports = w->reports;
        size_t n = w->n_reports;
        w->reports = NULL;
        w->n_reports = 0;
        pthread_mutex_unlock(&w->mu);
        if (stopping) {
            for (size_t i = 0; i < n; i++)
                report_free(&reports[i]);
            free(reports);
            break;
        }
        run_split_asks(w);
        if (mono_ms() >= next_store_hb) {
            store_heartbeat(w);
            next_store_hb = mono_ms() + (uint64_t)w->store_heartbeat_ms;
        }
        if (!st) {
            struct rpc_error err;
            st = rpc_stream_open(w->rpc, w->addr, "/schedulerpb.Scheduler/RegionHeartbeat",
                                 &schedulerpb__region_heartbeat_response__descriptor, 0, &err);
            if (!st)
                metrics_counter_inc(w->stream_failures);
        }
        for (size_t i = 0; i < n; i++) {
            metrics_counter_inc(w->region_hbs);
            if (!st) {
                metrics_counter_inc(w->region_hb_failures); /* dropped: the next report follows */
            } else if (send_report(w, st, &reports[i]) != 0) {
                metrics_counter_inc(w->region_hb_failures);
                rpc_stream_free(st);
                st = NULL;
            }
            report_free(&reports[i]);
        }
        free(reports);
        if (!st) {
            backoff_ms = backoff_ms ? (backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2) : 100;
            struct timespec ts = {backoff_ms / 1000, (long)(backoff_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        backoff_ms = 0;
        ProtobufCMessage *m = NULL;
        struct rpc_error err;
        int rc = rpc_stream_recv(st, &m, 100, &err);
        if (rc == 0) {
            handle_operator(w, (Schedulerpb__RegionHeartbeatResponse *)m);
            protobuf_c_message_free_unpacked(m, NULL);
        } else if (rc != RPC_ERR_TIMEOUT) {
            metrics_counter_inc(w->stream_failures);
            rpc_stream_free(st);
            st = NULL;
        }
    }
    if (st)
        rpc_stream_free(st);
    return NULL;
}

void pd_worker_set_metrics(struct pd_worker *w, struct metrics *m)
{
    static const char hb[] = "Heartbeats a store sent to the scheduler, by kind.";
    static const char fail[] =
        "Heartbeats the scheduler did not take (no answer, an error, or no stream), by kind.";
    w->store_hbs = metrics_counter(m, "tinykv_pd_heartbeats_total", hb, "kind=\"store\"");
    w->region_hbs = metrics_counter(m, "tinykv_pd_heartbeats_total", hb, "kind=\"region\"");
    w->store_hb_failures =
        metrics_counter(m, "tinykv_pd_heartbeat_failures_total", fail, "kind=\"store\"");
    w->region_hb_failures =
        metrics_counter(m, "tinykv_pd_heartbeat_failures_total", fail, "kind=\"region\"");
    w->stream_failures = metrics_counter(m, "tinykv_pd_stream_failures_total",
                                         "RegionHeartbeat streams that could not be opened or "
                                         "broke (each is retried with backoff).",
                                         NULL);
}

int pd_worker_start(struct pd_worker *w, struct raftstore *rs, uint64_t store_id,
                    const char *store_addr, const char *data_dir, int store_heartbeat_ms)
{
    snprintf(w->data_dir, sizeof w->data_dir, "%s", data_dir);
    w->rs = rs;
    w->store_id = store_id;
    snprintf(w->store_addr, sizeof w->store_addr, "%s", store_addr);
    w->store_heartbeat_ms = store_heartbeat_ms > 0 ? store_heartbeat_ms : 10000;
    if (pthread_create(&w->thread, NULL, heartbeat_thread, w) != 0)
        return -1;
    w->started = 1;
    return 0;
}

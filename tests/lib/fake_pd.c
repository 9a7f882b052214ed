/* fake_pd.c — an in-process fake scheduler (schedulerpb.Scheduler) with a test-set layout. */
#include "tests/lib/fake_pd.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "proto/rpc.h"
#include "schedulerpb.pb-c.h"

struct fake_store {
    uint64_t id;
    char addr[128];
};

struct fake_pd {
    struct rpc_server *server;
    char addr[64];
    pthread_mutex_t mu;
    struct fake_pd_region *regions; /* guarded by mu; keys malloc'd */
    size_t n_regions;
    struct fake_store *stores; /* guarded by mu */
    size_t n_stores;
    int tso_delay_ms;
    int64_t tso_physical; /* guarded by mu: last physical ms handed out */
    int64_t tso_logical;
    struct fake_pd_counts counts; /* guarded by mu */
};

static void free_regions(struct fake_pd *pd)
{
    for (size_t i = 0; i < pd->n_regions; i++) {
        free((char *)pd->regions[i].start);
        free((char *)pd->regions[i].end);
    }
    free(pd->regions);
    pd->regions = NULL;
    pd->n_regions = 0;
}

static void header_init(Schedulerpb__ResponseHeader *h)
{
    schedulerpb__response_header__init(h);
    h->cluster_id = FAKE_PD_CLUSTER_ID;
}

/* Region i's protobuf form, with storage in *peer_store (FAKE_PD_MAX_PEERS peers). */
struct region_pb {
    Metapb__Region region;
    Metapb__RegionEpoch epoch;
    Metapb__Peer peers[FAKE_PD_MAX_PEERS];
    Metapb__Peer *peer_ptrs[FAKE_PD_MAX_PEERS];
    Metapb__Peer leader;
};

static void region_to_pb(const struct fake_pd_region *r, struct region_pb *pb)
{
    metapb__region__init(&pb->region);
    metapb__region_epoch__init(&pb->epoch);
    pb->region.id = r->id;
    pb->region.start_key.data = (uint8_t *)r->start;
    pb->region.start_key.len = strlen(r->start);
    pb->region.end_key.data = (uint8_t *)r->end;
    pb->region.end_key.len = strlen(r->end);
    pb->epoch.conf_ver = r->conf_ver;
    pb->epoch.version = r->version;
    pb->region.region_epoch = &pb->epoch;
    for (size_t i = 0; i < r->n_peers; i++) {
        metapb__peer__init(&pb->peers[i]);
        pb->peers[i].id = r->peers[i].id;
        pb->peers[i].store_id = r->peers[i].store_id;
        pb->peer_ptrs[i] = &pb->peers[i];
    }
    pb->region.n_peers = r->n_peers;
    pb->region.peers = pb->peer_ptrs;
    metapb__peer__init(&pb->leader);
    if (r->leader >= 0 && (size_t)r->leader < r->n_peers) {
        pb->leader.id = r->peers[r->leader].id;
        pb->leader.store_id = r->peers[r->leader].store_id;
    }
}

static int bytes_less(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    return c < 0 || (c == 0 && alen < blen);
}

static int key_in(const struct fake_pd_region *r, const uint8_t *key, size_t len)
{
    size_t sl = strlen(r->start), el = strlen(r->end);
    size_t n = len < sl ? len : sl;
    int c = memcmp(key, r->start, n);
    if (c < 0 || (c == 0 && len < sl))
        return 0;
    if (el == 0)
        return 1;
    n = len < el ? len : el;
    c = memcmp(key, r->end, n);
    return c < 0 || (c == 0 && len < el);
}

static void get_members(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    (void)msg;
    struct fake_pd *pd = arg;
    pthread_mutex_lock(&pd->mu);
    pd->counts.get_members++;
    pthread_mutex_unlock(&pd->mu);
    Schedulerpb__GetMembersResponse resp = SCHEDULERPB__GET_MEMBERS_RESPONSE__INIT;
    Schedulerpb__ResponseHeader h;
    header_init(&h);
    resp.header = &h;
    Schedulerpb__Member leader = SCHEDULERPB__MEMBER__INIT;
    char url[80];
    snprintf(url, sizeof url, "http://%s", pd->addr);
    char *urls[1] = {url};
    leader.name = "fake";
    leader.member_id = 1;
    leader.n_client_urls = 1;
    leader.client_urls = urls;
    Schedulerpb__Member *members[1] = {&leader};
    resp.n_members = 1;
    resp.members = members;
    resp.leader = &leader;
    rpc_call_reply(call, &resp.base);
}

/* Answers with the region holding `key` (prev=0) or the one before it (prev=1). */
static void answer_region(struct fake_pd *pd, struct rpc_call *call, const uint8_t *key, size_t len,
                          int prev, uint64_t by_id)
{
    Schedulerpb__GetRegionResponse resp = SCHEDULERPB__GET_REGION_RESPONSE__INIT;
    Schedulerpb__ResponseHeader h;
    header_init(&h);
    resp.header = &h;
    struct region_pb pb;
    pthread_mutex_lock(&pd->mu);
    if (by_id)
        pd->counts.get_region_by_id++;
    else
        pd->counts.get_region++;
    for (size_t i = 0; i < pd->n_regions; i++) {
        const struct fake_pd_region *r = &pd->regions[i];
        int hit;
        if (by_id)
            hit = r->id == by_id;
        else if (!prev)
            hit = key_in(r, key, len);
        else
            hit = strlen(r->end) > 0 && strlen(r->end) == len && memcmp(r->end, key, len) == 0;
        if (hit) {
            region_to_pb(r, &pb);
            resp.region = &pb.region;
            if (pb.leader.store_id)
                resp.leader = &pb.leader;
            break;
        }
    }
    /* Like a scheduler that has no region there (yet). */
    Schedulerpb__Error none = SCHEDULERPB__ERROR__INIT;
    if (!resp.region) {
        none.type = SCHEDULERPB__ERROR_TYPE__REGION_NOT_FOUND;
        none.message = "no region";
        h.error = &none;
    }
    /* Encoded inside rpc_call_reply, so the borrowed keys stay valid under mu. */
    rpc_call_reply(call, &resp.base);
    pthread_mutex_unlock(&pd->mu);
}

static void get_region(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    const Schedulerpb__GetRegionRequest *req = (const Schedulerpb__GetRegionRequest *)msg;
    answer_region(arg, call, req->region_key.data, req->region_key.len, 0, 0);
}

static void get_prev_region(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    const Schedulerpb__GetRegionRequest *req = (const Schedulerpb__GetRegionRequest *)msg;
    answer_region(arg, call, req->region_key.data, req->region_key.len, 1, 0);
}

static void get_region_by_id(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    const Schedulerpb__GetRegionByIDRequest *req = (const Schedulerpb__GetRegionByIDRequest *)msg;
    answer_region(arg, call, NULL, 0, 0, req->region_id ? req->region_id : UINT64_MAX);
}

static void scan_regions(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    struct fake_pd *pd = arg;
    const Schedulerpb__ScanRegionsRequest *req = (const Schedulerpb__ScanRegionsRequest *)msg;
    Schedulerpb__ScanRegionsResponse resp = SCHEDULERPB__SCAN_REGIONS_RESPONSE__INIT;
    Schedulerpb__ResponseHeader h;
    header_init(&h);
    resp.header = &h;
    pthread_mutex_lock(&pd->mu);
    pd->counts.scan_regions++;
    size_t n = pd->n_regions;
    struct region_pb *pbs = calloc(n ? n : 1, sizeof *pbs);
    Metapb__Region **regions = calloc(n ? n : 1, sizeof *regions);
    Metapb__Peer **leaders = calloc(n ? n : 1, sizeof *leaders);
    size_t k = 0;
    /* Layout order is the test's; a region qualifies when it ends after start_key. */
    for (size_t i = 0; pbs && regions && leaders && i < n; i++) {
        const struct fake_pd_region *r = &pd->regions[i];
        size_t el = strlen(r->end);
        if (el && !bytes_less(req->start_key.data, req->start_key.len, (const uint8_t *)r->end, el))
            continue;
        if (req->limit > 0 && k >= (size_t)req->limit)
            break;
        region_to_pb(r, &pbs[k]);
        regions[k] = &pbs[k].region;
        leaders[k] = &pbs[k].leader;
        k++;
    }
    resp.n_regions = resp.n_leaders = k;
    resp.regions = regions;
    resp.leaders = leaders;
    rpc_call_reply(call, &resp.base);
    pthread_mutex_unlock(&pd->mu);
    free(pbs);
    free(regions);
    free(leaders);
}

static void store_to_pb(const struct fake_store *s, Metapb__Store *pb)
{
    metapb__store__init(pb);
    pb->id = s->id;
    pb->address = (char *)s->addr;
    pb->state = METAPB__STORE_STATE__Up;
}

static void get_store(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    struct fake_pd *pd = arg;
    const Schedulerpb__GetStoreRequest *req = (const Schedulerpb__GetStoreRequest *)msg;
    Schedulerpb__GetStoreResponse resp = SCHEDULERPB__GET_STORE_RESPONSE__INIT;
    Schedulerpb__ResponseHeader h;
    header_init(&h);
    resp.header = &h;
    Schedulerpb__Error e = SCHEDULERPB__ERROR__INIT;
    Metapb__Store st;
    pthread_mutex_lock(&pd->mu);
    pd->counts.get_store++;
    for (size_t i = 0; i < pd->n_stores; i++) {
        if (pd->stores[i].id == req->store_id) {
            store_to_pb(&pd->stores[i], &st);
            resp.store = &st;
        }
    }
    if (!resp.store) {
        e.type = SCHEDULERPB__ERROR_TYPE__UNKNOWN;
        e.message = "invalid store id";
        h.error = &e;
    }
    rpc_call_reply(call, &resp.base);
    pthread_mutex_unlock(&pd->mu);
}

static void get_all_stores(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    (void)msg;
    struct fake_pd *pd = arg;
    Schedulerpb__GetAllStoresResponse resp = SCHEDULERPB__GET_ALL_STORES_RESPONSE__INIT;
    Schedulerpb__ResponseHeader h;
    header_init(&h);
    resp.header = &h;
    pthread_mutex_lock(&pd->mu);
    pd->counts.get_all_stores++;
    size_t n = pd->n_stores;
    Metapb__Store *st = calloc(n ? n : 1, sizeof *st);
    Metapb__Store **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    for (size_t i = 0; st && ptrs && i < n; i++) {
        store_to_pb(&pd->stores[i], &st[i]);
        ptrs[i] = &st[i];
    }
    resp.n_stores = st && ptrs ? n : 0;
    resp.stores = ptrs;
    rpc_call_reply(call, &resp.base);
    pthread_mutex_unlock(&pd->mu);
    free(st);
    free(ptrs);
}

static int64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void tso_message(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    struct fake_pd *pd = arg;
    const Schedulerpb__TsoRequest *req = (const Schedulerpb__TsoRequest *)msg;
    Schedulerpb__TsoResponse resp = SCHEDULERPB__TSO_RESPONSE__INIT;
    Schedulerpb__ResponseHeader h;
    header_init(&h);
    resp.header = &h;
    Schedulerpb__Timestamp ts = SCHEDULERPB__TIMESTAMP__INIT;
    pthread_mutex_lock(&pd->mu);
    int delay = pd->tso_delay_ms;
    pd->counts.tso_requests++;
    pd->counts.tso_timestamps += req->count;
    if (req->count > pd->counts.tso_max_count)
        pd->counts.tso_max_count = req->count;
    int64_t now = wall_ms();
    /* The count timestamps must share one physical ms and fit the logical bits. */
    if (now > pd->tso_physical || pd->tso_logical + (int64_t)req->count >= (1 << 18)) {
        pd->tso_physical = now > pd->tso_physical ? now : pd->tso_physical + 1;
        pd->tso_logical = 0;
    }
    pd->tso_logical += req->count;
    ts.physical = pd->tso_physical;
    ts.logical = pd->tso_logical;
    pthread_mutex_unlock(&pd->mu);
    if (delay > 0) {
        struct timespec d = {.tv_sec = delay / 1000, .tv_nsec = (long)(delay % 1000) * 1000000L};
        nanosleep(&d, NULL);
    }
    resp.count = req->count;
    resp.timestamp = &ts;
    rpc_call_send(call, &resp.base);
}

static void tso_end(struct rpc_call *call, int ok, void *arg)
{
    (void)arg;
    rpc_call_finish(call, ok ? RPC_OK : RPC_CANCELLED, NULL);
}

struct fake_pd *fake_pd_new(void)
{
    return fake_pd_new_at("127.0.0.1:0");
}

struct fake_pd *fake_pd_new_at(const char *listen_addr)
{
    struct fake_pd *pd = calloc(1, sizeof *pd);
    if (!pd)
        return NULL;
    pthread_mutex_init(&pd->mu, NULL);
    const struct rpc_method methods[] = {
        {"/schedulerpb.Scheduler/GetMembers", RPC_UNARY,
         &schedulerpb__get_members_request__descriptor, get_members, NULL, pd, 0, 0},
        {"/schedulerpb.Scheduler/Tso", RPC_BIDI_STREAM, &schedulerpb__tso_request__descriptor,
         tso_message, tso_end, pd, 0, 0},
        {"/schedulerpb.Scheduler/GetRegion", RPC_UNARY,
         &schedulerpb__get_region_request__descriptor, get_region, NULL, pd, 0, 0},
        {"/schedulerpb.Scheduler/GetPrevRegion", RPC_UNARY,
         &schedulerpb__get_region_request__descriptor, get_prev_region, NULL, pd, 0, 0},
        {"/schedulerpb.Scheduler/GetRegionByID", RPC_UNARY,
         &schedulerpb__get_region_by_idrequest__descriptor, get_region_by_id, NULL, pd, 0, 0},
        {"/schedulerpb.Scheduler/ScanRegions", RPC_UNARY,
         &schedulerpb__scan_regions_request__descriptor, scan_regions, NULL, pd, 0, 0},
        {"/schedulerpb.Scheduler/GetStore", RPC_UNARY, &schedulerpb__get_store_request__descriptor,
         get_store, NULL, pd, 0, 0},
        {"/schedulerpb.Scheduler/GetAllStores", RPC_UNARY,
         &schedulerpb__get_all_stores_request__descriptor, get_all_stores, NULL, pd, 0, 0},
    };
    char err[256];
    pd->server = rpc_server_new(listen_addr, methods, sizeof methods / sizeof methods[0], 2, err,
                                sizeof err);
    if (!pd->server || rpc_server_start(pd->server) != 0) {
        fprintf(stderr, "fake_pd: %s\n", err);
        fake_pd_free(pd);
        return NULL;
    }
    snprintf(pd->addr, sizeof pd->addr, "127.0.0.1:%d", rpc_server_port(pd->server));
    return pd;
}

void fake_pd_free(struct fake_pd *pd)
{
    if (!pd)
        return;
    if (pd->server)
        rpc_server_free(pd->server);
    free_regions(pd);
    free(pd->stores);
    pthread_mutex_destroy(&pd->mu);
    free(pd);
}

const char *fake_pd_addr(const struct fake_pd *pd)
{
    return pd->addr;
}

void fake_pd_set_store(struct fake_pd *pd, uint64_t store_id, const char *addr)
{
    pthread_mutex_lock(&pd->mu);
    size_t i;
    for (i = 0; i < pd->n_stores; i++)
        if (pd->stores[i].id == store_id)
            break;
    if (i == pd->n_stores) {
        struct fake_store *grown = realloc(pd->stores, (pd->n_stores + 1) * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&pd->mu);
            return;
        }
        pd->stores = grown;
        pd->n_stores++;
    }
    pd->stores[i].id = store_id;
    snprintf(pd->stores[i].addr, sizeof pd->stores[i].addr, "%s", addr);
    pthread_mutex_unlock(&pd->mu);
}

void fake_pd_set_regions(struct fake_pd *pd, const struct fake_pd_region *regions, size_t n)
{
    pthread_mutex_lock(&pd->mu);
    free_regions(pd);
    pd->regions = calloc(n ? n : 1, sizeof *pd->regions);
    if (pd->regions) {
        for (size_t i = 0; i < n; i++) {
            pd->regions[i] = regions[i];
            pd->regions[i].start = strdup(regions[i].start ? regions[i].start : "");
            pd->regions[i].end = strdup(regions[i].end ? regions[i].end : "");
        }
        pd->n_regions = n;
    }
    pthread_mutex_unlock(&pd->mu);
}

void fake_pd_set_tso_delay_ms(struct fake_pd *pd, int ms)
{
    pthread_mutex_lock(&pd->mu);
    pd->tso_delay_ms = ms;
    pthread_mutex_unlock(&pd->mu);
}

void fake_pd_get_counts(struct fake_pd *pd, struct fake_pd_counts *out)
{
    pthread_mutex_lock(&pd->mu);
    *out = pd->counts;
    pthread_mutex_unlock(&pd->mu);
}

const struct fake_pd_region fake_pd_split_at_m[2] = {
    {.id = 1,
     .start = "",
     .end = "m",
     .conf_ver = 1,
     .version = 2,
     .n_peers = 1,
     .peers = {{11, 1}},
     .leader = 0},
    {.id = 2,
     .start = "m",
     .end = "",
     .conf_ver = 1,
     .version = 2,
     .n_peers = 1,
     .peers = {{21, 1}},
     .leader = 0},
};

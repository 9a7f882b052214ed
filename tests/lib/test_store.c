/* test_store.c — in-process standalone stores and a fault-injecting TinyKv proxy. */
#include "tests/lib/test_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errorpb.pb-c.h"
#include "kvrpcpb.pb-c.h"
#include "mvcc/mvcc.h"
#include "proto/rpc.h"
#include "store/engine.h"
#include "server/kv_service.h"
#include "client/client.h"
#include "tests/lib/fake_pd.h"
#include "tests/lib/test_util.h"

struct test_store {
    char *dir;
    struct storage *storage;
    struct kv_service svc;
    struct rpc_server *server;
    char addr[64];
    struct mvcc_engine *engine;
    struct client *tso; /* set by test_store_set_tso */
};

struct test_store *test_store_new(void)
{
    struct test_store *s = calloc(1, sizeof *s);
    char err[256] = "";
    if (!s)
        return NULL;
    s->dir = test_tmpdir_new("tinykv-client");
    if (!s->dir || standalone_storage_open(s->dir, &s->storage, err, sizeof err) != 0)
        goto fail;
    if (mvcc_engine_new(s->storage, 0, &s->engine) != 0)
        goto fail;
    s->svc.storage = s->storage;
    s->svc.mvcc = s->engine;
    struct rpc_method methods[KV_SERVICE_MAX_METHODS];
    size_t n = kv_service_methods(&s->svc, methods);
    s->server = rpc_server_new("127.0.0.1:0", methods, n, 2, err, sizeof err);
    if (!s->server || rpc_server_start(s->server) != 0)
        goto fail;
    snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", rpc_server_port(s->server));
    return s;
fail:
    fprintf(stderr, "test_store_new: %s\n", err);
    test_store_free(s);
    return NULL;
}

const char *test_store_addr(const struct test_store *s)
{
    return s->addr;
}

static int store_tso(void *arg, uint64_t *ts)
{
    client_ts t = 0;
    int rc = client_tso(arg, &t);
    *ts = t;
    return rc;
}

int test_store_set_tso(struct test_store *s, const char *pd_addr)
{
    char err[256] = "";
    if (client_new(pd_addr, NULL, &s->tso, err, sizeof err) != 0) {
        fprintf(stderr, "test_store_set_tso: %s\n", err);
        return -1;
    }
    mvcc_engine_set_ts_source(s->engine, store_tso, s->tso);
    return 0;
}

void test_store_free(struct test_store *s)
{
    if (!s)
        return;
    if (s->server)
        rpc_server_free(s->server);
    if (s->engine)
        mvcc_engine_free(s->engine);
    client_free(s->tso);
    storage_free(s->storage);
    test_tmpdir_remove(s->dir);
    free(s);
}

/* ------------------------------------------------------------------ proxy */

struct proxy_method {
    struct test_proxy *proxy;
    const char *name;
    const ProtobufCMessageDescriptor *req;
    const ProtobufCMessageDescriptor *resp;
};

#define PROXY_METHODS 11

struct test_proxy {
    struct rpc_server *server;
    struct rpc_client *client;
    char target[64];
    char addr[64];
    struct proxy_method methods[PROXY_METHODS];
    pthread_mutex_t mu;
    enum test_proxy_fault fault; /* guarded by mu */
    char fault_method[64];       /* "" any method, else only this full name */
    int fault_times;
    uint64_t hint_peer_id, hint_store_id;
    uint64_t require_version;
    struct test_proxy_stats stats;
    struct fake_pd_region *current; /* guarded by mu; keys malloc'd */
    size_t n_current;
    int random_percent; /* guarded by mu */
    uint64_t random_state;
};

/* splitmix64 step; caller holds mu. */
static uint64_t next_random(struct test_proxy *p)
{
    uint64_t z = (p->random_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void test_proxy_inject_random(struct test_proxy *p, int percent, uint64_t seed)
{
    pthread_mutex_lock(&p->mu);
    p->random_percent = percent;
    p->random_state = seed;
    pthread_mutex_unlock(&p->mu);
}

static void free_current(struct test_proxy *p)
{
    for (size_t i = 0; i < p->n_current; i++) {
        free((char *)p->current[i].start);
        free((char *)p->current[i].end);
    }
    free(p->current);
    p->current = NULL;
    p->n_current = 0;
}

void test_proxy_set_current_regions(struct test_proxy *p, const struct fake_pd_region *regions,
                                    size_t n)
{
    pthread_mutex_lock(&p->mu);
    free_current(p);
    p->current = calloc(n ? n : 1, sizeof *p->current);
    for (size_t i = 0; p->current && i < n; i++) {
        p->current[i] = regions[i];
        p->current[i].start = strdup(regions[i].start ? regions[i].start : "");
        p->current[i].end = strdup(regions[i].end ? regions[i].end : "");
    }
    p->n_current = p->current ? n : 0;
    pthread_mutex_unlock(&p->mu);
}

/* The slot of singular message field `name` of `m`, or NULL. */
static void **field_slot(ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    return (void **)((char *)m + f->offset);
}

static void answer_fault(struct rpc_call *call, const struct proxy_method *pm,
                         enum test_proxy_fault fault, uint64_t hint_peer, uint64_t hint_store,
                         uint64_t region_id)
{
    if (fault == TEST_PROXY_UNAVAILABLE) {
        rpc_call_finish(call, RPC_UNAVAILABLE, "injected: failed to connect to the store");
        return;
    }
    ProtobufCMessage *resp = calloc(1, pm->resp->sizeof_message);
    protobuf_c_message_init(pm->resp, resp);
    Errorpb__Error e = ERRORPB__ERROR__INIT;
    Errorpb__NotLeader nl = ERRORPB__NOT_LEADER__INIT;
    Metapb__Peer leader = METAPB__PEER__INIT;
    Errorpb__EpochNotMatch enm = ERRORPB__EPOCH_NOT_MATCH__INIT;
    Errorpb__RegionNotFound rnf = ERRORPB__REGION_NOT_FOUND__INIT;
    Errorpb__StaleCommand sc = ERRORPB__STALE_COMMAND__INIT;
    Errorpb__Undetermined und = ERRORPB__UNDETERMINED__INIT;
    struct region_pb {
        Metapb__Region region;
        Metapb__RegionEpoch epoch;
        Metapb__Peer peers[FAKE_PD_MAX_PEERS];
        Metapb__Peer *peer_ptrs[FAKE_PD_MAX_PEERS];
    } *cur = NULL;
    Metapb__Region **cur_ptrs = NULL;
    size_t n_cur = 0;
    e.message = "injected";
    switch (fault) {
    case TEST_PROXY_NOT_LEADER:
        nl.region_id = region_id;
        if (hint_store) {
            leader.id = hint_peer;
            leader.store_id = hint_store;
            nl.leader = &leader;
        }
        e.not_leader = &nl;
        break;
    case TEST_PROXY_EPOCH_NOT_MATCH:
        pthread_mutex_lock(&pm->proxy->mu);
        n_cur = pm->proxy->n_current;
        cur = calloc(n_cur ? n_cur : 1, sizeof *cur);
        cur_ptrs = calloc(n_cur ? n_cur : 1, sizeof *cur_ptrs);
        for (size_t i = 0; cur && cur_ptrs && i < n_cur; i++) {
            const struct fake_pd_region *r = &pm->proxy->current[i];
            metapb__region__init(&cur[i].region);
            metapb__region_epoch__init(&cur[i].epoch);
            cur[i].region.id = r->id;
            cur[i].region.start_key.data = (uint8_t *)strdup(r->start);
            cur[i].region.start_key.len = strlen(r->start);
            cur[i].region.end_key.data = (uint8_t *)strdup(r->end);
            cur[i].region.end_key.len = strlen(r->end);
            cur[i].epoch.conf_ver = r->conf_ver;
            cur[i].epoch.version = r->version;
            cur[i].region.region_epoch = &cur[i].epoch;
            for (size_t k = 0; k < r->n_peers; k++) {
                metapb__peer__init(&cur[i].peers[k]);
                cur[i].peers[k].id = r->peers[k].id;
                cur[i].peers[k].store_id = r->peers[k].store_id;
                cur[i].peer_ptrs[k] = &cur[i].peers[k];
            }
            cur[i].region.n_peers = r->n_peers;
            cur[i].region.peers = cur[i].peer_ptrs;
            cur_ptrs[i] = &cur[i].region;
        }
        pthread_mutex_unlock(&pm->proxy->mu);
        if (cur && cur_ptrs) {
            enm.n_current_regions = n_cur;
            enm.current_regions = cur_ptrs;
        }
        e.epoch_not_match = &enm;
        break;
    case TEST_PROXY_REGION_NOT_FOUND:
        rnf.region_id = region_id;
        e.region_not_found = &rnf;
        break;
    case TEST_PROXY_UNDETERMINED:
        e.undetermined = &und;
        break;
    default:
        e.stale_command = &sc;
        break;
    }
    void **slot = field_slot(resp, "region_error");
    if (slot)
        *slot = &e;
    rpc_call_reply(call, resp);
    free(resp);
    for (size_t i = 0; cur && i < enm.n_current_regions; i++) {
        free(cur[i].region.start_key.data);
        free(cur[i].region.end_key.data);
    }
    free(cur);
    free(cur_ptrs);
}

static void proxy_message(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    struct proxy_method *pm = arg;
    struct test_proxy *p = pm->proxy;
    void **cslot = field_slot((ProtobufCMessage *)msg, "context");
    const Kvrpcpb__Context *ctx = cslot ? *cslot : NULL;
    pthread_mutex_lock(&p->mu);
    p->stats.calls++;
    struct test_proxy_stats *st = &p->stats;
    st->last_region_id = ctx ? ctx->region_id : 0;
    st->last_conf_ver = ctx && ctx->region_epoch ? ctx->region_epoch->conf_ver : 0;
    st->last_version = ctx && ctx->region_epoch ? ctx->region_epoch->version : 0;
    st->last_peer_id = ctx && ctx->peer ? ctx->peer->id : 0;
    st->last_peer_store_id = ctx && ctx->peer ? ctx->peer->store_id : 0;
    if (msg->descriptor == &kvrpcpb__prewrite_request__descriptor)
        st->last_lock_ttl = ((const Kvrpcpb__PrewriteRequest *)msg)->lock_ttl;
    enum test_proxy_fault fault = TEST_PROXY_NONE;
    if (p->fault != TEST_PROXY_NONE && p->fault_times != 0 &&
        (!p->fault_method[0] || strcmp(p->fault_method, pm->name) == 0)) {
        fault = p->fault;
        if (p->fault_times > 0 && --p->fault_times == 0)
            p->fault = TEST_PROXY_NONE;
    } else if (p->require_version && st->last_version != p->require_version) {
        fault = TEST_PROXY_EPOCH_NOT_MATCH;
    } else if (p->random_percent > 0 && (int)(next_random(p) % 100) < p->random_percent) {
        static const enum test_proxy_fault kinds[] = {
            TEST_PROXY_NOT_LEADER,    TEST_PROXY_EPOCH_NOT_MATCH, TEST_PROXY_REGION_NOT_FOUND,
            TEST_PROXY_STALE_COMMAND, TEST_PROXY_UNAVAILABLE,     TEST_PROXY_LOSE_RESPONSE,
        };
        fault = kinds[next_random(p) % (sizeof kinds / sizeof kinds[0])];
    }
    uint64_t hp = p->hint_peer_id, hs = p->hint_store_id, rid = st->last_region_id;
    if (fault)
        p->stats.faults++;
    else
        p->stats.forwarded++;
    pthread_mutex_unlock(&p->mu);
    if (fault && fault != TEST_PROXY_LOSE_RESPONSE) {
        answer_fault(call, pm, fault, hp, hs, rid);
        return;
    }
    ProtobufCMessage *resp = NULL;
    struct rpc_error err = {0};
    int rc = rpc_client_unary(p->client, p->target, pm->name, msg, pm->resp, &resp, 10000, &err);
    if (rc) {
        rpc_call_finish(call, rc == RPC_ERR_STATUS ? err.status : RPC_UNAVAILABLE, err.msg);
        return;
    }
    if (fault == TEST_PROXY_LOSE_RESPONSE)
        /* The store did the work; the client never hears of it. */
        rpc_call_finish(call, RPC_UNAVAILABLE, "injected: response lost");
    else
        rpc_call_reply(call, resp);
    protobuf_c_message_free_unpacked(resp, NULL);
}

struct test_proxy *test_proxy_new(const char *target_addr)
{
    struct test_proxy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    snprintf(p->target, sizeof p->target, "%s", target_addr);
    const struct proxy_method table[PROXY_METHODS] = {
        {p, "/tinykvpb.TinyKv/RawGet", &kvrpcpb__raw_get_request__descriptor,
         &kvrpcpb__raw_get_response__descriptor},
        {p, "/tinykvpb.TinyKv/RawPut", &kvrpcpb__raw_put_request__descriptor,
         &kvrpcpb__raw_put_response__descriptor},
        {p, "/tinykvpb.TinyKv/RawDelete", &kvrpcpb__raw_delete_request__descriptor,
         &kvrpcpb__raw_delete_response__descriptor},
        {p, "/tinykvpb.TinyKv/RawScan", &kvrpcpb__raw_scan_request__descriptor,
         &kvrpcpb__raw_scan_response__descriptor},
        {p, "/tinykvpb.TinyKv/KvGet", &kvrpcpb__get_request__descriptor,
         &kvrpcpb__get_response__descriptor},
        {p, "/tinykvpb.TinyKv/KvScan", &kvrpcpb__scan_request__descriptor,
         &kvrpcpb__scan_response__descriptor},
        {p, "/tinykvpb.TinyKv/KvPrewrite", &kvrpcpb__prewrite_request__descriptor,
         &kvrpcpb__prewrite_response__descriptor},
        {p, "/tinykvpb.TinyKv/KvCommit", &kvrpcpb__commit_request__descriptor,
         &kvrpcpb__commit_response__descriptor},
        {p, "/tinykvpb.TinyKv/KvCheckTxnStatus", &kvrpcpb__check_txn_status_request__descriptor,
         &kvrpcpb__check_txn_status_response__descriptor},
        {p, "/tinykvpb.TinyKv/KvBatchRollback", &kvrpcpb__batch_rollback_request__descriptor,
         &kvrpcpb__batch_rollback_response__descriptor},
        {p, "/tinykvpb.TinyKv/KvResolveLock", &kvrpcpb__resolve_lock_request__descriptor,
         &kvrpcpb__resolve_lock_response__descriptor},
    };
    memcpy(p->methods, table, sizeof table);
    struct rpc_method methods[PROXY_METHODS];
    for (int i = 0; i < PROXY_METHODS; i++)
        methods[i] = (struct rpc_method){.name = p->methods[i].name,
                                         .kind = RPC_UNARY,
                                         .request = p->methods[i].req,
                                         .on_message = proxy_message,
                                         .arg = &p->methods[i],
                                         /* forwarding waits on the target */
                                         .blocking = 1};
    char err[256] = "";
    p->client = rpc_client_new();
    p->server = rpc_server_new("127.0.0.1:0", methods, PROXY_METHODS, 4, err, sizeof err);
    if (!p->client || !p->server || rpc_server_start(p->server) != 0) {
        fprintf(stderr, "test_proxy_new: %s\n", err);
        test_proxy_free(p);
        return NULL;
    }
    snprintf(p->addr, sizeof p->addr, "127.0.0.1:%d", rpc_server_port(p->server));
    return p;
}

const char *test_proxy_addr(const struct test_proxy *p)
{
    return p->addr;
}

void test_proxy_free(struct test_proxy *p)
{
    if (!p)
        return;
    if (p->server)
        rpc_server_free(p->server);
    if (p->client)
        rpc_client_free(p->client);
    free_current(p);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void test_proxy_inject(struct test_proxy *p, enum test_proxy_fault fault, int times,
                       uint64_t hint_peer_id, uint64_t hint_store_id)
{
    pthread_mutex_lock(&p->mu);
    p->fault = fault;
    p->fault_times = times;
    p->hint_peer_id = hint_peer_id;
    p->hint_store_id = hint_store_id;
    p->fault_method[0] = 0;
    pthread_mutex_unlock(&p->mu);
}

void test_proxy_inject_method(struct test_proxy *p, const char *method, enum test_proxy_fault fault,
                              int times)
{
    pthread_mutex_lock(&p->mu);
    p->fault = fault;
    p->fault_times = times;
    p->hint_peer_id = p->hint_store_id = 0;
    snprintf(p->fault_method, sizeof p->fault_method, "%s", method);
    pthread_mutex_unlock(&p->mu);
}

void test_proxy_require_version(struct test_proxy *p, uint64_t version)
{
    pthread_mutex_lock(&p->mu);
    p->require_version = version;
    pthread_mutex_unlock(&p->mu);
}

void test_proxy_get_stats(struct test_proxy *p, struct test_proxy_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->stats;
    pthread_mutex_unlock(&p->mu);
}

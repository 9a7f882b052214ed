/* test_grpc.c — the schedulerpb.Scheduler gRPC service, in process and as the real binary. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "pd/pd.h"
#include "proto/rpc.h"
#include "schedulerpb.pb-c.h"
#include "tests/lib/test_util.h"

#define CALL_TIMEOUT_MS 5000
#define WAIT_MS 10000
#define METHOD(name) "/schedulerpb.Scheduler/" name

struct fixture {
    char *dir;
    struct pd_cluster *c;
    struct pd_grpc *g;
    struct rpc_client *rpc;
    char addr[64];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = test_tmpdir_new("pd_grpc");
    assert_non_null(f->dir);
    /* A small ID batch makes the allocator cross many persisted batches. */
    struct pd_options o = {.data_dir = f->dir, .id_batch = 7};
    char err[256];
    assert_int_equal(pd_cluster_open(&o, &f->c, err, sizeof err), PD_OK);
    assert_int_equal(pd_grpc_start(f->c, "127.0.0.1:0", &f->g, err, sizeof err), PD_OK);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", pd_grpc_port(f->g));
    f->rpc = rpc_client_new();
    assert_non_null(f->rpc);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rpc_client_free(f->rpc);
    pd_grpc_stop(f->g);
    pd_cluster_close(f->c);
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* ---- calls ---- */

/* call makes a unary call on addr that must succeed at the gRPC level; the caller frees it. */
static ProtobufCMessage *call_at(struct rpc_client *rpc, const char *addr, const char *method,
                                 const ProtobufCMessage *req, const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *resp = NULL;
    struct rpc_error err = {0};
    int rc = rpc_client_unary(rpc, addr, method, req, d, &resp, CALL_TIMEOUT_MS, &err);
    if (rc != 0)
        fail_msg("%s: %s (status %d: %s)", method, rpc_strerror(rc), err.status, err.msg);
    return resp;
}

static ProtobufCMessage *call(struct fixture *f, const char *method, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *d)
{
    return call_at(f->rpc, f->addr, method, req, d);
}

/* header_error reads the response header's error (NULL when there is none); every
 * schedulerpb response has its header in a field named "header". */
static const Schedulerpb__Error *header_error(const ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, "header");
    assert_non_null(fd);
    const Schedulerpb__ResponseHeader *h =
        *(Schedulerpb__ResponseHeader *const *)((const char *)m + fd->offset);
    assert_non_null(h);
    return h->error;
}

static int err_type(const ProtobufCMessage *m)
{
    const Schedulerpb__Error *e = header_error(m);
    return e ? (int)e->type : SCHEDULERPB__ERROR_TYPE__OK;
}

/* expect_message checks that m's header error has a message containing want and not avoid. */
static void expect_message(const ProtobufCMessage *m, const char *want, const char *avoid)
{
    const Schedulerpb__Error *e = header_error(m);
    assert_non_null(e);
    assert_non_null(e->message);
    if (!strstr(e->message, want) || (avoid && strstr(e->message, avoid)))
        fail_msg("error message \"%s\": want \"%s\"%s%s", e->message, want, avoid ? ", not " : "",
                 avoid ? avoid : "");
}

/* expect_type calls method and checks the header's error type, freeing the response. */
static void expect_type(struct fixture *f, const char *method, const ProtobufCMessage *req,
                        const ProtobufCMessageDescriptor *d, int want)
{
    ProtobufCMessage *m = call(f, method, req, d);
    if (err_type(m) != want)
        fail_msg("%s: error type %d, want %d", method, err_type(m), want);
    protobuf_c_message_free_unpacked(m, NULL);
}

static int bootstrap_store(struct fixture *f, uint64_t id, const char *addr)
{
    Metapb__Store s = METAPB__STORE__INIT;
    s.id = id;
    s.address = (char *)addr;
    Schedulerpb__BootstrapRequest req = SCHEDULERPB__BOOTSTRAP_REQUEST__INIT;
    req.store = &s;
    ProtobufCMessage *m =
        call(f, METHOD("Bootstrap"), &req.base, &schedulerpb__bootstrap_response__descriptor);
    int t = err_type(m);
    protobuf_c_message_free_unpacked(m, NULL);
    return t;
}

static int put_store(struct fixture *f, uint64_t id, const char *addr)
{
    Metapb__Store s = METAPB__STORE__INIT;
    s.id = id;
    s.address = (char *)addr;
    Schedulerpb__PutStoreRequest req = SCHEDULERPB__PUT_STORE_REQUEST__INIT;
    req.store = &s;
    ProtobufCMessage *m =
        call(f, METHOD("PutStore"), &req.base, &schedulerpb__put_store_response__descriptor);
    int t = err_type(m);
    protobuf_c_message_free_unpacked(m, NULL);
    return t;
}

static int store_heartbeat(struct fixture *f, uint64_t id)
{
    Schedulerpb__StoreStats st = SCHEDULERPB__STORE_STATS__INIT;
    st.store_id = id;
    st.capacity = 100ull << 30;
    st.available = 90ull << 30;
    Schedulerpb__StoreHeartbeatRequest req = SCHEDULERPB__STORE_HEARTBEAT_REQUEST__INIT;
    req.stats = &st;
    ProtobufCMessage *m = call(f, METHOD("StoreHeartbeat"), &req.base,
                               &schedulerpb__store_heartbeat_response__descriptor);
    int t = err_type(m);
    protobuf_c_message_free_unpacked(m, NULL);
    return t;
}

static uint64_t alloc_id_at(struct rpc_client *rpc, const char *addr)
{
    Schedulerpb__AllocIDRequest req = SCHEDULERPB__ALLOC_IDREQUEST__INIT;
    Schedulerpb__AllocIDResponse *r = (Schedulerpb__AllocIDResponse *)call_at(
        rpc, addr, METHOD("AllocID"), &req.base, &schedulerpb__alloc_idresponse__descriptor);
    assert_int_equal(err_type(&r->base), SCHEDULERPB__ERROR_TYPE__OK);
    uint64_t id = r->id;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return id;
}

static Schedulerpb__GetRegionResponse *get_region_by_id(struct fixture *f, uint64_t id)
{
    Schedulerpb__GetRegionByIDRequest req = SCHEDULERPB__GET_REGION_BY_IDREQUEST__INIT;
    req.region_id = id;
    return (Schedulerpb__GetRegionResponse *)call(f, METHOD("GetRegionByID"), &req.base,
                                                  &schedulerpb__get_region_response__descriptor);
}

static Schedulerpb__GetRegionResponse *get_region(struct fixture *f, const char *key)
{
    Schedulerpb__GetRegionRequest req = SCHEDULERPB__GET_REGION_REQUEST__INIT;
    req.region_key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    return (Schedulerpb__GetRegionResponse *)call(f, METHOD("GetRegion"), &req.base,
                                                  &schedulerpb__get_region_response__descriptor);
}

static Schedulerpb__GetOperatorResponse *get_operator(struct fixture *f, uint64_t region_id)
{
    Schedulerpb__GetOperatorRequest req = SCHEDULERPB__GET_OPERATOR_REQUEST__INIT;
    req.region_id = region_id;
    return (Schedulerpb__GetOperatorResponse *)call(
        f, METHOD("GetOperator"), &req.base, &schedulerpb__get_operator_response__descriptor);
}

/* ---- TSO stream ---- */

static uint64_t ts_of(const Schedulerpb__Timestamp *t)
{
    assert_non_null(t);
    assert_true(t->logical >= 0 && t->logical < (1 << PD_TSO_LOGICAL_BITS));
    return (uint64_t)t->physical << PD_TSO_LOGICAL_BITS | (uint64_t)t->logical;
}

/* tso_take asks st for count timestamps and returns the last; *physical gets its clock part. */
static uint64_t tso_take(struct rpc_stream *st, uint32_t count, int64_t *physical)
{
    Schedulerpb__TsoRequest req = SCHEDULERPB__TSO_REQUEST__INIT;
    req.count = count;
    struct rpc_error err = {0};
    assert_int_equal(rpc_stream_send(st, &req.base, CALL_TIMEOUT_MS, &err), 0);
    ProtobufCMessage *m = NULL;
    int rc = rpc_stream_recv(st, &m, CALL_TIMEOUT_MS, &err);
    if (rc != 0)
        fail_msg("tso recv: %s (status %d: %s)", rpc_strerror(rc), err.status, err.msg);
    Schedulerpb__TsoResponse *r = (Schedulerpb__TsoResponse *)m;
    assert_int_equal(err_type(m), SCHEDULERPB__ERROR_TYPE__OK);
    assert_int_equal(r->count, count);
    uint64_t ts = ts_of(r->timestamp);
    if (physical)
        *physical = r->timestamp->physical;
    protobuf_c_message_free_unpacked(m, NULL);
    return ts;
}

static struct rpc_stream *tso_open(struct rpc_client *rpc, const char *addr)
{
    struct rpc_error err = {0};
    struct rpc_stream *st =
        rpc_stream_open(rpc, addr, METHOD("Tso"), &schedulerpb__tso_response__descriptor, 0, &err);
    if (st == NULL)
        fail_msg("tso stream: %s", err.msg);
    return st;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- region heartbeats ---- */

/* A metapb.Region built on the stack: peers are {peer_id, store_id} pairs. */
struct region_msg {
    Metapb__Region r;
    Metapb__RegionEpoch e;
    Metapb__Peer p[PD_MAX_PEERS];
    Metapb__Peer *pp[PD_MAX_PEERS];
};

static void region_build(struct region_msg *b, uint64_t id, const char *start, const char *end,
                         uint64_t version, uint64_t conf_ver, const uint64_t peers[][2], size_t n)
{
    metapb__region__init(&b->r);
    metapb__region_epoch__init(&b->e);
    b->r.id = id;
    b->r.start_key = (ProtobufCBinaryData){strlen(start), (uint8_t *)start};
    b->r.end_key = (ProtobufCBinaryData){strlen(end), (uint8_t *)end};
    b->e.version = version;
    b->e.conf_ver = conf_ver;
    b->r.region_epoch = &b->e;
    for (size_t i = 0; i < n; i++) {
        metapb__peer__init(&b->p[i]);
        b->p[i].id = peers[i][0];
        b->p[i].store_id = peers[i][1];
        b->pp[i] = &b->p[i];
    }
    b->r.peers = b->pp;
    b->r.n_peers = n;
}

/* hb_send reports region b on st with its peer leader_idx as leader. */
static void hb_send(struct rpc_stream *st, struct region_msg *b, size_t leader_idx)
{
    Schedulerpb__RegionHeartbeatRequest req = SCHEDULERPB__REGION_HEARTBEAT_REQUEST__INIT;
    req.region = &b->r;
    req.leader = &b->p[leader_idx];
    req.approximate_size = 1 << 20;
    struct rpc_error err = {0};
    assert_int_equal(rpc_stream_send(st, &req.base, CALL_TIMEOUT_MS, &err), 0);
}

static struct rpc_stream *hb_open(struct fixture *f)
{
    struct rpc_error err = {0};
    struct rpc_stream *st =
        rpc_stream_open(f->rpc, f->addr, METHOD("RegionHeartbeat"),
                        &schedulerpb__region_heartbeat_response__descriptor, 0, &err);
    if (st == NULL)
        fail_msg("heartbeat stream: %s", err.msg);
    return st;
}

/* wait_region waits until GetRegionByID shows the region at the given epoch. */
static void wait_region(struct fixture *f, uint64_t id, uint64_t version, uint64_t conf_ver)
{
    uint64_t deadline = test_now_ms() + WAIT_MS;
    for (;;) {
        Schedulerpb__GetRegionResponse *r = get_region_by_id(f, id);
        bool seen = err_type(&r->base) == SCHEDULERPB__ERROR_TYPE__OK && r->region &&
                    r->region->region_epoch && r->region->region_epoch->version == version &&
                    r->region->region_epoch->conf_ver == conf_ver;
        protobuf_c_message_free_unpacked(&r->base, NULL);
        if (seen)
            return;
        if (test_now_ms() > deadline)
            fail_msg("region %llu never reached epoch %llu/%llu", (unsigned long long)id,
                     (unsigned long long)version, (unsigned long long)conf_ver);
        usleep(2000);
    }
}

static void bootstrap_default(struct fixture *f)
{
    assert_int_equal(bootstrap_store(f, 1, "127.0.0.1:20161"), SCHEDULERPB__ERROR_TYPE__OK);
}

/* ---- tests ---- */

/* Before bootstrap, calls that need a cluster answer NOT_BOOTSTRAPPED in the header, while
 * IsBootstrapped (false), AllocID and GetMembers work. */
static void test_before_bootstrap(void **state)
{
    struct fixture *f = *state;
    Schedulerpb__IsBootstrappedRequest ib = SCHEDULERPB__IS_BOOTSTRAPPED_REQUEST__INIT;
    Schedulerpb__IsBootstrappedResponse *b = (Schedulerpb__IsBootstrappedResponse *)call(
        f, METHOD("IsBootstrapped"), &ib.base, &schedulerpb__is_bootstrapped_response__descriptor);
    assert_int_equal(err_type(&b->base), SCHEDULERPB__ERROR_TYPE__OK);
    assert_false(b->bootstrapped);
    assert_int_equal(b->header->cluster_id, pd_cluster_id(f->c));
    protobuf_c_message_free_unpacked(&b->base, NULL);

    uint64_t a = alloc_id_at(f->rpc, f->addr), c = alloc_id_at(f->rpc, f->addr);
    assert_true(a > 0 && c > a);

    Schedulerpb__GetMembersRequest gm = SCHEDULERPB__GET_MEMBERS_REQUEST__INIT;
    Schedulerpb__GetMembersResponse *mr = (Schedulerpb__GetMembersResponse *)call(
        f, METHOD("GetMembers"), &gm.base, &schedulerpb__get_members_response__descriptor);
    assert_int_equal(err_type(&mr->base), SCHEDULERPB__ERROR_TYPE__OK);
    assert_int_equal(mr->n_members, 1);
    assert_non_null(mr->leader);
    protobuf_c_message_free_unpacked(&mr->base, NULL);

    const int nb = SCHEDULERPB__ERROR_TYPE__NOT_BOOTSTRAPPED;
    Schedulerpb__GetStoreRequest gs = SCHEDULERPB__GET_STORE_REQUEST__INIT;
    gs.store_id = 1;
    expect_type(f, METHOD("GetStore"), &gs.base, &schedulerpb__get_store_response__descriptor, nb);
    Schedulerpb__GetAllStoresRequest ga = SCHEDULERPB__GET_ALL_STORES_REQUEST__INIT;
    expect_type(f, METHOD("GetAllStores"), &ga.base,
                &schedulerpb__get_all_stores_response__descriptor, nb);
    Schedulerpb__GetRegionRequest gr = SCHEDULERPB__GET_REGION_REQUEST__INIT;
    expect_type(f, METHOD("GetRegion"), &gr.base, &schedulerpb__get_region_response__descriptor,
                nb);
    expect_type(f, METHOD("GetPrevRegion"), &gr.base, &schedulerpb__get_region_response__descriptor,
                nb);
    Schedulerpb__GetRegionByIDRequest gi = SCHEDULERPB__GET_REGION_BY_IDREQUEST__INIT;
    gi.region_id = 2;
    expect_type(f, METHOD("GetRegionByID"), &gi.base, &schedulerpb__get_region_response__descriptor,
                nb);
    Schedulerpb__ScanRegionsRequest sr = SCHEDULERPB__SCAN_REGIONS_REQUEST__INIT;
    expect_type(f, METHOD("ScanRegions"), &sr.base, &schedulerpb__scan_regions_response__descriptor,
                nb);
    assert_int_equal(put_store(f, 2, "127.0.0.1:20162"), nb);
    assert_int_equal(store_heartbeat(f, 2), nb);
    struct region_msg rm;
    const uint64_t peers[][2] = {{3, 1}};
    region_build(&rm, 2, "", "", 1, 1, peers, 1);
    Schedulerpb__AskSplitRequest as = SCHEDULERPB__ASK_SPLIT_REQUEST__INIT;
    as.region = &rm.r;
    expect_type(f, METHOD("AskSplit"), &as.base, &schedulerpb__ask_split_response__descriptor, nb);
    Schedulerpb__GetClusterConfigRequest gc = SCHEDULERPB__GET_CLUSTER_CONFIG_REQUEST__INIT;
    expect_type(f, METHOD("GetClusterConfig"), &gc.base,
                &schedulerpb__get_cluster_config_response__descriptor, nb);
    Schedulerpb__GetGCSafePointRequest gp = SCHEDULERPB__GET_GCSAFE_POINT_REQUEST__INIT;
    expect_type(f, METHOD("GetGCSafePoint"), &gp.base,
                &schedulerpb__get_gcsafe_point_response__descriptor, nb);
    Schedulerpb__GetOperatorRequest go = SCHEDULERPB__GET_OPERATOR_REQUEST__INIT;
    go.region_id = 2;
    expect_type(f, METHOD("GetOperator"), &go.base, &schedulerpb__get_operator_response__descriptor,
                nb);
    assert_false(pd_cluster_is_bootstrapped(f->c));
}

/* Bootstrap with a store works once; a second answers ALREADY_BOOTSTRAPPED and changes nothing,
 * and a request without a store is refused. */
static void test_bootstrap_once(void **state)
{
    struct fixture *f = *state;
    /* An earlier failure leaves its detail in the cluster; the next error must not carry it. */
    assert_int_equal(put_store(f, 1, "127.0.0.1:20161"), SCHEDULERPB__ERROR_TYPE__NOT_BOOTSTRAPPED);
    Schedulerpb__BootstrapRequest empty = SCHEDULERPB__BOOTSTRAP_REQUEST__INIT;
    ProtobufCMessage *m =
        call(f, METHOD("Bootstrap"), &empty.base, &schedulerpb__bootstrap_response__descriptor);
    assert_int_equal(err_type(m), SCHEDULERPB__ERROR_TYPE__UNKNOWN);
    expect_message(m, "needs a store", "bootstrapped");
    protobuf_c_message_free_unpacked(m, NULL);
    assert_false(pd_cluster_is_bootstrapped(f->c));

    bootstrap_default(f);
    assert_int_equal(bootstrap_store(f, 9, "127.0.0.1:20169"),
                     SCHEDULERPB__ERROR_TYPE__ALREADY_BOOTSTRAPPED);

    Schedulerpb__IsBootstrappedRequest ib = SCHEDULERPB__IS_BOOTSTRAPPED_REQUEST__INIT;
    Schedulerpb__IsBootstrappedResponse *b = (Schedulerpb__IsBootstrappedResponse *)call(
        f, METHOD("IsBootstrapped"), &ib.base, &schedulerpb__is_bootstrapped_response__descriptor);
    assert_true(b->bootstrapped);
    protobuf_c_message_free_unpacked(&b->base, NULL);

    Schedulerpb__GetAllStoresRequest ga = SCHEDULERPB__GET_ALL_STORES_REQUEST__INIT;
    Schedulerpb__GetAllStoresResponse *all = (Schedulerpb__GetAllStoresResponse *)call(
        f, METHOD("GetAllStores"), &ga.base, &schedulerpb__get_all_stores_response__descriptor);
    assert_int_equal(err_type(&all->base), SCHEDULERPB__ERROR_TYPE__OK);
    assert_int_equal(all->n_stores, 1);
    assert_int_equal(all->stores[0]->id, 1);
    assert_string_equal(all->stores[0]->address, "127.0.0.1:20161");
    protobuf_c_message_free_unpacked(&all->base, NULL);
}

struct alloc_worker {
    struct fixture *f;
    uint64_t ids[150];
    pthread_t th;
};

static void *alloc_run(void *arg)
{
    struct alloc_worker *w = arg;
    for (size_t i = 0; i < sizeof w->ids / sizeof w->ids[0]; i++)
        w->ids[i] = alloc_id_at(w->f->rpc, w->f->addr);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* AllocID never repeats: four concurrent callers taking 150 ids each across many persisted
 * batches get 600 distinct ids, each caller's strictly increasing. */
static void test_alloc_id_unique(void **state)
{
    struct fixture *f = *state;
    bootstrap_default(f);
    struct alloc_worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i].f = f;
        assert_int_equal(pthread_create(&w[i].th, NULL, alloc_run, &w[i]), 0);
    }
    uint64_t all[600];
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(w[i].th, NULL);
        for (size_t j = 0; j < 150; j++) {
            assert_true(w[i].ids[j] > 0);
            if (j > 0)
                assert_true(w[i].ids[j] > w[i].ids[j - 1]);
            all[n++] = w[i].ids[j];
        }
    }
    qsort(all, n, sizeof all[0], cmp_u64);
    for (size_t i = 1; i < n; i++)
        if (all[i] == all[i - 1])
            fail_msg("id %llu handed out twice", (unsigned long long)all[i]);
}

/* The Tso stream answers count timestamps per request with the last returned, physical<<18 |
 * logical near the wall clock, strictly increasing across requests and across two streams; a
 * count of 0 (or above the logical range) ends the stream with INVALID_ARGUMENT. */
static void test_tso_stream(void **state)
{
    struct fixture *f = *state;
    struct rpc_stream *a = tso_open(f->rpc, f->addr), *b = tso_open(f->rpc, f->addr);
    uint64_t last = 0;
    const uint32_t counts[] = {1, 10, 1000, 3, 50000, 1, 7};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        int64_t physical;
        int64_t before = wall_ms();
        uint64_t ts = tso_take(i % 2 ? b : a, counts[i], &physical);
        /* The first of the count timestamps lies above everything handed out before. */
        assert_true(ts - counts[i] + 1 > last);
        assert_true(physical >= before - 1000 && physical <= wall_ms() + 5000);
        last = ts;
    }

    Schedulerpb__TsoRequest req = SCHEDULERPB__TSO_REQUEST__INIT;
    struct rpc_error err = {0};
    ProtobufCMessage *m = NULL;
    assert_int_equal(rpc_stream_send(a, &req.base, CALL_TIMEOUT_MS, &err), 0);
    assert_int_not_equal(rpc_stream_recv(a, &m, CALL_TIMEOUT_MS, &err), 0);
    assert_int_equal(err.status, RPC_INVALID_ARGUMENT);
    rpc_stream_free(a);

    req.count = PD_TSO_MAX_COUNT + 1;
    assert_int_equal(rpc_stream_send(b, &req.base, CALL_TIMEOUT_MS, &err), 0);
    assert_int_not_equal(rpc_stream_recv(b, &m, CALL_TIMEOUT_MS, &err), 0);
    assert_int_equal(err.status, RPC_INVALID_ARGUMENT);
    rpc_stream_free(b);

    /* A new stream after the refused ones still moves forward. */
    struct rpc_stream *c = tso_open(f->rpc, f->addr);
    assert_true(tso_take(c, 1, NULL) > last);
    rpc_stream_free(c);
}

/* PutStore/GetStore/GetAllStores round trip; a store may not take another live store's address;
 * an unknown store is an error for GetStore and for StoreHeartbeat, a known one heartbeats. */
static void test_store_round_trip(void **state)
{
    struct fixture *f = *state;
    bootstrap_default(f);
    assert_int_equal(put_store(f, 2, "127.0.0.1:20162"), SCHEDULERPB__ERROR_TYPE__OK);
    assert_int_equal(put_store(f, 3, "127.0.0.1:20163"), SCHEDULERPB__ERROR_TYPE__OK);
    assert_int_not_equal(put_store(f, 4, "127.0.0.1:20162"), SCHEDULERPB__ERROR_TYPE__OK);
    /* Re-registering a store with a new address updates it. */
    assert_int_equal(put_store(f, 3, "127.0.0.1:20173"), SCHEDULERPB__ERROR_TYPE__OK);

    assert_int_equal(store_heartbeat(f, 2), SCHEDULERPB__ERROR_TYPE__OK);
    /* An unknown store is UNKNOWN with a message, not REGION_NOT_FOUND (which a client would take
     * for a stale region cache). */
    assert_int_equal(store_heartbeat(f, 42), SCHEDULERPB__ERROR_TYPE__UNKNOWN);

    Schedulerpb__GetStoreRequest gs = SCHEDULERPB__GET_STORE_REQUEST__INIT;
    gs.store_id = 2;
    Schedulerpb__GetStoreResponse *s = (Schedulerpb__GetStoreResponse *)call(
        f, METHOD("GetStore"), &gs.base, &schedulerpb__get_store_response__descriptor);
    assert_int_equal(err_type(&s->base), SCHEDULERPB__ERROR_TYPE__OK);
    assert_non_null(s->store);
    assert_int_equal(s->store->id, 2);
    assert_string_equal(s->store->address, "127.0.0.1:20162");
    assert_int_equal(s->store->state, METAPB__STORE_STATE__Up);
    assert_non_null(s->stats);
    assert_int_equal(s->stats->capacity, 100ull << 30);
    protobuf_c_message_free_unpacked(&s->base, NULL);

    gs.store_id = 42;
    s = (Schedulerpb__GetStoreResponse *)call(f, METHOD("GetStore"), &gs.base,
                                              &schedulerpb__get_store_response__descriptor);
    assert_int_equal(err_type(&s->base), SCHEDULERPB__ERROR_TYPE__UNKNOWN);
    expect_message(&s->base, "store 42", NULL);
    assert_null(s->store);
    protobuf_c_message_free_unpacked(&s->base, NULL);

    Schedulerpb__GetAllStoresRequest ga = SCHEDULERPB__GET_ALL_STORES_REQUEST__INIT;
    Schedulerpb__GetAllStoresResponse *all = (Schedulerpb__GetAllStoresResponse *)call(
        f, METHOD("GetAllStores"), &ga.base, &schedulerpb__get_all_stores_response__descriptor);
    assert_int_equal(all->n_stores, 3);
    int seen = 0;
    for (size_t i = 0; i < all->n_stores; i++) {
        seen |= 1 << all->stores[i]->id;
        if (all->stores[i]->id == 3)
            assert_string_equal(all->stores[i]->address, "127.0.0.1:20173");
    }
    assert_int_equal(seen, (1 << 1) | (1 << 2) | (1 << 3));
    protobuf_c_message_free_unpacked(&all->base, NULL);

    /* A tombstone store is left out when asked, and can no longer register. */
    assert_int_equal(pd_cluster_set_store_state(f->c, 3, PD_STORE_TOMBSTONE, false), PD_OK);
    ga.exclude_tombstone_stores = 1;
    all = (Schedulerpb__GetAllStoresResponse *)call(
        f, METHOD("GetAllStores"), &ga.base, &schedulerpb__get_all_stores_response__descriptor);
    assert_int_equal(all->n_stores, 2);
    protobuf_c_message_free_unpacked(&all->base, NULL);
    assert_int_equal(put_store(f, 3, "127.0.0.1:20173"), SCHEDULERPB__ERROR_TYPE__STORE_TOMBSTONE);
    assert_int_equal(store_heartbeat(f, 3), SCHEDULERPB__ERROR_TYPE__STORE_TOMBSTONE);
}

/* A RegionHeartbeat report makes the region visible to GetRegion, GetRegionByID, ScanRegions and
 * GetPrevRegion with its leader; a split's halves replace it; a stale report (lower version)
 * changes nothing. */
static void test_region_heartbeat_visible(void **state)
{
    struct fixture *f = *state;
    bootstrap_default(f);
    assert_int_equal(put_store(f, 2, "127.0.0.1:20162"), SCHEDULERPB__ERROR_TYPE__OK);
    struct rpc_stream *st = hb_open(f);
    struct region_msg rm;
    const uint64_t peers[][2] = {{3, 1}, {4, 2}};
    region_build(&rm, 2, "", "", 1, 2, peers, 2);
    hb_send(st, &rm, 1);
    wait_region(f, 2, 1, 2);

    Schedulerpb__GetRegionResponse *r = get_region(f, "anything");
    assert_int_equal(err_type(&r->base), SCHEDULERPB__ERROR_TYPE__OK);
    assert_int_equal(r->region->id, 2);
    assert_int_equal(r->region->n_peers, 2);
    assert_non_null(r->leader);
    assert_int_equal(r->leader->id, 4);
    assert_int_equal(r->leader->store_id, 2);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* Split into ["", "m") (region 2) and ["m", "") (region 5). */
    struct region_msg left, right;
    const uint64_t rpeers[][2] = {{6, 1}, {7, 2}};
    region_build(&left, 2, "", "m", 2, 2, peers, 2);
    region_build(&right, 5, "m", "", 2, 2, rpeers, 2);
    hb_send(st, &left, 0);
    hb_send(st, &right, 0);
    wait_region(f, 5, 2, 2);
    wait_region(f, 2, 2, 2);

    r = get_region(f, "z");
    assert_int_equal(r->region->id, 5);
    assert_int_equal(r->region->start_key.len, 1);
    assert_memory_equal(r->region->start_key.data, "m", 1);
    assert_int_equal(r->leader->id, 6);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    Schedulerpb__GetRegionRequest pr = SCHEDULERPB__GET_REGION_REQUEST__INIT;
    pr.region_key = (ProtobufCBinaryData){1, (uint8_t *)"z"};
    r = (Schedulerpb__GetRegionResponse *)call(f, METHOD("GetPrevRegion"), &pr.base,
                                               &schedulerpb__get_region_response__descriptor);
    assert_int_equal(err_type(&r->base), SCHEDULERPB__ERROR_TYPE__OK);
    assert_int_equal(r->region->id, 2);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    Schedulerpb__ScanRegionsRequest sr = SCHEDULERPB__SCAN_REGIONS_REQUEST__INIT;
    Schedulerpb__ScanRegionsResponse *scan = (Schedulerpb__ScanRegionsResponse *)call(
        f, METHOD("ScanRegions"), &sr.base, &schedulerpb__scan_regions_response__descriptor);
    assert_int_equal(err_type(&scan->base), SCHEDULERPB__ERROR_TYPE__OK);
    assert_int_equal(scan->n_regions, 2);
    assert_int_equal(scan->n_leaders, 2);
    assert_int_equal(scan->regions[0]->id, 2);
    assert_int_equal(scan->regions[1]->id, 5);
    assert_int_equal(scan->leaders[0]->id, 3);
    assert_int_equal(scan->leaders[1]->id, 6);
    protobuf_c_message_free_unpacked(&scan->base, NULL);
    sr.start_key = (ProtobufCBinaryData){1, (uint8_t *)"n"};
    sr.limit = 1;
    scan = (Schedulerpb__ScanRegionsResponse *)call(
        f, METHOD("ScanRegions"), &sr.base, &schedulerpb__scan_regions_response__descriptor);
    assert_int_equal(scan->n_regions, 1);
    assert_int_equal(scan->regions[0]->id, 5);
    protobuf_c_message_free_unpacked(&scan->base, NULL);

    /* The pre-split report arrives late: refused as stale, nothing changes. */
    struct pd_metrics before, after;
    pd_cluster_metrics(f->c, &before);
    hb_send(st, &rm, 0);
    uint64_t deadline = test_now_ms() + WAIT_MS;
    do {
        pd_cluster_metrics(f->c, &after);
        if (test_now_ms() > deadline)
            fail_msg("the stale heartbeat was never processed");
        usleep(2000);
    } while (after.stale_region_heartbeats == before.stale_region_heartbeats);
    r = get_region(f, "z");
    assert_int_equal(r->region->id, 5);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    r = get_region_by_id(f, 2);
    assert_int_equal(r->region->region_epoch->version, 2);
    assert_int_equal(r->region->end_key.len, 1);
    assert_int_equal(r->leader->id, 3);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    Schedulerpb__GetRegionByIDRequest gi = SCHEDULERPB__GET_REGION_BY_IDREQUEST__INIT;
    gi.region_id = 77;
    expect_type(f, METHOD("GetRegionByID"), &gi.base, &schedulerpb__get_region_response__descriptor,
                SCHEDULERPB__ERROR_TYPE__REGION_NOT_FOUND);
    rpc_stream_free(st);
}

/* With max_peer_count 3 and two more live stores, a one-peer region gets an AddNode ChangePeer on
 * its heartbeat stream after a replica-checker round; GetOperator shows it running, and once a
 * heartbeat shows the new peer the operator finishes (SUCCESS) and the next step follows. */
static void test_add_peer_operator(void **state)
{
    struct fixture *f = *state;
    bootstrap_default(f);
    Metapb__Cluster cl = METAPB__CLUSTER__INIT;
    cl.max_peer_count = 3;
    Schedulerpb__PutClusterConfigRequest pc = SCHEDULERPB__PUT_CLUSTER_CONFIG_REQUEST__INIT;
    pc.cluster = &cl;
    expect_type(f, METHOD("PutClusterConfig"), &pc.base,
                &schedulerpb__put_cluster_config_response__descriptor, SCHEDULERPB__ERROR_TYPE__OK);
    assert_int_equal(put_store(f, 2, "127.0.0.1:20162"), SCHEDULERPB__ERROR_TYPE__OK);
    assert_int_equal(put_store(f, 3, "127.0.0.1:20163"), SCHEDULERPB__ERROR_TYPE__OK);
    for (uint64_t s = 1; s <= 3; s++)
        assert_int_equal(store_heartbeat(f, s), SCHEDULERPB__ERROR_TYPE__OK);

    struct rpc_stream *st = hb_open(f);
    struct region_msg rm;
    uint64_t peers[3][2] = {{3, 1}};
    region_build(&rm, 2, "", "", 1, 1, (const uint64_t(*)[2])peers, 1);
    hb_send(st, &rm, 0);
    wait_region(f, 2, 1, 1);

    size_t created = 0;
    assert_int_equal(pd_cluster_run_scheduler(f->c, "replica-checker", &created), PD_OK);
    assert_int_equal(created, 1);
    Schedulerpb__GetOperatorResponse *op = get_operator(f, 2);
    assert_int_equal(err_type(&op->base), SCHEDULERPB__ERROR_TYPE__OK);
    assert_int_equal(op->region_id, 2);
    assert_int_equal(op->status, SCHEDULERPB__OPERATOR_STATUS__RUNNING);
    assert_int_equal(op->desc.len, strlen("make-up-replica"));
    assert_memory_equal(op->desc.data, "make-up-replica", op->desc.len);
    protobuf_c_message_free_unpacked(&op->base, NULL);

    /* The leader's next report is answered with the step. */
    hb_send(st, &rm, 0);
    ProtobufCMessage *m = NULL;
    struct rpc_error err = {0};
    int rc = rpc_stream_recv(st, &m, CALL_TIMEOUT_MS, &err);
    if (rc != 0)
        fail_msg("no answer on the heartbeat stream: %s (%s)", rpc_strerror(rc), err.msg);
    Schedulerpb__RegionHeartbeatResponse *hr = (Schedulerpb__RegionHeartbeatResponse *)m;
    assert_int_equal(hr->region_id, 2);
    assert_non_null(hr->change_peer);
    assert_null(hr->transfer_leader);
    assert_int_equal(hr->change_peer->change_type, ERAFTPB__CONF_CHANGE_TYPE__AddNode);
    uint64_t new_peer = hr->change_peer->peer->id, new_store = hr->change_peer->peer->store_id;
    assert_true(new_store == 2 || new_store == 3);
    assert_true(new_peer > 0 && new_peer != 3);
    assert_non_null(hr->target_peer);
    assert_int_equal(hr->target_peer->id, 3);
    assert_non_null(hr->region_epoch);
    assert_int_equal(hr->region_epoch->conf_ver, 1);
    protobuf_c_message_free_unpacked(m, NULL);

    /* The store applied the change: conf_ver 2, two peers. */
    peers[1][0] = new_peer;
    peers[1][1] = new_store;
    region_build(&rm, 2, "", "", 1, 2, (const uint64_t(*)[2])peers, 2);
    hb_send(st, &rm, 0);
    wait_region(f, 2, 1, 2);
    op = get_operator(f, 2);
    assert_int_equal(err_type(&op->base), SCHEDULERPB__ERROR_TYPE__OK);
    assert_int_equal(op->status, SCHEDULERPB__OPERATOR_STATUS__SUCCESS);
    protobuf_c_message_free_unpacked(&op->base, NULL);

    /* The next round adds the third replica on the remaining store. */
    assert_int_equal(pd_cluster_run_scheduler(f->c, "replica-checker", &created), PD_OK);
    assert_int_equal(created, 1);
    hb_send(st, &rm, 0);
    rc = rpc_stream_recv(st, &m, CALL_TIMEOUT_MS, &err);
    assert_int_equal(rc, 0);
    hr = (Schedulerpb__RegionHeartbeatResponse *)m;
    assert_non_null(hr->change_peer);
    assert_int_equal(hr->change_peer->peer->store_id, new_store == 2 ? 3 : 2);
    protobuf_c_message_free_unpacked(m, NULL);

    Schedulerpb__GetOperatorRequest go = SCHEDULERPB__GET_OPERATOR_REQUEST__INIT;
    go.region_id = 99;
    ProtobufCMessage *none =
        call(f, METHOD("GetOperator"), &go.base, &schedulerpb__get_operator_response__descriptor);
    assert_int_not_equal(err_type(none), SCHEDULERPB__ERROR_TYPE__OK);
    protobuf_c_message_free_unpacked(none, NULL);
    rpc_stream_free(st);
}

/* recv_step waits for the next answer on a heartbeat stream; the caller frees it. */
static Schedulerpb__RegionHeartbeatResponse *recv_step(struct rpc_stream *st)
{
    ProtobufCMessage *m = NULL;
    struct rpc_error err = {0};
    int rc = rpc_stream_recv(st, &m, CALL_TIMEOUT_MS, &err);
    if (rc != 0)
        fail_msg("no answer on the heartbeat stream: %s (%s)", rpc_strerror(rc), err.msg);
    return (Schedulerpb__RegionHeartbeatResponse *)m;
}

/* An admin transfer-leader reaches the leader as TransferLeader with the target peer, and an admin
 * remove-peer of the leader's own store first moves leadership away, then answers RemoveNode. */
static void test_transfer_and_remove_steps(void **state)
{
    struct fixture *f = *state;
    bootstrap_default(f);
    for (uint64_t s = 2; s <= 3; s++) {
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:2016%llu", (unsigned long long)s);
        assert_int_equal(put_store(f, s, addr), SCHEDULERPB__ERROR_TYPE__OK);
    }
    for (uint64_t s = 1; s <= 3; s++)
        assert_int_equal(store_heartbeat(f, s), SCHEDULERPB__ERROR_TYPE__OK);
    struct rpc_stream *st = hb_open(f);
    struct region_msg rm;
    const uint64_t peers[][2] = {{11, 1}, {12, 2}, {13, 3}};
    region_build(&rm, 10, "", "", 1, 3, peers, 3);
    hb_send(st, &rm, 0);
    wait_region(f, 10, 1, 3);

    assert_int_equal(pd_cluster_add_transfer_leader(f->c, 10, 3), PD_OK);
    hb_send(st, &rm, 0);
    Schedulerpb__RegionHeartbeatResponse *r = recv_step(st);
    assert_null(r->change_peer);
    assert_non_null(r->transfer_leader);
    assert_int_equal(r->transfer_leader->peer->id, 13);
    assert_int_equal(r->transfer_leader->peer->store_id, 3);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    hb_send(st, &rm, 2); /* leader now on store 3: the operator is done */

    /* Remove the peer on store 3, which leads: leadership goes first. */
    uint64_t deadline = test_now_ms() + WAIT_MS;
    while (pd_cluster_add_remove_peer(f->c, 10, 3) != PD_OK) {
        if (test_now_ms() > deadline)
            fail_msg("the transfer never finished");
        usleep(2000);
    }
    hb_send(st, &rm, 2);
    r = recv_step(st);
    assert_non_null(r->transfer_leader);
    assert_int_not_equal(r->transfer_leader->peer->store_id, 3);
    size_t new_leader = r->transfer_leader->peer->store_id - 1;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    hb_send(st, &rm, new_leader);
    r = recv_step(st);
    assert_non_null(r->change_peer);
    assert_int_equal(r->change_peer->change_type, ERAFTPB__CONF_CHANGE_TYPE__RemoveNode);
    assert_int_equal(r->change_peer->peer->id, 13);
    assert_int_equal(r->change_peer->peer->store_id, 3);
    assert_int_equal(r->target_peer->id, peers[new_leader][0]);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    rpc_stream_free(st);
}

/* AskSplit returns a fresh region id and one fresh peer id per peer (above every id AllocID gave
 * before), different on every call; an unknown region is an error. */
static void test_ask_split(void **state)
{
    struct fixture *f = *state;
    bootstrap_default(f);
    struct rpc_stream *st = hb_open(f);
    struct region_msg rm;
    const uint64_t peers[][2] = {{3, 1}, {4, 2}, {5, 3}};
    region_build(&rm, 2, "", "", 1, 3, peers, 3);
    hb_send(st, &rm, 0);
    wait_region(f, 2, 1, 3);

    uint64_t floor_id = alloc_id_at(f->rpc, f->addr);
    uint64_t seen[16];
    size_t n = 0;
    for (int round = 0; round < 2; round++) {
        Schedulerpb__AskSplitRequest as = SCHEDULERPB__ASK_SPLIT_REQUEST__INIT;
        as.region = &rm.r;
        Schedulerpb__AskSplitResponse *r = (Schedulerpb__AskSplitResponse *)call(
            f, METHOD("AskSplit"), &as.base, &schedulerpb__ask_split_response__descriptor);
        assert_int_equal(err_type(&r->base), SCHEDULERPB__ERROR_TYPE__OK);
        assert_int_equal(r->n_new_peer_ids, 3);
        seen[n++] = r->new_region_id;
        for (size_t i = 0; i < r->n_new_peer_ids; i++)
            seen[n++] = r->new_peer_ids[i];
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        assert_true(seen[i] > floor_id);
        for (size_t j = i + 1; j < n; j++)
            assert_true(seen[i] != seen[j]);
    }
    struct region_msg unknown;
    region_build(&unknown, 1234, "", "", 1, 1, peers, 1);
    Schedulerpb__AskSplitRequest as = SCHEDULERPB__ASK_SPLIT_REQUEST__INIT;
    as.region = &unknown.r;
    ProtobufCMessage *m =
        call(f, METHOD("AskSplit"), &as.base, &schedulerpb__ask_split_response__descriptor);
    assert_int_not_equal(err_type(m), SCHEDULERPB__ERROR_TYPE__OK);
    protobuf_c_message_free_unpacked(m, NULL);
    rpc_stream_free(st);
}

/* wait_operator_status waits until GetOperator shows the region's operator ended with status. */
static void wait_operator_status(struct fixture *f, uint64_t region_id, int status)
{
    uint64_t deadline = test_now_ms() + WAIT_MS;
    for (;;) {
        Schedulerpb__GetOperatorResponse *op = get_operator(f, region_id);
        bool seen = err_type(&op->base) == SCHEDULERPB__ERROR_TYPE__OK && (int)op->status == status;
        protobuf_c_message_free_unpacked(&op->base, NULL);
        if (seen)
            return;
        if (test_now_ms() > deadline)
            fail_msg("the operator of region %llu never reached status %d",
                     (unsigned long long)region_id, status);
        usleep(2000);
    }
}

/* A split asked for at two keys (given out of order, one twice) reaches the region's leader as
 * split_region{USEKEY, keys ascending} in the answer to its next heartbeat, with the region's
 * epoch and leader; the new regions reporting first, then the shrunk left one, end the operator
 * as a success, and each key then finds its region. */
static void test_split_region_step(void **state)
{
    struct fixture *f = *state;
    bootstrap_default(f);
    struct rpc_stream *st = hb_open(f);
    struct region_msg rm;
    const uint64_t peers[][2] = {{3, 1}, {4, 2}, {5, 3}};
    region_build(&rm, 2, "", "", 1, 3, peers, 3);
    hb_send(st, &rm, 1);
    wait_region(f, 2, 1, 3);

    struct pd_key keys[] = {{(uint8_t *)"q", 1}, {(uint8_t *)"c", 1}, {(uint8_t *)"q", 1}};
    uint64_t ids[PD_MAX_SPLIT_KEYS];
    size_t n = 0;
    assert_int_equal(pd_cluster_split_regions(f->c, keys, 3, ids, &n), PD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 2);
    hb_send(st, &rm, 1);
    Schedulerpb__RegionHeartbeatResponse *r = recv_step(st);
    assert_null(r->change_peer);
    assert_null(r->transfer_leader);
    assert_non_null(r->split_region);
    assert_int_equal(r->split_region->policy, SCHEDULERPB__CHECK_POLICY__USEKEY);
    assert_int_equal(r->split_region->n_keys, 2);
    assert_int_equal(r->split_region->keys[0].len, 1);
    assert_memory_equal(r->split_region->keys[0].data, "c", 1);
    assert_int_equal(r->split_region->keys[1].len, 1);
    assert_memory_equal(r->split_region->keys[1].data, "q", 1);
    assert_int_equal(r->region_id, 2);
    assert_int_equal(r->region_epoch->version, 1);
    assert_int_equal(r->region_epoch->conf_ver, 3);
    assert_int_equal(r->target_peer->id, 4);
    assert_int_equal(r->target_peer->store_id, 2);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    /* The GetOperator view while it runs. */
    Schedulerpb__GetOperatorResponse *op = get_operator(f, 2);
    assert_int_equal(op->status, SCHEDULERPB__OPERATOR_STATUS__RUNNING);
    assert_int_equal(op->desc.len, strlen("split-region"));
    assert_memory_equal(op->desc.data, "split-region", op->desc.len);
    protobuf_c_message_free_unpacked(&op->base, NULL);

    /* The store splits: [ , c) keeps id 2, [c, q) is 100 and [q, ) is 101, all at version 3.
     * The right-hand regions report first. */
    const uint64_t p100[][2] = {{103, 1}, {104, 2}, {105, 3}};
    const uint64_t p101[][2] = {{113, 1}, {114, 2}, {115, 3}};
    struct region_msg left, mid, right;
    region_build(&mid, 100, "c", "q", 3, 3, p100, 3);
    region_build(&right, 101, "q", "", 3, 3, p101, 3);
    region_build(&left, 2, "", "c", 3, 3, peers, 3);
    hb_send(st, &right, 1);
    hb_send(st, &mid, 1);
    wait_region(f, 100, 3, 3);
    wait_operator_status(f, 2, SCHEDULERPB__OPERATOR_STATUS__SUCCESS);
    hb_send(st, &left, 1);
    wait_region(f, 2, 3, 3);
    const char *probe[][2] = {{"a", "2"}, {"c", "100"}, {"p", "100"}, {"q", "101"}, {"z", "101"}};
    for (size_t i = 0; i < 5; i++) {
        Schedulerpb__GetRegionResponse *g = get_region(f, probe[i][0]);
        assert_int_equal(err_type(&g->base), SCHEDULERPB__ERROR_TYPE__OK);
        assert_int_equal(g->region->id, strtoull(probe[i][1], NULL, 10));
        protobuf_c_message_free_unpacked(&g->base, NULL);
    }
    rpc_stream_free(st);
}

/* ReportSplit is acknowledged for a left region ending where the right one starts, and refused
 * with a message without both regions or when they do not meet. */
static void test_report_split(void **state)
{
    struct fixture *f = *state;
    bootstrap_default(f);
    const uint64_t peers[][2] = {{3, 1}};
    struct region_msg left, right, apart;
    region_build(&left, 2, "", "m", 2, 1, peers, 1);
    region_build(&right, 7, "m", "", 2, 1, peers, 1);
    region_build(&apart, 7, "n", "", 2, 1, peers, 1);
    Schedulerpb__ReportSplitRequest rs = SCHEDULERPB__REPORT_SPLIT_REQUEST__INIT;
    rs.left = &left.r;
    rs.right = &right.r;
    expect_type(f, METHOD("ReportSplit"), &rs.base, &schedulerpb__report_split_response__descriptor,
                SCHEDULERPB__ERROR_TYPE__OK);
    rs.right = NULL;
    ProtobufCMessage *m =
        call(f, METHOD("ReportSplit"), &rs.base, &schedulerpb__report_split_response__descriptor);
    assert_int_equal(err_type(m), SCHEDULERPB__ERROR_TYPE__UNKNOWN);
    expect_message(m, "left and the right", NULL);
    protobuf_c_message_free_unpacked(m, NULL);
    rs.right = &apart.r;
    m = call(f, METHOD("ReportSplit"), &rs.base, &schedulerpb__report_split_response__descriptor);
    assert_int_equal(err_type(m), SCHEDULERPB__ERROR_TYPE__UNKNOWN);
    expect_message(m, "must end where", NULL);
    protobuf_c_message_free_unpacked(m, NULL);
}

static uint32_t get_max_peers(struct fixture *f)
{
    Schedulerpb__GetClusterConfigRequest gc = SCHEDULERPB__GET_CLUSTER_CONFIG_REQUEST__INIT;
    Schedulerpb__GetClusterConfigResponse *r = (Schedulerpb__GetClusterConfigResponse *)call(
        f, METHOD("GetClusterConfig"), &gc.base,
        &schedulerpb__get_cluster_config_response__descriptor);
    assert_int_equal(err_type(&r->base), SCHEDULERPB__ERROR_TYPE__OK);
    assert_non_null(r->cluster);
    assert_int_equal(r->cluster->id, pd_cluster_id(f->c));
    uint32_t v = r->cluster->max_peer_count;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return v;
}

static int put_max_peers(struct fixture *f, uint32_t n)
{
    Metapb__Cluster cl = METAPB__CLUSTER__INIT;
    cl.max_peer_count = n;
    Schedulerpb__PutClusterConfigRequest pc = SCHEDULERPB__PUT_CLUSTER_CONFIG_REQUEST__INIT;
    pc.cluster = &cl;
    ProtobufCMessage *m = call(f, METHOD("PutClusterConfig"), &pc.base,
                               &schedulerpb__put_cluster_config_response__descriptor);
    int t = err_type(m);
    protobuf_c_message_free_unpacked(m, NULL);
    return t;
}

/* Put/GetClusterConfig round trip max_peer_count (the default is 3); an invalid count is
 * refused and leaves the config as it was. */
static void test_cluster_config(void **state)
{
    struct fixture *f = *state;
    bootstrap_default(f);
    assert_int_equal(get_max_peers(f), 3);
    assert_int_equal(put_max_peers(f, 5), SCHEDULERPB__ERROR_TYPE__OK);
    assert_int_equal(get_max_peers(f), 5);
    assert_int_not_equal(put_max_peers(f, 0), SCHEDULERPB__ERROR_TYPE__OK);
    assert_int_not_equal(put_max_peers(f, PD_MAX_PEERS + 1), SCHEDULERPB__ERROR_TYPE__OK);
    assert_int_equal(get_max_peers(f), 5);
    struct pd_config cfg;
    assert_int_equal(pd_cluster_get_config(f->c, &cfg), PD_OK);
    assert_int_equal(cfg.max_replicas, 5);
}

static uint64_t update_safe_point(struct fixture *f, uint64_t sp)
{
    Schedulerpb__UpdateGCSafePointRequest u = SCHEDULERPB__UPDATE_GCSAFE_POINT_REQUEST__INIT;
    u.safe_point = sp;
    Schedulerpb__UpdateGCSafePointResponse *r = (Schedulerpb__UpdateGCSafePointResponse *)call(
        f, METHOD("UpdateGCSafePoint"), &u.base,
        &schedulerpb__update_gcsafe_point_response__descriptor);
    assert_int_equal(err_type(&r->base), SCHEDULERPB__ERROR_TYPE__OK);
    uint64_t v = r->new_safe_point;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return v;
}

/* The GC safe point only moves forward: an older update answers the point in force. */
static void test_gc_safe_point(void **state)
{
    struct fixture *f = *state;
    bootstrap_default(f);
    assert_int_equal(update_safe_point(f, 100), 100);
    assert_int_equal(update_safe_point(f, 50), 100);
    assert_int_equal(update_safe_point(f, 200), 200);
    Schedulerpb__GetGCSafePointRequest g = SCHEDULERPB__GET_GCSAFE_POINT_REQUEST__INIT;
    Schedulerpb__GetGCSafePointResponse *r = (Schedulerpb__GetGCSafePointResponse *)call(
        f, METHOD("GetGCSafePoint"), &g.base, &schedulerpb__get_gcsafe_point_response__descriptor);
    assert_int_equal(err_type(&r->base), SCHEDULERPB__ERROR_TYPE__OK);
    assert_int_equal(r->safe_point, 200);
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* An unknown method answers UNIMPLEMENTED and a request that does not decode INVALID_ARGUMENT;
 * the server keeps serving afterwards. */
static void test_unknown_method_and_garbage(void **state)
{
    struct fixture *f = *state;
    void *resp = NULL;
    size_t len = 0;
    struct rpc_error err = {0};
    int rc = rpc_client_unary_raw(f->rpc, f->addr, METHOD("NoSuchMethod"), "", 0, &resp, &len,
                                  CALL_TIMEOUT_MS, &err);
    assert_int_equal(rc, RPC_ERR_STATUS);
    assert_int_equal(err.status, RPC_UNIMPLEMENTED);
    rc = rpc_client_unary_raw(f->rpc, f->addr, "/otherpkg.Other/Tso", "", 0, &resp, &len,
                              CALL_TIMEOUT_MS, &err);
    assert_int_equal(rc, RPC_ERR_STATUS);
    assert_int_equal(err.status, RPC_UNIMPLEMENTED);

    /* Field 1 (header) as a length-delimited field running past the end. */
    const unsigned char garbage[] = {0x0a, 0x7f, 0x01, 0x02, 0xff, 0xff};
    rc = rpc_client_unary_raw(f->rpc, f->addr, METHOD("GetStore"), garbage, sizeof garbage, &resp,
                              &len, CALL_TIMEOUT_MS, &err);
    assert_int_equal(rc, RPC_ERR_STATUS);
    assert_int_equal(err.status, RPC_INVALID_ARGUMENT);
    rc = rpc_client_unary_raw(f->rpc, f->addr, METHOD("Bootstrap"), garbage, sizeof garbage, &resp,
                              &len, CALL_TIMEOUT_MS, &err);
    assert_int_equal(rc, RPC_ERR_STATUS);
    assert_int_equal(err.status, RPC_INVALID_ARGUMENT);
    assert_false(pd_cluster_is_bootstrapped(f->c));

    assert_true(alloc_id_at(f->rpc, f->addr) > 0);
}

/* ---- the real binary ---- */

struct server {
    pid_t pid;
    char bin[512];
    char *dir;
    char log[600];
    char addr[64];
};

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* server_start runs the binary on fresh ports and waits until its gRPC port accepts. */
static void server_start(struct server *s)
{
    int gport = test_free_port(), hport = test_free_port();
    assert_true(gport > 0 && hport > 0);
    snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", gport);
    char http[64];
    snprintf(http, sizeof http, "127.0.0.1:%d", hport);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(s->bin, s->bin, "--data-dir", s->dir, "--addr", s->addr, "--http-addr", http,
              "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    uint64_t deadline = test_now_ms() + WAIT_MS;
    while (!port_open(gport)) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid)
            fail_msg("server exited during start-up (status %d); see %s", status, s->log);
        if (test_now_ms() > deadline)
            fail_msg("server not listening after %d ms; see %s", WAIT_MS, s->log);
        usleep(10 * 1000);
    }
}

static void server_kill(struct server *s)
{
    kill(s->pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(s->pid, &status, 0), s->pid);
    assert_true(WIFSIGNALED(status));
    s->pid = 0;
}

static int server_setup(void **state)
{
    struct server *s = calloc(1, sizeof *s);
    assert_non_null(s);
    const char *bindir = getenv("BINDIR") ? getenv("BINDIR") : "bin";
    snprintf(s->bin, sizeof s->bin, "%s/tinyscheduler-server", bindir);
    if (access(s->bin, X_OK) != 0)
        fail_msg("%s missing: build it with `make %s`", s->bin, s->bin);
    s->dir = test_tmpdir_new("pd_grpc_server");
    assert_non_null(s->dir);
    snprintf(s->log, sizeof s->log, "%s.log", s->dir);
    *state = s;
    return 0;
}

static int server_teardown(void **state)
{
    struct server *s = *state;
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    unlink(s->log);
    test_tmpdir_remove(s->dir);
    free(s);
    return 0;
}

/* The real tinyscheduler-server, SIGKILLed after handing out timestamps and ids and being
 * bootstrapped over gRPC, restarts on the same data dir with a larger TSO, ids above every earlier
 * one, still bootstrapped and still knowing its stores. */
static void test_binary_sigkill_restart(void **state)
{
    struct server *s = *state;
    struct rpc_client *rpc = rpc_client_new();
    assert_non_null(rpc);
    server_start(s);

    struct rpc_stream *st = tso_open(rpc, s->addr);
    uint64_t t1 = tso_take(st, 1, NULL);
    Metapb__Store store = METAPB__STORE__INIT;
    store.id = 1;
    store.address = "127.0.0.1:20161";
    Schedulerpb__BootstrapRequest br = SCHEDULERPB__BOOTSTRAP_REQUEST__INIT;
    br.store = &store;
    ProtobufCMessage *m = call_at(rpc, s->addr, METHOD("Bootstrap"), &br.base,
                                  &schedulerpb__bootstrap_response__descriptor);
    assert_int_equal(err_type(m), SCHEDULERPB__ERROR_TYPE__OK);
    protobuf_c_message_free_unpacked(m, NULL);
    uint64_t max_id = 0;
    for (int i = 0; i < 50; i++) {
        uint64_t id = alloc_id_at(rpc, s->addr);
        assert_true(id > max_id);
        max_id = id;
    }
    uint64_t t2 = tso_take(st, 100, NULL);
    assert_true(t2 > t1);
    rpc_stream_free(st);
    server_kill(s);

    server_start(s);
    Schedulerpb__IsBootstrappedRequest ib = SCHEDULERPB__IS_BOOTSTRAPPED_REQUEST__INIT;
    Schedulerpb__IsBootstrappedResponse *b = (Schedulerpb__IsBootstrappedResponse *)call_at(
        rpc, s->addr, METHOD("IsBootstrapped"), &ib.base,
        &schedulerpb__is_bootstrapped_response__descriptor);
    assert_true(b->bootstrapped);
    protobuf_c_message_free_unpacked(&b->base, NULL);
    st = tso_open(rpc, s->addr);
    assert_true(tso_take(st, 1, NULL) > t2);
    rpc_stream_free(st);
    assert_true(alloc_id_at(rpc, s->addr) > max_id);
    Schedulerpb__GetStoreRequest gs = SCHEDULERPB__GET_STORE_REQUEST__INIT;
    gs.store_id = 1;
    Schedulerpb__GetStoreResponse *g = (Schedulerpb__GetStoreResponse *)call_at(
        rpc, s->addr, METHOD("GetStore"), &gs.base, &schedulerpb__get_store_response__descriptor);
    assert_int_equal(err_type(&g->base), SCHEDULERPB__ERROR_TYPE__OK);
    assert_string_equal(g->store->address, "127.0.0.1:20161");
    protobuf_c_message_free_unpacked(&g->base, NULL);
    rpc_client_free(rpc);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_before_bootstrap),
        T(test_bootstrap_once),
        T(test_alloc_id_unique),
        T(test_tso_stream),
        T(test_store_round_trip),
        T(test_region_heartbeat_visible),
        T(test_add_peer_operator),
        T(test_transfer_and_remove_steps),
        T(test_ask_split),
        T(test_split_region_step),
        T(test_report_split),
        T(test_cluster_config),
        T(test_gc_safe_point),
        T(test_unknown_method_and_garbage),
        cmocka_unit_test_setup_teardown(test_binary_sigkill_restart, server_setup, server_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

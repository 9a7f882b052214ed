/* fuzz_grpc_requests.c — fuzzes the request decoding and the handlers' own checks of every gRPC
 * method tinykv-server and tinyscheduler-server serve, in-process and without a network. */
#include <string.h>

#include "mvcc/mvcc.h"
#include "pd/pd.h"
#include "proto/rpc.h"
#include "server/kv_service.h"
#include "store/raft_service.h"
#include "proto/log.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/pd_fixture.h"
#include "tests/lib/mem_storage.h"

/*
 * The seam: the handlers are the real ones (server/raw_service.c,
 * server/txn_service.c over the in-memory storage and mvcc/, store/raft_service.c,
 * pd/grpc_service.c over an in-memory pd_cluster); the gRPC glue they answer
 * through is replaced at link time (-Wl,--wrap, see FUZZ_WRAPS in the
 * Makefile) by the fakes below, which count answers and check that every
 * response encodes and decodes. rpc_server_new is faked too, so
 * pd_grpc_start hands its method table here instead of binding a port, and
 * raftstore_step only checks that the message it is given still encodes
 * (the Raft and Snapshot streams have no raftstore behind them here).
 *
 * Input: a sequence of calls, each [method byte][length, 2 bytes LE][request
 * bytes] (a short tail is taken as it is). The method byte picks a method
 * modulo the table's size; 0xFF instead makes the storage's next write or
 * reader fail (the length's low byte picks which error), to reach the
 * handlers' failure paths. A request that does not decode is what the glue
 * answers INVALID_ARGUMENT, as proto/rpc_server.c does. Every input starts
 * from a fresh storage and a fresh bootstrapped cluster.
 */

#define MAX_METHODS 64

struct fake_call {
    int answers; /* rpc_call_reply / rpc_call_finish calls */
    int sends;
    void *user;
};

static struct rpc_method pd_methods[MAX_METHODS];
static size_t n_pd_methods;
static int fake_server; /* what the fake rpc_server_new returns the address of */

/* Every response a handler gives must be a message that encodes and decodes again. */
static void check_message(const ProtobufCMessage *m)
{
    FUZZ_CHECK(m && m->descriptor);
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    FUZZ_CHECK(buf);
    FUZZ_CHECK(protobuf_c_message_pack(m, buf) == len);
    ProtobufCMessage *back = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
    FUZZ_CHECK(back);
    protobuf_c_message_free_unpacked(back, NULL);
    free(buf);
}

void __wrap_rpc_call_reply(struct rpc_call *call, const ProtobufCMessage *resp);
void __wrap_rpc_call_reply(struct rpc_call *call, const ProtobufCMessage *resp)
{
    struct fake_call *c = (struct fake_call *)call;
    check_message(resp);
    c->answers++;
}

void __wrap_rpc_call_finish(struct rpc_call *call, enum rpc_status status, const char *msg);
void __wrap_rpc_call_finish(struct rpc_call *call, enum rpc_status status, const char *msg)
{
    struct fake_call *c = (struct fake_call *)call;
    (void)status;
    if (msg)
        FUZZ_CHECK(strlen(msg) < 4096);
    c->answers++;
}

int __wrap_rpc_call_send(struct rpc_call *call, const ProtobufCMessage *resp);
int __wrap_rpc_call_send(struct rpc_call *call, const ProtobufCMessage *resp)
{
    struct fake_call *c = (struct fake_call *)call;
    check_message(resp);
    c->sends++;
    return c->answers ? RPC_ERR_CLOSED : 0;
}

void __wrap_rpc_call_set_user(struct rpc_call *call, void *user);
void __wrap_rpc_call_set_user(struct rpc_call *call, void *user)
{
    ((struct fake_call *)call)->user = user;
}

void *__wrap_rpc_call_user(const struct rpc_call *call);
void *__wrap_rpc_call_user(const struct rpc_call *call)
{
    return ((const struct fake_call *)call)->user;
}

const char *__wrap_rpc_call_peer(const struct rpc_call *call);
const char *__wrap_rpc_call_peer(const struct rpc_call *call)
{
    (void)call;
    return "ipv4:127.0.0.1:1";
}

void __wrap_rpc_call_ref(struct rpc_call *call);
void __wrap_rpc_call_ref(struct rpc_call *call)
{
    (void)call;
}

void __wrap_rpc_call_unref(struct rpc_call *call);
void __wrap_rpc_call_unref(struct rpc_call *call)
{
    (void)call;
}

struct rpc_server *__wrap_rpc_server_new(const char *addr, const struct rpc_method *methods,
                                         size_t n, int threads, char *errbuf, size_t errbuf_len);
struct rpc_server *__wrap_rpc_server_new(const char *addr, const struct rpc_method *methods,
                                         size_t n, int threads, char *errbuf, size_t errbuf_len)
{
    (void)addr;
    (void)threads;
    (void)errbuf;
    (void)errbuf_len;
    FUZZ_CHECK(n <= MAX_METHODS);
    memcpy(pd_methods, methods, n * sizeof *methods);
    n_pd_methods = n;
    return (struct rpc_server *)&fake_server;
}

void __wrap_rpc_server_set_metrics(struct rpc_server *s, struct metrics *m);
void __wrap_rpc_server_set_metrics(struct rpc_server *s, struct metrics *m)
{
    (void)s;
    (void)m;
}

int __wrap_rpc_server_start(struct rpc_server *s);
int __wrap_rpc_server_start(struct rpc_server *s)
{
    (void)s;
    return 0;
}

int __wrap_rpc_server_port(const struct rpc_server *s);
int __wrap_rpc_server_port(const struct rpc_server *s)
{
    (void)s;
    return 0;
}

void __wrap_rpc_server_free(struct rpc_server *s);
void __wrap_rpc_server_free(struct rpc_server *s)
{
    (void)s;
}

void __wrap_raftstore_step(struct raftstore *rs, const RaftServerpb__RaftMessage *msg);
void __wrap_raftstore_step(struct raftstore *rs, const RaftServerpb__RaftMessage *msg)
{
    (void)rs;
    check_message(&msg->base);
}

/* The state one input runs against. */
struct world {
    struct storage *storage;
    struct mvcc_engine *mvcc;
    struct kv_service svc;
    struct pd_cluster *cluster;
    struct pd_grpc *grpc;
    struct rpc_method methods[MAX_METHODS];
    size_t n;
};

/* A bootstrapped one-store cluster, as a store's first heartbeats leave it. */
static void world_open(struct world *w)
{
    memset(w, 0, sizeof *w);
    FUZZ_CHECK(mem_storage_new(&w->storage) == 0);
    FUZZ_CHECK(mvcc_engine_new(w->storage, 0, &w->mvcc) == 0);
    w->svc.storage = w->storage;
    w->svc.mvcc = w->mvcc;
    w->n = kv_service_methods(&w->svc, w->methods);
    w->n += raft_service_methods(NULL, w->methods + w->n);

    char err[256];
    w->cluster = fuzz_pd_cluster_new(1);
    n_pd_methods = 0;
    FUZZ_CHECK(pd_grpc_start(w->cluster, "127.0.0.1:0", &w->grpc, err, sizeof err) == PD_OK);
    FUZZ_CHECK(w->n + n_pd_methods <= MAX_METHODS);
    memcpy(w->methods + w->n, pd_methods, n_pd_methods * sizeof *pd_methods);
    w->n += n_pd_methods;
}

static void world_close(struct world *w)
{
    pd_grpc_stop(w->grpc);
    pd_cluster_close(w->cluster);
    mvcc_engine_free(w->mvcc);
    storage_free(w->storage);
}

/* Makes the storage's next write or reader fail with an error picked by `pick`. */
static void inject(struct world *w, unsigned pick)
{
    static const int codes[] = {STORAGE_ERR_REGION, STORAGE_ERR_IO, STORAGE_ERR_NOMEM,
                                STORAGE_ERR_CLOSED};
    int code = codes[(pick >> 1) % (sizeof codes / sizeof codes[0])];
    enum storage_region_error_kind kind =
        (enum storage_region_error_kind)((pick >> 3) % (STORAGE_REGION_ERR_UNDETERMINED + 1));
    mem_storage_inject_error(
        w->storage, pick & 1 ? MEM_STORAGE_FAULT_READER : MEM_STORAGE_FAULT_WRITE, 1, code, kind);
}

/* One call as the glue makes it: decode, hand over, and for a stream end it after one message. */
static void run_call(const struct rpc_method *m, const uint8_t *req, size_t len)
{
    ProtobufCMessage *msg = protobuf_c_message_unpack(m->request, NULL, len, req);
    if (!msg)
        return; /* INVALID_ARGUMENT "request does not decode" */
    struct fake_call call = {0};
    m->on_message((struct rpc_call *)&call, msg, m->arg);
    if (!m->owns_message)
        protobuf_c_message_free_unpacked(msg, NULL);
    if (m->kind == RPC_UNARY) {
        FUZZ_CHECK(call.answers == 1);
        return;
    }
    if (m->on_end)
        m->on_end((struct rpc_call *)&call, 1, m->arg);
    FUZZ_CHECK(call.answers >= 1);
    FUZZ_CHECK(call.user == NULL); /* per-call state is released by the end */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct world w;
    log_current_level = LOG_ERROR; /* handlers log what they refuse: keep the runs quiet */
    world_open(&w);
    size_t pos = 0;
    while (pos < size) {
        uint8_t pick = data[pos++];
        size_t len = 0;
        if (pos < size)
            len = data[pos++];
        if (pos < size)
            len |= (size_t)data[pos++] << 8;
        if (len > size - pos)
            len = size - pos;
        if (pick == 0xFF)
            inject(&w, (unsigned)len);
        else
            run_call(&w.methods[pick % w.n], data + pos, len);
        pos += len;
    }
    world_close(&w);
    return 0;
}

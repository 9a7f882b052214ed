/* kvload.c — the load generator of the side-by-side write-path benchmark (tests/bench_etcd.py).
 *
 * Keeps exactly N unary calls in flight against one gRPC server for a fixed time, from one thread
 * over one completion queue, and prints requests/s with p50 and p99 latency. The same generator
 * drives both systems: our RawPut / RawGet (tinykvpb.TinyKv) and etcd's KV/Put / KV/Range
 * (etcdserverpb.KV, default linearizable reads), with the same value size and key spread, so
 * their figures differ only by the server.
 *
 *   kvload --system ours|etcd --op put|get --addr HOST:PORT --inflight N --seconds S
 *          [--value-size B] [--keys K] [--warmup S]
 *          [--region ID:CONF_VER:VERSION:PEER_ID:STORE_ID]
 *
 * With --region (ours), every request carries that kvrpcpb.Context, as a client that knows the
 * region sends it (the client library always does); without it, none.
 *
 * Output, one line: "kvload system=.. op=.. inflight=N ops=.. errors=.. rps=.. p50_ms=..
 * p99_ms=..". A call counts as an error when its gRPC status is not OK or (ours) its response
 * carries an error or a region error; errors are not in the latency figures. Exit status 0 when
 * at least one call succeeded, 1 otherwise, 2 on bad arguments.
 */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/etcd_kv.pb-c.h"
#include "tests/bench/latency.h"
#include "kvrpcpb.pb-c.h"

#define CALL_TIMEOUT_MS 10000

struct options {
    int etcd; /* 0: ours */
    int put;  /* 0: get */
    const char *addr;
    int inflight;
    double seconds, warmup;
    size_t value_size;
    int keys;
    int has_region;
    uint64_t region_id, conf_ver, version, peer_id, store_id;
};

struct slot {
    grpc_call *call;
    uint64_t started_ns;
    grpc_byte_buffer *resp;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
};

struct stats {
    struct latencies lat;
    uint64_t errors;
};

static int usage(void)
{
    fprintf(stderr, "usage: kvload --system ours|etcd --op put|get --addr HOST:PORT --inflight N "
                    "--seconds S [--value-size B] [--keys K] [--warmup S] "
                    "[--region ID:CONF_VER:VERSION:PEER_ID:STORE_ID]\n");
    return 2;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    *o =
        (struct options){.inflight = 1, .seconds = 5, .warmup = 1, .value_size = 100, .keys = 1000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return -1;
        i++;
        if (!strcmp(a, "--system") && (!strcmp(v, "ours") || !strcmp(v, "etcd")))
            o->etcd = !strcmp(v, "etcd");
        else if (!strcmp(a, "--op") && (!strcmp(v, "put") || !strcmp(v, "get")))
            o->put = !strcmp(v, "put");
        else if (!strcmp(a, "--addr"))
            o->addr = v;
        else if (!strcmp(a, "--inflight"))
            o->inflight = atoi(v);
        else if (!strcmp(a, "--seconds"))
            o->seconds = atof(v);
        else if (!strcmp(a, "--warmup"))
            o->warmup = atof(v);
        else if (!strcmp(a, "--value-size"))
            o->value_size = (size_t)atol(v);
        else if (!strcmp(a, "--keys"))
            o->keys = atoi(v);
        else if (!strcmp(a, "--region") &&
                 sscanf(v, "%" SCNu64 ":%" SCNu64 ":%" SCNu64 ":%" SCNu64 ":%" SCNu64,
                        &o->region_id, &o->conf_ver, &o->version, &o->peer_id, &o->store_id) == 5)
            o->has_region = 1;
        else
            return -1;
    }
    if (!o->addr || o->inflight < 1 || o->inflight > 4096 || o->seconds <= 0 || o->keys < 1 ||
        o->value_size > (1u << 20))
        return -1;
    return 0;
}

/* Encodes the request for key number k into a byte buffer the call owns. */
static grpc_byte_buffer *encode_request(const struct options *o, int k, const uint8_t *value)
{
    char key[32];
    int key_len = snprintf(key, sizeof key, "bench-%08d", k);
    ProtobufCBinaryData kb = {(size_t)key_len, (uint8_t *)key};
    ProtobufCBinaryData vb = {o->value_size, (uint8_t *)value};
    Etcdserverpb__PutRequest eput = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__RangeRequest erange = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Kvrpcpb__RawPutRequest rput = KVRPCPB__RAW_PUT_REQUEST__INIT;
    Kvrpcpb__RawGetRequest rget = KVRPCPB__RAW_GET_REQUEST__INIT;
    Kvrpcpb__Context ctx = KVRPCPB__CONTEXT__INIT;
    Metapb__RegionEpoch epoch = METAPB__REGION_EPOCH__INIT;
    Metapb__Peer peer = METAPB__PEER__INIT;
    if (o->has_region) {
        epoch.conf_ver = o->conf_ver;
        epoch.version = o->version;
        peer.id = o->peer_id;
        peer.store_id = o->store_id;
        ctx.region_id = o->region_id;
        ctx.region_epoch = &epoch;
        ctx.peer = &peer;
        rput.context = &ctx;
        rget.context = &ctx;
    }
    ProtobufCMessage *msg;
    if (o->etcd && o->put) {
        eput.key = kb;
        eput.value = vb;
        msg = &eput.base;
    } else if (o->etcd) {
        erange.key = kb;
        msg = &erange.base;
    } else if (o->put) {
        rput.key = kb;
        rput.value = vb;
        msg = &rput.base;
    } else {
        rget.key = kb;
        msg = &rget.base;
    }
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice s = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

/* Ours answer errors in the response; etcd's in the status. 1 when the answer is a success. */
static int response_ok(const struct options *o, grpc_byte_buffer *bb)
{
    if (o->etcd)
        return 1;
    if (!bb)
        return 0;
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb))
        return 0;
    grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    const ProtobufCMessageDescriptor *d =
        o->put ? &kvrpcpb__raw_put_response__descriptor : &kvrpcpb__raw_get_response__descriptor;
    ProtobufCMessage *m =
        protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    if (!m)
        return 0;
    int ok;
    if (o->put) {
        const Kvrpcpb__RawPutResponse *r = (const Kvrpcpb__RawPutResponse *)m;
        ok = !r->region_error && !(r->error && r->error[0]);
    } else {
        const Kvrpcpb__RawGetResponse *r = (const Kvrpcpb__RawGetResponse *)m;
        ok = !r->region_error && !(r->error && r->error[0]);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return ok;
}

static int start_call(const struct options *o, grpc_channel *ch, grpc_completion_queue *cq,
                      struct slot *s, const uint8_t *value)
{
    const char *method = o->etcd ? (o->put ? "/etcdserverpb.KV/Put" : "/etcdserverpb.KV/Range")
                                 : (o->put ? "/tinykvpb.TinyKv/RawPut" : "/tinykvpb.TinyKv/RawGet");
    grpc_slice m = grpc_slice_from_static_string(method);
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                         gpr_time_from_millis(CALL_TIMEOUT_MS, GPR_TIMESPAN));
    s->call =
        grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL, deadline, NULL);
    if (!s->call)
        return -1;
    grpc_byte_buffer *req = encode_request(o, rand() % o->keys, value);
    s->resp = NULL;
    grpc_metadata_array_init(&s->initial_md);
    grpc_metadata_array_init(&s->trailing_md);
    s->details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &s->resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
    ops[5].data.recv_status_on_client.status = &s->status;
    ops[5].data.recv_status_on_client.status_details = &s->details;
    s->started_ns = bench_now_ns();
    grpc_call_error rc = grpc_call_start_batch(s->call, ops, 6, s, NULL);
    grpc_byte_buffer_destroy(req);
    return rc == GRPC_CALL_OK ? 0 : -1;
}

/* Records a finished call (when counting) and releases what it held. */
static void finish_call(const struct options *o, struct slot *s, struct stats *st, int counting)
{
    int ok = s->status == GRPC_STATUS_OK && response_ok(o, s->resp);
    if (counting) {
        if (!ok) {
            st->errors++;
        } else if (latencies_add(&st->lat, bench_now_ns() - s->started_ns) != 0) {
            fprintf(stderr, "kvload: out of memory\n");
            exit(1);
        }
    }
    if (s->resp)
        grpc_byte_buffer_destroy(s->resp);
    grpc_metadata_array_destroy(&s->initial_md);
    grpc_metadata_array_destroy(&s->trailing_md);
    grpc_slice_unref(s->details);
    grpc_call_unref(s->call);
    s->call = NULL;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_args(argc, argv, &o) != 0)
        return usage();
    srand(12345);
    uint8_t *value = malloc(o.value_size ? o.value_size : 1);
    if (!value)
        return 1;
    for (size_t i = 0; i < o.value_size; i++)
        value[i] = (uint8_t)('a' + i % 26);
    grpc_init();
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(o.addr, creds, NULL);
    grpc_channel_credentials_release(creds);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    struct slot *slots = calloc((size_t)o.inflight, sizeof *slots);
    struct stats st = {0};
    if (!slots)
        return 1;
    int live = 0;
    for (int i = 0; i < o.inflight; i++)
        if (start_call(&o, ch, cq, &slots[i], value) == 0)
            live++;
    uint64_t t0 = bench_now_ns();
    uint64_t measure_from = t0 + (uint64_t)(o.warmup * 1e9);
    uint64_t end = measure_from + (uint64_t)(o.seconds * 1e9);
    while (live > 0) {
        grpc_event ev = grpc_completion_queue_next(
            cq, gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(1000, GPR_TIMESPAN)),
            NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT)
            continue;
        if (ev.type != GRPC_OP_COMPLETE)
            break;
        struct slot *s = ev.tag;
        uint64_t now = bench_now_ns();
        /* A call counts when it started and ended inside the measured window. */
        finish_call(&o, s, &st, s->started_ns >= measure_from && now <= end);
        live--;
        if (now < end && start_call(&o, ch, cq, s, value) == 0)
            live++;
    }
    double secs = o.seconds;
    double p50, p99;
    latencies_percentiles(&st.lat, &p50, &p99);
    printf("kvload system=%s op=%s inflight=%d ops=%zu errors=%llu rps=%.0f p50_ms=%.2f "
           "p99_ms=%.2f\n",
           o.etcd ? "etcd" : "ours", o.put ? "put" : "get", o.inflight, st.lat.n,
           (unsigned long long)st.errors, (double)st.lat.n / secs, p50, p99);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    grpc_channel_destroy(ch);
    free(slots);
    latencies_free(&st.lat);
    free(value);
    grpc_shutdown();
    return st.lat.n ? 0 : 1;
}

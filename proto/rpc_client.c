/* rpc_client.c — gRPC client calls with deadlines, one channel per address. */
#include "proto/rpc.h"
#include "proto/rpc_internal.h"

#include <dlfcn.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct channel_entry {
    char *addr;
    grpc_channel *channel;   /* replaced by rpc_client_reconnect */
    uint64_t reconnected_ms; /* when it last was (rpc_now_ms) */
    struct channel_entry *next;
};

/* Unary calls' completion queues kept for the next call: a new queue costs an eventfd and its
 * close (about 5% of a transaction client's CPU). */
#define RPC_SPARE_CQS 64

struct rpc_client {
    pthread_mutex_t mu;
    struct channel_entry *channels; /* guarded by mu; entries live until rpc_client_free */
    grpc_completion_queue *spare_cqs[RPC_SPARE_CQS]; /* guarded by mu; each empty */
    size_t n_spare_cqs;
};

struct rpc_stream {
    grpc_call *call;
    grpc_completion_queue *cq;
    const ProtobufCMessageDescriptor *resp_desc;
    int initial_md_sent;
    int initial_md_received;
    int status_received;
    int closed; /* the server ended the stream or we cancelled it */
    grpc_metadata_array initial_md;
    grpc_metadata_array trailing_md;
    grpc_status_code status;
    grpc_slice status_details;
    const char *error_string;
    char tag_send, tag_recv, tag_status, tag_close;
    int recv_pending;           /* a RECV_MESSAGE batch is in flight (after a timeout) */
    grpc_byte_buffer *recv_buf; /* its destination */
    grpc_byte_buffer *send_buf; /* a send rpc_stream_try_send left in flight, until it completes */
};

const char *rpc_strerror(int code)
{
    switch (code) {
    case 0:
        return "ok";
    case RPC_ERR_STATUS:
        return "call failed with a gRPC status";
    case RPC_ERR_NOMEM:
        return "out of memory";
    case RPC_ERR_DECODE:
        return "response does not decode";
    case RPC_ERR_CLOSED:
        return "stream closed";
    case RPC_ERR_TIMEOUT:
        return "timed out";
    case RPC_ERR_PENDING:
        return "send in flight";
    case RPC_ERR_SETUP:
        return "cannot set up server";
    default:
        return "unknown rpc error";
    }
}

/* gRPC's default poller (epoll1) keeps one epoll set for the process: whichever thread waits in
 * gRPC at the moment (a heartbeat thread blocked on its call, say) reads every socket and then
 * wakes the thread whose completion queue the event is for. With the "poll" poller a thread waiting
 * on a queue polls that queue's own sockets and handles what arrives itself. Measured on a
 * 3-store cluster on 2 cores (1, 16 and 128 writes in flight): 20%, 23% and 13% more writes per
 * second, and 22%, 26% and 18% less CPU per write. A GRPC_POLL_STRATEGY set by the user wins;
 * this runs before grpc_init, while the process has no other threads in gRPC. */
static void poll_own_fds(void)
{
    setenv("GRPC_POLL_STRATEGY", "poll", 0);
}

/* The absl library Debian builds gRPC on checks every absl::Mutex lock for lock-order cycles
 * (its debug default): 5-7% of a store's CPU under load went to that bookkeeping. It is only a
 * diagnostic, so it is turned off here when the library has the switch (looked up by name: it is
 * C++). kIgnore is 0. */
static void quiet_lock_checks(void)
{
    poll_own_fds();
    void (*set_mode)(int) = (void (*)(int))dlsym(
        RTLD_DEFAULT, "_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE");
    if (set_mode)
        set_mode(0);
}

void rpc_grpc_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, quiet_lock_checks);
    grpc_init();
}

void rpc_process_hold(void)
{
    rpc_grpc_init();
}

uint64_t rpc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static gpr_timespec deadline_after(int ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static void set_error(struct rpc_error *err, int status, const char *fmt, const char *detail)
{
    if (!err)
        return;
    err->status = status;
    snprintf(err->msg, sizeof err->msg, fmt, detail);
}

static void cq_destroy(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);
}

/* A pluck queue for one unary call: a spare one, else a new one (NULL on OOM). */
static grpc_completion_queue *cq_take(struct rpc_client *c)
{
    grpc_completion_queue *cq = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->n_spare_cqs)
        cq = c->spare_cqs[--c->n_spare_cqs];
    pthread_mutex_unlock(&c->mu);
    return cq ? cq : grpc_completion_queue_create_for_pluck(NULL);
}

/* Gives back a call's queue once nothing is pending on it (its one batch plucked, or none
 * started). */
static void cq_give(struct rpc_client *c, grpc_completion_queue *cq)
{
    pthread_mutex_lock(&c->mu);
    if (c->n_spare_cqs < RPC_SPARE_CQS) {
        c->spare_cqs[c->n_spare_cqs++] = cq;
        cq = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (cq)
        cq_destroy(cq);
}

struct rpc_client *rpc_client_new(void)
{
    struct rpc_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    rpc_grpc_init();
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void rpc_client_free(struct rpc_client *c)
{
    if (!c)
        return;
    struct channel_entry *e = c->channels;
    while (e) {
        struct channel_entry *next = e->next;
        grpc_channel_destroy(e->channel);
        free(e->addr);
        free(e);
        e = next;
    }
    for (size_t i = 0; i < c->n_spare_cqs; i++)
        cq_destroy(c->spare_cqs[i]);
    pthread_mutex_destroy(&c->mu);
    free(c);
    grpc_shutdown();
}

static grpc_channel *channel_new(const char *addr)
{
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = RPC_MAX_MESSAGE_BYTES},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
         .value.integer = RPC_MAX_MESSAGE_BYTES},
        /* Reconnect quickly after a peer restarts: the first retry after
         * 100 ms, backoff capped at 1 s. */
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
         .value.integer = 100},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, .value.integer = 1000},
        /* One connection attempt gives up after this (gRPC's default is
         * 20 s): a SYN dropped by a partition is sent again soon after it heals. */
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
         .value.integer = RPC_CONNECT_TIMEOUT_MS},
        /* Setting a keepalive time makes gRPC put TCP_USER_TIMEOUT (the
         * keepalive timeout) on the socket: a connection whose sent data
         * stays unacknowledged that long is closed, so a peer cut off by a
         * partition is noticed in RPC_DEAD_PEER_MS instead of when TCP's
         * retransmissions give up (minutes). The pings themselves are
         * hourly, far below what a gRPC server counts as abuse. */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIME_MS, .value.integer = 3600 * 1000},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
         .value.integer = RPC_DEAD_PEER_MS},
        /* Each channel owns its connection (no process-wide sharing), so a
         * channel made by rpc_client_reconnect really starts afresh. */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1},
    };
    grpc_channel_args chargs = {.num_args = sizeof args / sizeof args[0], .args = args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(addr, creds, &chargs);
    grpc_channel_credentials_release(creds);
    return ch;
}

/* The entry for addr, created if missing; called with c->mu held. */
static struct channel_entry *find_entry(struct rpc_client *c, const char *addr, int create)
{
    struct channel_entry *e;
    for (e = c->channels; e; e = e->next)
        if (strcmp(e->addr, addr) == 0)
            return e;
    if (!create)
        return NULL;
    e = calloc(1, sizeof *e);
    if (e)
        e->addr = strdup(addr);
    if (!e || !e->addr) {
        free(e);
        return NULL;
    }
    e->channel = channel_new(addr);
    e->next = c->channels;
    c->channels = e;
    return e;
}

/* A call on the channel to addr, made under the lock so that
 * rpc_client_reconnect can destroy a channel no thread is about to use (a
 * call keeps its channel alive by itself). NULL when out of memory. */
static grpc_call *create_call(struct rpc_client *c, const char *addr, grpc_completion_queue *cq,
                              const char *method, gpr_timespec deadline)
{
    pthread_mutex_lock(&c->mu);
    struct channel_entry *e = find_entry(c, addr, 1);
    grpc_call *call = NULL;
    if (e) {
        grpc_slice method_slice = grpc_slice_from_copied_string(method);
        call = grpc_channel_create_call(e->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method_slice,
                                        NULL, deadline, NULL);
        grpc_slice_unref(method_slice);
    }
    pthread_mutex_unlock(&c->mu);
    return call;
}

void rpc_client_reconnect(struct rpc_client *c, const char *addr)
{
    pthread_mutex_lock(&c->mu);
    struct channel_entry *e = find_entry(c, addr, 0);
    uint64_t now = rpc_now_ms();
    if (e && now - e->reconnected_ms >= RPC_RECONNECT_MIN_INTERVAL_MS &&
        grpc_channel_check_connectivity_state(e->channel, 0) != GRPC_CHANNEL_READY) {
        grpc_channel_destroy(e->channel);
        e->channel = channel_new(addr);
        e->reconnected_ms = now;
    }
    pthread_mutex_unlock(&c->mu);
}

int rpc_client_unary_raw(struct rpc_client *c, const char *addr, const char *method,
                         const void *req, size_t req_len, void **resp, size_t *resp_len,
                         int timeout_ms, struct rpc_error *err)
{
    *resp = NULL;
    *resp_len = 0;
    grpc_completion_queue *cq = cq_take(c);
    grpc_call *call = cq ? create_call(c, addr, cq, method, deadline_after(timeout_ms)) : NULL;
    if (!call) {
        if (cq)
            cq_give(c, cq);
        set_error(err, RPC_INTERNAL, "%s", "out of memory");
        return RPC_ERR_NOMEM;
    }

    grpc_slice req_slice = grpc_slice_from_copied_buffer(req, req_len);
    grpc_byte_buffer *req_bb = grpc_raw_byte_buffer_create(&req_slice, 1);
    grpc_slice_unref(req_slice);
    grpc_byte_buffer *resp_bb = NULL;
    grpc_metadata_array initial_md, trailing_md;
    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    const char *error_string = NULL;

    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &resp_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    ops[5].data.recv_status_on_client.error_string = &error_string;

    int rc = 0;
    char tag;
    if (grpc_call_start_batch(call, ops, 6, &tag, NULL) != GRPC_CALL_OK) {
        set_error(err, RPC_INTERNAL, "%s", "cannot start call");
        rc = RPC_ERR_STATUS;
        goto out;
    }
    /* The call's deadline guarantees completion. */
    grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (status != GRPC_STATUS_OK) {
        char *d = grpc_slice_to_c_string(details);
        set_error(err, status, "%s", d);
        gpr_free(d);
        rc = RPC_ERR_STATUS;
        goto out;
    }
    if (resp_bb) {
        grpc_slice s = rpc_byte_buffer_flatten(resp_bb);
        *resp_len = GRPC_SLICE_LENGTH(s);
        *resp = malloc(*resp_len ? *resp_len : 1);
        if (!*resp) {
            grpc_slice_unref(s);
            rc = RPC_ERR_NOMEM;
            goto out;
        }
        memcpy(*resp, GRPC_SLICE_START_PTR(s), *resp_len);
        grpc_slice_unref(s);
    } else {
        *resp = malloc(1);
        if (!*resp)
            rc = RPC_ERR_NOMEM;
    }
    if (err)
        err->status = 0, err->msg[0] = 0;
out:
    if (error_string)
        gpr_free((void *)error_string);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    grpc_byte_buffer_destroy(req_bb);
    if (resp_bb)
        grpc_byte_buffer_destroy(resp_bb);
    grpc_call_unref(call);
    cq_give(c, cq);
    return rc;
}

int rpc_client_unary(struct rpc_client *c, const char *addr, const char *method,
                     const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                     ProtobufCMessage **resp, int timeout_ms, struct rpc_error *err)
{
    *resp = NULL;
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return RPC_ERR_NOMEM;
    protobuf_c_message_pack(req, buf);
    void *out;
    size_t out_len;
    int rc = rpc_client_unary_raw(c, addr, method, buf, len, &out, &out_len, timeout_ms, err);
    free(buf);
    if (rc)
        return rc;
    *resp = protobuf_c_message_unpack(resp_desc, NULL, out_len, out);
    free(out);
    if (!*resp) {
        set_error(err, RPC_INTERNAL, "%s", "response does not decode");
        return RPC_ERR_DECODE;
    }
    return 0;
}

/* Waits for `tag` until `timeout_ms`; on timeout cancels the call and waits
 * for the (then prompt) completion. Returns 1 if the op succeeded, 0 if it
 * failed, -1 on timeout. */
static int wait_op(struct rpc_stream *st, void *tag, int timeout_ms)
{
    gpr_timespec until =
        timeout_ms > 0 ? deadline_after(timeout_ms) : gpr_inf_future(GPR_CLOCK_REALTIME);
    grpc_event ev = grpc_completion_queue_pluck(st->cq, tag, until, NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        grpc_call_cancel(st->call, NULL);
        st->closed = 1;
        grpc_completion_queue_pluck(st->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        return -1;
    }
    return ev.success ? 1 : 0;
}

/* Waits for the final status (already requested at open). */
static void wait_status(struct rpc_stream *st, struct rpc_error *err)
{
    if (!st->status_received) {
        wait_op(st, &st->tag_status, 0);
        st->status_received = 1;
        st->closed = 1;
    }
    char *d = grpc_slice_to_c_string(st->status_details);
    set_error(err, st->status, "%s", d);
    gpr_free(d);
}

struct rpc_stream *rpc_stream_open(struct rpc_client *c, const char *addr, const char *method,
                                   const ProtobufCMessageDescriptor *resp_desc, int deadline_ms,
                                   struct rpc_error *err)
{
    struct rpc_stream *st = calloc(1, sizeof *st);
    if (!st) {
        set_error(err, RPC_INTERNAL, "%s", "out of memory");
        return NULL;
    }
    st->resp_desc = resp_desc;
    st->cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_metadata_array_init(&st->initial_md);
    grpc_metadata_array_init(&st->trailing_md);
    st->status_details = grpc_empty_slice();
    gpr_timespec deadline =
        deadline_ms > 0 ? deadline_after(deadline_ms) : gpr_inf_future(GPR_CLOCK_REALTIME);
    st->call = create_call(c, addr, st->cq, method, deadline);
    if (!st->call) {
        set_error(err, RPC_INTERNAL, "%s", "out of memory");
        st->status_received = 1;
        rpc_stream_free(st);
        return NULL;
    }

    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &st->trailing_md;
    op.data.recv_status_on_client.status = &st->status;
    op.data.recv_status_on_client.status_details = &st->status_details;
    op.data.recv_status_on_client.error_string = &st->error_string;
    if (grpc_call_start_batch(st->call, &op, 1, &st->tag_status, NULL) != GRPC_CALL_OK) {
        set_error(err, RPC_INTERNAL, "%s", "cannot start call");
        st->status_received = 1;
        rpc_stream_free(st);
        return NULL;
    }
    return st;
}

/* Waits for the send rpc_stream_try_send left in flight (nothing if none): 0, or RPC_ERR_*. */
static int finish_pending_send(struct rpc_stream *st, int timeout_ms, struct rpc_error *err)
{
    if (!st->send_buf)
        return 0;
    int r = wait_op(st, &st->tag_send, timeout_ms);
    grpc_byte_buffer_destroy(st->send_buf);
    st->send_buf = NULL;
    if (r < 0) {
        set_error(err, RPC_DEADLINE_EXCEEDED, "%s", "send timed out");
        return RPC_ERR_TIMEOUT;
    }
    if (r == 0) {
        st->closed = 1;
        set_error(err, RPC_UNAVAILABLE, "%s", "stream closed");
        return RPC_ERR_CLOSED;
    }
    return 0;
}

int rpc_stream_finish_send(struct rpc_stream *st, int timeout_ms, struct rpc_error *err)
{
    return finish_pending_send(st, timeout_ms, err);
}

/* Packs msg and starts its SEND_MESSAGE batch (with the initial metadata the first time);
 * NULL when the call refuses it, else the buffer, which must outlive the send. */
static grpc_byte_buffer *start_send(struct rpc_stream *st, const ProtobufCMessage *msg)
{
    grpc_byte_buffer *bb = rpc_pack(msg);
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!st->initial_md_sent) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        st->initial_md_sent = 1;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = bb;
    n++;
    if (grpc_call_start_batch(st->call, ops, n, &st->tag_send, NULL) != GRPC_CALL_OK) {
        grpc_byte_buffer_destroy(bb);
        return NULL;
    }
    return bb;
}

int rpc_stream_try_send(struct rpc_stream *st, const ProtobufCMessage *msg, struct rpc_error *err)
{
    if (st->closed || st->send_buf) {
        set_error(err, RPC_UNAVAILABLE, "%s", st->closed ? "stream closed" : "a send is in flight");
        return st->closed ? RPC_ERR_CLOSED : RPC_ERR_PENDING;
    }
    grpc_byte_buffer *bb = start_send(st, msg);
    if (!bb) {
        st->closed = 1;
        set_error(err, RPC_INTERNAL, "%s", "cannot send");
        return RPC_ERR_CLOSED;
    }
    /* The transport usually takes the bytes at once (written inside start_batch): look without
     * waiting. */
    grpc_event ev =
        grpc_completion_queue_pluck(st->cq, &st->tag_send, gpr_time_0(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        st->send_buf = bb;
        set_error(err, RPC_UNAVAILABLE, "%s", "send in flight");
        return RPC_ERR_PENDING;
    }
    grpc_byte_buffer_destroy(bb);
    if (!ev.success) {
        st->closed = 1;
        set_error(err, RPC_UNAVAILABLE, "%s", "stream closed");
        return RPC_ERR_CLOSED;
    }
    return 0;
}

int rpc_stream_send(struct rpc_stream *st, const ProtobufCMessage *msg, int timeout_ms,
                    struct rpc_error *err)
{
    if (st->closed) {
        set_error(err, RPC_UNAVAILABLE, "%s", "stream closed");
        return RPC_ERR_CLOSED;
    }
    int prc = finish_pending_send(st, timeout_ms, err);
    if (prc)
        return prc;
    grpc_byte_buffer *bb = start_send(st, msg);
    int rc = 0;
    if (!bb) {
        rc = RPC_ERR_CLOSED;
        set_error(err, RPC_INTERNAL, "%s", "cannot send");
    } else {
        int r = wait_op(st, &st->tag_send, timeout_ms);
        if (r < 0) {
            rc = RPC_ERR_TIMEOUT;
            set_error(err, RPC_DEADLINE_EXCEEDED, "%s", "send timed out");
        } else if (r == 0) {
            st->closed = 1;
            rc = RPC_ERR_CLOSED;
            set_error(err, RPC_UNAVAILABLE, "%s", "stream closed");
        }
    }
    grpc_byte_buffer_destroy(bb);
    return rc;
}

static int recv_one(struct rpc_stream *st, ProtobufCMessage **msg, int timeout_ms,
                    struct rpc_error *err)
{
    if (!st->recv_pending) {
        grpc_op ops[2];
        size_t n = 0;
        memset(ops, 0, sizeof ops);
        if (!st->initial_md_received) {
            ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
            ops[n].data.recv_initial_metadata.recv_initial_metadata = &st->initial_md;
            n++;
            st->initial_md_received = 1;
        }
        ops[n].op = GRPC_OP_RECV_MESSAGE;
        ops[n].data.recv_message.recv_message = &st->recv_buf;
        n++;
        st->recv_buf = NULL;
        if (grpc_call_start_batch(st->call, ops, n, &st->tag_recv, NULL) != GRPC_CALL_OK) {
            set_error(err, RPC_INTERNAL, "%s", "cannot receive");
            return RPC_ERR_CLOSED;
        }
        st->recv_pending = 1;
    }
    /* A timeout leaves the receive in flight for the next call: the stream lives on. */
    gpr_timespec until =
        timeout_ms > 0 ? deadline_after(timeout_ms) : gpr_inf_future(GPR_CLOCK_REALTIME);
    grpc_event ev = grpc_completion_queue_pluck(st->cq, &st->tag_recv, until, NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        set_error(err, RPC_DEADLINE_EXCEEDED, "%s", "nothing received in time");
        return RPC_ERR_TIMEOUT;
    }
    st->recv_pending = 0;
    grpc_byte_buffer *bb = st->recv_buf;
    st->recv_buf = NULL;
    if (!bb) {
        wait_status(st, err);
        return st->status == GRPC_STATUS_OK ? RPC_ERR_CLOSED : RPC_ERR_STATUS;
    }
    grpc_slice s = rpc_byte_buffer_flatten(bb);
    grpc_byte_buffer_destroy(bb);
    *msg = protobuf_c_message_unpack(st->resp_desc, NULL, GRPC_SLICE_LENGTH(s),
                                     GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    if (!*msg) {
        set_error(err, RPC_INTERNAL, "%s", "response does not decode");
        return RPC_ERR_DECODE;
    }
    return 0;
}

int rpc_stream_recv(struct rpc_stream *st, ProtobufCMessage **msg, int timeout_ms,
                    struct rpc_error *err)
{
    *msg = NULL;
    if (st->closed && st->status_received) {
        wait_status(st, err);
        return RPC_ERR_CLOSED;
    }
    return recv_one(st, msg, timeout_ms, err);
}

int rpc_stream_close_send(struct rpc_stream *st, ProtobufCMessage **resp, int timeout_ms,
                          struct rpc_error *err)
{
    if (resp)
        *resp = NULL;
    if (!st->closed) {
        grpc_op ops[2];
        size_t n = 0;
        memset(ops, 0, sizeof ops);
        if (!st->initial_md_sent) {
            ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
            st->initial_md_sent = 1;
        }
        ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        if (grpc_call_start_batch(st->call, ops, n, &st->tag_close, NULL) == GRPC_CALL_OK &&
            wait_op(st, &st->tag_close, timeout_ms) < 0) {
            set_error(err, RPC_DEADLINE_EXCEEDED, "%s", "close timed out");
            return RPC_ERR_TIMEOUT;
        }
    }
    if (resp && !st->closed) {
        int rc = recv_one(st, resp, timeout_ms, err);
        if (rc)
            return rc;
    }
    /* Bound the wait for the status by the timeout too. */
    if (!st->status_received && wait_op(st, &st->tag_status, timeout_ms) < 0) {
        st->status_received = 1;
        set_error(err, RPC_DEADLINE_EXCEEDED, "%s", "status timed out");
        return RPC_ERR_TIMEOUT;
    }
    st->status_received = 1;
    st->closed = 1;
    wait_status(st, err);
    return st->status == GRPC_STATUS_OK ? 0 : RPC_ERR_STATUS;
}

void rpc_stream_free(struct rpc_stream *st)
{
    if (!st)
        return;
    if (!st->status_received || st->recv_pending || st->send_buf)
        grpc_call_cancel(st->call, NULL);
    if (st->send_buf) {
        grpc_completion_queue_pluck(st->cq, &st->tag_send, gpr_inf_future(GPR_CLOCK_REALTIME),
                                    NULL);
        grpc_byte_buffer_destroy(st->send_buf);
    }
    if (st->recv_pending) {
        grpc_completion_queue_pluck(st->cq, &st->tag_recv, gpr_inf_future(GPR_CLOCK_REALTIME),
                                    NULL);
        if (st->recv_buf)
            grpc_byte_buffer_destroy(st->recv_buf);
    }
    if (!st->status_received) {
        grpc_completion_queue_pluck(st->cq, &st->tag_status, gpr_inf_future(GPR_CLOCK_REALTIME),
                                    NULL);
    }
    if (st->call)
        grpc_call_unref(st->call);
    if (st->error_string)
        gpr_free((void *)st->error_string);
    grpc_slice_unref(st->status_details);
    grpc_metadata_array_destroy(&st->initial_md);
    grpc_metadata_array_destroy(&st->trailing_md);
    cq_destroy(st->cq);
    free(st);
}

/* rpc_server.c — a gRPC server on the core C API that dispatches calls by full method name. */
#include "proto/rpc.h"
#include "proto/rpc_internal.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/metrics.h"
#include "proto/log.h"

enum tag_kind { TAG_NEW, TAG_RECV, TAG_SEND, TAG_STATUS, TAG_CLOSE, TAG_SHUTDOWN };

struct rpc_tag {
    enum tag_kind kind;
    struct rpc_call *call;
};

/* The series one method's calls are counted in (all NULL without a registry). */
struct method_metrics {
    struct metrics_counter *ok, *error;
    struct metrics_histogram *duration; /* unary calls only */
};

struct send_item {
    grpc_byte_buffer *buf;
    struct send_item *next;
};

/*
 * One server-side call. Lifetime: `refs` counts outstanding batches, the
 * pending answer (released by the first reply/finish) and user refs; the call
 * is freed when it reaches zero. Fields below `mu` are guarded by it; the
 * receive path (recv_buf, method dispatch) is touched only by the thread
 * handling the single outstanding receive.
 */
struct rpc_call {
    struct rpc_server *srv;
    grpc_call *call;
    grpc_call_details details; /* filled for calls to unknown methods only */
    gpr_timespec deadline;     /* filled for calls to registered methods */
    grpc_metadata_array request_md;
    const struct rpc_method *method; /* NULL: an unknown method */
    struct rpc_tag t_new, t_recv, t_send, t_status, t_close;
    grpc_byte_buffer *recv_buf;
    int close_cancelled;
    char *peer;
    void *user;
    uint64_t start_ns; /* arrival, for the duration histogram */
    /* Copied from the server at arrival: the series live as long as the registry, so a call
     * answered after its server is gone still counts safely. */
    struct method_metrics mm;

    pthread_mutex_t mu;
    int refs;
    int answered;        /* reply/finish called */
    int awaited;         /* a unary call counted in srv->unanswered until its answer */
    int status_started;  /* SEND_STATUS batch started */
    int initial_md_sent; /* SEND_INITIAL_METADATA went out */
    int dead;            /* a send failed or the call was cancelled */
    int close_in_status; /* a unary call: RECV_CLOSE_ON_SERVER goes with the status batch */
    int send_inflight;
    struct send_item *queue_head, *queue_tail;
    enum rpc_status pending_status;
    char *pending_msg; /* owned; status detail to send when the queue drains */
    grpc_slice status_slice;
    grpc_byte_buffer *sending;    /* the in-flight SEND_MESSAGE buffer, kept until it completes */
    grpc_byte_buffer *status_buf; /* the response sent with the status, kept until the call ends */
};

/* A blocking handler's pending run: the call (one reference held) and its request, or for a
 * stream without one its end (on_end with end_ok). */
struct work_item {
    struct rpc_call *call;
    ProtobufCMessage *msg;
    int end_ok;
    struct work_item *next;
};

struct rpc_server {
    grpc_server *server;
    grpc_completion_queue *cq;
    struct rpc_method *methods;
    void **registered; /* gRPC's handle of each method, registered at creation */
    size_t n_methods;
    int port;
    int n_threads;
    pthread_t *threads;
    int started;
    struct rpc_tag shutdown_tag;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int shutdown_done; /* guarded by mu */
    int shutting_down; /* guarded by mu: no new call requests */
    /* Worker threads for blocking handlers. */
    int n_workers;
    pthread_t *workers;
    pthread_cond_t work_cond;
    struct work_item *work_head, *work_tail; /* guarded by mu */
    int workers_stop;                        /* guarded by mu */
    struct method_metrics *method_metrics;   /* one per method, then one for unknown methods */
    /* Unary calls handed to a handler and not answered yet (guarded by mu): rpc_server_free
     * waits for them, since a handler may answer from another thread long after it returned. */
    int unanswered;
};

/* Calls requested ahead for each unary method. */
#define RPC_SERVER_UNARY_REQUESTS 4

static void call_unref_locked_maybe(struct rpc_call *c);

static grpc_byte_buffer *pack_message(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice slice = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

grpc_slice rpc_byte_buffer_flatten(grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return grpc_empty_slice();
    grpc_slice s = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    return s;
}

grpc_byte_buffer *rpc_pack(const ProtobufCMessage *msg)
{
    return pack_message(msg);
}

static void call_free(struct rpc_call *c)
{
    struct send_item *it = c->queue_head;
    while (it) {
        struct send_item *next = it->next;
        grpc_byte_buffer_destroy(it->buf);
        free(it);
        it = next;
    }
    if (c->recv_buf)
        grpc_byte_buffer_destroy(c->recv_buf);
    if (c->sending)
        grpc_byte_buffer_destroy(c->sending);
    if (c->status_buf)
        grpc_byte_buffer_destroy(c->status_buf);
    free(c->pending_msg);
    grpc_slice_unref(c->status_slice);
    if (c->peer)
        gpr_free(c->peer);
    if (c->call)
        grpc_call_unref(c->call);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->request_md);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Drops one reference; the caller holds c->mu, which this releases. */
static void call_unref_locked_maybe(struct rpc_call *c)
{
    int last = --c->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (last)
        call_free(c);
}

static int start_batch(struct rpc_call *c, const grpc_op *ops, size_t n, struct rpc_tag *tag)
{
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
    return e == GRPC_CALL_OK ? 0 : -1;
}

static void fill_initial_md(struct rpc_call *c, grpc_op *op)
{
    memset(op, 0, sizeof *op);
    op->op = GRPC_OP_SEND_INITIAL_METADATA;
    c->initial_md_sent = 1;
}

/* Starts the status batch. Caller holds c->mu. */
static void start_status_locked(struct rpc_call *c, enum rpc_status status, const char *msg,
                                grpc_byte_buffer *with_message)
{
    grpc_op ops[4];
    size_t n = 0;
    if (!c->initial_md_sent)
        fill_initial_md(c, &ops[n++]);
    if (c->close_in_status) {
        memset(&ops[n], 0, sizeof ops[n]);
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n].data.recv_close_on_server.cancelled = &c->close_cancelled;
        n++;
    }
    if (with_message) {
        memset(&ops[n], 0, sizeof ops[n]);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = with_message;
        n++;
    }
    grpc_slice_unref(c->status_slice);
    c->status_slice = grpc_slice_from_copied_string(msg ? msg : "");
    memset(&ops[n], 0, sizeof ops[n]);
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)status;
    ops[n].data.send_status_from_server.status_details = &c->status_slice;
    n++;
    c->status_started = 1;
    c->refs++;
    if (start_batch(c, ops, n, &c->t_status) != 0)
        c->refs--;
    c->status_buf = with_message;
}

/* Counts the call's answer; called once per call, by whoever answers first. */
static void count_answer(struct rpc_call *c, enum rpc_status status)
{
    metrics_counter_inc(status == RPC_OK ? c->mm.ok : c->mm.error);
    metrics_histogram_since(c->mm.duration, c->start_ns);
}

/* Releases the "answer pending" reference. Caller holds c->mu; releases it. */
static void answer_done_locked(struct rpc_call *c)
{
    struct rpc_server *s = c->awaited ? c->srv : NULL;
    call_unref_locked_maybe(c);
    if (s) {
        pthread_mutex_lock(&s->mu);
        if (--s->unanswered == 0)
            pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->mu);
    }
}

void rpc_call_reply(struct rpc_call *call, const ProtobufCMessage *resp)
{
    grpc_byte_buffer *bb = pack_message(resp);
    pthread_mutex_lock(&call->mu);
    if (call->answered) {
        pthread_mutex_unlock(&call->mu);
        grpc_byte_buffer_destroy(bb);
        return;
    }
    call->answered = 1;
    count_answer(call, RPC_OK);
    if (!call->dead && !call->status_started)
        start_status_locked(call, RPC_OK, NULL, bb);
    else
        grpc_byte_buffer_destroy(bb);
    answer_done_locked(call);
}

void rpc_call_finish(struct rpc_call *call, enum rpc_status status, const char *msg)
{
    pthread_mutex_lock(&call->mu);
    if (call->answered) {
        pthread_mutex_unlock(&call->mu);
        return;
    }
    call->answered = 1;
    count_answer(call, status);
    if (!call->dead && !call->status_started) {
        if (call->send_inflight) {
            call->pending_status = status;
            call->pending_msg = strdup(msg ? msg : "");
        } else {
            start_status_locked(call, status, msg, NULL);
        }
    }
    answer_done_locked(call);
}

/* Starts sending the head of the queue. Caller holds c->mu. */
static void start_send_locked(struct rpc_call *c)
{
    struct send_item *it = c->queue_head;
    c->queue_head = it->next;
    if (!c->queue_head)
        c->queue_tail = NULL;
    grpc_op ops[2];
    size_t n = 0;
    if (!c->initial_md_sent)
        fill_initial_md(c, &ops[n++]);
    memset(&ops[n], 0, sizeof ops[n]);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = it->buf;
    n++;
    c->send_inflight = 1;
    c->refs++;
    if (start_batch(c, ops, n, &c->t_send) != 0) {
        c->refs--;
        c->send_inflight = 0;
        c->dead = 1;
    }
    c->sending = it->buf;
    free(it);
}

int rpc_call_send(struct rpc_call *call, const ProtobufCMessage *resp)
{
    struct send_item *it = malloc(sizeof *it);
    if (!it)
        return RPC_ERR_NOMEM;
    it->buf = pack_message(resp);
    it->next = NULL;
    pthread_mutex_lock(&call->mu);
    if (call->dead || call->answered) {
        pthread_mutex_unlock(&call->mu);
        grpc_byte_buffer_destroy(it->buf);
        free(it);
        return RPC_ERR_CLOSED;
    }
    if (call->queue_tail)
        call->queue_tail->next = it;
    else
        call->queue_head = it;
    call->queue_tail = it;
    if (!call->send_inflight)
        start_send_locked(call);
    pthread_mutex_unlock(&call->mu);
    return 0;
}

void rpc_call_set_user(struct rpc_call *call, void *user)
{
    call->user = user;
}

void *rpc_call_user(const struct rpc_call *call)
{
    return call->user;
}

const char *rpc_call_peer(const struct rpc_call *call)
{
    /* Asked for rarely (logs): formatted on first use, not for every call. */
    struct rpc_call *c = (struct rpc_call *)call;
    pthread_mutex_lock(&c->mu);
    if (!c->peer && c->call)
        c->peer = grpc_call_get_peer(c->call);
    pthread_mutex_unlock(&c->mu);
    return c->peer ? c->peer : "";
}

void rpc_call_ref(struct rpc_call *call)
{
    pthread_mutex_lock(&call->mu);
    call->refs++;
    pthread_mutex_unlock(&call->mu);
}

void rpc_call_unref(struct rpc_call *call)
{
    pthread_mutex_lock(&call->mu);
    call_unref_locked_maybe(call);
}

/*
 * Asks gRPC for the next incoming call to method `m` (an index into s->methods), or with m < 0
 * to any method not registered (each is answered UNIMPLEMENTED). A registered unary method's
 * request arrives with its call, and its RECV_CLOSE_ON_SERVER goes out with the answer: two
 * completions per call instead of four.
 */
static void request_call(struct rpc_server *s, long m)
{
    pthread_mutex_lock(&s->mu);
    int stop = s->shutting_down;
    pthread_mutex_unlock(&s->mu);
    if (stop)
        return;
    struct rpc_call *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->srv = s;
    c->method = m >= 0 ? &s->methods[m] : NULL;
    pthread_mutex_init(&c->mu, NULL);
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->request_md);
    c->status_slice = grpc_empty_slice();
    c->t_new = (struct rpc_tag){TAG_NEW, c};
    c->t_recv = (struct rpc_tag){TAG_RECV, c};
    c->t_send = (struct rpc_tag){TAG_SEND, c};
    c->t_status = (struct rpc_tag){TAG_STATUS, c};
    c->t_close = (struct rpc_tag){TAG_CLOSE, c};
    grpc_call_error e;
    if (!c->method)
        e = grpc_server_request_call(s->server, &c->call, &c->details, &c->request_md, s->cq, s->cq,
                                     &c->t_new);
    else
        e = grpc_server_request_registered_call(
            s->server, s->registered[m], &c->call, &c->deadline, &c->request_md,
            c->method->kind == RPC_UNARY ? &c->recv_buf : NULL, s->cq, s->cq, &c->t_new);
    if (e != GRPC_CALL_OK)
        call_free(c);
}

static void start_recv(struct rpc_call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_buf;
    pthread_mutex_lock(&c->mu);
    c->refs++;
    if (start_batch(c, &op, 1, &c->t_recv) != 0)
        c->refs--;
    pthread_mutex_unlock(&c->mu);
}

static void on_recv(struct rpc_call *c, int ok);

static void on_new_call(struct rpc_server *s, struct rpc_call *c, int ok)
{
    request_call(s, c->method ? (long)(c->method - s->methods) : -1);
    if (!ok) {
        call_free(c);
        return;
    }
    c->start_ns = metrics_now_ns();
    if (s->method_metrics)
        c->mm = s->method_metrics[c->method ? (size_t)(c->method - s->methods) : s->n_methods];
    if (c->method && c->method->kind == RPC_UNARY) {
        c->awaited = 1;
        pthread_mutex_lock(&s->mu);
        s->unanswered++;
        pthread_mutex_unlock(&s->mu);
        /* refs: the answer obligation + the request that came with the call (on_recv drops
         * it); the close is part of the answer's batch. */
        c->close_in_status = 1;
        c->refs = 2;
        on_recv(c, 1);
        return;
    }
    /* refs: the answer obligation + the close batch. */
    c->refs = 2;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->close_cancelled;
    if (start_batch(c, &op, 1, &c->t_close) != 0) {
        pthread_mutex_lock(&c->mu);
        c->dead = 1;
        call_unref_locked_maybe(c);
        rpc_call_finish(c, RPC_INTERNAL, "cannot start call");
        return;
    }
    if (!c->method) {
        char msg[300];
        char *name = grpc_slice_to_c_string(c->details.method);
        snprintf(msg, sizeof msg, "unknown method %s", name);
        gpr_free(name);
        rpc_call_finish(c, RPC_UNIMPLEMENTED, msg);
        return;
    }
    start_recv(c);
}

/* Hands a blocking method's message (or a stream's end, msg NULL) to the workers; the call keeps
 * one reference until the worker is done. Returns 0, or -1 without memory. */
static int queue_work(struct rpc_call *c, ProtobufCMessage *msg, int end_ok)
{
    struct work_item *w = malloc(sizeof *w);
    if (!w)
        return -1;
    rpc_call_ref(c);
    *w = (struct work_item){c, msg, end_ok, NULL};
    struct rpc_server *s = c->srv;
    pthread_mutex_lock(&s->mu);
    if (s->work_tail)
        s->work_tail->next = w;
    else
        s->work_head = w;
    s->work_tail = w;
    pthread_cond_signal(&s->work_cond);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* A stream's end, on whichever thread handles its method. */
static void end_stream(struct rpc_call *c, int ok)
{
    const struct rpc_method *m = c->method;
    if (m->on_end)
        m->on_end(c, ok, m->arg);
    else
        rpc_call_finish(c, ok ? RPC_OK : RPC_CANCELLED, NULL);
}

/* One request on the thread that handles it; a stream then waits for its next message. */
static void handle_message(struct rpc_call *c, ProtobufCMessage *msg)
{
    const struct rpc_method *m = c->method;
    m->on_message(c, msg, m->arg);
    if (!m->owns_message)
        protobuf_c_message_free_unpacked(msg, NULL);
    if (m->kind != RPC_UNARY)
        start_recv(c);
}

static void on_recv(struct rpc_call *c, int ok)
{
    const struct rpc_method *m = c->method;
    grpc_byte_buffer *bb = c->recv_buf;
    c->recv_buf = NULL;
    if (!bb) {
        if (m->kind == RPC_UNARY)
            rpc_call_finish(c, RPC_INVALID_ARGUMENT, "missing request message");
        else if (!m->blocking || queue_work(c, NULL, ok) != 0)
            end_stream(c, ok);
        goto out;
    }
    grpc_slice slice = rpc_byte_buffer_flatten(bb);
    grpc_byte_buffer_destroy(bb);
    ProtobufCMessage *msg = protobuf_c_message_unpack(m->request, NULL, GRPC_SLICE_LENGTH(slice),
                                                      GRPC_SLICE_START_PTR(slice));
    grpc_slice_unref(slice);
    if (!msg) {
        rpc_call_finish(c, RPC_INVALID_ARGUMENT, "request does not decode");
        if (m->kind != RPC_UNARY && m->on_end)
            m->on_end(c, 0, m->arg);
        goto out;
    }
    if (m->blocking) {
        if (queue_work(c, msg, 0) != 0) {
            protobuf_c_message_free_unpacked(msg, NULL);
            rpc_call_finish(c, RPC_INTERNAL, "out of memory");
            if (m->kind != RPC_UNARY && m->on_end)
                m->on_end(c, 0, m->arg);
        }
        goto out;
    }
    handle_message(c, msg);
out:
    pthread_mutex_lock(&c->mu);
    call_unref_locked_maybe(c);
}

static void on_send(struct rpc_call *c, int ok)
{
    pthread_mutex_lock(&c->mu);
    c->send_inflight = 0;
    grpc_byte_buffer_destroy(c->sending);
    c->sending = NULL;
    if (!ok)
        c->dead = 1;
    if (!c->dead && c->queue_head) {
        start_send_locked(c);
    } else if (!c->dead && c->answered && !c->status_started && c->pending_msg) {
        start_status_locked(c, c->pending_status, c->pending_msg, NULL);
    }
    call_unref_locked_maybe(c);
}

static void on_close(struct rpc_call *c)
{
    pthread_mutex_lock(&c->mu);
    if (c->close_cancelled)
        c->dead = 1;
    call_unref_locked_maybe(c);
}

static void *worker_thread(void *arg)
{
    pthread_setname_np(pthread_self(), "rpc-worker");
    struct rpc_server *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->work_head && !s->workers_stop)
            pthread_cond_wait(&s->work_cond, &s->mu);
        struct work_item *w = s->work_head;
        if (!w)
            break; /* stopping and drained */
        s->work_head = w->next;
        if (!s->work_head)
            s->work_tail = NULL;
        pthread_mutex_unlock(&s->mu);
        if (w->msg)
            handle_message(w->call, w->msg);
        else
            end_stream(w->call, w->end_ok);
        rpc_call_unref(w->call);
        free(w);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void *cq_thread(void *arg)
{
    pthread_setname_np(pthread_self(), "rpc-cq");
    struct rpc_server *s = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        struct rpc_tag *tag = ev.tag;
        switch (tag->kind) {
        case TAG_NEW:
            on_new_call(s, tag->call, ev.success);
            break;
        case TAG_RECV:
            on_recv(tag->call, ev.success);
            break;
        case TAG_SEND:
            on_send(tag->call, ev.success);
            break;
        case TAG_STATUS:
            pthread_mutex_lock(&tag->call->mu);
            call_unref_locked_maybe(tag->call);
            break;
        case TAG_CLOSE:
            on_close(tag->call);
            break;
        case TAG_SHUTDOWN:
            pthread_mutex_lock(&s->mu);
            s->shutdown_done = 1;
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->mu);
            break;
        }
    }
    return NULL;
}

struct rpc_server *rpc_server_new(const char *addr, const struct rpc_method *methods, size_t n,
                                  int threads, char *errbuf, size_t errbuf_len)
{
    struct rpc_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(errbuf, errbuf_len, "out of memory");
        return NULL;
    }
    rpc_grpc_init();
    s->methods = calloc(n ? n : 1, sizeof *methods);
    if (!s->methods)
        goto fail;
    memcpy(s->methods, methods, n * sizeof *methods);
    s->n_methods = n;
    s->n_threads = threads > 0 ? threads : 2;
    s->n_workers = 8;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_cond_init(&s->work_cond, NULL);
    s->shutdown_tag = (struct rpc_tag){TAG_SHUTDOWN, NULL};

    grpc_arg args[2] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = RPC_MAX_MESSAGE_BYTES},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
         .value.integer = RPC_MAX_MESSAGE_BYTES},
    };
    grpc_channel_args chargs = {.num_args = 2, .args = args};
    s->server = grpc_server_create(&chargs, NULL);
    s->registered = calloc(n ? n : 1, sizeof *s->registered);
    for (size_t i = 0; s->registered && i < n; i++)
        s->registered[i] = grpc_server_register_method(
            s->server, methods[i].name, NULL,
            methods[i].kind == RPC_UNARY ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER
                                         : GRPC_SRM_PAYLOAD_NONE,
            0);
    for (size_t i = 0; s->registered && i < n; i++)
        if (!s->registered[i]) {
            snprintf(errbuf, errbuf_len, "cannot register method %s (registered twice?)",
                     methods[i].name);
            free(s->registered);
            s->registered = NULL;
        }
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    s->port = s->registered ? grpc_server_add_http2_port(s->server, addr, creds) : 0;
    grpc_server_credentials_release(creds);
    if (s->port <= 0) {
        if (s->registered)
            snprintf(errbuf, errbuf_len, "cannot listen on %s (address in use or invalid)", addr);
        grpc_server_destroy(s->server);
        grpc_completion_queue_shutdown(s->cq);
        while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(s->cq);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cond);
        pthread_cond_destroy(&s->work_cond);
        goto fail;
    }
    return s;
fail:
    if (errbuf_len && !errbuf[0])
        snprintf(errbuf, errbuf_len, "out of memory");
    free(s->registered);
    free(s->methods);
    free(s);
    grpc_shutdown();
    return NULL;
}

void rpc_server_set_workers(struct rpc_server *s, int n)
{
    if (!s->started && n > 0)
        s->n_workers = n;
}

/* Registers one method's series; `name` is the short method name. */
static void method_metrics_init(struct metrics *m, struct method_metrics *mm, const char *name,
                                int unary)
{
    char labels[160];
    static const char help[] = "gRPC calls answered, by method and outcome (ok: status OK).";
    snprintf(labels, sizeof labels, "method=\"%.100s\",outcome=\"ok\"", name);
    mm->ok = metrics_counter(m, "tinykv_grpc_requests_total", help, labels);
    snprintf(labels, sizeof labels, "method=\"%.100s\",outcome=\"error\"", name);
    mm->error = metrics_counter(m, "tinykv_grpc_requests_total", help, labels);
    if (unary) {
        snprintf(labels, sizeof labels, "method=\"%.100s\"", name);
        mm->duration = metrics_histogram(m, "tinykv_grpc_request_duration_seconds",
                                         "Time from a unary call's arrival to its answer.", labels,
                                         METRICS_LATENCY_BUCKETS, METRICS_LATENCY_BUCKET_COUNT);
    }
}

void rpc_server_set_metrics(struct rpc_server *s, struct metrics *m)
{
    if (s->started || s->method_metrics || !m)
        return;
    struct method_metrics *mm = calloc(s->n_methods + 1, sizeof *mm);
    if (!mm)
        return; /* counting is best effort; the server works without it */
    for (size_t i = 0; i < s->n_methods; i++) {
        const char *slash = strrchr(s->methods[i].name, '/');
        method_metrics_init(m, &mm[i], slash ? slash + 1 : s->methods[i].name,
                            s->methods[i].kind == RPC_UNARY);
    }
    method_metrics_init(m, &mm[s->n_methods], "unknown", 0);
    s->method_metrics = mm;
}

int rpc_server_port(const struct rpc_server *s)
{
    return s->port;
}

int rpc_server_start(struct rpc_server *s)
{
    grpc_server_start(s->server);
    /* Several outstanding requests per unary method so bursts of new calls do not queue; a
     * stream is set up once and lives long. */
    for (size_t m = 0; m < s->n_methods; m++)
        for (int i = 0; i < (s->methods[m].kind == RPC_UNARY ? RPC_SERVER_UNARY_REQUESTS : 1); i++)
            request_call(s, (long)m);
    request_call(s, -1);
    s->threads = calloc((size_t)s->n_threads, sizeof *s->threads);
    s->workers = calloc((size_t)s->n_workers, sizeof *s->workers);
    if (!s->threads || !s->workers)
        return RPC_ERR_NOMEM;
    for (int i = 0; i < s->n_workers; i++)
        if (pthread_create(&s->workers[i], NULL, worker_thread, s) != 0)
            return RPC_ERR_SETUP;
    for (int i = 0; i < s->n_threads; i++)
        if (pthread_create(&s->threads[i], NULL, cq_thread, s) != 0)
            return RPC_ERR_SETUP;
    s->started = 1;
    return 0;
}

/* Waits for the handlers that answer later (from their own threads) to answer every call they
 * took: a call must not outlive the gRPC server. Handlers answer within their own deadlines;
 * RPC_SERVER_ANSWER_WAIT_MS bounds the wait should one break that promise. */
#define RPC_SERVER_ANSWER_WAIT_MS 60000
static void wait_unanswered(struct rpc_server *s)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += RPC_SERVER_ANSWER_WAIT_MS / 1000;
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (s->unanswered > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&s->cond, &s->mu, &until);
    if (s->unanswered > 0)
        LOG(LOG_ERROR, "rpc server: %d calls still unanswered after %d ms; shutting down anyway",
            s->unanswered, RPC_SERVER_ANSWER_WAIT_MS);
    pthread_mutex_unlock(&s->mu);
}

void rpc_server_free(struct rpc_server *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->shutting_down = 1;
    pthread_mutex_unlock(&s->mu);
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
    grpc_server_cancel_all_calls(s->server);
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        while (!s->shutdown_done)
            pthread_cond_wait(&s->cond, &s->mu);
        pthread_mutex_unlock(&s->mu);
    }
    /* Blocking handlers still queued run to completion (their calls are
     * cancelled, so their answers are dropped) before the queue goes away. */
    pthread_mutex_lock(&s->mu);
    s->workers_stop = 1;
    pthread_cond_broadcast(&s->work_cond);
    pthread_mutex_unlock(&s->mu);
    if (s->started)
        for (int i = 0; i < s->n_workers; i++)
            pthread_join(s->workers[i], NULL);
    wait_unanswered(s);
    grpc_server_destroy(s->server);
    grpc_completion_queue_shutdown(s->cq);
    if (s->started) {
        for (int i = 0; i < s->n_threads; i++)
            pthread_join(s->threads[i], NULL);
    } else {
        cq_thread(s);
    }
    grpc_completion_queue_destroy(s->cq);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->work_cond);
    free(s->workers);
    free(s->threads);
    free(s->registered);
    free(s->methods);
    free(s->method_metrics);
    free(s);
    grpc_shutdown();
}

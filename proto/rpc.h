/* rpc.h — thin gRPC glue over the gRPC core C API: a dispatching server and a client with
 * deadlines. */
#ifndef TINYKV_PROTO_RPC_H
#define TINYKV_PROTO_RPC_H

/*
 * What it owns: gRPC core objects (server, completion queues, channels,
 * calls) and the encoding of protobuf-c messages to and from byte buffers.
 *
 * Who calls it: every process. tinykv-server and tinyscheduler-server
 * register handlers by full method name ("/tinykvpb.TinyKv/RawGet") on an
 * rpc_server; clients (store transport, scheduler client, tinykv-ctl) make
 * calls through an rpc_client that keeps one channel per address.
 *
 * What it must never do: interpret messages, or block a completion-queue
 * thread for long. Handlers run on the server's completion-queue threads and
 * may answer later from any thread; a handler that must wait (for Raft to
 * apply, say) keeps the call and answers when it can.
 *
 * Status: unknown methods answer UNIMPLEMENTED; a request that does not
 * decode answers INVALID_ARGUMENT; a handler that never answers is a bug
 * (every call must end in exactly one rpc_call_reply / rpc_call_finish).
 */

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/* Largest message either side sends or accepts (requests carry values up to
 * 8 MiB plus keys and framing). */
#define RPC_MAX_MESSAGE_BYTES (16 * 1024 * 1024)

/* gRPC status codes used by this project (the values are gRPC's). */
enum rpc_status {
    RPC_OK = 0,
    RPC_CANCELLED = 1,
    RPC_UNKNOWN = 2,
    RPC_INVALID_ARGUMENT = 3,
    RPC_DEADLINE_EXCEEDED = 4,
    RPC_NOT_FOUND = 5,
    RPC_ALREADY_EXISTS = 6,
    RPC_FAILED_PRECONDITION = 9,
    RPC_ABORTED = 10,
    RPC_UNIMPLEMENTED = 12,
    RPC_INTERNAL = 13,
    RPC_UNAVAILABLE = 14,
};

/* Module error codes (returned by client functions; 0 is success). */
enum {
    RPC_ERR_STATUS = 2000, /* the call ended with a non-OK gRPC status; see status/msg */
    RPC_ERR_NOMEM,
    RPC_ERR_DECODE,  /* the response did not decode */
    RPC_ERR_CLOSED,  /* the stream has ended */
    RPC_ERR_TIMEOUT, /* an operation on a stream did not complete in time */
    RPC_ERR_PENDING, /* a send was started and has not completed yet (rpc_stream_try_send) */
    RPC_ERR_SETUP,   /* could not create the server / bind the address */
};

const char *rpc_strerror(int code);

/* ------------------------------------------------------------------ server */

struct rpc_server;
struct rpc_call;

enum rpc_method_kind {
    RPC_UNARY = 0,
    RPC_CLIENT_STREAM = 1, /* many requests, one response */
    RPC_BIDI_STREAM = 2,   /* many requests, many responses */
};

/*
 * Handlers. `msg` is borrowed for the duration of the callback (unpacked by
 * the glue, freed after) unless the method sets owns_message. `arg` is the
 * method's registration argument.
 *
 * on_message: a unary call's only request, or each request of a stream. For a
 *   unary call the handler must (now or later) call rpc_call_reply or
 *   rpc_call_finish. For a stream it may send (bidi) or do nothing.
 * on_end: streams only — the client half-closed (ok=1) or the call was
 *   cancelled / failed (ok=0). A client stream answers with rpc_call_reply
 *   (ok=1); a bidi stream ends with rpc_call_finish. After on_end with ok=0
 *   answering is allowed and ignored.
 */
typedef void (*rpc_on_message_fn)(struct rpc_call *call, const ProtobufCMessage *msg, void *arg);
typedef void (*rpc_on_end_fn)(struct rpc_call *call, int ok, void *arg);

struct rpc_method {
    const char
        *name; /* full name, e.g. "/tinykvpb.TinyKv/RawGet"; borrowed for the server's life */
    enum rpc_method_kind kind;
    const ProtobufCMessageDescriptor *request;
    rpc_on_message_fn on_message;
    rpc_on_end_fn on_end; /* streams only; may be NULL for unary */
    void *arg;
    /* When set, on_message takes ownership of `msg` and frees it with
     * protobuf_c_message_free_unpacked(msg, NULL) — for handlers that pass the
     * request on to another thread. */
    int owns_message;
    /* Run on_message (and a stream's on_end) on the server's worker threads
     * instead of a completion-queue thread, so it may block (on disk, on
     * Raft). A stream's messages stay in order: its next message is received
     * only after the handler of the last one returned. */
    int blocking;
};

/*
 * rpc_server_new binds `addr` ("HOST:PORT"; port 0 picks a free one) and
 * registers `n` methods (the array is copied; names are borrowed).
 * `threads` completion-queue threads serve it once started.
 * Returns NULL on failure with a reason in errbuf.
 */
struct rpc_server *rpc_server_new(const char *addr, const struct rpc_method *methods, size_t n,
                                  int threads, char *errbuf, size_t errbuf_len);

/* rpc_server_set_workers sets how many worker threads run blocking
 * handlers (default 8); call before rpc_server_start. */
void rpc_server_set_workers(struct rpc_server *s, int n);

/*
 * rpc_server_set_metrics makes the server count every call it answers in `m`
 * (borrowed: it must outlive the server): tinykv_grpc_requests_total{method,
 * outcome} (outcome "ok" or "error", the gRPC status not being OK) and, for
 * unary calls, tinykv_grpc_request_duration_seconds{method} from the call's
 * arrival to its answer. Unknown methods count as method="unknown". Call
 * before rpc_server_start; without it nothing is counted.
 */
struct metrics;
void rpc_server_set_metrics(struct rpc_server *s, struct metrics *m);

/* The port actually bound (useful with port 0). */
int rpc_server_port(const struct rpc_server *s);

/* rpc_server_start starts the threads; returns 0 or RPC_ERR_SETUP. */
int rpc_server_start(struct rpc_server *s);

/*
 * rpc_server_free shuts down: stops accepting calls, cancels live ones
 * (their on_end runs with ok=0), waits for the threads, frees everything.
 * Handlers must not hold calls past their on_end after this starts.
 */
void rpc_server_free(struct rpc_server *s);

/*
 * rpc_call_reply answers a unary or client-stream call with `resp` (encoded
 * now, borrowed) and status OK. Any thread. Exactly once per call.
 */
void rpc_call_reply(struct rpc_call *call, const ProtobufCMessage *resp);

/* rpc_call_finish ends a call with a status and message (no response
 * message for unary calls; after queued sends for streams). Any thread. */
void rpc_call_finish(struct rpc_call *call, enum rpc_status status, const char *msg);

/* rpc_call_send queues a response on a bidi stream (encoded now, borrowed).
 * Returns 0, or RPC_ERR_CLOSED if the stream has ended. Any thread. */
int rpc_call_send(struct rpc_call *call, const ProtobufCMessage *resp);

/* A per-call pointer for the handler's own state. */
void rpc_call_set_user(struct rpc_call *call, void *user);
void *rpc_call_user(const struct rpc_call *call);

/* The peer's address as gRPC names it ("ipv4:127.0.0.1:5000"); borrowed
 * until the call ends. */
const char *rpc_call_peer(const struct rpc_call *call);

/* Keep a call alive past its handler (e.g. to send on a stream later). */
void rpc_call_ref(struct rpc_call *call);
void rpc_call_unref(struct rpc_call *call);

/* ------------------------------------------------------------------ client */

struct rpc_client;
struct rpc_stream;

/* How long one connection attempt may take before it is given up and tried
 * again (gRPC's own default is 20 s). */
#define RPC_CONNECT_TIMEOUT_MS 1000
/* A connection whose sent data stays unacknowledged this long is closed
 * (TCP_USER_TIMEOUT), failing its calls: how fast a peer cut off by a
 * partition is noticed. */
#define RPC_DEAD_PEER_MS 1500

/* rpc_client_new: a set of channels, one per address, shared by threads.
 * A channel reconnects on its own after a failure, with a backoff that
 * starts at 100 ms and is capped at 1 s. */
struct rpc_client *rpc_client_new(void);
void rpc_client_free(struct rpc_client *c);

/*
 * rpc_client_reconnect replaces the channel to `addr` (if there is one and it
 * is not connected) by a new one, whose first call connects at once; calls
 * in flight finish on the old one. For callers that retry on their own
 * schedule after a failure (with their own backoff and jitter): a gRPC
 * channel that failed while its peer was down goes on failing calls for
 * seconds after the peer is back (measured: 2-7 s with gRPC 1.51, whatever
 * its reconnect-backoff settings), while a new channel connects in
 * milliseconds. At most once per RPC_RECONNECT_MIN_INTERVAL_MS per address,
 * so threads failing together replace it once.
 */
#define RPC_RECONNECT_MIN_INTERVAL_MS 100
void rpc_client_reconnect(struct rpc_client *c, const char *addr);

/* Detail of a failed call. */
struct rpc_error {
    int status; /* gRPC status when code is RPC_ERR_STATUS */
    char msg[256];
};

/*
 * rpc_client_unary calls `method` on `addr` with `req` and waits at most
 * `timeout_ms` (the call's gRPC deadline). On success *resp is a message
 * unpacked with `resp_desc`, owned by the caller (protobuf_c_message_free_unpacked).
 * Returns 0 or RPC_ERR_*, with `err` filled (err may be NULL).
 */
int rpc_client_unary(struct rpc_client *c, const char *addr, const char *method,
                     const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                     ProtobufCMessage **resp, int timeout_ms, struct rpc_error *err);

/*
 * rpc_client_unary_raw is rpc_client_unary with already-encoded bytes both
 * ways (*resp malloc'd, caller frees). For tests that send garbage.
 */
int rpc_client_unary_raw(struct rpc_client *c, const char *addr, const char *method,
                         const void *req, size_t req_len, void **resp, size_t *resp_len,
                         int timeout_ms, struct rpc_error *err);

/*
 * rpc_stream_open starts a streaming call. `deadline_ms` bounds the whole
 * call (0: none — for long-lived streams, whose operations still time out
 * one by one). Responses are unpacked with `resp_desc`.
 * Returns NULL and fills err on failure.
 */
struct rpc_stream *rpc_stream_open(struct rpc_client *c, const char *addr, const char *method,
                                   const ProtobufCMessageDescriptor *resp_desc, int deadline_ms,
                                   struct rpc_error *err);

/* rpc_stream_send sends one message (encoded now, borrowed), waiting at most
 * `timeout_ms` for the transport to take it; a timeout cancels the stream.
 * Only one thread sends at a time. */
int rpc_stream_send(struct rpc_stream *st, const ProtobufCMessage *msg, int timeout_ms,
                    struct rpc_error *err);

/*
 * rpc_stream_try_send starts sending one message (encoded now, borrowed) without waiting: 0 when
 * the transport took it at once, RPC_ERR_PENDING when the send is still in flight (the next
 * rpc_stream_send, or rpc_stream_finish_send, waits for it first; no other try meanwhile), or
 * RPC_ERR_CLOSED. For a caller that must not block (a store's event loop).
 */
int rpc_stream_try_send(struct rpc_stream *st, const ProtobufCMessage *msg, struct rpc_error *err);
/* Waits at most timeout_ms for the send rpc_stream_try_send left in flight (0 if none). */
int rpc_stream_finish_send(struct rpc_stream *st, int timeout_ms, struct rpc_error *err);

/* rpc_stream_recv waits at most `timeout_ms` (0: no limit) for the next
 * response; *msg is owned by the caller. When the server has ended the stream:
 * RPC_ERR_CLOSED for status OK, RPC_ERR_STATUS otherwise (err has the status). RPC_ERR_TIMEOUT
 * leaves the stream open and the receive in flight: the next call goes on waiting for it, so a
 * thread can poll a stream between sends. One receiving thread. */
int rpc_stream_recv(struct rpc_stream *st, ProtobufCMessage **msg, int timeout_ms,
                    struct rpc_error *err);

/* rpc_stream_close_send half-closes and, for a client stream, waits for the
 * single response (*resp may be NULL to ignore it) and the status. */
int rpc_stream_close_send(struct rpc_stream *st, ProtobufCMessage **resp, int timeout_ms,
                          struct rpc_error *err);

/* rpc_stream_free cancels the call if still live and frees it. */
void rpc_stream_free(struct rpc_stream *st);

/* ------------------------------------------------------------------ misc */

/*
 * rpc_process_hold keeps gRPC initialised for the life of the process, so a
 * daemon's last rpc_server_free / rpc_client_free does not run gRPC's full
 * teardown (which can wait seconds on an internal poller) on its way out.
 * Daemons call it once at start; library code and tests do not.
 */
void rpc_process_hold(void);

/* Milliseconds from a monotonic clock. */
uint64_t rpc_now_ms(void);

#endif

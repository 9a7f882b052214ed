/* transport.c — per-store sender threads streaming Raft messages and snapshots over gRPC,
 * reconnecting with backoff. */
#include "store/transport.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/log.h"
#include "store/raftstore.h"
#include "store/snapshot_transfer.h"

#define QUEUE_LIMIT 4096
/* A Raft message the transport cannot take within this is given up and the
 * store counted unreachable (Raft resends): a stream to a store that stopped
 * reading, or a connection attempt a partition swallows, holds the sender no
 * longer than this. A dead connection fails sends sooner: rpc's
 * TCP_USER_TIMEOUT (RPC_DEAD_PEER_MS) closes it. */
#define SEND_TIMEOUT_MS 1000
/* One snapshot chunk (1 MiB) may take longer on a slow link. */
#define SNAPSHOT_CHUNK_TIMEOUT_MS 5000
#define SNAPSHOT_TIMEOUT_MS 60000
/* Pause before trying an unreachable store again: doubling up to the cap. */
#define BACKOFF_FIRST_MS 20
#define BACKOFF_MAX_MS 300

/* Snapshots go out on their own threads (at most this many at once for the whole store), so a
 * large one never holds up the Raft messages queued behind it for its store; more wait in
 * the snapshot queue, up to SNAPSHOT_QUEUE_LIMIT, then are dropped (reported failed). */
#define SNAPSHOT_SENDERS 3
#define SNAPSHOT_QUEUE_LIMIT 64

struct queued {
    RaftServerpb__RaftMessage *msg; /* owned */
    uint64_t store_id;              /* snapshot queue: the destination */
    struct queued *next;
};

/* One destination store. Fields below `mu` of the transport guard the queue. */
struct conn {
    struct transport *t;
    uint64_t store_id;
    pthread_t thread;
    struct queued *head, *tail;
    size_t n_queued;
    pthread_cond_t cond;
    /* Whoever holds busy (set under mu) uses the stream: the sender thread, or the store loop
     * sending a message itself when nothing is queued (transport_send), so a message to an
     * idle, connected store goes out with no thread hand-off. */
    int busy;
    int pending; /* the loop's send is still in flight: the sender waits for it */
    int broken;  /* the loop's send failed: the sender replaces the stream */
    uint64_t pending_region, pending_peer; /* of that in-flight send, to report it */
    struct rpc_stream *stream;             /* set and freed only while busy */
    char addr[128];                        /* sender thread only */
    struct conn *next;
};

struct transport {
    struct rpc_client *rpc;
    transport_resolve_fn resolve;
    void *resolve_ctx;
    struct raftstore *rs;
    pthread_mutex_t mu;
    struct conn *conns; /* guarded by mu */
    int stopping;       /* guarded by mu */
    /* Snapshot messages waiting for a snapshot sender (guarded by mu). */
    struct queued *snap_head, *snap_tail;
    size_t n_snap_queued;
    pthread_cond_t snap_cond;
    pthread_t snap_threads[SNAPSHOT_SENDERS];
    int n_snap_threads;
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reports go out under t->mu so transport_set_raftstore(t, NULL) fences them. */
static void report_unreachable_peer(struct transport *t, uint64_t region_id, uint64_t peer_id)
{
    pthread_mutex_lock(&t->mu);
    if (t->rs && peer_id)
        raftstore_report_unreachable(t->rs, region_id, peer_id);
    pthread_mutex_unlock(&t->mu);
}

static void report_unreachable(struct transport *t, const RaftServerpb__RaftMessage *m)
{
    report_unreachable_peer(t, m->region_id, m->to_peer ? m->to_peer->id : 0);
}

static void report_snapshot(struct transport *t, const RaftServerpb__RaftMessage *m, int failed)
{
    pthread_mutex_lock(&t->mu);
    if (t->rs && m->to_peer)
        raftstore_report_snapshot(t->rs, m->region_id, m->to_peer->id, failed);
    pthread_mutex_unlock(&t->mu);
}

static int is_snapshot(const RaftServerpb__RaftMessage *m)
{
    return m->message && m->message->msg_type == ERAFTPB__MESSAGE_TYPE__MsgSnapshot &&
           m->message->snapshot;
}

/* Counts a snapshot being sent in the raftstore's figures and copies its snapshot directory
 * (the raftstore may go while the file is read); the returned raftstore (NULL: none, nothing
 * to send) is the one uncount_sending takes it back from, never dereferenced without t->mu. */
static struct raftstore *count_sending(struct transport *t, char *snap_dir, size_t len)
{
    pthread_mutex_lock(&t->mu);
    struct raftstore *rs = t->rs;
    if (rs) {
        raftstore_snapshot_count_add(rs, 0, 1);
        snprintf(snap_dir, len, "%s", snapshot_dir(rs));
    }
    pthread_mutex_unlock(&t->mu);
    return rs;
}

static void uncount_sending(struct transport *t, struct raftstore *rs)
{
    pthread_mutex_lock(&t->mu);
    if (rs && t->rs == rs)
        raftstore_snapshot_count_add(rs, 0, -1);
    pthread_mutex_unlock(&t->mu);
}

/* Streams one snapshot message to store_id at addr: the message (with its manifest) first,
 * then the leader's snapshot file from snap_dir in chunks read as they go; 0 when the receiver
 * acknowledged it. */
static int send_snapshot(struct transport *t, const char *snap_dir, const char *addr,
                         uint64_t store_id, RaftServerpb__RaftMessage *m)
{
    struct rpc_error err = {0};
    struct snap_file_reader file;
    if (snapshot_send_open(snap_dir, m, &file) != 0) {
        LOG(LOG_WARN, "region=%llu: snapshot to store %llu: %s", (unsigned long long)m->region_id,
            (unsigned long long)store_id, file.errmsg);
        return -1;
    }
    uint8_t *buf = malloc(TRANSPORT_SNAPSHOT_CHUNK_BYTES);
    struct rpc_stream *st =
        buf ? rpc_stream_open(t->rpc, addr, "/tinykvpb.TinyKv/Snapshot",
                              &raft_serverpb__done__descriptor, SNAPSHOT_TIMEOUT_MS, &err)
            : NULL;
    if (!st) {
        free(buf);
        snap_file_close(&file);
        return -1;
    }
    RaftServerpb__SnapshotChunk first = RAFT_SERVERPB__SNAPSHOT_CHUNK__INIT;
    first.message = m;
    int rc = rpc_stream_send(st, &first.base, SNAPSHOT_CHUNK_TIMEOUT_MS, &err);
    for (;;) {
        size_t len = 0;
        if (!rc && snap_file_read(&file, buf, TRANSPORT_SNAPSHOT_CHUNK_BYTES, &len) != 0) {
            snprintf(err.msg, sizeof err.msg, "%s", file.errmsg);
            rc = -1;
        }
        if (rc || len == 0)
            break;
        RaftServerpb__SnapshotChunk chunk = RAFT_SERVERPB__SNAPSHOT_CHUNK__INIT;
        chunk.data = (ProtobufCBinaryData){len, buf};
        rc = rpc_stream_send(st, &chunk.base, SNAPSHOT_CHUNK_TIMEOUT_MS, &err);
    }
    free(buf);
    snap_file_close(&file);
    ProtobufCMessage *done = NULL;
    if (!rc)
        rc = rpc_stream_close_send(st, &done, SNAPSHOT_TIMEOUT_MS, &err);
    if (done)
        protobuf_c_message_free_unpacked(done, NULL);
    rpc_stream_free(st);
    if (rc)
        LOG(LOG_WARN, "region=%llu: snapshot to store %llu failed: %s",
            (unsigned long long)m->region_id, (unsigned long long)store_id, err.msg);
    return rc ? -1 : 0;
}

/* One of the SNAPSHOT_SENDERS threads: takes a snapshot message off the transport's queue,
 * streams it, reports how it went. */
static void *snapshot_sender(void *arg)
{
    pthread_setname_np(pthread_self(), "snap-send");
    struct transport *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->snap_head && !t->stopping)
            pthread_cond_wait(&t->snap_cond, &t->mu);
        if (t->stopping)
            break;
        struct queued *q = t->snap_head;
        t->snap_head = q->next;
        if (!t->snap_head)
            t->snap_tail = NULL;
        t->n_snap_queued--;
        pthread_mutex_unlock(&t->mu);

        char addr[128], snap_dir[512];
        int ok = 0;
        if (t->resolve(t->resolve_ctx, q->store_id, addr, sizeof addr) == 0) {
            struct raftstore *counted = count_sending(t, snap_dir, sizeof snap_dir);
            ok = counted && send_snapshot(t, snap_dir, addr, q->store_id, q->msg) == 0;
            uncount_sending(t, counted);
        }
        report_snapshot(t, q->msg, !ok);
        if (!ok)
            report_unreachable(t, q->msg);
        protobuf_c_message_free_unpacked(&q->msg->base, NULL);
        free(q);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static int ensure_stream(struct conn *c)
{
    if (c->stream)
        return 0;
    if (c->t->resolve(c->t->resolve_ctx, c->store_id, c->addr, sizeof c->addr) != 0)
        return -1;
    struct rpc_error err;
    c->stream = rpc_stream_open(c->t->rpc, c->addr, "/tinykvpb.TinyKv/Raft",
                                &raft_serverpb__done__descriptor, 0, &err);
    return c->stream ? 0 : -1;
}

/* Takes every queued message off c's queue (called with t->mu held); the
 * caller reports and frees them. */
static struct queued *take_all(struct conn *c)
{
    struct queued *all = c->head;
    c->head = c->tail = NULL;
    c->n_queued = 0;
    return all;
}

/* Messages that queued up behind a failed send are as stale as the link:
 * report them unreachable and drop them (Raft sends afresh once it hears
 * the store again), so the first messages after a heal are current ones. */
static void drop_queued(struct transport *t, struct queued *q)
{
    while (q) {
        struct queued *next = q->next;
        if (is_snapshot(q->msg))
            report_snapshot(t, q->msg, 1);
        else
            report_unreachable(t, q->msg);
        protobuf_c_message_free_unpacked(&q->msg->base, NULL);
        free(q);
        q = next;
    }
}

/* After a failed send: the next try waits, doubling up to the cap, and gets a new connection
 * at once, not when gRPC's own reconnect backoff for the failed one allows (seconds). */
static int next_backoff(struct conn *c, int backoff_ms)
{
    if (c->addr[0])
        rpc_client_reconnect(c->t->rpc, c->addr);
    return backoff_ms ? (backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2)
                      : BACKOFF_FIRST_MS;
}

/* The loop's send that was left in flight (called busy, without t->mu): waits for it; on
 * failure the stream goes, the store is reported unreachable and what queued behind is dropped.
 * Returns the new backoff. */
static int finish_loop_send(struct conn *c, uint64_t region_id, uint64_t peer_id, int backoff_ms)
{
    struct transport *t = c->t;
    struct rpc_error err;
    if (rpc_stream_finish_send(c->stream, SEND_TIMEOUT_MS, &err) == 0)
        return 0;
    rpc_stream_free(c->stream);
    c->stream = NULL;
    report_unreachable_peer(t, region_id, peer_id);
    pthread_mutex_lock(&t->mu);
    struct queued *stale = take_all(c);
    pthread_mutex_unlock(&t->mu);
    drop_queued(t, stale);
    return next_backoff(c, backoff_ms);
}

static void *sender(void *arg)
{
    pthread_setname_np(pthread_self(), "raft-send");
    struct conn *c = arg;
    struct transport *t = c->t;
    int backoff_ms = 0;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!c->head && !c->pending && !c->broken && !t->stopping)
            pthread_cond_wait(&c->cond, &t->mu);
        if (t->stopping)
            break;
        if (c->pending || c->broken) {
            int pending = c->pending;
            uint64_t region_id = c->pending_region, peer_id = c->pending_peer;
            c->pending = c->broken = 0;
            c->busy = 1;
            pthread_mutex_unlock(&t->mu);
            if (pending) {
                backoff_ms = finish_loop_send(c, region_id, peer_id, backoff_ms);
            } else {
                /* The loop's send failed; its message is queued for a new stream. */
                rpc_stream_free(c->stream);
                c->stream = NULL;
            }
            pthread_mutex_lock(&t->mu);
            c->busy = 0;
            continue;
        }
        c->busy = 1;
        struct queued *q = c->head;
        c->head = q->next;
        if (!c->head)
            c->tail = NULL;
        c->n_queued--;
        pthread_mutex_unlock(&t->mu);

        RaftServerpb__RaftMessage *m = q->msg;
        free(q);
        int ok;
        if (backoff_ms) {
            /* The store was unreachable a moment ago: wait before trying again. */
            sleep_ms(backoff_ms);
        }
        if (ensure_stream(c) != 0) {
            ok = 0;
        } else {
            struct rpc_error err;
            ok = rpc_stream_send(c->stream, &m->base, SEND_TIMEOUT_MS, &err) == 0;
            if (!ok) {
                rpc_stream_free(c->stream);
                c->stream = NULL;
            }
        }
        if (is_snapshot(m))
            report_snapshot(t, m, !ok);
        if (ok) {
            backoff_ms = 0;
        } else {
            report_unreachable(t, m);
            backoff_ms = next_backoff(c, backoff_ms);
        }
        protobuf_c_message_free_unpacked(&m->base, NULL);
        pthread_mutex_lock(&t->mu);
        c->busy = 0;
        if (!ok) {
            struct queued *stale = take_all(c);
            pthread_mutex_unlock(&t->mu);
            drop_queued(t, stale);
            pthread_mutex_lock(&t->mu);
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (c->stream)
        rpc_stream_free(c->stream);
    return NULL;
}

struct transport *transport_new(struct rpc_client *rpc, transport_resolve_fn resolve,
                                void *resolve_ctx)
{
    struct transport *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->rpc = rpc;
    t->resolve = resolve;
    t->resolve_ctx = resolve_ctx;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->snap_cond, NULL);
    for (int i = 0; i < SNAPSHOT_SENDERS; i++) {
        if (pthread_create(&t->snap_threads[i], NULL, snapshot_sender, t) != 0)
            break; /* fewer senders; with none, snapshots are reported failed */
        t->n_snap_threads++;
    }
    return t;
}

void transport_set_raftstore(struct transport *t, struct raftstore *rs)
{
    pthread_mutex_lock(&t->mu);
    t->rs = rs;
    pthread_mutex_unlock(&t->mu);
}

void transport_free(struct transport *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stopping = 1;
    for (struct conn *c = t->conns; c; c = c->next)
        pthread_cond_signal(&c->cond);
    pthread_cond_broadcast(&t->snap_cond);
    pthread_mutex_unlock(&t->mu);
    for (int i = 0; i < t->n_snap_threads; i++)
        pthread_join(t->snap_threads[i], NULL);
    while (t->snap_head) {
        struct queued *q = t->snap_head;
        t->snap_head = q->next;
        protobuf_c_message_free_unpacked(&q->msg->base, NULL);
        free(q);
    }
    pthread_cond_destroy(&t->snap_cond);
    while (t->conns) {
        struct conn *c = t->conns;
        t->conns = c->next;
        pthread_join(c->thread, NULL);
        while (c->head) {
            struct queued *q = c->head;
            c->head = q->next;
            protobuf_c_message_free_unpacked(&q->msg->base, NULL);
            free(q);
        }
        pthread_cond_destroy(&c->cond);
        free(c);
    }
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* Deep copy through the wire format. */
static RaftServerpb__RaftMessage *copy_message(const RaftServerpb__RaftMessage *msg)
{
    size_t len = raft_serverpb__raft_message__get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return NULL;
    raft_serverpb__raft_message__pack(msg, buf);
    RaftServerpb__RaftMessage *copy = raft_serverpb__raft_message__unpack(NULL, len, buf);
    free(buf);
    return copy;
}

/* Sends msg on c's stream from the calling thread when the stream is connected, idle and nothing
 * waits in c's queue (so order is kept); 1 if it is gone (or in flight, the sender then seeing
 * it through), 0 if it must be queued. Called with t->mu held; drops it around the send. */
static int send_now(struct transport *t, struct conn *c, const RaftServerpb__RaftMessage *msg)
{
    if (t->stopping || c->busy || c->head || c->pending || c->broken || !c->stream)
        return 0;
    c->busy = 1;
    pthread_mutex_unlock(&t->mu);
    struct rpc_error err;
    int rc = rpc_stream_try_send(c->stream, &msg->base, &err);
    pthread_mutex_lock(&t->mu);
    c->busy = 0;
    if (rc == 0)
        return 1;
    if (rc == RPC_ERR_PENDING) {
        c->pending = 1;
        c->pending_region = msg->region_id;
        c->pending_peer = msg->to_peer ? msg->to_peer->id : 0;
    } else {
        c->broken = 1; /* the message is queued behind this for a new stream */
    }
    pthread_cond_signal(&c->cond);
    return rc == RPC_ERR_PENDING;
}

void transport_send(void *ctx, uint64_t to_store_id, const RaftServerpb__RaftMessage *msg)
{
    struct transport *t = ctx;
    if (!is_snapshot(msg)) {
        pthread_mutex_lock(&t->mu);
        struct conn *c = t->conns;
        while (c && c->store_id != to_store_id)
            c = c->next;
        int sent = c && send_now(t, c, msg);
        pthread_mutex_unlock(&t->mu);
        if (sent)
            return;
    }
    struct queued *q = malloc(sizeof *q);
    if (!q)
        return;
    q->msg = copy_message(msg);
    q->store_id = to_store_id;
    q->next = NULL;
    if (!q->msg) {
        free(q);
        return;
    }
    pthread_mutex_lock(&t->mu);
    if (is_snapshot(q->msg)) {
        if (t->stopping || t->n_snap_threads == 0 || t->n_snap_queued >= SNAPSHOT_QUEUE_LIMIT) {
            pthread_mutex_unlock(&t->mu);
            report_snapshot(t, q->msg, 1); /* or the leader waits for it forever */
            protobuf_c_message_free_unpacked(&q->msg->base, NULL);
            free(q);
            return;
        }
        if (t->snap_tail)
            t->snap_tail->next = q;
        else
            t->snap_head = q;
        t->snap_tail = q;
        t->n_snap_queued++;
        pthread_cond_signal(&t->snap_cond);
        pthread_mutex_unlock(&t->mu);
        return;
    }
    struct conn *c;
    for (c = t->conns; c; c = c->next)
        if (c->store_id == to_store_id)
            break;
    if (!c && !t->stopping) {
        c = calloc(1, sizeof *c);
        if (c) {
            c->t = t;
            c->store_id = to_store_id;
            pthread_cond_init(&c->cond, NULL);
            if (pthread_create(&c->thread, NULL, sender, c) != 0) {
                pthread_cond_destroy(&c->cond);
                free(c);
                c = NULL;
            } else {
                c->next = t->conns;
                t->conns = c;
            }
        }
    }
    if (!c || t->stopping || c->n_queued >= QUEUE_LIMIT) {
        pthread_mutex_unlock(&t->mu);
        /* A dropped snapshot must be reported, or the leader waits for it forever. */
        if (is_snapshot(q->msg))
            report_snapshot(t, q->msg, 1);
        protobuf_c_message_free_unpacked(&q->msg->base, NULL);
        free(q);
        return;
    }
    if (c->tail)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    c->n_queued++;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&t->mu);
}

/* raft_service.c — receives Raft messages and chunked snapshots from other stores and hands them to
 * the raftstore. */
#include "store/raft_service.h"

#include <stdlib.h>
#include <string.h>

#include "proto/log.h"
#include "store/snapshot_transfer.h"

/* Per-call state of a Snapshot stream: the first chunk's message and the file being written. */
struct snap_upload {
    RaftServerpb__RaftMessage *msg; /* owned (unpacked copy of the first chunk's) */
    struct snapshot_recv recv;      /* open while receiving */
    int receiving;
    int failed;
    int busy; /* refused: RAFT_SERVICE_MAX_RECEIVING others were coming in, or this one */
};

static void raft_message(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    (void)call;
    const RaftServerpb__RaftMessage *m = (const RaftServerpb__RaftMessage *)msg;
    /* A snapshot comes only on the Snapshot stream, after its file: one here has none. */
    if (m->message && m->message->msg_type == ERAFTPB__MESSAGE_TYPE__MsgSnapshot)
        return;
    raftstore_step(arg, m);
}

static void raft_end(struct rpc_call *call, int ok, void *arg)
{
    (void)arg;
    if (!ok) {
        rpc_call_finish(call, RPC_CANCELLED, NULL);
        return;
    }
    RaftServerpb__Done done = RAFT_SERVERPB__DONE__INIT;
    rpc_call_reply(call, &done.base);
}

static void upload_free(struct raftstore *rs, struct snap_upload *u)
{
    if (!u)
        return;
    if (rs)
        raftstore_snapshot_count_add(rs, 1, -1);
    if (u->receiving)
        snapshot_recv_abort(&u->recv); /* cut off: the half-written file goes */
    if (u->msg)
        protobuf_c_message_free_unpacked(&u->msg->base, NULL);
    free(u);
}

static void snapshot_chunk(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    const RaftServerpb__SnapshotChunk *chunk = (const RaftServerpb__SnapshotChunk *)msg;
    struct snap_upload *u = rpc_call_user(call);
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u)
            return;
        uint32_t sending = 0, receiving = 0, applying = 0;
        if (arg) {
            raftstore_snapshot_count_add(arg, 1, 1);
            raftstore_snapshot_counts(arg, &sending, &receiving, &applying);
        }
        u->busy = receiving > RAFT_SERVICE_MAX_RECEIVING;
        u->failed = u->busy || !arg; /* no raftstore: nowhere to put a snapshot */
        rpc_call_set_user(call, u);
    }
    if (u->failed)
        return;
    if (chunk->message && !u->msg) {
        size_t len = raft_serverpb__raft_message__get_packed_size(chunk->message);
        uint8_t *buf = malloc(len ? len : 1);
        if (buf) {
            raft_serverpb__raft_message__pack(chunk->message, buf);
            u->msg = raft_serverpb__raft_message__unpack(NULL, len, buf);
            free(buf);
        }
        int rc = u->msg ? snapshot_recv_begin(arg, u->msg, &u->recv) : -1;
        u->receiving = rc == 0;
        u->busy = rc == -2;
        u->failed = rc != 0;
        return;
    }
    if (chunk->data.len &&
        (!u->receiving || snapshot_recv_append(&u->recv, chunk->data.data, chunk->data.len) != 0))
        u->failed = 1;
}

static void snapshot_end(struct rpc_call *call, int ok, void *arg)
{
    struct raftstore *rs = arg;
    struct snap_upload *u = rpc_call_user(call);
    rpc_call_set_user(call, NULL);
    if (!ok) {
        upload_free(rs, u);
        rpc_call_finish(call, RPC_CANCELLED, NULL);
        return;
    }
    if (u && u->busy) {
        upload_free(rs, u);
        rpc_call_finish(call, RPC_UNAVAILABLE, "too many snapshots coming in: try again");
        return;
    }
    if (!u || u->failed || !u->receiving) {
        upload_free(rs, u);
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "incomplete or malformed snapshot stream");
        return;
    }
    /* The file must be whole and match its manifest before the message naming it is stepped;
     * a crash before this leaves only a .tmp file, removed at start. */
    u->receiving = 0;
    if (snapshot_recv_finish(&u->recv) != 0) {
        LOG(LOG_WARN, "region=%llu: snapshot refused: %s", (unsigned long long)u->msg->region_id,
            u->recv.w.errmsg);
        upload_free(rs, u);
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "snapshot file does not match its manifest");
        return;
    }
    raftstore_step(rs, u->msg);
    LOG(LOG_INFO, "region=%llu: received a snapshot file of %llu bytes",
        (unsigned long long)u->msg->region_id, (unsigned long long)u->recv.mf.size);
    upload_free(rs, u);
    RaftServerpb__Done done = RAFT_SERVERPB__DONE__INIT;
    rpc_call_reply(call, &done.base);
}

size_t raft_service_methods(struct raftstore *rs, struct rpc_method *out)
{
    out[0] = (struct rpc_method){.name = "/tinykvpb.TinyKv/Raft",
                                 .kind = RPC_CLIENT_STREAM,
                                 .request = &raft_serverpb__raft_message__descriptor,
                                 .on_message = raft_message,
                                 .on_end = raft_end,
                                 .arg = rs};
    out[1] = (struct rpc_method){.name = "/tinykvpb.TinyKv/Snapshot",
                                 .kind = RPC_CLIENT_STREAM,
                                 .request = &raft_serverpb__snapshot_chunk__descriptor,
                                 .on_message = snapshot_chunk,
                                 .on_end = snapshot_end,
                                 .arg = rs,
                                 /* chunk writes and the file's fsync at the end */
                                 .blocking = 1};
    return 2;
}

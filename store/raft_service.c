/* raft_service.c — receives Raft messages and chunked snapshots from other stores and hands them to
 * the raftstore. */
#include "store/raft_service.h"

#include <stdlib.h>
#include <string.h>

#include "proto/log.h"

/* Per-call state of a Snapshot stream: the first chunk's message and the data so far. */
struct snap_upload {
    RaftServerpb__RaftMessage *msg; /* owned (unpacked copy of the first chunk's) */
    uint8_t *data;
    size_t len, cap;
    int failed;
    int busy; /* refused: RAFT_SERVICE_MAX_RECEIVING others were coming in */
};

static void raft_message(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    (void)call;
    raftstore_step(arg, (const RaftServerpb__RaftMessage *)msg);
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
    raftstore_snapshot_count_add(rs, 1, -1);
    if (u->msg)
        protobuf_c_message_free_unpacked(&u->msg->base, NULL);
    free(u->data);
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
        raftstore_snapshot_count_add(arg, 1, 1);
        uint32_t sending, receiving, applying;
        raftstore_snapshot_counts(arg, &sending, &receiving, &applying);
        u->busy = u->failed = receiving > RAFT_SERVICE_MAX_RECEIVING;
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
        if (!u->msg)
            u->failed = 1;
    }
    if (chunk->data.len) {
        if (u->len + chunk->data.len > RAFT_SERVICE_MAX_SNAPSHOT_BYTES) {
            u->failed = 1;
            return;
        }
        if (u->len + chunk->data.len > u->cap) {
            size_t cap = u->cap ? u->cap : 1 << 20;
            while (cap < u->len + chunk->data.len)
                cap *= 2;
            uint8_t *grown = realloc(u->data, cap);
            if (!grown) {
                u->failed = 1;
                return;
            }
            u->data = grown;
            u->cap = cap;
        }
        memcpy(u->data + u->len, chunk->data.data, chunk->data.len);
        u->len += chunk->data.len;
    }
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
    if (!u || u->failed || !u->msg || !u->msg->message || !u->msg->message->snapshot) {
        upload_free(rs, u);
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "incomplete or oversized snapshot stream");
        return;
    }
    /* Lend the reassembled data to the message for the copy raftstore_step makes. */
    Eraftpb__Snapshot *snap = u->msg->message->snapshot;
    ProtobufCBinaryData saved = snap->data;
    snap->data = (ProtobufCBinaryData){u->len, u->data};
    raftstore_step(rs, u->msg);
    snap->data = saved;
    LOG(LOG_INFO, "region=%llu: received a snapshot of %zu bytes",
        (unsigned long long)u->msg->region_id, u->len);
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
                                 .arg = rs};
    return 2;
}

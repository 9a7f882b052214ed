/* snapshot_transfer.c — the manifest of a file snapshot, its names, chunked send and receive. */
#include "store/snapshot_transfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/raftstore_internal.h"

#define COPY_CHUNK_BYTES (1u << 20)

int snapshot_manifest_decode(const uint8_t *data, size_t len, uint64_t index,
                             struct snapshot_manifest *out)
{
    RaftServerpb__RaftSnapshotData *sd = raft_serverpb__raft_snapshot_data__unpack(NULL, len, data);
    int rc = -1;
    if (sd && sd->region && sd->meta && sd->meta->n_cf_files == 1) {
        out->region_id = sd->region->id;
        out->index = index;
        out->size = sd->meta->cf_files[0]->size;
        out->crc = sd->meta->cf_files[0]->checksum;
        rc = 0;
    }
    if (sd)
        raft_serverpb__raft_snapshot_data__free_unpacked(sd, NULL);
    return rc;
}

int snapshot_manifest_of(const RaftServerpb__RaftMessage *m, struct snapshot_manifest *out)
{
    if (!m->message || !m->message->snapshot || !m->message->snapshot->metadata)
        return -1;
    const Eraftpb__Snapshot *s = m->message->snapshot;
    return snapshot_manifest_decode(s->data.data, s->data.len, s->metadata->index, out);
}

void snapshot_gen_name(uint64_t region_id, char out[96])
{
    snprintf(out, 96, "gen_%llu.snap", (unsigned long long)region_id);
}

void snapshot_rcv_name(const struct snapshot_manifest *mf, char out[96])
{
    snprintf(out, 96, "rcv_%llu_%llu_%08x.snap", (unsigned long long)mf->region_id,
             (unsigned long long)mf->index, mf->crc);
}

const char *snapshot_dir(const struct raftstore *rs)
{
    return rs->cfg.snap_dir;
}

int snapshot_send_open(const char *snap_dir, const RaftServerpb__RaftMessage *m,
                       struct snap_file_reader *r)
{
    struct snapshot_manifest mf;
    char name[96];
    if (snapshot_manifest_of(m, &mf) != 0) {
        memset(r, 0, sizeof *r);
        r->fd = -1;
        snprintf(r->errmsg, sizeof r->errmsg, "not a file snapshot");
        return -1;
    }
    snapshot_gen_name(mf.region_id, name);
    /* A newer generation may have replaced the file since: its checksum differs, the send
     * fails, and Raft asks for the snapshot again. */
    return snap_file_open(r, snap_dir, name, mf.size, mf.crc) == SNAP_FILE_OK ? 0 : -1;
}

int snapshot_recv_begin(struct raftstore *rs, const RaftServerpb__RaftMessage *m,
                        struct snapshot_recv *r)
{
    memset(r, 0, sizeof *r);
    r->w.fd = -1;
    char name[96];
    if (snapshot_manifest_of(m, &r->mf) != 0)
        return -1;
    snapshot_rcv_name(&r->mf, name);
    int rc = snap_file_create(&r->w, snapshot_dir(rs), name, 1);
    return rc == SNAP_FILE_OK ? 0 : rc == SNAP_FILE_ERR_BUSY ? -2 : -1;
}

int snapshot_recv_append(struct snapshot_recv *r, const void *data, size_t len)
{
    if (r->w.size + len > r->mf.size)
        return -1; /* more than the manifest promised: not this snapshot */
    return snap_file_append(&r->w, data, len) == SNAP_FILE_OK ? 0 : -1;
}

int snapshot_recv_finish(struct snapshot_recv *r)
{
    return snap_file_finish(&r->w, 1, r->mf.size, r->mf.crc, NULL, NULL) == SNAP_FILE_OK ? 0 : -1;
}

void snapshot_recv_abort(struct snapshot_recv *r)
{
    snap_file_abort(&r->w);
}

int snapshot_copy(struct raftstore *from, struct raftstore *to, const RaftServerpb__RaftMessage *m,
                  uint64_t cut_at_bytes)
{
    struct snap_file_reader in;
    struct snapshot_recv out;
    if (snapshot_send_open(snapshot_dir(from), m, &in) != 0)
        return -1;
    uint8_t *chunk = malloc(COPY_CHUNK_BYTES);
    int rc = chunk && snapshot_recv_begin(to, m, &out) == 0 ? 0 : -1;
    if (rc) {
        free(chunk);
        snap_file_close(&in);
        return -1;
    }
    size_t n;
    uint64_t copied = 0;
    do {
        size_t want = COPY_CHUNK_BYTES;
        if (cut_at_bytes - copied < want)
            want = (size_t)(cut_at_bytes - copied);
        rc = snap_file_read(&in, chunk, want, &n) == SNAP_FILE_OK ? 0 : -1;
        if (!rc && n)
            rc = snapshot_recv_append(&out, chunk, n);
        copied += n;
        if (!rc && n && copied >= cut_at_bytes && copied < out.mf.size)
            rc = -1; /* cut off */
    } while (!rc && n);
    free(chunk);
    snap_file_close(&in);
    if (rc) {
        snapshot_recv_abort(&out);
        return -1;
    }
    return snapshot_recv_finish(&out);
}

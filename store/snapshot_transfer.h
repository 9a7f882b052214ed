/* snapshot_transfer.h — what travels for a file snapshot: the manifest in the Raft message, the
 * file names on each side, and the chunked send and receive (internal to store/). */
#ifndef TINYKV_STORE_SNAPSHOT_TRANSFER_H
#define TINYKV_STORE_SNAPSHOT_TRANSFER_H

/*
 * A snapshot's eraftpb.Snapshot.data is a small RaftSnapshotData: the region,
 * file_size, and meta.cf_files[0] = {cf "all", size, checksum} of one file
 * (store/snap_file.h) in the store's snapshot directory. The leader's file is
 * gen_<region>.snap (each generation replaces the region's previous one); a
 * receiver writes rcv_<region>_<index>_<crc>.snap, checked against the
 * manifest before the message referencing it is stepped, and removed once
 * applied. Callers: snapshot.c (generate, apply), transport.c (send),
 * raft_service.c (receive), the in-process test transport (both).
 */

#include <stddef.h>
#include <stdint.h>

#include "raft_serverpb.pb-c.h"
#include "store/raftstore.h"
#include "store/snap_file.h"

struct snapshot_manifest {
    uint64_t region_id, index, size;
    uint32_t crc;
};

/* Reads the manifest of a snapshot message (or of a snapshot's data); 0 or -1 when it is not
 * a file snapshot. */
int snapshot_manifest_of(const RaftServerpb__RaftMessage *m, struct snapshot_manifest *out);
int snapshot_manifest_decode(const uint8_t *data, size_t len, uint64_t index,
                             struct snapshot_manifest *out);

/* File names (NUL-terminated, at most 96 bytes). */
void snapshot_gen_name(uint64_t region_id, char out[96]);
void snapshot_rcv_name(const struct snapshot_manifest *mf, char out[96]);

/* The store's snapshot directory (rs->cfg.snap_dir). */
const char *snapshot_dir(const struct raftstore *rs);

/* snapshot_send_open opens the leader's file for m in snap_dir (snapshot_dir of its store), checked
 * against its manifest; read it with snap_file_read, close with snap_file_close. 0, or -1 with
 * r->errmsg set. */
int snapshot_send_open(const char *snap_dir, const RaftServerpb__RaftMessage *m,
                       struct snap_file_reader *r);

/* A receive in progress: begin on the first chunk's message, append each data chunk, then
 * finish (checked against the manifest; the file takes its name) or abort. begin answers -2
 * when the same snapshot is already coming in on another stream. */
struct snapshot_recv {
    struct snap_file_writer w;
    struct snapshot_manifest mf;
};
int snapshot_recv_begin(struct raftstore *rs, const RaftServerpb__RaftMessage *m,
                        struct snapshot_recv *r);
int snapshot_recv_append(struct snapshot_recv *r, const void *data, size_t len);
int snapshot_recv_finish(struct snapshot_recv *r);
void snapshot_recv_abort(struct snapshot_recv *r);

/* snapshot_copy moves m's file from the leader's store `from` to store `to` in 1 MiB chunks,
 * as the Snapshot stream would (the in-process test transport); 0 or -1. With cut_at_bytes
 * below the file's size the transfer stops there, as a stream cut off would: the receiver's
 * half-written file is removed and -1 returned. */
int snapshot_copy(struct raftstore *from, struct raftstore *to, const RaftServerpb__RaftMessage *m,
                  uint64_t cut_at_bytes);

#endif

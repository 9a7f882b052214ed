/* raftstore_metrics.c — looks up the raftstore's series in the process's metrics registry. */
#include "store/raftstore_metrics.h"

#include <string.h>

void raftstore_metrics_init(struct raftstore_metrics *rm, struct metrics *m)
{
    memset(rm, 0, sizeof *rm);
    if (!m)
        return;
    rm->proposals = metrics_counter(m, "tinykv_raft_proposals_total",
                                    "Commands proposed to Raft by this store's leaders.", NULL);
    rm->entries_appended =
        metrics_counter(m, "tinykv_raft_entries_appended_total",
                        "Raft log entries written to the raft DB (leaders and followers).", NULL);
    rm->entries_committed = metrics_counter(m, "tinykv_raft_entries_committed_total",
                                            "Raft log entries handed over as committed.", NULL);
    rm->entries_applied = metrics_counter(m, "tinykv_raft_entries_applied_total",
                                          "Committed entries applied to the kv DB.", NULL);
    rm->raftdb_write_batch_bytes = metrics_histogram(
        m, "tinykv_raftdb_write_batch_bytes",
        "Size of the store loop's synced raft-DB write batch (every ready peer of one round).",
        NULL, METRICS_SIZE_BUCKETS, METRICS_SIZE_BUCKET_COUNT);
    rm->raftdb_sync_seconds = metrics_histogram(
        m, "tinykv_raftdb_sync_duration_seconds",
        "Time of the store loop's synced raft-DB write (the write and its fsync).", NULL,
        METRICS_LATENCY_BUCKETS, METRICS_LATENCY_BUCKET_COUNT);
    rm->apply_seconds =
        metrics_histogram(m, "tinykv_apply_duration_seconds",
                          "Time to apply one peer's committed entries of one Ready to the kv DB.",
                          NULL, METRICS_LATENCY_BUCKETS, METRICS_LATENCY_BUCKET_COUNT);
    rm->pending_reads =
        metrics_gauge(m, "tinykv_raft_pending_reads",
                      "Linearizable reads waiting for ReadIndex or for apply, all regions.", NULL);
    static const char reads[] = "Linearizable reads accepted by this store's leaders, by how "
                                "leadership was confirmed: the leader lease or a ReadIndex round.";
    rm->reads_lease = metrics_counter(m, "tinykv_raft_reads_total", reads, "confirmed=\"lease\"");
    rm->reads_read_index =
        metrics_counter(m, "tinykv_raft_reads_total", reads, "confirmed=\"read_index\"");
    static const char snaps[] = "Raft snapshots sent to and received from other stores.";
    static const char bytes[] = "Bytes of Raft snapshot data sent and received.";
    rm->snapshots_sent = metrics_counter(m, "tinykv_snapshots_total", snaps, "direction=\"sent\"");
    rm->snapshots_received =
        metrics_counter(m, "tinykv_snapshots_total", snaps, "direction=\"received\"");
    rm->snapshot_bytes_sent =
        metrics_counter(m, "tinykv_snapshot_bytes_total", bytes, "direction=\"sent\"");
    rm->snapshot_bytes_received =
        metrics_counter(m, "tinykv_snapshot_bytes_total", bytes, "direction=\"received\"");
    static const char checks[] =
        "Region consistency checks compared on this store's replicas, by result (a mismatch: this "
        "replica's data differs from the leader's at the same index).";
    rm->consistency_consistent =
        metrics_counter(m, "tinykv_consistency_checks_total", checks, "result=\"consistent\"");
    rm->consistency_mismatch =
        metrics_counter(m, "tinykv_consistency_checks_total", checks, "result=\"mismatch\"");
    static const char hib[] = "Peers of this store that fell asleep (an idle region stops "
                              "ticking) and that woke, since it started.";
    rm->hibernate_sleeps =
        metrics_counter(m, "tinykv_raft_hibernate_total", hib, "transition=\"sleep\"");
    rm->hibernate_wakes =
        metrics_counter(m, "tinykv_raft_hibernate_total", hib, "transition=\"wake\"");
    rm->hibernated_peers = metrics_gauge(m, "tinykv_raft_hibernated_peers",
                                         "Peers of this store asleep now (not ticked).", NULL);
}

/* raftstore_metrics.h — the series the raftstore counts in (internal to store/). */
#ifndef TINYKV_STORE_RAFTSTORE_METRICS_H
#define TINYKV_STORE_RAFTSTORE_METRICS_H

/*
 * What it owns: nothing but pointers into a metrics registry, looked up once
 * (raftstore_metrics_init) so the store loop only does atomic adds.
 * Who calls it: node.c fills one and hands it to the raftstore through
 * raftstore_config.metrics; the raftstore's files count with RAFTSTORE_METRIC.
 * What it must never do: take a lock, or label a series with a region id.
 */

#include "metrics/metrics.h"

struct raftstore_metrics {
    struct metrics_counter *proposals;        /* commands proposed to Raft (data, admin, conf) */
    struct metrics_counter *entries_appended; /* log entries persisted to the raft DB */
    struct metrics_counter *entries_committed;
    struct metrics_counter *entries_applied;
    struct metrics_histogram *raftdb_write_batch_bytes; /* one synced write per loop round */
    struct metrics_histogram *raftdb_sync_seconds;
    struct metrics_histogram *apply_seconds; /* one peer's committed entries of one Ready */
    struct metrics_gauge *pending_reads;     /* ReadIndex reads waiting, all peers */
    struct metrics_counter *reads_lease, *reads_read_index; /* how leaders confirmed reads */
    struct metrics_counter *snapshots_sent, *snapshots_received;
    struct metrics_counter *snapshot_bytes_sent, *snapshot_bytes_received;
    /* Consistency checks this store's replicas compared with the leader's hash (consistency.c). */
    struct metrics_counter *consistency_consistent, *consistency_mismatch;
    /* Hibernation (hibernate.c): peers that fell asleep and woke, and how many sleep now. */
    struct metrics_counter *hibernate_sleeps, *hibernate_wakes;
    struct metrics_gauge *hibernated_peers;
};

/* raftstore_metrics_init looks every series up in `m` (borrowed; NULL leaves them NULL, which
 * counts nothing). */
void raftstore_metrics_init(struct raftstore_metrics *rm, struct metrics *m);

/* The series `field` of raftstore `rs`'s metrics, or NULL when it was given none. */
#define RAFTSTORE_METRIC(rs, field) ((rs)->cfg.metrics ? (rs)->cfg.metrics->field : NULL)

#endif

/* node.h — one store in cluster mode: identity, bootstrap, and the wiring of raftstore, transport,
 * scheduler link and gRPC service. */
#ifndef TINYKV_STORE_NODE_H
#define TINYKV_STORE_NODE_H

/*
 * What it owns: everything a cluster-mode tinykv-server runs — both RocksDB
 * instances under the data directory, the raftstore, the transport, the
 * scheduler link, the MVCC engine and the gRPC server.
 * Who calls it: tinykv-server's main (and tests that want a real store in
 * process).
 * What it must never do: start serving before the store knows its id and
 * its regions; hang at start-up when the scheduler is unreachable (it fails
 * with a message instead).
 *
 * Start-up: the store id lives in the kv DB (StoreIdent); a new store asks
 * the scheduler for one. A store with no regions in a cluster that is not
 * bootstrapped yet creates the first region ["", "") with itself as the only
 * peer and bootstraps the cluster; the scheduler's replica checker then adds
 * peers on the other stores, which receive them as snapshots.
 */

#include <stddef.h>
#include <stdint.h>

struct node;
struct metrics;
struct raftstore;

struct node_config {
    const char *addr;           /* listen address, HOST:PORT */
    const char *advertise_addr; /* what other stores dial (NULL: addr) */
    const char *data_dir;
    const char *scheduler; /* HOST:PORT */
    int tick_ms;           /* Raft base tick (default 100) */
    int store_heartbeat_ms;
    int request_timeout_ms; /* how long a request waits for Raft (default 5000) */
    /* Split check (raftstore_config's meanings; 0: TiKV's defaults). */
    uint64_t region_max_size, region_split_size, region_max_keys, region_split_keys;
    int split_check_ms; /* how often a leader looks (default 10000) */
    /* Hibernation (raftstore_config's meanings): ticks of idleness before a region sleeps (0:
     * the election timeout; negative: never) and an asleep leader's report interval in ticks
     * (0: 100). */
    int hibernate_ticks, idle_region_heartbeat_ticks;
    /* Writes that add data are refused (DiskFull) while the data directory has no more free
     * space than this (0: never); see server/disk_guard.h. */
    uint64_t reserve_space_bytes;
    struct metrics *metrics; /* borrowed, outlives the node; NULL counts nothing */
};

/* node_start brings the store up; returns 0, or -1 with the reason in errbuf. */
int node_start(const struct node_config *cfg, struct node **out, char *errbuf, size_t errbuf_len);
void node_stop(struct node *n);

uint64_t node_store_id(const struct node *n);

/* The node's raftstore (borrowed until node_stop), for read-only looks such as raftstore_peers. */
struct raftstore *node_raftstore(struct node *n);

#endif

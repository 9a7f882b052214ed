/* test_cluster.h — an in-process cluster of raftstores over a filterable, delaying in-memory
 * transport. */
#ifndef TINYKV_TESTS_TEST_CLUSTER_H
#define TINYKV_TESTS_TEST_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "store/raftstore.h"
#include "store/storage.h"

#define TEST_CLUSTER_MAX_STORES 8
#define TEST_CLUSTER_SCHEDULER_FIRST_ID 1000

struct test_cluster;

struct test_cluster_options {
    int n_stores;
    /* Stores 1..n_region_peers hold region 1 from the start (others join by
     * membership changes). */
    int n_region_peers;
    uint64_t raft_log_gc_count_limit; /* 0: the raftstore default */
    uint64_t seed;
    /* Stopping a store models a machine crash: its DBs lose every write
     * after their last synced one (store/engine.h engine_close_crashed). */
    int crash_model;
    /* A real scheduler in the process (gRPC on loopback), bootstrapped with
     * region 1; every store talks to it through its real scheduler link
     * (store/pd_worker.c): heartbeats, operators, AskSplit. It hands out ids
     * from TEST_CLUSTER_SCHEDULER_FIRST_ID on; smaller ones stay the tests'. */
    int with_scheduler;
    /* Split check knobs (raftstore_config; 0: its defaults). */
    uint64_t region_max_size, region_split_size;
    int split_check_ticks;
};

/* Creates and starts the cluster in a fresh temporary directory. */
struct test_cluster *test_cluster_new(const struct test_cluster_options *opts);
/* Stops every store and removes the directory. */
void test_cluster_free(struct test_cluster *c);

/* Stop (as a crash: nothing flushed beyond what RocksDB has; with crash_model, nothing
 * past the last sync) and restart a store (1-based id). */
void test_cluster_stop_store(struct test_cluster *c, int store);
void test_cluster_start_store(struct test_cluster *c, int store);

/* Network faults. Partition: stores in different groups cannot talk. */
void test_cluster_partition(struct test_cluster *c, const int *group_a, size_t n_a,
                            const int *group_b, size_t n_b);
void test_cluster_heal(struct test_cluster *c);
/* Drop this per-mille of messages and delay each by up to max_delay_ms (reordering them). */
void test_cluster_set_unreliable(struct test_cluster *c, int drop_per_mille, int max_delay_ms);
/* While on, every snapshot message is lost (and reported as failed, as the gRPC transport does). */
void test_cluster_drop_snapshots(struct test_cluster *c, int on);
/* The next n (> 0) snapshot transfers stop halfway through the file, as a Snapshot stream cut
 * off would (the receiver removes the half file; the sender hears of the failure). Returns how
 * many transfers were cut so far (n <= 0 only asks). */
int test_cluster_cut_snapshots(struct test_cluster *c, int n);

/* Requests against region 1 that find the leader and retry until timeout_ms.
 * test_cluster_get returns 0 and a malloc'd value, STORAGE_ERR_NOT_FOUND, or -1 on timeout. */
int test_cluster_put(struct test_cluster *c, const char *key, const char *value, int timeout_ms);
int test_cluster_delete(struct test_cluster *c, const char *key, int timeout_ms);
int test_cluster_get(struct test_cluster *c, const char *key, char **value, int timeout_ms);

/* Waits (up to timeout_ms) until store has applied key=want locally (want NULL: the key is
 * gone); 1 if so, else 0. */
int test_cluster_wait_local(struct test_cluster *c, int store, const char *key, const char *want,
                            int timeout_ms);

/* Reads key straight from a store's kv DB (no Raft): what that replica has applied.
 * Returns a malloc'd value or NULL. */
char *test_cluster_local_get(struct test_cluster *c, int store, const char *key);

/* The store whose peer leads region 1, waiting up to timeout_ms; 0 if none. */
int test_cluster_leader(struct test_cluster *c, int timeout_ms);
struct raftstore *test_cluster_store(struct test_cluster *c, int store);
/* The Storage (cluster mode) of a running store, for requests aimed at one store. */
struct storage *test_cluster_storage(struct test_cluster *c, int store);
/* Info of region 1's peer on a store; 0 if the store has none. */
int test_cluster_peer_info(struct test_cluster *c, int store, struct raftstore_peer_info *out);
/* Bytes of raft log (count of entries) a store keeps for region 1. */
uint64_t test_cluster_log_entries(struct test_cluster *c, int store);

/* ---- many regions ---- */

/* Info of region_id's peer on a store; 0 if the store has none. */
int test_cluster_region_peer_info(struct test_cluster *c, int store, uint64_t region_id,
                                  struct raftstore_peer_info *out);
/* The region holding user key `key`, as the running stores' range indexes know it
 * (the newest version wins); 0 if none. */
uint64_t test_cluster_region_of_key(struct test_cluster *c, const char *key);
/* A store's copy of region_id (owned: region_free); 0, or -1 if it has none. */
int test_cluster_region(struct test_cluster *c, int store, uint64_t region_id, struct region *out);
/* The store whose peer leads region_id, waiting up to timeout_ms; 0 if none. */
int test_cluster_region_leader(struct test_cluster *c, uint64_t region_id, int timeout_ms);
/* Splits the region holding `key` at `key` (new region new_region_id, peer ids
 * new_region_id * 100 + store), through its leader, retrying until the split
 * applied there or timeout_ms passed; 0 or -1. Puts and gets route by key. */
int test_cluster_split(struct test_cluster *c, const char *key, uint64_t new_region_id,
                       int timeout_ms);

/* with_scheduler: asks the scheduler to split the region holding `key` there
 * (pd_cluster_split_regions, as POST /regions/split does) and waits until the
 * region's leader has split; 0 or -1. test_cluster_scheduler: the scheduler
 * (NULL without one), for look-ups of what it learned. */
struct pd_cluster;
int test_cluster_scheduler_split(struct test_cluster *c, const char *key, int timeout_ms);
struct pd_cluster *test_cluster_scheduler(struct test_cluster *c);
/* with_scheduler: how many regions the scheduler knows (0 without one). */
size_t test_cluster_region_count(struct test_cluster *c);

/* Membership changes of region_id through its leader, retried until they take effect (the
 * store has / no longer has a peer of it) or time out; 0 or -1. */
int test_cluster_region_add_peer(struct test_cluster *c, uint64_t region_id, int store,
                                 uint64_t peer_id, int timeout_ms);
int test_cluster_region_remove_peer(struct test_cluster *c, uint64_t region_id, int store,
                                    int timeout_ms);

/* Membership changes through region 1's leader, retried until they take effect or time out. */
int test_cluster_add_peer(struct test_cluster *c, int store, uint64_t peer_id, int timeout_ms);
int test_cluster_remove_peer(struct test_cluster *c, int store, int timeout_ms);
int test_cluster_transfer_leader(struct test_cluster *c, int to_store, int timeout_ms);

#endif

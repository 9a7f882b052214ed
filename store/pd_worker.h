/* pd_worker.h — a store's link to the scheduler: identity, bootstrap, address lookup and heartbeats
 * (internal to store/). */
#ifndef TINYKV_STORE_PD_WORKER_H
#define TINYKV_STORE_PD_WORKER_H

/*
 * What it owns: the schedulerpb calls a store makes, a cache of store
 * addresses, and one thread that keeps the RegionHeartbeat stream open,
 * sends queued region reports and store heartbeats, and hands operators from
 * the scheduler (add/remove peer, transfer leader) to the raftstore.
 * Who calls it: tinykv-server's main at start-up (synchronous calls), the
 * raftstore through raftstore_pd_ops (region_heartbeat only queues), the
 * transport through pd_worker_resolve.
 * What it must never do: block the raftstore's loop thread; wait on the
 * scheduler without a deadline.
 */

#include <stddef.h>
#include <stdint.h>

#include "proto/rpc.h"
#include "store/raftstore.h"
#include "store/region.h"

enum {
    PD_WORKER_OK = 0,
    PD_WORKER_ERR_UNAVAILABLE = 5000, /* the scheduler did not answer in time */
    PD_WORKER_ERR_ALREADY_BOOTSTRAPPED,
    PD_WORKER_ERR_NOT_BOOTSTRAPPED,
    PD_WORKER_ERR_REFUSED, /* the scheduler answered with another error; see errmsg */
};

struct pd_worker;

/* rpc (borrowed) carries the calls to the scheduler at pd_addr (copied). */
struct pd_worker *pd_worker_new(struct rpc_client *rpc, const char *pd_addr);
/* pd_worker_stop joins the heartbeat thread: no operator reaches the
 * raftstore after it returns, while reports and address look-ups still may
 * be called (until pd_worker_free, which comes after the raftstore and the
 * transport are gone). pd_worker_free stops it too. */
void pd_worker_stop(struct pd_worker *w);
void pd_worker_free(struct pd_worker *w);
const char *pd_worker_errmsg(const struct pd_worker *w);

/* Start-up calls; each returns 0 or PD_WORKER_ERR_*. */
int pd_worker_connect(struct pd_worker *w, int timeout_ms); /* GetMembers: learns the cluster id */
uint64_t pd_worker_cluster_id(const struct pd_worker *w);
int pd_worker_alloc_id(struct pd_worker *w, uint64_t *id);
int pd_worker_is_bootstrapped(struct pd_worker *w, int *bootstrapped);
int pd_worker_bootstrap(struct pd_worker *w, uint64_t store_id, const char *store_addr,
                        const struct region *region);
int pd_worker_put_store(struct pd_worker *w, uint64_t store_id, const char *store_addr);

/* transport_resolve_fn: the address of a store, cached after the first lookup. */
int pd_worker_resolve(void *ctx, uint64_t store_id, char *addr, size_t len);

/* raftstore_pd_ops for the raftstore (ctx is the worker). */
void pd_worker_region_heartbeat(void *ctx, const struct raftstore_region_report *report);
void pd_worker_peer_destroyed(void *ctx, uint64_t region_id, uint64_t peer_id);
/* raftstore_pd_ops.ask_split: queued; the heartbeat thread asks AskSplit and splits. */
void pd_worker_ask_split(void *ctx, uint64_t region_id, uint64_t version, const void *key,
                         size_t key_len);

/* pd_worker_set_metrics counts heartbeats and their failures in `m` (borrowed, outlives the
 * worker): tinykv_pd_heartbeats_total{kind}, tinykv_pd_heartbeat_failures_total{kind} (kind
 * "store" or "region") and tinykv_pd_stream_failures_total. Call before pd_worker_start. */
struct metrics;
void pd_worker_set_metrics(struct pd_worker *w, struct metrics *m);

/* Starts the heartbeat thread for store_id; operators go to rs. Store
 * heartbeats report the capacity and free space of the file system holding
 * data_dir (copied). */
int pd_worker_start(struct pd_worker *w, struct raftstore *rs, uint64_t store_id,
                    const char *store_addr, const char *data_dir, int store_heartbeat_ms);

#endif

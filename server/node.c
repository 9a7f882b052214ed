/* node.c — starting and stopping a cluster-mode store: identity, bootstrap, wiring. */
#include "server/node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client.h"
#include "mvcc/mvcc.h"
#include "proto/log.h"
#include "proto/rpc.h"
#include "raft_serverpb.pb-c.h"
#include "store/debug_service.h"
#include "store/engine.h"
#include "store/keys.h"
#include "server/disk_guard.h"
#include "server/kv_service.h"
#include "server/ts_batcher.h"
#include "store/pd_worker.h"
#include "store/raft_kv.h"
#include "store/raft_service.h"
#include "store/raftstore.h"
#include "store/raftstore_metrics.h"
#include "store/transport.h"

struct node {
    struct node_config cfg;
    char advertise[256];
    struct engine *kv, *raft;
    struct rpc_client *rpc;
    struct pd_worker *pd;
    struct transport *transport;
    struct raftstore *rs;
    struct storage *storage;
    struct mvcc_engine *mvcc;
    struct client *tso;            /* the scheduler's batched TSO stream, for one-phase commits */
    struct ts_batcher *ts_batcher; /* asks tso for the engine without parking its threads */
    struct kv_service svc;
    struct disk_guard disk; /* svc.disk once initialised */
    struct rpc_server *server;
    uint64_t store_id;
    struct raftstore_metrics rs_metrics;
};

static int read_store_ident(struct engine *kv, uint64_t *store_id, uint64_t *cluster_id)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *err = NULL;
    size_t len;
    char *v = rocksdb_get_cf(engine_db(kv), ro, engine_cf(kv, ENGINE_CF_META),
                             (const char *)KEYS_STORE_IDENT, sizeof KEYS_STORE_IDENT, &len, &err);
    rocksdb_readoptions_destroy(ro);
    *store_id = 0;
    *cluster_id = 0;
    if (err) {
        rocksdb_free(err);
        return -1;
    }
    if (!v)
        return 0;
    RaftServerpb__StoreIdent *id = raft_serverpb__store_ident__unpack(NULL, len, (uint8_t *)v);
    rocksdb_free(v);
    if (!id)
        return -1;
    *store_id = id->store_id;
    *cluster_id = id->cluster_id;
    raft_serverpb__store_ident__free_unpacked(id, NULL);
    return 0;
}

static int write_store_ident(struct engine *kv, uint64_t store_id, uint64_t cluster_id,
                             char *errbuf, size_t len)
{
    RaftServerpb__StoreIdent id = RAFT_SERVERPB__STORE_IDENT__INIT;
    id.store_id = store_id;
    id.cluster_id = cluster_id;
    uint8_t buf[64];
    size_t n = raft_serverpb__store_ident__pack(&id, buf);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_writebatch_put_cf(wb, engine_cf(kv, ENGINE_CF_META), (const char *)KEYS_STORE_IDENT,
                              sizeof KEYS_STORE_IDENT, (const char *)buf, n);
    int rc = engine_write_batch(kv, wb, 1, errbuf, len);
    rocksdb_writebatch_destroy(wb);
    return rc;
}

/* The first store of a new cluster creates region ["", "") and bootstraps. */
static int maybe_bootstrap(struct node *n, char *errbuf, size_t len)
{
    if (raftstore_region_count(n->kv) > 0)
        return 0;
    int bootstrapped = 0;
    if (pd_worker_is_bootstrapped(n->pd, &bootstrapped) != 0) {
        snprintf(errbuf, len, "%s", pd_worker_errmsg(n->pd));
        return -1;
    }
    if (bootstrapped)
        return 0; /* peers arrive from the cluster */
    uint64_t region_id, peer_id;
    if (pd_worker_alloc_id(n->pd, &region_id) || pd_worker_alloc_id(n->pd, &peer_id)) {
        snprintf(errbuf, len, "%s", pd_worker_errmsg(n->pd));
        return -1;
    }
    struct region_peer me = {peer_id, n->store_id};
    struct region r = {.id = region_id, .conf_ver = 1, .version = 1, .peers = &me, .n_peers = 1};
    uint8_t empty = 0;
    r.start_key = r.end_key = &empty;
    if (raftstore_bootstrap_region(n->kv, n->raft, n->store_id, &r, errbuf, len) != 0)
        return -1;
    int rc = pd_worker_bootstrap(n->pd, n->store_id, n->advertise, &r);
    if (rc == PD_WORKER_ERR_ALREADY_BOOTSTRAPPED) {
        /* Another store won the race: forget our region, join theirs. */
        struct region gone = r;
        rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
        uint8_t key[KEYS_REGION_KEY_LEN];
        keys_region_state(gone.id, key);
        rocksdb_writebatch_delete_cf(wb, engine_cf(n->kv, ENGINE_CF_META), (const char *)key,
                                     sizeof key);
        keys_apply_state(gone.id, key);
        rocksdb_writebatch_delete_cf(wb, engine_cf(n->kv, ENGINE_CF_META), (const char *)key,
                                     sizeof key);
        engine_write_batch(n->kv, wb, 1, errbuf, len);
        rocksdb_writebatch_destroy(wb);
        LOG(LOG_INFO, "cluster was bootstrapped by another store; joining it");
        return 0;
    }
    if (rc) {
        snprintf(errbuf, len, "bootstrap: %s", pd_worker_errmsg(n->pd));
        return -1;
    }
    LOG(LOG_INFO, "bootstrapped the cluster with region %llu (peer %llu on store %llu)",
        (unsigned long long)region_id, (unsigned long long)peer_id,
        (unsigned long long)n->store_id);
    return 0;
}

/* Completion-queue threads for the store's server: one per two cores. Every one of them polls
 * the same queue, and gRPC hands the polling from thread to thread as events come; on two cores
 * one thread served 10-25% more puts and gets than four (fewer wake-ups per request), and the
 * handlers that may wait on the disk (snapshot files, scans) run on workers, not on these. */
static int cq_threads(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores >= 4 ? (int)(cores / 2) : 1;
}

int node_start(const struct node_config *cfg, struct node **out, char *errbuf, size_t len)
{
    struct node *n = calloc(1, sizeof *n);
    if (!n) {
        snprintf(errbuf, len, "out of memory");
        return -1;
    }
    n->cfg = *cfg;
    snprintf(n->advertise, sizeof n->advertise, "%s",
             cfg->advertise_addr ? cfg->advertise_addr : cfg->addr);
    if (mkdir(cfg->data_dir, 0755) != 0 && access(cfg->data_dir, W_OK) != 0) {
        snprintf(errbuf, len, "cannot use data directory %s", cfg->data_dir);
        goto fail;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/kv", cfg->data_dir);
    if (engine_open(path, 0, &n->kv, errbuf, len) != 0 ||
        engine_format_check(n->kv, errbuf, len) != 0)
        goto fail;
    snprintf(path, sizeof path, "%s/raft", cfg->data_dir);
    if (engine_open(path, 1, &n->raft, errbuf, len) != 0)
        goto fail;

    n->rpc = rpc_client_new();
    n->pd = n->rpc ? pd_worker_new(n->rpc, cfg->scheduler) : NULL;
    if (!n->pd) {
        snprintf(errbuf, len, "out of memory");
        goto fail;
    }
    pd_worker_set_metrics(n->pd, cfg->metrics);
    if (pd_worker_connect(n->pd, 5000) != 0) {
        snprintf(errbuf, len, "%s", pd_worker_errmsg(n->pd));
        goto fail;
    }
    uint64_t cluster_id = 0;
    if (read_store_ident(n->kv, &n->store_id, &cluster_id) != 0) {
        snprintf(errbuf, len, "cannot read the store identity in %s", cfg->data_dir);
        goto fail;
    }
    if (n->store_id && cluster_id && cluster_id != pd_worker_cluster_id(n->pd)) {
        /* Joining another cluster with this data would mix two histories. */
        snprintf(errbuf, len,
                 "%s belongs to cluster %llu but the scheduler at %s runs cluster %llu; use an "
                 "empty data directory to join it",
                 cfg->data_dir, (unsigned long long)cluster_id, cfg->scheduler,
                 (unsigned long long)pd_worker_cluster_id(n->pd));
        goto fail;
    }
    if (!n->store_id) {
        if (pd_worker_alloc_id(n->pd, &n->store_id) != 0) {
            snprintf(errbuf, len, "%s", pd_worker_errmsg(n->pd));
            goto fail;
        }
        if (write_store_ident(n->kv, n->store_id, pd_worker_cluster_id(n->pd), errbuf, len) != 0)
            goto fail;
        LOG(LOG_INFO, "new store: id %llu", (unsigned long long)n->store_id);
    }
    if (maybe_bootstrap(n, errbuf, len) != 0)
        goto fail;
    if (pd_worker_put_store(n->pd, n->store_id, n->advertise) != 0) {
        snprintf(errbuf, len, "%s", pd_worker_errmsg(n->pd));
        goto fail;
    }

    n->transport = transport_new(n->rpc, pd_worker_resolve, n->pd);
    raftstore_metrics_init(&n->rs_metrics, cfg->metrics);
    struct raftstore_config rcfg = {
        .store_id = n->store_id,
        .kv = n->kv,
        .raft = n->raft,
        .tick_ms = cfg->tick_ms,
        .transport = {transport_send},
        .transport_ctx = n->transport,
        .pd = {pd_worker_region_heartbeat, pd_worker_peer_destroyed, pd_worker_ask_split},
        .region_max_size = cfg->region_max_size,
        .region_split_size = cfg->region_split_size,
        .region_max_keys = cfg->region_max_keys,
        .region_split_keys = cfg->region_split_keys,
        .split_check_ticks = cfg->split_check_ms > 0 && cfg->tick_ms > 0
                                 ? (cfg->split_check_ms + cfg->tick_ms - 1) / cfg->tick_ms
                                 : 0,
        .hibernate_ticks = cfg->hibernate_ticks,
        .idle_region_heartbeat_ticks = cfg->idle_region_heartbeat_ticks,
        .pd_ctx = n->pd,
        .metrics = &n->rs_metrics,
    };
    snprintf(rcfg.snap_dir, sizeof rcfg.snap_dir, "%s/snap", cfg->data_dir);
    if (!n->transport || raftstore_new(&rcfg, &n->rs, errbuf, len) != 0)
        goto fail;
    transport_set_raftstore(n->transport, n->rs);
    n->storage = raft_kv_new(n->rs, cfg->request_timeout_ms > 0 ? cfg->request_timeout_ms : 5000);
    if (!n->storage || mvcc_engine_new(n->storage, 0, &n->mvcc) != 0) {
        snprintf(errbuf, len, "out of memory");
        goto fail;
    }
    /* Short deadlines: a one-phase commit that gets no timestamp soon locks its keys instead. */
    struct client_options topts = {.timeout_ms = 2000, .rpc_timeout_ms = 1000};
    char terr[256];
    if (client_new(cfg->scheduler, &topts, &n->tso, terr, sizeof terr) != 0) {
        snprintf(errbuf, len, "timestamp link to the scheduler %s: %s", cfg->scheduler, terr);
        goto fail;
    }
    n->ts_batcher = ts_batcher_new(n->tso);
    if (!n->ts_batcher) {
        snprintf(errbuf, len, "cannot start the timestamp batcher");
        goto fail;
    }
    mvcc_engine_set_ts_source_async(n->mvcc, ts_batcher_get, n->ts_batcher);
    n->svc.storage = n->storage;
    n->svc.mvcc = n->mvcc;
    n->svc.rs = n->rs;
    n->svc.metrics = cfg->metrics;
    disk_guard_init(&n->disk, cfg->data_dir, cfg->reserve_space_bytes, n->store_id);
    n->svc.disk = &n->disk;
    struct rpc_method methods[KV_SERVICE_MAX_METHODS + 2 + DEBUG_SERVICE_METHODS];
    size_t nm = kv_service_methods(&n->svc, methods);
    nm += raft_service_methods(n->rs, methods + nm);
    nm += debug_service_methods(n->rs, methods + nm);
    n->server = rpc_server_new(cfg->addr, methods, nm, cq_threads(), errbuf, len);
    if (!n->server)
        goto fail;
    rpc_server_set_workers(n->server, 256);
    rpc_server_set_metrics(n->server, cfg->metrics);
    if (rpc_server_start(n->server) != 0) {
        snprintf(errbuf, len, "cannot start the gRPC server");
        goto fail;
    }
    if (pd_worker_start(n->pd, n->rs, n->store_id, n->advertise, cfg->data_dir,
                        cfg->store_heartbeat_ms) != 0) {
        snprintf(errbuf, len, "cannot start the scheduler link");
        goto fail;
    }
    LOG(LOG_INFO, "store %llu serving on %s (advertised as %s), scheduler %s, data in %s",
        (unsigned long long)n->store_id, cfg->addr, n->advertise, cfg->scheduler, cfg->data_dir);
    *out = n;
    return 0;
fail:
    node_stop(n);
    return -1;
}

void node_stop(struct node *n)
{
    if (!n)
        return;
    /* Stop taking requests first; queued ones still get answers from Raft. */
    rpc_server_free(n->server);
    /* The store loop reports to the scheduler link and the transport asks it
     * for addresses until both are gone: only its thread stops here. */
    pd_worker_stop(n->pd);
    if (n->transport)
        transport_set_raftstore(n->transport, NULL);
    raftstore_free(n->rs);
    transport_free(n->transport);
    pd_worker_free(n->pd);
    /* No command is in flight once the server is gone: none waits for a timestamp. */
    ts_batcher_free(n->ts_batcher);
    mvcc_engine_free(n->mvcc);
    client_free(n->tso);
    storage_free(n->storage);
    if (n->svc.disk)
        disk_guard_destroy(&n->disk);
    rpc_client_free(n->rpc);
    engine_close(n->kv);
    engine_close(n->raft);
    free(n);
}

uint64_t node_store_id(const struct node *n)
{
    return n->store_id;
}

struct raftstore *node_raftstore(struct node *n)
{
    return n->rs;
}

/* test_cluster.c — several raftstores in one process, wired by an in-memory transport that can
 * drop, delay and partition. */
#include "tests/lib/test_cluster.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/codec.h"
#include "pd/pd.h"
#include "proto/rpc.h"
#include "store/engine.h"
#include "store/pd_worker.h"
#include "store/raft_kv.h"
#include "store/snapshot_transfer.h"
#include "tests/lib/test_util.h"

struct cstore {
    struct test_cluster *c;
    int id;
    char path[512];
    struct engine *kv, *raft;
    struct raftstore *rs;    /* NULL while stopped; changed under c->mu and `life` */
    struct storage *storage; /* raft_kv over rs */
    struct rpc_client *rpc;  /* with_scheduler: the store's link to it */
    struct pd_worker *pdw;
    /* Held shared by anything using rs, storage or kv from a test thread, and
     * exclusively while the store starts or stops (writers first). */
    pthread_rwlock_t life;
};

struct in_flight {
    uint64_t deliver_at;
    int from, to;
    uint8_t *buf;
    size_t len;
    struct in_flight *next;
};

struct test_cluster {
    struct test_cluster_options opts;
    char *dir;
    struct cstore stores[TEST_CLUSTER_MAX_STORES + 1];
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct in_flight *queue; /* sorted by deliver_at; guarded by mu */
    int stop;
    int group[TEST_CLUSTER_MAX_STORES + 1]; /* partition group per store; 0: none */
    int drop_per_mille, max_delay_ms;
    int drop_snapshots;
    int cut_snapshots; /* the next N snapshot transfers stop halfway */
    int snapshots_cut; /* how many did */
    uint64_t rng;
    pthread_t thread;
    /* with_scheduler: a real scheduler in this process, over gRPC on loopback. */
    struct pd_cluster *pd;
    struct pd_grpc *pd_grpc;
    char pd_addr[64];
};

/* Pins store `id` (running or not) against being stopped or started meanwhile. */
static void hold(struct test_cluster *c, int id)
{
    pthread_rwlock_rdlock(&c->stores[id].life);
}

static void release(struct test_cluster *c, int id)
{
    pthread_rwlock_unlock(&c->stores[id].life);
}

static uint64_t next_rand(struct test_cluster *c)
{
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return c->rng;
}

static int is_snapshot(const RaftServerpb__RaftMessage *msg)
{
    return msg->message && msg->message->msg_type == ERAFTPB__MESSAGE_TYPE__MsgSnapshot;
}

/* Like the gRPC transport, tell the sender how a snapshot fared; the leader
 * sends that follower nothing more until it hears. Caller holds c->mu. */
static void report_snapshot(struct test_cluster *c, int from_store,
                            const RaftServerpb__RaftMessage *msg, int failed)
{
    struct raftstore *rs = c->stores[from_store].rs;
    if (rs && msg->to_peer)
        raftstore_report_snapshot(rs, msg->region_id, msg->to_peer->id, failed);
}

/* Half the size of m's snapshot file (where a cut transfer stops). */
static uint64_t snapshot_half(const RaftServerpb__RaftMessage *m)
{
    struct snapshot_manifest mf;
    return snapshot_manifest_of(m, &mf) == 0 ? mf.size / 2 : 0;
}

/* The transport of store `from` (ctx is its cstore). Runs on that store's loop thread. */
static void transport_send(void *ctx, uint64_t to_store, const RaftServerpb__RaftMessage *msg)
{
    struct cstore *from = ctx;
    struct test_cluster *c = from->c;
    if (to_store < 1 || to_store > (uint64_t)c->opts.n_stores)
        return;
    pthread_mutex_lock(&c->mu);
    int blocked =
        c->group[from->id] && c->group[to_store] && c->group[from->id] != c->group[to_store];
    if (!blocked && c->drop_per_mille && (int)(next_rand(c) % 1000) < c->drop_per_mille)
        blocked = 1;
    if (c->drop_snapshots && is_snapshot(msg))
        blocked = 1;
    if (blocked) {
        if (is_snapshot(msg))
            report_snapshot(c, from->id, msg, 1);
        pthread_mutex_unlock(&c->mu);
        return;
    }
    struct in_flight *f = calloc(1, sizeof *f);
    if (f) {
        f->len = raft_serverpb__raft_message__get_packed_size(msg);
        f->buf = malloc(f->len ? f->len : 1);
    }
    if (!f || !f->buf) {
        if (f)
            free(f);
        pthread_mutex_unlock(&c->mu);
        return;
    }
    raft_serverpb__raft_message__pack(msg, f->buf);
    f->to = (int)to_store;
    f->from = from->id;
    f->deliver_at =
        test_now_ms() + (c->max_delay_ms ? next_rand(c) % (uint64_t)(c->max_delay_ms + 1) : 0);
    struct in_flight **pp = &c->queue;
    while (*pp && (*pp)->deliver_at <= f->deliver_at)
        pp = &(*pp)->next;
    f->next = *pp;
    *pp = f;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

static void *delivery_thread(void *arg)
{
    struct test_cluster *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        uint64_t now = test_now_ms();
        if (!c->queue || c->queue->deliver_at > now) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            uint64_t wait = c->queue ? c->queue->deliver_at - now : 50;
            until.tv_nsec += (long)wait * 1000000L;
            until.tv_sec += until.tv_nsec / 1000000000L;
            until.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&c->cond, &c->mu, &until);
            continue;
        }
        struct in_flight *f = c->queue;
        c->queue = f->next;
        struct raftstore *rs = c->stores[f->to].rs;
        if (rs) {
            RaftServerpb__RaftMessage *m =
                raft_serverpb__raft_message__unpack(NULL, f->len, f->buf);
            /* A snapshot's file goes first, in chunks, as over the Snapshot stream; only a
             * file that arrived whole and checked lets its message be stepped. */
            int file_ok =
                !m || !is_snapshot(m) ||
                (c->stores[f->from].rs &&
                 snapshot_copy(c->stores[f->from].rs, rs, m,
                               c->cut_snapshots > 0 ? snapshot_half(m) : UINT64_MAX) == 0);
            if (m && is_snapshot(m) && c->cut_snapshots > 0) {
                c->cut_snapshots--;
                c->snapshots_cut++;
            }
            if (m && file_ok) {
                raftstore_step(rs, m); /* only posts to the mailbox: safe under mu */
                if (is_snapshot(m))
                    report_snapshot(c, f->from, m, 0);
            } else if (m) {
                report_snapshot(c, f->from, m, 1);
            }
            if (m)
                raft_serverpb__raft_message__free_unpacked(m, NULL);
        } else {
            RaftServerpb__RaftMessage *m =
                raft_serverpb__raft_message__unpack(NULL, f->len, f->buf);
            if (m && is_snapshot(m))
                report_snapshot(c, f->from, m, 1);
            if (m)
                raft_serverpb__raft_message__free_unpacked(m, NULL);
        }
        free(f->buf);
        free(f);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void open_engines(struct cstore *s)
{
    char path[600], err[256];
    snprintf(path, sizeof path, "%s/kv", s->path);
    int (*open)(const char *, int, struct engine **, char *, size_t) =
        s->c->opts.crash_model ? engine_open_crash_model : engine_open;
    if (open(path, 0, &s->kv, err, sizeof err) != 0) {
        fprintf(stderr, "test_cluster: %s\n", err);
        abort();
    }
    snprintf(path, sizeof path, "%s/raft", s->path);
    if (open(path, 0, &s->raft, err, sizeof err) != 0) {
        fprintf(stderr, "test_cluster: %s\n", err);
        abort();
    }
}

void test_cluster_start_store(struct test_cluster *c, int id)
{
    struct cstore *s = &c->stores[id];
    pthread_rwlock_wrlock(&s->life);
    if (s->rs) {
        pthread_rwlock_unlock(&s->life);
        return;
    }
    open_engines(s);
    struct raftstore_config cfg = {
        .store_id = (uint64_t)id,
        .kv = s->kv,
        .raft = s->raft,
        .tick_ms = 20,
        .election_ticks = 10,
        .heartbeat_ticks = 2,
        .raft_log_gc_count_limit = c->opts.raft_log_gc_count_limit,
        .region_max_size = c->opts.region_max_size,
        .region_split_size = c->opts.region_split_size,
        .split_check_ticks = c->opts.split_check_ticks,
        .transport = {transport_send},
        .transport_ctx = s,
    };
    snprintf(cfg.snap_dir, sizeof cfg.snap_dir, "%s/snap", s->path);
    char err[256];
    if (c->pd) {
        /* The store's real scheduler link: heartbeats out, operators in. */
        char addr[32];
        snprintf(addr, sizeof addr, "store%d", id);
        s->rpc = rpc_client_new();
        s->pdw = s->rpc ? pd_worker_new(s->rpc, c->pd_addr) : NULL;
        if (!s->pdw || pd_worker_connect(s->pdw, 5000) != 0 ||
            pd_worker_put_store(s->pdw, (uint64_t)id, addr) != 0) {
            fprintf(stderr, "test_cluster: store %d: cannot reach the scheduler\n", id);
            abort();
        }
        cfg.pd = (struct raftstore_pd_ops){pd_worker_region_heartbeat, pd_worker_peer_destroyed,
                                           pd_worker_ask_split};
        cfg.pd_ctx = s->pdw;
        cfg.region_heartbeat_ticks = 5;
    }
    struct raftstore *rs;
    if (raftstore_new(&cfg, &rs, err, sizeof err) != 0) {
        fprintf(stderr, "test_cluster: store %d: %s\n", id, err);
        abort();
    }
    if (s->pdw && pd_worker_start(s->pdw, rs, (uint64_t)id, "store", s->path, 500) != 0)
        abort();
    s->storage = raft_kv_new(rs, 1000);
    pthread_mutex_lock(&c->mu);
    s->rs = rs;
    pthread_mutex_unlock(&c->mu);
    pthread_rwlock_unlock(&s->life);
}

void test_cluster_stop_store(struct test_cluster *c, int id)
{
    struct cstore *s = &c->stores[id];
    pthread_rwlock_wrlock(&s->life);
    pthread_mutex_lock(&c->mu);
    struct raftstore *rs = s->rs;
    s->rs = NULL;
    pthread_mutex_unlock(&c->mu);
    if (!rs) {
        pthread_rwlock_unlock(&s->life);
        return;
    }
    pd_worker_stop(s->pdw);
    raftstore_free(rs);
    pd_worker_free(s->pdw);
    rpc_client_free(s->rpc);
    s->pdw = NULL;
    s->rpc = NULL;
    storage_free(s->storage);
    s->storage = NULL;
    if (c->opts.crash_model) {
        engine_close_crashed(s->kv);
        engine_close_crashed(s->raft);
    } else {
        engine_close(s->kv);
        engine_close(s->raft);
    }
    s->kv = s->raft = NULL;
    pthread_rwlock_unlock(&s->life);
}

/* A scheduler in process, bootstrapped with region r on its stores; ids below
 * TEST_CLUSTER_SCHEDULER_FIRST_ID stay the tests'. */
static void start_scheduler(struct test_cluster *c, const struct region *r)
{
    char path[600], err[256];
    snprintf(path, sizeof path, "%s/pd", c->dir);
    struct pd_options po = {.data_dir = path};
    if (pd_cluster_open(&po, &c->pd, err, sizeof err) != 0 ||
        pd_grpc_start(c->pd, "127.0.0.1:0", &c->pd_grpc, err, sizeof err) != 0) {
        fprintf(stderr, "test_cluster: scheduler: %s\n", err);
        abort();
    }
    snprintf(c->pd_addr, sizeof c->pd_addr, "127.0.0.1:%d", pd_grpc_port(c->pd_grpc));
    struct pd_store st = {.id = 1, .state = PD_STORE_UP};
    snprintf(st.address, sizeof st.address, "store1");
    struct pd_region pr;
    pd_region_init(&pr);
    pr.id = r->id;
    pr.epoch.conf_ver = r->conf_ver;
    pr.epoch.version = r->version;
    for (size_t i = 0; i < r->n_peers; i++)
        pd_region_add_peer(&pr, r->peers[i].id, r->peers[i].store_id);
    if (pd_cluster_bootstrap(c->pd, &st, &pr) != 0)
        abort();
    pd_region_clear(&pr);
    uint64_t id = 0;
    while (id < TEST_CLUSTER_SCHEDULER_FIRST_ID)
        if (pd_cluster_alloc_id(c->pd, &id) != 0)
            abort();
}

int test_cluster_scheduler_split(struct test_cluster *c, const char *key, int timeout_ms)
{
    struct pd_key k = {(uint8_t *)key, strlen(key)};
    uint64_t regions[PD_MAX_SPLIT_KEYS];
    size_t n = 0;
    uint64_t deadline = test_now_ms() + (uint64_t)timeout_ms;
    int queued = 0;
    do {
        uint64_t id = test_cluster_region_of_key(c, key);
        struct region r;
        int leader = id ? test_cluster_region_leader(c, id, 100) : 0;
        if (leader && test_cluster_region(c, leader, id, &r) == 0) {
            int done = r.start_key_len == k.len && memcmp(r.start_key, key, k.len) == 0;
            store_region_free(&r);
            if (done)
                return 0;
        }
        /* Queued once; again only if the scheduler dropped it (stale, timed out). */
        struct pd_key *keys = NULL;
        size_t n_keys = 0;
        if (queued && pd_cluster_get_split_keys(c->pd, id, &keys, &n_keys) == PD_OK)
            pd_keys_free(keys, n_keys);
        else
            queued = pd_cluster_split_regions(c->pd, &k, 1, regions, &n) == PD_OK;
        usleep(20000);
    } while (test_now_ms() < deadline);
    return -1;
}

struct pd_cluster *test_cluster_scheduler(struct test_cluster *c)
{
    return c->pd;
}

struct test_cluster *test_cluster_new(const struct test_cluster_options *opts)
{
    struct test_cluster *c = calloc(1, sizeof *c);
    c->opts = *opts;
    if (c->opts.n_region_peers <= 0 || c->opts.n_region_peers > c->opts.n_stores)
        c->opts.n_region_peers = c->opts.n_stores;
    c->rng = opts->seed ? opts->seed : 0x2545F4914F6CDD1DULL;
    c->dir = test_tmpdir_new("tinykv-cluster");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cond, NULL);
    struct region r;
    memset(&r, 0, sizeof r);
    r.id = 1;
    r.conf_ver = 1;
    r.version = 1;
    r.n_peers = (size_t)c->opts.n_region_peers;
    r.peers = calloc(r.n_peers, sizeof *r.peers);
    for (size_t i = 0; i < r.n_peers; i++)
        r.peers[i] = (struct region_peer){i + 1, i + 1}; /* peer id = store id */
    for (int i = 1; i <= c->opts.n_stores; i++) {
        struct cstore *s = &c->stores[i];
        s->c = c;
        s->id = i;
        pthread_rwlockattr_t attr;
        pthread_rwlockattr_init(&attr);
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&s->life, &attr);
        pthread_rwlockattr_destroy(&attr);
        snprintf(s->path, sizeof s->path, "%s/store%d", c->dir, i);
        mkdir(s->path, 0755);
        if (i <= c->opts.n_region_peers) {
            open_engines(s);
            char err[256];
            if (raftstore_bootstrap_region(s->kv, s->raft, (uint64_t)i, &r, err, sizeof err)) {
                fprintf(stderr, "test_cluster: %s\n", err);
                abort();
            }
            engine_close(s->kv);
            engine_close(s->raft);
            s->kv = s->raft = NULL;
        }
    }
    if (c->opts.with_scheduler)
        start_scheduler(c, &r);
    free(r.peers);
    pthread_create(&c->thread, NULL, delivery_thread, c);
    for (int i = 1; i <= c->opts.n_stores; i++)
        test_cluster_start_store(c, i);
    return c;
}

void test_cluster_free(struct test_cluster *c)
{
    for (int i = 1; i <= c->opts.n_stores; i++)
        test_cluster_stop_store(c, i);
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    while (c->queue) {
        struct in_flight *f = c->queue;
        c->queue = f->next;
        free(f->buf);
        free(f);
    }
    for (int i = 1; i <= c->opts.n_stores; i++)
        pthread_rwlock_destroy(&c->stores[i].life);
    pd_grpc_stop(c->pd_grpc);
    pd_cluster_close(c->pd);
    test_tmpdir_remove(c->dir);
    free(c);
}

void test_cluster_partition(struct test_cluster *c, const int *a, size_t na, const int *b,
                            size_t nb)
{
    pthread_mutex_lock(&c->mu);
    memset(c->group, 0, sizeof c->group);
    for (size_t i = 0; i < na; i++)
        c->group[a[i]] = 1;
    for (size_t i = 0; i < nb; i++)
        c->group[b[i]] = 2;
    pthread_mutex_unlock(&c->mu);
}

void test_cluster_heal(struct test_cluster *c)
{
    pthread_mutex_lock(&c->mu);
    memset(c->group, 0, sizeof c->group);
    c->drop_per_mille = 0;
    c->max_delay_ms = 0;
    pthread_mutex_unlock(&c->mu);
}

int test_cluster_cut_snapshots(struct test_cluster *c, int n)
{
    pthread_mutex_lock(&c->mu);
    if (n > 0)
        c->cut_snapshots = n;
    int cut = c->snapshots_cut;
    pthread_mutex_unlock(&c->mu);
    return cut;
}

void test_cluster_drop_snapshots(struct test_cluster *c, int on)
{
    pthread_mutex_lock(&c->mu);
    c->drop_snapshots = on;
    pthread_mutex_unlock(&c->mu);
}

void test_cluster_set_unreliable(struct test_cluster *c, int drop_per_mille, int max_delay_ms)
{
    pthread_mutex_lock(&c->mu);
    c->drop_per_mille = drop_per_mille;
    c->max_delay_ms = max_delay_ms;
    pthread_mutex_unlock(&c->mu);
}

struct raftstore *test_cluster_store(struct test_cluster *c, int store)
{
    return c->stores[store].rs;
}

struct storage *test_cluster_storage(struct test_cluster *c, int store)
{
    return c->stores[store].storage;
}

int test_cluster_region_peer_info(struct test_cluster *c, int store, uint64_t region_id,
                                  struct raftstore_peer_info *out)
{
    hold(c, store);
    struct raftstore *rs = c->stores[store].rs;
    int found = 0;
    struct raftstore_peer_info infos[256];
    size_t n = rs ? raftstore_peers(rs, infos, 256) : 0;
    for (size_t i = 0; i < n && i < 256 && !found; i++) {
        if (infos[i].region_id == region_id) {
            *out = infos[i];
            found = 1;
        }
    }
    release(c, store);
    return found;
}

int test_cluster_peer_info(struct test_cluster *c, int store, struct raftstore_peer_info *out)
{
    return test_cluster_region_peer_info(c, store, 1, out);
}

uint64_t test_cluster_region_of_key(struct test_cluster *c, const char *key)
{
    uint64_t best = 0, best_version = 0;
    for (int i = 1; i <= c->opts.n_stores; i++) {
        hold(c, i);
        struct region r;
        if (c->stores[i].rs &&
            raftstore_region_of_key(c->stores[i].rs, key, strlen(key), &r) == 0) {
            if (!best || r.version > best_version) {
                best = r.id;
                best_version = r.version;
            }
            store_region_free(&r);
        }
        release(c, i);
    }
    return best;
}

int test_cluster_region(struct test_cluster *c, int store, uint64_t region_id, struct region *out)
{
    hold(c, store);
    int rc = c->stores[store].rs ? raftstore_region(c->stores[store].rs, region_id, out) : -1;
    release(c, store);
    return rc;
}

/* Runs a membership or leadership request for region_id on a store that is running. */
static void on_store(struct test_cluster *c, int store, uint64_t region_id, int kind,
                     struct region_peer peer)
{
    hold(c, store);
    struct raftstore *rs = c->stores[store].rs;
    if (rs && kind == 2)
        raftstore_transfer_leader(rs, region_id, peer.id);
    else if (rs)
        raftstore_change_peer(rs, region_id, kind, peer);
    release(c, store);
}

int test_cluster_leader(struct test_cluster *c, int timeout_ms)
{
    return test_cluster_region_leader(c, 1, timeout_ms);
}

int test_cluster_region_leader(struct test_cluster *c, uint64_t region_id, int timeout_ms)
{
    uint64_t deadline = test_now_ms() + (uint64_t)timeout_ms;
    do {
        uint64_t best_term = 0;
        int best = 0;
        for (int i = 1; i <= c->opts.n_stores; i++) {
            struct raftstore_peer_info info;
            if (test_cluster_region_peer_info(c, i, region_id, &info) && info.is_leader &&
                info.term >= best_term) {
                best_term = info.term;
                best = i;
            }
        }
        if (best)
            return best;
        usleep(10000);
    } while (test_now_ms() < deadline);
    return 0;
}

uint64_t test_cluster_log_entries(struct test_cluster *c, int store)
{
    struct raftstore_peer_info info;
    if (!test_cluster_peer_info(c, store, &info))
        return 0;
    return info.last_index + 1 - info.first_index;
}

/* Runs `op` against the leader of key's region until it succeeds or the time is up. */
static int with_leader(struct test_cluster *c, const char *key, int timeout_ms,
                       int (*op)(struct storage *s, const struct storage_ctx *ctx, void *arg),
                       void *arg)
{
    uint64_t deadline = test_now_ms() + (uint64_t)timeout_ms;
    int rc = -1;
    struct storage_key touched = {key, strlen(key)};
    do {
        uint64_t region_id = test_cluster_region_of_key(c, key);
        if (!region_id)
            region_id = 1; /* no store knows the region yet (a fresh cluster) */
        int leader = test_cluster_region_leader(c, region_id, 50);
        struct raftstore_peer_info info;
        if (leader && test_cluster_region_peer_info(c, leader, region_id, &info)) {
            struct storage_ctx ctx = {.region_id = region_id,
                                      .region_conf_ver = info.conf_ver,
                                      .region_version = info.version,
                                      .keys = &touched,
                                      .n_keys = 1};
            hold(c, leader);
            struct storage *s = c->stores[leader].storage;
            rc = s ? op(s, &ctx, arg) : -1;
            release(c, leader);
            if (rc == 0 || rc == STORAGE_ERR_NOT_FOUND)
                return rc;
        }
        usleep(10000);
    } while (test_now_ms() < deadline);
    return -1;
}

struct kv_arg {
    const char *key;
    const char *value;
    char *out;
};

/* The stored form of a test key, as the raw API stores it: enc(key). Owned. */
static uint8_t *stored_key(const char *key, size_t *len)
{
    *len = codec_key_len(strlen(key));
    uint8_t *out = malloc(*len);
    codec_key_encode(key, strlen(key), out);
    return out;
}

static int op_put(struct storage *s, const struct storage_ctx *ctx, void *arg)
{
    struct kv_arg *a = arg;
    size_t klen;
    uint8_t *k = stored_key(a->key, &klen);
    struct storage_modify m = {a->value ? STORAGE_MODIFY_PUT : STORAGE_MODIFY_DELETE,
                               STORAGE_CF_DEFAULT,
                               k,
                               klen,
                               a->value,
                               a->value ? strlen(a->value) : 0};
    struct storage_error err;
    int rc = storage_write(s, ctx, &m, 1, &err);
    free(k);
    return rc;
}

static int op_get(struct storage *s, const struct storage_ctx *ctx, void *arg)
{
    struct kv_arg *a = arg;
    struct storage_reader *r;
    struct storage_error err;
    int rc = storage_reader(s, ctx, &r, &err);
    if (rc)
        return rc;
    void *v;
    size_t len, klen;
    uint8_t *k = stored_key(a->key, &klen);
    rc = storage_reader_get(r, STORAGE_CF_DEFAULT, k, klen, &v, &len);
    free(k);
    storage_reader_free(r);
    if (rc)
        return rc;
    a->out = malloc(len + 1);
    memcpy(a->out, v, len);
    a->out[len] = 0;
    free(v);
    return 0;
}

int test_cluster_put(struct test_cluster *c, const char *key, const char *value, int timeout_ms)
{
    struct kv_arg a = {key, value, NULL};
    return with_leader(c, key, timeout_ms, op_put, &a);
}

int test_cluster_delete(struct test_cluster *c, const char *key, int timeout_ms)
{
    struct kv_arg a = {key, NULL, NULL};
    return with_leader(c, key, timeout_ms, op_put, &a);
}

int test_cluster_get(struct test_cluster *c, const char *key, char **value, int timeout_ms)
{
    struct kv_arg a = {key, NULL, NULL};
    int rc = with_leader(c, key, timeout_ms, op_get, &a);
    *value = a.out;
    return rc;
}

char *test_cluster_local_get(struct test_cluster *c, int store, const char *key)
{
    struct cstore *s = &c->stores[store];
    hold(c, store);
    struct storage_reader *r;
    if (!s->kv || engine_snapshot_reader(s->kv, &r) != 0) {
        release(c, store);
        return NULL;
    }
    void *v;
    size_t len, klen;
    char *out = NULL;
    uint8_t *k = stored_key(key, &klen);
    int found = storage_reader_get(r, STORAGE_CF_DEFAULT, k, klen, &v, &len) == 0;
    free(k);
    if (found) {
        out = malloc(len + 1);
        memcpy(out, v, len);
        out[len] = 0;
        free(v);
    }
    storage_reader_free(r);
    release(c, store);
    return out;
}

int test_cluster_region_add_peer(struct test_cluster *c, uint64_t region_id, int store,
                                 uint64_t peer_id, int timeout_ms)
{
    uint64_t deadline = test_now_ms() + (uint64_t)timeout_ms;
    do {
        int leader = test_cluster_region_leader(c, region_id, 100);
        struct raftstore_peer_info before;
        if (leader && test_cluster_region_peer_info(c, leader, region_id, &before)) {
            on_store(c, leader, region_id, 0, (struct region_peer){peer_id, (uint64_t)store});
            uint64_t until = test_now_ms() + 1000;
            while (test_now_ms() < until) {
                struct raftstore_peer_info now, mine;
                if (test_cluster_region_peer_info(c, leader, region_id, &now) &&
                    now.conf_ver > before.conf_ver &&
                    test_cluster_region_peer_info(c, store, region_id, &mine))
                    return 0;
                usleep(10000);
            }
        }
    } while (test_now_ms() < deadline);
    return -1;
}

int test_cluster_add_peer(struct test_cluster *c, int store, uint64_t peer_id, int timeout_ms)
{
    return test_cluster_region_add_peer(c, 1, store, peer_id, timeout_ms);
}

int test_cluster_region_remove_peer(struct test_cluster *c, uint64_t region_id, int store,
                                    int timeout_ms)
{
    uint64_t deadline = test_now_ms() + (uint64_t)timeout_ms;
    do {
        struct raftstore_peer_info target;
        if (!test_cluster_region_peer_info(c, store, region_id, &target))
            return 0; /* already gone */
        int leader = test_cluster_region_leader(c, region_id, 100);
        if (leader) {
            on_store(c, leader, region_id, 1,
                     (struct region_peer){target.peer_id, (uint64_t)store});
            uint64_t until = test_now_ms() + 1000;
            while (test_now_ms() < until) {
                if (!test_cluster_region_peer_info(c, store, region_id, &target))
                    return 0;
                usleep(10000);
            }
        }
    } while (test_now_ms() < deadline);
    return -1;
}

int test_cluster_remove_peer(struct test_cluster *c, int store, int timeout_ms)
{
    return test_cluster_region_remove_peer(c, 1, store, timeout_ms);
}

int test_cluster_transfer_leader(struct test_cluster *c, int to_store, int timeout_ms)
{
    uint64_t deadline = test_now_ms() + (uint64_t)timeout_ms;
    do {
        int leader = test_cluster_leader(c, 100);
        if (leader == to_store)
            return 0;
        struct raftstore_peer_info target;
        if (leader && test_cluster_peer_info(c, to_store, &target))
            on_store(c, leader, 1, 2, (struct region_peer){target.peer_id, (uint64_t)to_store});
        usleep(50000);
    } while (test_now_ms() < deadline);
    return -1;
}

/* Outcome of a split request, set on the store loop. */
struct split_result {
    pthread_mutex_t mu;
    int done, code;
};

static void on_split(void *arg, struct raftstore_result *res)
{
    struct split_result *r = arg;
    pthread_mutex_lock(&r->mu);
    r->done = 1;
    r->code = res->code;
    pthread_mutex_unlock(&r->mu);
}

int test_cluster_split(struct test_cluster *c, const char *key, uint64_t new_region_id,
                       int timeout_ms)
{
    uint64_t deadline = test_now_ms() + (uint64_t)timeout_ms;
    do {
        uint64_t region_id = test_cluster_region_of_key(c, key);
        int leader = region_id ? test_cluster_region_leader(c, region_id, 100) : 0;
        struct region r;
        if (!leader || test_cluster_region(c, leader, region_id, &r) != 0) {
            usleep(10000);
            continue;
        }
        if (r.start_key_len == strlen(key) && memcmp(r.start_key, key, r.start_key_len) == 0) {
            store_region_free(&r);
            return 0; /* already split there */
        }
        uint64_t peer_ids[TEST_CLUSTER_MAX_STORES];
        for (size_t i = 0; i < r.n_peers && i < TEST_CLUSTER_MAX_STORES; i++)
            peer_ids[i] = new_region_id * 100 + r.peers[i].store_id;
        /* Heap-allocated and leaked on timeout: the callback may still come. */
        struct split_result *res = calloc(1, sizeof *res);
        pthread_mutex_init(&res->mu, NULL);
        hold(c, leader);
        if (c->stores[leader].rs)
            raftstore_split(c->stores[leader].rs, region_id, r.version, key, strlen(key),
                            new_region_id, peer_ids, r.n_peers, on_split, res);
        release(c, leader);
        store_region_free(&r);
        uint64_t until = test_now_ms() + 2000;
        int done = 0, code = -1;
        while (!done && test_now_ms() < until) {
            pthread_mutex_lock(&res->mu);
            done = res->done;
            code = res->code;
            pthread_mutex_unlock(&res->mu);
            if (!done)
                usleep(5000);
        }
        if (done) {
            pthread_mutex_destroy(&res->mu);
            free(res);
        }
        if (done && code == 0)
            return 0;
    } while (test_now_ms() < deadline);
    return -1;
}

int test_cluster_wait_local(struct test_cluster *c, int store, const char *key, const char *want,
                            int timeout_ms)
{
    uint64_t deadline = test_now_ms() + (uint64_t)timeout_ms;
    do {
        char *v = test_cluster_local_get(c, store, key);
        int ok = want ? v && strcmp(v, want) == 0 : v == NULL;
        free(v);
        if (ok)
            return 1;
        usleep(10000);
    } while (test_now_ms() < deadline);
    return 0;
}

size_t test_cluster_region_count(struct test_cluster *c)
{
    struct pd_region *rs = NULL;
    size_t n = 0;
    if (!c->pd || pd_cluster_scan_regions(c->pd, "", 0, "", 0, 100000, &rs, &n) != PD_OK)
        return 0;
    pd_regions_free(rs, n);
    return n;
}

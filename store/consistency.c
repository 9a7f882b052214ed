/* consistency.c — the region consistency check: the ComputeHash and VerifyHash admin commands and
 * the worker that hashes a region's data off the store loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/log.h"
#include "store/raftstore_internal.h"
#include "store/raftstore_metrics.h"

/*
 * TiKV's design. An operator asks the region's leader to check
 * (raftstore_check_consistency): it proposes ComputeHash. Where that entry
 * applies — on every replica, at the same log index I — the apply writes what
 * its batch gathered so far, takes a RocksDB snapshot (so the hash sees
 * exactly the entries up to I) and queues the region to the worker, which
 * hashes the region's range and epoch and then, in key order, every key and
 * value of the region's data range in the default, lock and write CFs. The
 * hash comes back to the store loop (MAIL_HASH_COMPUTED); the leader proposes
 * VerifyHash(I, its hash), and every replica compares the leader's hash with
 * its own for I. A mismatch is logged at ERROR, counted in
 * tinykv_consistency_checks_total{result="mismatch"} and kept in the peer's
 * report (raftstore_peer_info.consistency) — the store keeps serving, where
 * TiKV panics. Compared by index only: a replica that never hashed at I
 * (restarted after applying ComputeHash, or caught up by a snapshot past it)
 * ignores the VerifyHash; a split or merge between the two entries does not
 * matter, since both hashes are of the range the region had at I.
 *
 * The hash (context byte CONSISTENCY_HASH_V1): 64-bit FNV-1a over
 * length-prefixed fields. It finds divergence, it is not a MAC.
 */

#define CONSISTENCY_HASH_V1 1

struct consistency_job {
    uint64_t region_id;
    uint64_t index;
    struct region region;
    const rocksdb_snapshot_t *db_snap;
    struct consistency_job *next;
};

/* An operator's request, answered when its ComputeHash applied (loop thread only, so its
 * refs need no lock: the loop holds one while proposing, the proposal one). */
struct check_trigger {
    raftstore_check_cb cb;
    void *arg;
    uint64_t index;
    int refs;
};

static void trigger_unref(struct check_trigger *t)
{
    if (--t->refs == 0)
        free(t);
}

static void trigger_done(void *arg, struct raftstore_result *res)
{
    struct check_trigger *t = arg;
    t->cb(t->arg, res, res->code == 0 ? t->index : 0);
    trigger_unref(t);
}

void raftstore_check_consistency(struct raftstore *rs, uint64_t region_id, raftstore_check_cb cb,
                                 void *arg)
{
    struct check_trigger *t = calloc(1, sizeof *t);
    struct mail *m = calloc(1, sizeof *m);
    if (!t || !m) {
        free(t);
        free(m);
        struct raftstore_result res;
        memset(&res, 0, sizeof res);
        res.code = res.err.code = STORAGE_ERR_NOMEM;
        cb(arg, &res, 0);
        return;
    }
    *t = (struct check_trigger){cb, arg, 0, 1};
    m->kind = MAIL_CHECK_CONSISTENCY;
    m->region_id = region_id;
    m->cb = trigger_done;
    m->cb_arg = t;
    raftstore_post(rs, m);
}

int raftstore_peer_info_of(struct raftstore *rs, uint64_t region_id,
                           struct raftstore_peer_info *out)
{
    int rc = -1;
    pthread_mutex_lock(&rs->mu);
    for (size_t i = 0; i < rs->n_info && rc; i++)
        if (rs->info[i].region_id == region_id) {
            *out = rs->info[i];
            rc = 0;
        }
    pthread_mutex_unlock(&rs->mu);
    return rc;
}

static void put_be64(uint8_t out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_be64(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | in[i];
    return v;
}

/* Builds and proposes one of the two admin commands (hash_bytes NULL: ComputeHash). */
static void propose(struct peer *p, uint64_t index, const uint8_t *hash_bytes, raftstore_cb cb,
                    void *arg)
{
    uint8_t context[1] = {CONSISTENCY_HASH_V1};
    RaftCmdpb__RaftCmdRequest cmd = RAFT_CMDPB__RAFT_CMD_REQUEST__INIT;
    RaftCmdpb__AdminRequest admin = RAFT_CMDPB__ADMIN_REQUEST__INIT;
    RaftCmdpb__ComputeHashRequest compute = RAFT_CMDPB__COMPUTE_HASH_REQUEST__INIT;
    RaftCmdpb__VerifyHashRequest verify = RAFT_CMDPB__VERIFY_HASH_REQUEST__INIT;
    if (hash_bytes) {
        verify.index = index;
        verify.hash = (ProtobufCBinaryData){8, (uint8_t *)hash_bytes};
        verify.context = (ProtobufCBinaryData){sizeof context, context};
        admin.cmd_type = RAFT_CMDPB__ADMIN_CMD_TYPE__VerifyHash;
        admin.verify_hash = &verify;
    } else {
        compute.context = (ProtobufCBinaryData){sizeof context, context};
        admin.cmd_type = RAFT_CMDPB__ADMIN_CMD_TYPE__ComputeHash;
        admin.compute_hash = &compute;
    }
    cmd.admin_request = &admin;
    peer_propose_admin(p, &cmd, cb, arg);
}

void consistency_propose(struct peer *p, struct mail *m)
{
    struct check_trigger *t = m->cb_arg;
    if (!p || p->pending_remove) {
        raftstore_answer_region_error(m->cb, t, STORAGE_REGION_ERR_REGION_NOT_FOUND, m->region_id,
                                      0, 0, "region not found on this store");
        return;
    }
    if (!p->is_leader) {
        raftstore_answer_region_error(m->cb, t, STORAGE_REGION_ERR_NOT_LEADER, p->region_id,
                                      p->leader_id, peer_leader_store(p),
                                      "not the region's leader");
        return;
    }
    t->refs++;
    propose(p, 0, NULL, m->cb, t);
    /* The proposal keeps its log index: the index the answer names. */
    for (struct proposal *pr = p->proposals; pr; pr = pr->next)
        if (pr->cb_arg == t)
            t->index = pr->index;
    if (t->index)
        LOG(LOG_INFO, "region=%llu peer=%llu: consistency check proposed at index %llu",
            (unsigned long long)p->region_id, (unsigned long long)p->peer_id,
            (unsigned long long)t->index);
    trigger_unref(t);
}

void consistency_apply_compute(struct peer *p, const RaftCmdpb__AdminRequest *req, uint64_t index,
                               struct apply_ctx *ac)
{
    struct raftstore *rs = p->rs;
    const RaftCmdpb__ComputeHashRequest *c = req->compute_hash;
    if (c && c->context.len && c->context.data[0] != CONSISTENCY_HASH_V1) {
        LOG(LOG_WARN,
            "region=%llu peer=%llu: ComputeHash at %llu asks for hash version %u: skipped",
            (unsigned long long)p->region_id, (unsigned long long)p->peer_id,
            (unsigned long long)index, (unsigned)c->context.data[0]);
        return;
    }
    /* The entries before this one are in ac's batch: write them (with the
     * applied index, now this entry's) so the snapshot sees exactly [.., index]. */
    peer_storage_apply_state_to_batch(&p->ps, ac->kv_wb);
    char err[256];
    if (engine_write_batch(rs->cfg.kv, ac->kv_wb, ac->sync, err, sizeof err) != 0) {
        LOG(LOG_ERROR, "region=%llu: kv write failed: %s", (unsigned long long)p->region_id, err);
        abort();
    }
    rocksdb_writebatch_clear(ac->kv_wb);

    struct raftstore_consistency *cs = &p->consistency;
    cs->index = index;
    cs->state = RAFTSTORE_CONSISTENCY_COMPUTING;
    cs->hash = cs->leader_hash = 0;
    struct consistency_job *job = calloc(1, sizeof *job);
    if (!job || store_region_copy(&job->region, &p->ps.region) != 0) {
        free(job);
        cs->state = RAFTSTORE_CONSISTENCY_NONE;
        LOG(LOG_WARN, "region=%llu peer=%llu: out of memory: no consistency hash at %llu",
            (unsigned long long)p->region_id, (unsigned long long)p->peer_id,
            (unsigned long long)index);
        return;
    }
    job->region_id = p->region_id;
    job->index = index;
    job->db_snap = rocksdb_create_snapshot(engine_db(rs->cfg.kv));
    pthread_mutex_lock(&rs->mu);
    job->next = rs->hash_jobs;
    rs->hash_jobs = job;
    pthread_cond_signal(&rs->hash_cond);
    pthread_mutex_unlock(&rs->mu);
}

/* Compares once this replica's hash and the leader's are both known for the same index. */
static void compare(struct peer *p)
{
    struct raftstore_consistency *cs = &p->consistency;
    if (cs->state != RAFTSTORE_CONSISTENCY_COMPUTED || !cs->index || p->verify_index != cs->index)
        return;
    cs->leader_hash = p->verify_hash;
    if (cs->hash == p->verify_hash) {
        cs->state = RAFTSTORE_CONSISTENCY_CONSISTENT;
        metrics_counter_inc(RAFTSTORE_METRIC(p->rs, consistency_consistent));
        LOG(LOG_INFO, "region=%llu peer=%llu: consistent at index %llu (hash %016llx)",
            (unsigned long long)p->region_id, (unsigned long long)p->peer_id,
            (unsigned long long)cs->index, (unsigned long long)cs->hash);
        return;
    }
    cs->state = RAFTSTORE_CONSISTENCY_MISMATCH;
    cs->mismatch_index = cs->index;
    cs->mismatches++;
    metrics_counter_inc(RAFTSTORE_METRIC(p->rs, consistency_mismatch));
    LOG(LOG_ERROR,
        "region=%llu peer=%llu: REGION %llu INCONSISTENT AT INDEX %llu: this replica's hash "
        "%016llx, the leader's %016llx (store %llu keeps serving; compare the replicas' data)",
        (unsigned long long)p->region_id, (unsigned long long)p->peer_id,
        (unsigned long long)p->region_id, (unsigned long long)cs->index,
        (unsigned long long)cs->hash, (unsigned long long)p->verify_hash,
        (unsigned long long)p->rs->cfg.store_id);
}

void consistency_apply_verify(struct peer *p, const RaftCmdpb__AdminRequest *req)
{
    const RaftCmdpb__VerifyHashRequest *v = req->verify_hash;
    if (!v || v->hash.len != 8 || !v->index ||
        (v->context.len && v->context.data[0] != CONSISTENCY_HASH_V1))
        return; /* not ours to compare */
    p->verify_index = v->index;
    p->verify_hash = get_be64(v->hash.data);
    if (p->consistency.index != v->index) {
        LOG(LOG_INFO,
            "region=%llu peer=%llu: VerifyHash for index %llu ignored: this replica hashed at %llu "
            "(restarted or caught up by a snapshot since)",
            (unsigned long long)p->region_id, (unsigned long long)p->peer_id,
            (unsigned long long)v->index, (unsigned long long)p->consistency.index);
        return;
    }
    compare(p); /* still computing: compared when the hash comes */
}

void consistency_hash_computed(struct peer *p, const struct mail *m)
{
    struct raftstore_consistency *cs = &p->consistency;
    if (cs->index != m->hash_index || cs->state != RAFTSTORE_CONSISTENCY_COMPUTING)
        return; /* a newer check started, or another incarnation of the peer */
    if (m->flag) {
        cs->state = RAFTSTORE_CONSISTENCY_NONE;
        return;
    }
    cs->hash = m->hash;
    cs->state = RAFTSTORE_CONSISTENCY_COMPUTED;
    LOG(LOG_INFO, "region=%llu peer=%llu: hash at index %llu is %016llx",
        (unsigned long long)p->region_id, (unsigned long long)p->peer_id,
        (unsigned long long)cs->index, (unsigned long long)cs->hash);
    if (p->is_leader) {
        uint8_t h[8];
        put_be64(h, cs->hash);
        propose(p, cs->index, h, NULL, NULL);
    }
    compare(p);
}

/* ---- the worker ---- */

#define FNV64_OFFSET 0xcbf29ce484222325ULL
#define FNV64_PRIME 0x100000001b3ULL

static void hash_bytes(uint64_t *h, const void *data, size_t len)
{
    const uint8_t *b = data;
    uint64_t x = *h;
    for (size_t i = 0; i < len; i++)
        x = (x ^ b[i]) * FNV64_PRIME;
    *h = x;
}

/* A field's length first, so adjacent fields cannot trade bytes. */
static void hash_field(uint64_t *h, const void *data, size_t len)
{
    uint8_t n[8];
    put_be64(n, (uint64_t)len);
    hash_bytes(h, n, sizeof n);
    hash_bytes(h, data, len);
}

static void hash_u64(uint64_t *h, uint64_t v)
{
    uint8_t b[8];
    put_be64(b, v);
    hash_bytes(h, b, sizeof b);
}

/* Hashes job's region as of its snapshot into *out; 0 or -1 (OOM, engine failure). */
static int hash_region(struct raftstore *rs, const struct consistency_job *job, uint64_t *out)
{
    uint8_t *lo, *hi;
    size_t lo_len, hi_len;
    if (store_region_data_range(&job->region, &lo, &lo_len, &hi, &hi_len) != 0)
        return -1;
    uint64_t h = FNV64_OFFSET;
    uint8_t version = CONSISTENCY_HASH_V1;
    hash_bytes(&h, &version, 1);
    hash_field(&h, job->region.start_key, job->region.start_key_len);
    hash_field(&h, job->region.end_key, job->region.end_key_len);
    hash_u64(&h, job->region.version);
    hash_u64(&h, job->region.conf_ver);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(ro, job->db_snap);
    rocksdb_readoptions_set_fill_cache(ro, 0);
    if (hi_len)
        rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, hi_len);
    int rc = 0;
    for (int cf = 0; cf < STORAGE_CF_COUNT && !rc; cf++) {
        uint8_t cf_byte = (uint8_t)cf;
        hash_bytes(&h, &cf_byte, 1);
        rocksdb_iterator_t *it =
            rocksdb_create_iterator_cf(engine_db(rs->cfg.kv), ro, engine_cf(rs->cfg.kv, cf));
        for (rocksdb_iter_seek(it, (const char *)lo, lo_len); rocksdb_iter_valid(it);
             rocksdb_iter_next(it)) {
            size_t klen, vlen;
            const char *k = rocksdb_iter_key(it, &klen);
            const char *v = rocksdb_iter_value(it, &vlen);
            hash_field(&h, k, klen);
            hash_field(&h, v, vlen);
        }
        char *err = NULL;
        rocksdb_iter_get_error(it, &err);
        if (err) {
            LOG(LOG_WARN, "region=%llu: consistency hash: %s", (unsigned long long)job->region_id,
                err);
            rocksdb_free(err);
            rc = -1;
        }
        rocksdb_iter_destroy(it);
    }
    rocksdb_readoptions_destroy(ro);
    free(lo);
    free(hi);
    *out = h;
    return rc;
}

static void job_free(struct raftstore *rs, struct consistency_job *job)
{
    rocksdb_release_snapshot(engine_db(rs->cfg.kv), job->db_snap);
    store_region_free(&job->region);
    free(job);
}

void *consistency_worker(void *arg)
{
    pthread_setname_np(pthread_self(), "consistency");
    struct raftstore *rs = arg;
    pthread_mutex_lock(&rs->mu);
    for (;;) {
        while (!rs->hash_jobs && !rs->stopping)
            pthread_cond_wait(&rs->hash_cond, &rs->mu);
        if (rs->stopping)
            break;
        struct consistency_job *job = rs->hash_jobs;
        rs->hash_jobs = job->next;
        pthread_mutex_unlock(&rs->mu);

        uint64_t hash = 0;
        int rc = hash_region(rs, job, &hash);
        struct mail *m = calloc(1, sizeof *m);
        if (m) {
            m->kind = MAIL_HASH_COMPUTED;
            m->region_id = job->region_id;
            m->hash_index = job->index;
            m->hash = hash;
            m->flag = rc != 0;
            raftstore_post(rs, m);
        }
        job_free(rs, job);
        pthread_mutex_lock(&rs->mu);
    }
    pthread_mutex_unlock(&rs->mu);
    return NULL;
}

void consistency_free_jobs(struct raftstore *rs)
{
    while (rs->hash_jobs) {
        struct consistency_job *next = rs->hash_jobs->next;
        job_free(rs, rs->hash_jobs);
        rs->hash_jobs = next;
    }
}

/* split_check.c — the split-check worker: measures a region's data off the store loop and picks
 * the user key to split it at. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "proto/log.h"
#include "store/raftstore_internal.h"

/*
 * What a scan does (TiKV's size and keys checkers in one pass): it merges the
 * region's data range of the three data CFs in key order, adding each
 * entry's key and value bytes to the size and counting distinct user keys.
 * The split key is the first user key reached after split_size bytes (or
 * split_keys keys) have gone by, so every version, lock and value of one
 * user key stays on one side; it is kept only if the whole region is over
 * max_size (max_keys). A region holding one user key never splits: its only
 * boundary is its start. The scan sees memtables, so the figures it reports
 * are right before RocksDB flushes anything.
 */

struct split_check_job {
    uint64_t region_id;
    struct region region;
    const rocksdb_snapshot_t *db_snap;
    struct split_check_job *next;
};

int split_check_due(const struct peer *p)
{
    const struct raftstore_config *cfg = &p->rs->cfg;
    if (p->split_checking || !p->is_leader)
        return 0;
    /* Unmeasured, or a split was asked for and has not come (the scheduler
     * may not know a brand-new region yet): look again. */
    if (!p->approx_known || p->split_wanted)
        return 1;
    return p->size_diff_hint >= cfg->region_split_size / 16 ||
           p->keys_diff_hint >= cfg->region_split_keys / 16;
}

void split_check_schedule(struct raftstore *rs, struct peer *p)
{
    struct split_check_job *job = calloc(1, sizeof *job);
    if (!job || store_region_copy(&job->region, &p->ps.region) != 0) {
        free(job);
        return; /* the next tick asks again */
    }
    job->region_id = p->region_id;
    job->db_snap = rocksdb_create_snapshot(engine_db(rs->cfg.kv));
    p->split_checking = 1;
    pthread_mutex_lock(&rs->mu);
    job->next = rs->split_jobs;
    rs->split_jobs = job;
    pthread_cond_signal(&rs->split_cond);
    pthread_mutex_unlock(&rs->mu);
}

struct scan_result {
    uint64_t size, keys;
    uint8_t *split_key; /* malloc'd, or NULL */
    size_t split_key_len;
};

/* Scans job's region; fills *out. Returns 0 or -1 (OOM, engine failure). */
static int scan_region(struct raftstore *rs, const struct split_check_job *job,
                       struct scan_result *out)
{
    const struct raftstore_config *cfg = &rs->cfg;
    uint8_t *lo, *hi;
    size_t lo_len, hi_len;
    memset(out, 0, sizeof *out);
    if (store_region_data_range(&job->region, &lo, &lo_len, &hi, &hi_len) != 0)
        return -1;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(ro, job->db_snap);
    rocksdb_readoptions_set_fill_cache(ro, 0);
    if (hi_len)
        rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, hi_len);
    rocksdb_iterator_t *its[STORAGE_CF_COUNT];
    for (int cf = 0; cf < STORAGE_CF_COUNT; cf++) {
        its[cf] = rocksdb_create_iterator_cf(engine_db(rs->cfg.kv), ro, engine_cf(rs->cfg.kv, cf));
        rocksdb_iter_seek(its[cf], (const char *)lo, lo_len);
    }
    /* User keys are at most 8 KiB; stored keys decode into this. */
    uint8_t *cur = malloc(16384), *key = malloc(16384);
    size_t cur_len = 0, key_len;
    int have_cur = 0, rc = cur && key ? 0 : -1;
    uint64_t size_at_key = 0, keys_at_key = 0;
    while (!rc) {
        int best = -1;
        size_t best_len = 0;
        const char *best_key = NULL;
        for (int cf = 0; cf < STORAGE_CF_COUNT; cf++) {
            if (!rocksdb_iter_valid(its[cf]))
                continue;
            size_t klen;
            const char *k = rocksdb_iter_key(its[cf], &klen);
            if (best < 0 || codec_bytes_cmp(k, klen, best_key, best_len) < 0) {
                best = cf;
                best_key = k;
                best_len = klen;
            }
        }
        if (best < 0)
            break;
        size_t vlen;
        rocksdb_iter_value(its[best], &vlen);
        if (best_len > 16384 ||
            codec_user_key_of((const uint8_t *)best_key, best_len, key, &key_len) != CODEC_OK) {
            rocksdb_iter_next(its[best]);
            continue; /* not a data key of this layout: not counted */
        }
        if (!have_cur || codec_bytes_cmp(key, key_len, cur, cur_len) != 0) {
            /* A user-key boundary: the first one past the split point splits. */
            if (have_cur && !out->split_key &&
                (size_at_key >= cfg->region_split_size || keys_at_key >= cfg->region_split_keys)) {
                out->split_key = malloc(key_len ? key_len : 1);
                if (!out->split_key) {
                    rc = -1;
                    break;
                }
                memcpy(out->split_key, key, key_len);
                out->split_key_len = key_len;
            }
            memcpy(cur, key, key_len);
            cur_len = key_len;
            have_cur = 1;
            out->keys++;
        }
        out->size += best_len + vlen;
        size_at_key = out->size;
        keys_at_key = out->keys;
        rocksdb_iter_next(its[best]);
    }
    for (int cf = 0; cf < STORAGE_CF_COUNT; cf++) {
        char *err = NULL;
        rocksdb_iter_get_error(its[cf], &err);
        if (err) {
            LOG(LOG_WARN, "region=%llu: split check: %s", (unsigned long long)job->region_id, err);
            rocksdb_free(err);
            rc = -1;
        }
        rocksdb_iter_destroy(its[cf]);
    }
    rocksdb_readoptions_destroy(ro);
    free(cur);
    free(key);
    free(lo);
    free(hi);
    /* Split only a region over its maximum, and never at its own start. */
    int over = out->size > cfg->region_max_size || out->keys > cfg->region_max_keys;
    if (out->split_key &&
        (rc || !over || !store_region_contains(&job->region, out->split_key, out->split_key_len) ||
         codec_bytes_cmp(out->split_key, out->split_key_len, job->region.start_key,
                         job->region.start_key_len) == 0)) {
        free(out->split_key);
        out->split_key = NULL;
        out->split_key_len = 0;
    }
    return rc;
}

void *split_check_worker(void *arg)
{
    pthread_setname_np(pthread_self(), "split-check");
    struct raftstore *rs = arg;
    pthread_mutex_lock(&rs->mu);
    for (;;) {
        while (!rs->split_jobs && !rs->stopping)
            pthread_cond_wait(&rs->split_cond, &rs->mu);
        if (rs->stopping)
            break;
        struct split_check_job *job = rs->split_jobs;
        rs->split_jobs = job->next;
        pthread_mutex_unlock(&rs->mu);

        struct scan_result res;
        int rc = scan_region(rs, job, &res);
        struct mail *m = calloc(1, sizeof *m);
        if (m) {
            m->kind = MAIL_SPLIT_CHECKED;
            m->region_id = job->region_id;
            m->epoch_version = job->region.version;
            m->flag = rc != 0; /* failed: only clears split_checking */
            m->size_bytes = res.size;
            m->n_keys = res.keys;
            m->split_key = res.split_key;
            m->split_key_len = res.split_key_len;
            raftstore_post(rs, m);
        } else {
            free(res.split_key);
        }
        rocksdb_release_snapshot(engine_db(rs->cfg.kv), job->db_snap);
        store_region_free(&job->region);
        free(job);
        pthread_mutex_lock(&rs->mu);
    }
    pthread_mutex_unlock(&rs->mu);
    return NULL;
}

void split_check_free_jobs(struct raftstore *rs)
{
    while (rs->split_jobs) {
        struct split_check_job *next = rs->split_jobs->next;
        rocksdb_release_snapshot(engine_db(rs->cfg.kv), rs->split_jobs->db_snap);
        store_region_free(&rs->split_jobs->region);
        free(rs->split_jobs);
        rs->split_jobs = next;
    }
}

/* snapshot.c — region snapshots: generated off the store loop from a RocksDB snapshot, applied into
 * the kv DB. */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto/log.h"
#include "store/raftstore_internal.h"
#include "store/snapshot_transfer.h"

/*
 * Format: eraftpb.Snapshot.data is a small raft_serverpb.RaftSnapshotData (the
 * manifest: `region` as of the snapshot's index, `meta` naming one file's size
 * and CRC-32); the pairs of the region's range, every CF, are in that file
 * (store/snap_file.h records, cf 0 default, 1 lock, 2 write) in the store's
 * snapshot directory. Generated into gen_<region>.snap a 1 MiB buffer at a
 * time; applied from the receiver's rcv_... file record by record, which is
 * removed once the data is synced (snapshot_transfer.h). Neither side holds
 * a snapshot whole in memory.
 */

/* A key greater than any key a client may write (keys are at most 8 KiB,
 * MVCC adds an encoding overhead and a timestamp). */
#define MAX_KEY_BOUND 16384

static uint8_t *max_key(void)
{
    uint8_t *k = malloc(MAX_KEY_BOUND);
    if (k)
        memset(k, 0xff, MAX_KEY_BOUND);
    return k;
}

void snapshot_clear_range(struct engine *kv, const struct region *r)
{
    uint8_t *lo, *hi, *bound = NULL;
    size_t lo_len, hi_len;
    if (store_region_data_range(r, &lo, &lo_len, &hi, &hi_len) != 0)
        abort();
    const uint8_t *end = hi;
    size_t end_len = hi_len;
    if (end_len == 0) {
        bound = max_key();
        if (!bound)
            abort();
        end = bound;
        end_len = MAX_KEY_BOUND;
    }
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    for (int cf = 0; cf < STORAGE_CF_COUNT; cf++)
        rocksdb_writebatch_delete_range_cf(wb, engine_cf(kv, cf), (const char *)lo, lo_len,
                                           (const char *)end, end_len);
    free(lo);
    free(hi);
    char err[256];
    if (engine_write_batch(kv, wb, 1, err, sizeof err) != 0) {
        LOG(LOG_ERROR, "region=%llu: clearing data: %s", (unsigned long long)r->id, err);
        abort();
    }
    rocksdb_writebatch_destroy(wb);
    free(bound);
}

void snapshot_schedule(struct raftstore *rs, struct peer *p)
{
    struct snap_job *job = calloc(1, sizeof *job);
    if (!job || store_region_copy(&job->region, &p->ps.region) != 0) {
        free(job);
        return; /* raft asks again later */
    }
    job->region_id = p->region_id;
    job->index = p->ps.applied_index;
    job->term = p->ps.applied_term;
    /* Taken on the loop thread, so it holds exactly the data applied so far. */
    job->db_snap = rocksdb_create_snapshot(engine_db(rs->cfg.kv));
    p->ps.snap_state = PEER_SNAP_GENERATING;
    p->ps.snap_version = job->region.version;
    p->ps.snap_conf_ver = job->region.conf_ver;
    pthread_mutex_lock(&rs->mu);
    job->next = rs->snap_jobs;
    rs->snap_jobs = job;
    pthread_cond_signal(&rs->snap_cond);
    pthread_mutex_unlock(&rs->mu);
}

/* Packs the manifest: the region, and the one file's size and checksum. *out malloc'd. */
static int pack_manifest(const struct region *region, uint64_t size, uint32_t crc, uint8_t **out,
                         size_t *out_len)
{
    RaftServerpb__RaftSnapshotData sd = RAFT_SERVERPB__RAFT_SNAPSHOT_DATA__INIT;
    RaftServerpb__SnapshotMeta meta = RAFT_SERVERPB__SNAPSHOT_META__INIT;
    RaftServerpb__SnapshotCFFile file = RAFT_SERVERPB__SNAPSHOT_CFFILE__INIT;
    RaftServerpb__SnapshotCFFile *files[1] = {&file};
    file.cf = "all";
    file.size = size;
    file.checksum = crc;
    meta.cf_files = files;
    meta.n_cf_files = 1;
    sd.meta = &meta;
    sd.file_size = size;
    sd.region = store_region_to_proto(region);
    if (!sd.region)
        return -1;
    *out_len = raft_serverpb__raft_snapshot_data__get_packed_size(&sd);
    *out = malloc(*out_len ? *out_len : 1);
    if (*out)
        raft_serverpb__raft_snapshot_data__pack(&sd, *out);
    protobuf_c_message_free_unpacked(&sd.region->base, NULL);
    return *out ? 0 : -1;
}

/* Writes the job's data into the region's snapshot file (gen_<region>.snap, replacing the
 * previous generation once complete), a 1 MiB buffer at a time; then packs the manifest
 * (*out malloc'd). */
static int build_data(struct raftstore *rs, struct snap_job *job, uint8_t **out, size_t *out_len)
{
    char name[96];
    snapshot_gen_name(job->region_id, name);
    struct snap_file_writer w;
    if (snap_file_create(&w, snapshot_dir(rs), name, 0) != SNAP_FILE_OK) {
        LOG(LOG_ERROR, "region=%llu: snapshot file: %s", (unsigned long long)job->region_id,
            w.errmsg);
        return -1;
    }
    uint8_t *lo = NULL, *hi = NULL;
    size_t lo_len, hi_len;
    int rc = store_region_data_range(&job->region, &lo, &lo_len, &hi, &hi_len) != 0 ? -1 : 0;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(ro, job->db_snap);
    if (!rc && hi_len)
        rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, hi_len);
    for (int cf = 0; cf < STORAGE_CF_COUNT && !rc; cf++) {
        rocksdb_iterator_t *it =
            rocksdb_create_iterator_cf(engine_db(rs->cfg.kv), ro, engine_cf(rs->cfg.kv, cf));
        for (rocksdb_iter_seek(it, (const char *)lo, lo_len); !rc && rocksdb_iter_valid(it);
             rocksdb_iter_next(it)) {
            size_t klen, vlen;
            const char *k = rocksdb_iter_key(it, &klen);
            if (!store_region_contains_stored(&job->region, k, klen))
                break;
            const char *v = rocksdb_iter_value(it, &vlen);
            if (snap_file_put(&w, (uint8_t)cf, k, (uint32_t)klen, v, (uint32_t)vlen) !=
                SNAP_FILE_OK)
                rc = -1;
        }
        rocksdb_iter_destroy(it);
    }
    rocksdb_readoptions_destroy(ro);
    free(lo);
    free(hi);
    uint64_t size;
    uint32_t crc;
    if (rc) {
        snap_file_abort(&w);
    } else if (snap_file_finish(&w, 0, 0, 0, &size, &crc) != SNAP_FILE_OK) {
        rc = -1;
    }
    if (rc) {
        LOG(LOG_ERROR, "region=%llu: writing the snapshot file: %s",
            (unsigned long long)job->region_id, w.errmsg[0] ? w.errmsg : "failed");
        return -1;
    }
    return pack_manifest(&job->region, size, crc, out, out_len);
}

uint64_t snapshot_file_bytes(const uint8_t *data, size_t len)
{
    struct snapshot_manifest mf;
    return snapshot_manifest_decode(data, len, 0, &mf) == 0 ? mf.size : 0;
}

int snapshot_dir_init(struct raftstore *rs, char *errbuf, size_t errbuf_len)
{
    if (!rs->cfg.snap_dir[0]) {
        snprintf(errbuf, errbuf_len, "no snapshot directory configured");
        return STORAGE_ERR_IO;
    }
    if (mkdir(rs->cfg.snap_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(errbuf, errbuf_len, "creating %.400s: %s", rs->cfg.snap_dir, strerror(errno));
        return STORAGE_ERR_IO;
    }
    size_t n = snap_file_clean_dir(rs->cfg.snap_dir);
    if (n)
        LOG(LOG_INFO, "removed %zu snapshot files left over in %s", n, rs->cfg.snap_dir);
    return 0;
}

void raftstore_snapshot_counts(struct raftstore *rs, uint32_t *sending, uint32_t *receiving,
                               uint32_t *applying)
{
    *sending = atomic_load(&rs->snaps_sending);
    *receiving = atomic_load(&rs->snaps_receiving);
    *applying = atomic_load(&rs->snaps_applying);
}

void raftstore_snapshot_count_add(struct raftstore *rs, int which, int delta)
{
    atomic_fetch_add(which == 0 ? &rs->snaps_sending : &rs->snaps_receiving, (uint32_t)delta);
}

void snapshot_schedule_apply(struct raftstore *rs, struct peer *p)
{
    struct snap_job *job = calloc(1, sizeof *job);
    if (!job || store_region_copy(&job->region, &p->held_region) != 0)
        abort(); /* cannot leave a received snapshot half handled */
    job->apply = 1;
    job->region_id = p->region_id;
    job->snap = &p->held.snapshot;
    atomic_fetch_add(&rs->snaps_applying, 1);
    pthread_mutex_lock(&rs->mu);
    job->next = rs->snap_jobs;
    rs->snap_jobs = job;
    pthread_cond_signal(&rs->snap_cond);
    pthread_mutex_unlock(&rs->mu);
}

/* Writes a received snapshot's data, then tells the loop. */
static void run_apply_job(struct raftstore *rs, struct snap_job *job)
{
    if (snapshot_apply_data(rs, &job->region, job->snap) != 0)
        abort(); /* the replica cannot go on with half a snapshot */
    atomic_fetch_sub(&rs->snaps_applying, 1);
    struct mail *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    m->kind = MAIL_SNAP_APPLIED;
    m->region_id = job->region_id;
    raftstore_post(rs, m);
}

void *snapshot_worker(void *arg)
{
    pthread_setname_np(pthread_self(), "snap-apply");
    struct raftstore *rs = arg;
    pthread_mutex_lock(&rs->mu);
    for (;;) {
        while (!rs->snap_jobs && !rs->stopping)
            pthread_cond_wait(&rs->snap_cond, &rs->mu);
        if (rs->stopping)
            break;
        struct snap_job *job = rs->snap_jobs;
        rs->snap_jobs = job->next;
        pthread_mutex_unlock(&rs->mu);

        if (job->apply) {
            run_apply_job(rs, job);
            store_region_free(&job->region);
            free(job);
            pthread_mutex_lock(&rs->mu);
            continue;
        }
        struct mail *m = calloc(1, sizeof *m);
        uint8_t *data = NULL;
        size_t len = 0;
        if (m && build_data(rs, job, &data, &len) == 0) {
            m->kind = MAIL_SNAP_GENERATED;
            m->region_id = job->region_id;
            m->snap.data = data;
            m->snap.data_len = len;
            m->snap.metadata.index = job->index;
            m->snap.metadata.term = job->term;
            m->snap.metadata.conf_state.n_nodes = job->region.n_peers;
            m->snap.metadata.conf_state.nodes =
                malloc((job->region.n_peers ? job->region.n_peers : 1) * sizeof(uint64_t));
            for (size_t i = 0; m->snap.metadata.conf_state.nodes && i < job->region.n_peers; i++)
                m->snap.metadata.conf_state.nodes[i] = job->region.peers[i].id;
            LOG(LOG_INFO, "region=%llu: generated snapshot at index %llu (%zu bytes)",
                (unsigned long long)job->region_id, (unsigned long long)job->index, len);
            raftstore_post(rs, m);
        } else if (m) {
            /* No data: the loop sets the peer back to idle, so Raft's next ask tries again
             * (else the peer would wait for this generation forever). */
            m->kind = MAIL_SNAP_GENERATED;
            m->region_id = job->region_id;
            raftstore_post(rs, m);
        }
        rocksdb_release_snapshot(engine_db(rs->cfg.kv), job->db_snap);
        store_region_free(&job->region);
        free(job);
        pthread_mutex_lock(&rs->mu);
    }
    pthread_mutex_unlock(&rs->mu);
    return NULL;
}

int snapshot_region(const struct raft_snapshot *snap, struct region *out)
{
    RaftServerpb__RaftSnapshotData *sd =
        raft_serverpb__raft_snapshot_data__unpack(NULL, snap->data_len, snap->data);
    if (!sd || !sd->region) {
        if (sd)
            raft_serverpb__raft_snapshot_data__free_unpacked(sd, NULL);
        return -1;
    }
    int rc = store_region_from_proto(out, sd->region);
    raft_serverpb__raft_snapshot_data__free_unpacked(sd, NULL);
    return rc;
}

/* remove_applied removes the region's received files at or below the applied index: this one,
 * and any Raft dropped (stale, or overlapping then) that no longer can be applied. Newer ones
 * stay: their messages may be on the way to the peer. */
static void remove_applied(const char *dir, uint64_t region_id, uint64_t index)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long long rid, idx;
        unsigned crc;
        int end = 0;
        if (sscanf(e->d_name, "rcv_%llu_%llu_%8x.snap%n", &rid, &idx, &crc, &end) == 3 &&
            e->d_name[end] == '\0' && rid == region_id && idx <= index)
            snap_file_remove(dir, e->d_name);
    }
    closedir(d);
}

int snapshot_apply_data(struct raftstore *rs, const struct region *r,
                        const struct raft_snapshot *snap)
{
    struct snapshot_manifest mf;
    char name[96];
    if (snapshot_manifest_decode(snap->data, snap->data_len, snap->metadata.index, &mf) != 0) {
        LOG(LOG_ERROR, "region=%llu: snapshot without a file manifest", (unsigned long long)r->id);
        return STORAGE_ERR_IO;
    }
    snapshot_rcv_name(&mf, name);
    struct snap_file_reader rd;
    /* Checked whole (size, checksum) before the range is touched. */
    if (snap_file_open(&rd, snapshot_dir(rs), name, mf.size, mf.crc) != SNAP_FILE_OK) {
        LOG(LOG_ERROR, "region=%llu: snapshot file: %s", (unsigned long long)r->id, rd.errmsg);
        return STORAGE_ERR_IO;
    }
    snapshot_clear_range(rs->cfg.kv, r);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    size_t batch_bytes = 0;
    char err[256] = "";
    int rc = 0;
    for (;;) {
        uint8_t cf;
        const uint8_t *k, *v;
        uint32_t kl, vl;
        int got = snap_file_next(&rd, &cf, &k, &kl, &v, &vl);
        if (got == 0)
            break;
        if (got != 1) {
            snprintf(err, sizeof err, "%s", rd.errmsg);
            rc = STORAGE_ERR_IO;
            break;
        }
        if (cf >= STORAGE_CF_COUNT || !store_region_contains_stored(r, (const char *)k, kl))
            continue; /* not data of this region: never written outside its range */
        rocksdb_writebatch_put_cf(wb, engine_cf(rs->cfg.kv, cf), (const char *)k, kl,
                                  (const char *)v, vl);
        batch_bytes += kl + vl;
        if (batch_bytes > (4u << 20)) {
            rc = engine_write_batch(rs->cfg.kv, wb, 0, err, sizeof err);
            rocksdb_writebatch_clear(wb);
            batch_bytes = 0;
            if (rc)
                break;
        }
    }
    if (!rc)
        rc = engine_write_batch(rs->cfg.kv, wb, 1, err, sizeof err);
    rocksdb_writebatch_destroy(wb);
    snap_file_close(&rd);
    if (rc)
        LOG(LOG_ERROR, "region=%llu: applying snapshot: %s", (unsigned long long)r->id, err);
    else
        remove_applied(snapshot_dir(rs), r->id, mf.index); /* applied and synced */
    return rc;
}

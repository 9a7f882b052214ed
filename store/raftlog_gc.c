/* raftlog_gc.c — the Raft-log GC worker: deletes compacted log entries from the raft DB off the
 * store loop. */
#include <stdlib.h>

#include "store/keys.h"
#include "store/raftstore_internal.h"

/*
 * A task is a range of one region's log below its truncated index. The apply
 * batch that moved the truncated index was synced before the task was
 * queued, so deleting these entries can never leave the store without a log
 * it would replay. A task lost at shutdown leaves garbage below the
 * truncated index, which nothing reads. Indexes of a region only grow, also
 * across a destroyed and re-created peer, so a late task never deletes a
 * newer incarnation's entries.
 */
struct raftlog_gc_task {
    uint64_t region_id, from, to;
    struct raftlog_gc_task *next;
};

void raftlog_gc_schedule(struct raftstore *rs, uint64_t region_id, uint64_t from, uint64_t to)
{
    if (to <= from)
        return;
    struct raftlog_gc_task *t = malloc(sizeof *t);
    if (!t)
        return; /* only garbage stays behind */
    *t = (struct raftlog_gc_task){region_id, from, to, NULL};
    pthread_mutex_lock(&rs->mu);
    struct raftlog_gc_task **tail = &rs->gc_tasks;
    while (*tail)
        tail = &(*tail)->next;
    *tail = t;
    pthread_cond_signal(&rs->gc_cond);
    pthread_mutex_unlock(&rs->mu);
}

void *raftlog_gc_worker(void *arg)
{
    pthread_setname_np(pthread_self(), "raftlog-gc");
    struct raftstore *rs = arg;
    pthread_mutex_lock(&rs->mu);
    for (;;) {
        while (!rs->gc_tasks && !rs->stopping)
            pthread_cond_wait(&rs->gc_cond, &rs->mu);
        if (rs->stopping)
            break;
        struct raftlog_gc_task *t = rs->gc_tasks;
        rs->gc_tasks = t->next;
        pthread_mutex_unlock(&rs->mu);
        uint8_t start[KEYS_RAFT_LOG_KEY_LEN], end[KEYS_RAFT_LOG_KEY_LEN];
        keys_raft_log(t->region_id, t->from, start);
        keys_raft_log(t->region_id, t->to, end);
        rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
        rocksdb_writebatch_delete_range_cf(wb, engine_cf(rs->cfg.raft, STORAGE_CF_DEFAULT),
                                           (const char *)start, sizeof start, (const char *)end,
                                           sizeof end);
        char err[256];
        engine_write_batch(rs->cfg.raft, wb, 0, err, sizeof err); /* a failure leaves garbage */
        rocksdb_writebatch_destroy(wb);
        free(t);
        pthread_mutex_lock(&rs->mu);
    }
    pthread_mutex_unlock(&rs->mu);
    return NULL;
}

void raftlog_gc_free_tasks(struct raftstore *rs)
{
    while (rs->gc_tasks) {
        struct raftlog_gc_task *next = rs->gc_tasks->next;
        free(rs->gc_tasks);
        rs->gc_tasks = next;
    }
}

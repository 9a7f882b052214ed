/* mem_locks.c — the keys of one-phase commits in flight, which readers wait for. */
#include <string.h>
#include <time.h>

#include "mvcc/mvcc_internal.h"

int mvcc_mem_locks_init(struct mvcc_mem_locks *l)
{
    pthread_condattr_t ca;
    memset(l, 0, sizeof(*l));
    if (pthread_condattr_init(&ca) != 0)
        return MVCC_ERR_NOMEM;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return MVCC_ERR_NOMEM;
    pthread_mutex_init(&l->mu, NULL);
    l->ready = 1;
    return MVCC_OK;
}

void mvcc_mem_locks_close(struct mvcc_mem_locks *l)
{
    if (!l->ready)
        return;
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    l->ready = 0;
}

/* Under mu. */
static void link_head(struct mvcc_mem_locks *l, struct mvcc_mem_lock *m, uint64_t commit_ts)
{
    m->commit_ts = commit_ts;
    m->prev = NULL;
    m->next = l->head;
    if (l->head)
        l->head->prev = m;
    l->head = m;
}

void mvcc_mem_locks_add(struct mvcc_mem_locks *l, struct mvcc_mem_lock *m)
{
    pthread_mutex_lock(&l->mu);
    link_head(l, m, 0);
    pthread_mutex_unlock(&l->mu);
}

void mvcc_mem_locks_set_commit_ts(struct mvcc_mem_locks *l, struct mvcc_mem_lock *m,
                                  uint64_t commit_ts)
{
    pthread_mutex_lock(&l->mu);
    m->commit_ts = commit_ts;
    pthread_mutex_unlock(&l->mu);
    /* Readers below commit_ts need not wait any longer. */
    pthread_cond_broadcast(&l->cv);
}

void mvcc_mem_locks_remove(struct mvcc_mem_locks *l, struct mvcc_mem_lock *m)
{
    pthread_mutex_lock(&l->mu);
    if (m->prev)
        m->prev->next = m->next;
    else
        l->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    m->prev = m->next = NULL;
    pthread_mutex_unlock(&l->mu);
    pthread_cond_broadcast(&l->cv);
}

int mvcc_mem_locks_add_local(struct mvcc_mem_locks *l, struct mvcc_mem_lock *m, uint64_t region_id,
                             uint64_t term, uint64_t start_ts, uint64_t *commit_ts)
{
    const struct synced_term *st = &l->synced[region_id % MVCC_SYNCED_SLOTS];
    int listed = 0;
    pthread_mutex_lock(&l->mu);
    uint64_t above = l->max_ts > start_ts ? l->max_ts : start_ts;
    if (term && st->term == term && st->region_id == region_id &&
        above < l->last_tso + MVCC_LOCAL_TS_SLACK) {
        /* Listed with its ts in the same hold of mu that read max_ts: a reader above it waits
         * for the write, a reader below it does not need to. */
        *commit_ts = above + 1;
        link_head(l, m, above + 1);
        listed = 1;
    }
    pthread_mutex_unlock(&l->mu);
    return listed;
}

void mvcc_mem_locks_tso_seen(struct mvcc_mem_locks *l, uint64_t region_id, uint64_t term,
                             uint64_t ts)
{
    pthread_mutex_lock(&l->mu);
    if (ts > l->max_ts)
        l->max_ts = ts;
    if (ts > l->last_tso)
        l->last_tso = ts;
    if (term) {
        struct synced_term *st = &l->synced[region_id % MVCC_SYNCED_SLOTS];
        if (st->region_id != region_id || st->term < term)
            *st = (struct synced_term){region_id, term};
    }
    pthread_mutex_unlock(&l->mu);
}

static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

/* Whether m may still commit at or below read_ts on a key in [start, end) (end_len 0: no end);
 * a point read passes end == NULL. */
static int blocks(const struct mvcc_mem_lock *m, const void *start, size_t start_len,
                  const void *end, size_t end_len, uint64_t read_ts)
{
    if (m->commit_ts && m->commit_ts > read_ts)
        return 0;
    for (size_t i = 0; i < m->n_keys; i++) {
        const struct mvcc_key_slice *k = &m->keys[i];
        if (!end) {
            if (key_cmp(k->data, k->len, start, start_len) == 0)
                return 1;
        } else if (key_cmp(k->data, k->len, start, start_len) >= 0 &&
                   (end_len == 0 || key_cmp(k->data, k->len, end, end_len) < 0)) {
            return 1;
        }
    }
    return 0;
}

/* Whether read_ts is past what any TSO can have issued by now, by more than the bound. Caller
 * holds l->mu. */
static int read_ts_too_far(const struct mvcc_mem_locks *l, uint64_t read_ts)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t base_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    if (mvcc_ts_physical_ms(l->last_tso) > base_ms)
        base_ms = mvcc_ts_physical_ms(l->last_tso);
    return mvcc_ts_physical_ms(read_ts) > base_ms + MVCC_READ_TS_AHEAD_MS;
}

int mvcc_mem_locks_wait(struct mvcc_mem_locks *l, const void *start, size_t start_len,
                        const void *end, size_t end_len, uint64_t read_ts, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&l->mu);
    /* MVCC_TS_MAX reads the newest versions: no snapshot to keep, so max_ts stays (as TiKV's). */
    if (read_ts != MVCC_TS_MAX && read_ts_too_far(l, read_ts)) {
        pthread_mutex_unlock(&l->mu);
        return 2;
    }
    /* From here on no commit ts chosen on this store is at or below read_ts. */
    if (read_ts > l->max_ts && read_ts != MVCC_TS_MAX)
        l->max_ts = read_ts;
    for (;;) {
        const struct mvcc_mem_lock *m = l->head;
        while (m && !blocks(m, start, start_len, end, end_len, read_ts))
            m = m->next;
        if (!m)
            break;
        l->waiters++;
        int w = pthread_cond_timedwait(&l->cv, &l->mu, &until);
        l->waiters--;
        if (w != 0) {
            rc = 1; /* timed out (or the wait failed): the caller answers "busy" */
            break;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* local_read.c — the table of regions readable by lease off the loop (see local_read.h). */
#include "store/local_read.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "proto/rpc.h"
#include "store/raftstore_internal.h"

struct entry {
    uint64_t region_id;
    uint64_t until_ms; /* 0: withdrawn */
    uint64_t term;     /* the leader's term when published */
    uint64_t version;
    struct region range; /* keys and version only (no peers) */
    uint8_t *lo, *hi;    /* its data range in stored keys */
    size_t lo_len, hi_len;
    _Atomic uint64_t served;
};

struct local_reader {
    pthread_mutex_t mu;
    struct entry **entries; /* sorted by region id; an entry lives until local_read_free */
    size_t n, cap;
};

struct local_reader *local_read_new(void)
{
    struct local_reader *lr = calloc(1, sizeof *lr);
    if (lr)
        pthread_mutex_init(&lr->mu, NULL);
    return lr;
}

static void entry_free(struct entry *e)
{
    store_region_free(&e->range);
    free(e->lo);
    free(e->hi);
    free(e);
}

void local_read_free(struct local_reader *lr)
{
    if (!lr)
        return;
    for (size_t i = 0; i < lr->n; i++)
        entry_free(lr->entries[i]);
    free(lr->entries);
    pthread_mutex_destroy(&lr->mu);
    free(lr);
}

/* Position of region_id in the table, or where it would go; *found set. Under mu. */
static size_t slot(const struct local_reader *lr, uint64_t region_id, int *found)
{
    size_t lo = 0, hi = lr->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (lr->entries[mid]->region_id < region_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < lr->n && lr->entries[lo]->region_id == region_id;
    return lo;
}

static struct entry *find(const struct local_reader *lr, uint64_t region_id)
{
    int found;
    size_t i = slot(lr, region_id, &found);
    return found ? lr->entries[i] : NULL;
}

/* The range of r (at its version) copied into e. Under mu; -1 on OOM, e unreadable then. */
static int set_range(struct entry *e, const struct region *r)
{
    store_region_free(&e->range);
    free(e->lo);
    free(e->hi);
    e->lo = e->hi = NULL;
    e->version = 0;
    struct region keys = *r;
    keys.peers = NULL;
    keys.n_peers = 0;
    if (store_region_copy(&e->range, &keys) != 0 ||
        store_region_data_range(r, &e->lo, &e->lo_len, &e->hi, &e->hi_len) != 0)
        return -1;
    e->version = r->version;
    return 0;
}

int local_read_publish(struct local_reader *lr, const struct region *r, uint64_t term,
                       uint64_t until_ms, uint64_t *served)
{
    int rc = 0;
    pthread_mutex_lock(&lr->mu);
    int found;
    size_t i = slot(lr, r->id, &found);
    struct entry *e = found ? lr->entries[i] : NULL;
    if (!e) {
        if (lr->n == lr->cap) {
            size_t cap = lr->cap ? lr->cap * 2 : 16;
            struct entry **grown = realloc(lr->entries, cap * sizeof *grown);
            if (!grown) {
                pthread_mutex_unlock(&lr->mu);
                return -1;
            }
            lr->entries = grown;
            lr->cap = cap;
        }
        e = calloc(1, sizeof *e);
        if (!e) {
            pthread_mutex_unlock(&lr->mu);
            return -1;
        }
        e->region_id = r->id;
        memmove(&lr->entries[i + 1], &lr->entries[i], (lr->n - i) * sizeof *lr->entries);
        lr->entries[i] = e;
        lr->n++;
    }
    if (e->version != r->version || !e->version)
        rc = set_range(e, r);
    e->until_ms = rc ? 0 : until_ms;
    e->term = term;
    if (served)
        *served = atomic_load_explicit(&e->served, memory_order_relaxed);
    pthread_mutex_unlock(&lr->mu);
    return rc;
}

uint64_t local_read_withdraw(struct local_reader *lr, uint64_t region_id)
{
    pthread_mutex_lock(&lr->mu);
    struct entry *e = find(lr, region_id);
    uint64_t served = 0;
    if (e) {
        e->until_ms = 0;
        served = atomic_load_explicit(&e->served, memory_order_relaxed);
    }
    pthread_mutex_unlock(&lr->mu);
    return served;
}

int local_read_try(struct local_reader *lr, struct engine *kv, uint64_t store_id,
                   const struct storage_ctx *ctx, raftstore_cb cb, void *arg)
{
    if (!ctx->region_id || (ctx->peer_store_id && ctx->peer_store_id != store_id))
        return 0;
    struct storage_reader *reader = NULL;
    pthread_mutex_lock(&lr->mu);
    struct entry *e = find(lr, ctx->region_id);
    int ok = e && rpc_now_ms() < e->until_ms && e->version == ctx->region_version;
    for (size_t i = 0; ok && i < ctx->n_keys; i++)
        ok = store_region_contains(&e->range, ctx->keys[i].data, ctx->keys[i].len);
    if (ok)
        ok = engine_snapshot_reader_bounded(kv, e->lo, e->lo_len, e->hi, e->hi_len, &reader) == 0;
    if (ok) {
        reader->term = e->term;
        atomic_fetch_add_explicit(&e->served, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&lr->mu);
    if (!ok)
        return 0;
    raftstore_answer(cb, arg, 0, NULL, reader);
    return 1;
}

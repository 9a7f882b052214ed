/* store_meta.c — the store's regions by id and by range: sorted arrays searched by bisection. */
#include "store/store_meta.h"

#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"

void store_meta_init(struct store_meta *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void store_meta_close(struct store_meta *m)
{
    for (size_t i = 0; i < m->n; i++)
        store_region_free(&m->by_key[i]);
    free(m->by_key);
    free(m->ids_sorted);
    free(m->ids_pos);
    pthread_mutex_destroy(&m->mu);
}

/* Index in by_key of the first region whose start key is > key (bisection). */
static size_t upper_bound(const struct store_meta *m, const void *key, size_t len)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct region *r = &m->by_key[mid];
        if (codec_bytes_cmp(r->start_key, r->start_key_len, key, len) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Position of id in ids_sorted, or where it would go; *found set. */
static size_t id_slot(const struct store_meta *m, uint64_t id, int *found)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->ids_sorted[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < m->n && m->ids_sorted[lo] == id;
    return lo;
}

static void rebuild_ids(struct store_meta *m)
{
    /* n is small enough (thousands) that an insertion sort of ids stays cheap
     * next to the copies each change already makes. */
    for (size_t i = 0; i < m->n; i++) {
        uint64_t id = m->by_key[i].id;
        size_t j = i;
        while (j > 0 && m->ids_sorted[j - 1] > id) {
            m->ids_sorted[j] = m->ids_sorted[j - 1];
            m->ids_pos[j] = m->ids_pos[j - 1];
            j--;
        }
        m->ids_sorted[j] = id;
        m->ids_pos[j] = i;
    }
}

static int ranges_overlap(const struct region *r, const void *start, size_t start_len,
                          const void *end, size_t end_len)
{
    /* [a, b) and [c, d) overlap iff a < d and c < b (empty end: +inf). */
    int a_lt_d = end_len == 0 || codec_bytes_cmp(r->start_key, r->start_key_len, end, end_len) < 0;
    int c_lt_b =
        r->end_key_len == 0 || codec_bytes_cmp(start, start_len, r->end_key, r->end_key_len) < 0;
    return a_lt_d && c_lt_b;
}

static uint64_t overlap_locked(struct store_meta *m, const void *start, size_t start_len,
                               const void *end, size_t end_len, uint64_t except_id)
{
    /* Only the region starting at or before `start` and those starting
     * inside [start, end) can overlap. */
    size_t i = upper_bound(m, start, start_len);
    if (i > 0)
        i--;
    for (; i < m->n; i++) {
        const struct region *r = &m->by_key[i];
        if (end_len && codec_bytes_cmp(r->start_key, r->start_key_len, end, end_len) >= 0)
            break;
        if (r->id != except_id && ranges_overlap(r, start, start_len, end, end_len))
            return r->id;
    }
    return 0;
}

uint64_t store_meta_overlap(struct store_meta *m, const void *start, size_t start_len,
                            const void *end, size_t end_len, uint64_t except_id)
{
    pthread_mutex_lock(&m->mu);
    uint64_t id = overlap_locked(m, start, start_len, end, end_len, except_id);
    pthread_mutex_unlock(&m->mu);
    return id;
}

static void remove_locked(struct store_meta *m, uint64_t id)
{
    int found;
    size_t slot = id_slot(m, id, &found);
    if (!found)
        return;
    size_t pos = m->ids_pos[slot];
    store_region_free(&m->by_key[pos]);
    memmove(&m->by_key[pos], &m->by_key[pos + 1], (m->n - pos - 1) * sizeof *m->by_key);
    m->n--;
    rebuild_ids(m);
}

int store_meta_put(struct store_meta *m, const struct region *r)
{
    struct region copy;
    if (store_region_copy(&copy, r) != 0)
        return -1;
    pthread_mutex_lock(&m->mu);
    if (overlap_locked(m, r->start_key, r->start_key_len, r->end_key, r->end_key_len, r->id)) {
        pthread_mutex_unlock(&m->mu);
        store_region_free(&copy);
        return -2;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct region *rs = realloc(m->by_key, cap * sizeof *rs);
        if (rs)
            m->by_key = rs;
        uint64_t *ids = realloc(m->ids_sorted, cap * sizeof *ids);
        if (ids)
            m->ids_sorted = ids;
        size_t *pos = realloc(m->ids_pos, cap * sizeof *pos);
        if (pos)
            m->ids_pos = pos;
        if (!rs || !ids || !pos) {
            pthread_mutex_unlock(&m->mu);
            store_region_free(&copy);
            return -1;
        }
        m->cap = cap;
    }
    remove_locked(m, r->id);
    size_t at = upper_bound(m, copy.start_key, copy.start_key_len);
    memmove(&m->by_key[at + 1], &m->by_key[at], (m->n - at) * sizeof *m->by_key);
    m->by_key[at] = copy;
    m->n++;
    rebuild_ids(m);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

void store_meta_remove(struct store_meta *m, uint64_t id)
{
    pthread_mutex_lock(&m->mu);
    remove_locked(m, id);
    pthread_mutex_unlock(&m->mu);
}

int store_meta_get(struct store_meta *m, uint64_t id, struct region *out)
{
    int found, rc = -1;
    pthread_mutex_lock(&m->mu);
    size_t slot = id_slot(m, id, &found);
    if (found)
        rc = store_region_copy(out, &m->by_key[m->ids_pos[slot]]);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int store_meta_find(struct store_meta *m, const void *key, size_t len, struct region *out)
{
    int rc = -1;
    pthread_mutex_lock(&m->mu);
    size_t i = upper_bound(m, key, len);
    if (i > 0 && store_region_contains(&m->by_key[i - 1], key, len))
        rc = store_region_copy(out, &m->by_key[i - 1]);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int store_meta_next(struct store_meta *m, uint64_t id, struct region *out)
{
    int found, rc = -1;
    pthread_mutex_lock(&m->mu);
    size_t slot = id_slot(m, id, &found);
    if (found) {
        size_t pos = m->ids_pos[slot];
        const struct region *r = &m->by_key[pos];
        if (r->end_key_len && pos + 1 < m->n &&
            codec_bytes_cmp(m->by_key[pos + 1].start_key, m->by_key[pos + 1].start_key_len,
                            r->end_key, r->end_key_len) == 0)
            rc = store_region_copy(out, &m->by_key[pos + 1]);
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

size_t store_meta_count(struct store_meta *m)
{
    pthread_mutex_lock(&m->mu);
    size_t n = m->n;
    pthread_mutex_unlock(&m->mu);
    return n;
}

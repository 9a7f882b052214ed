/* region_tree.c — regions ordered by start key (sorted array, binary search) with an id index. */
#include "pd/pd_internal.h"

#include <stdlib.h>
#include <string.h>

void pd_region_tree_init(struct pd_region_tree *t)
{
    memset(t, 0, sizeof *t);
}

void pd_region_tree_close(struct pd_region_tree *t)
{
    for (size_t i = 0; i < t->count; i++)
        pd_region_free(t->by_key[i]);
    free(t->by_key);
    free(t->by_id);
    memset(t, 0, sizeof *t);
}

/* id_lower_bound: first index in by_id whose id >= id. */
static size_t id_lower_bound(const struct pd_region_tree *t, uint64_t id)
{
    size_t lo = 0, hi = t->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->by_id[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* key_upper_bound: first index whose start key > key. */
static size_t key_upper_bound(const struct pd_region_tree *t, const uint8_t *key, size_t len)
{
    size_t lo = 0, hi = t->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct pd_region *r = t->by_key[mid];
        if (pd_key_cmp(r->start_key, r->start_key_len, key, len) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct pd_region *pd_region_tree_find_by_id(const struct pd_region_tree *t, uint64_t id)
{
    size_t i = id_lower_bound(t, id);
    return i < t->count && t->by_id[i]->id == id ? t->by_id[i] : NULL;
}

size_t pd_region_tree_index_at_or_before(const struct pd_region_tree *t, const uint8_t *key,
                                         size_t len)
{
    size_t i = key_upper_bound(t, key, len);
    return i == 0 ? t->count : i - 1;
}

struct pd_region *pd_region_tree_find_by_key(const struct pd_region_tree *t, const uint8_t *key,
                                             size_t len)
{
    size_t i = pd_region_tree_index_at_or_before(t, key, len);
    if (i == t->count)
        return NULL;
    struct pd_region *r = t->by_key[i];
    return pd_region_contains_key(r, key, len) ? r : NULL;
}

size_t pd_region_tree_first_overlap(const struct pd_region_tree *t, const struct pd_region *r)
{
    size_t i = pd_region_tree_index_at_or_before(t, r->start_key, r->start_key_len);
    if (i == t->count)
        i = 0;
    else if (!pd_regions_overlap(t->by_key[i], r))
        i++;
    if (i < t->count && pd_regions_overlap(t->by_key[i], r))
        return i;
    return t->count;
}

int pd_region_tree_reserve(struct pd_region_tree *t)
{
    if (t->count < t->cap)
        return PD_OK;
    size_t cap = t->cap ? t->cap * 2 : 64;
    struct pd_region **k = realloc(t->by_key, cap * sizeof *k);
    if (k == NULL)
        return PD_ERR_NOMEM;
    t->by_key = k;
    struct pd_region **d = realloc(t->by_id, cap * sizeof *d);
    if (d == NULL)
        return PD_ERR_NOMEM;
    t->by_id = d;
    t->cap = cap;
    return PD_OK;
}

int pd_region_tree_insert(struct pd_region_tree *t, struct pd_region *r)
{
    if (pd_region_tree_reserve(t) != PD_OK)
        return PD_ERR_NOMEM;
    size_t ki = key_upper_bound(t, r->start_key, r->start_key_len);
    memmove(&t->by_key[ki + 1], &t->by_key[ki], (t->count - ki) * sizeof *t->by_key);
    t->by_key[ki] = r;
    size_t ii = id_lower_bound(t, r->id);
    memmove(&t->by_id[ii + 1], &t->by_id[ii], (t->count - ii) * sizeof *t->by_id);
    t->by_id[ii] = r;
    t->count++;
    return PD_OK;
}

void pd_region_tree_remove(struct pd_region_tree *t, struct pd_region *r)
{
    size_t ii = id_lower_bound(t, r->id);
    if (ii >= t->count || t->by_id[ii] != r)
        return;
    memmove(&t->by_id[ii], &t->by_id[ii + 1], (t->count - ii - 1) * sizeof *t->by_id);
    /* Several regions never share a start key in the tree, but search by pointer to be safe. */
    size_t ki = pd_region_tree_index_at_or_before(t, r->start_key, r->start_key_len);
    if (ki >= t->count || t->by_key[ki] != r) {
        for (ki = 0; ki < t->count && t->by_key[ki] != r; ki++)
            ;
    }
    memmove(&t->by_key[ki], &t->by_key[ki + 1], (t->count - ki - 1) * sizeof *t->by_key);
    t->count--;
}

void pd_region_tree_replace(struct pd_region_tree *t, struct pd_region *old, struct pd_region *by)
{
    size_t ii = id_lower_bound(t, old->id);
    size_t ki = pd_region_tree_index_at_or_before(t, old->start_key, old->start_key_len);
    if (ii >= t->count || t->by_id[ii] != old || ki >= t->count || t->by_key[ki] != old) {
        /* Not where its keys say: fall back to the general path. */
        pd_region_tree_remove(t, old);
        (void)pd_region_tree_insert(t, by); /* room: old's slot was just freed */
        return;
    }
    t->by_id[ii] = by;
    t->by_key[ki] = by;
}

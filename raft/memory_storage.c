/* memory_storage.c — an in-memory raft_storage (log, hard state, snapshot) for tests and
 * simulations. */
#include "raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

struct raft_memory_storage {
    struct raft_hard_state hs;
    struct raft_snapshot snap; /* owned, the latest snapshot */
    struct raft_conf_state cs; /* owned, the members as of the applied index */
    struct raft_entry *ents;   /* ents[0] is a dummy at the snapshot index/term */
    size_t n;
    size_t cap;
    int snap_unavailable; /* answer "temporarily unavailable" this many more times */
};

int raft_memory_storage_new(struct raft_memory_storage **out)
{
    struct raft_memory_storage *ms = calloc(1, sizeof *ms);
    if (ms == NULL)
        return RAFT_ERR_NOMEM;
    ms->ents = calloc(8, sizeof *ms->ents);
    if (ms->ents == NULL) {
        free(ms);
        return RAFT_ERR_NOMEM;
    }
    ms->cap = 8;
    ms->n = 1;
    *out = ms;
    return RAFT_OK;
}

void raft_memory_storage_free(struct raft_memory_storage *ms)
{
    if (ms == NULL)
        return;
    raft_entries_free(ms->ents, ms->n);
    raft_snapshot_free(&ms->snap);
    raft_conf_state_free(&ms->cs);
    free(ms);
}

static uint64_t first_index(const struct raft_memory_storage *ms)
{
    return ms->ents[0].index + 1;
}

static uint64_t last_index(const struct raft_memory_storage *ms)
{
    return ms->ents[0].index + ms->n - 1;
}

uint64_t raft_memory_storage_first_index(const struct raft_memory_storage *ms)
{
    return first_index(ms);
}

uint64_t raft_memory_storage_last_index(const struct raft_memory_storage *ms)
{
    return last_index(ms);
}

static int ms_initial_state(void *ctx, struct raft_hard_state *hs, struct raft_conf_state *cs)
{
    struct raft_memory_storage *ms = ctx;
    *hs = ms->hs;
    return raft_conf_state_copy(cs, &ms->cs);
}

static int ms_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                      struct raft_entry **out, size_t *n_out)
{
    struct raft_memory_storage *ms = ctx;
    *out = NULL;
    *n_out = 0;
    uint64_t off = ms->ents[0].index;
    if (lo <= off)
        return RAFT_ERR_COMPACTED;
    if (hi > last_index(ms) + 1)
        return RAFT_ERR_UNAVAILABLE;
    if (lo >= hi)
        return RAFT_OK;
    size_t want = (size_t)(hi - lo);
    size_t take = 1;
    uint64_t size = ms->ents[lo - off].data_len;
    while (take < want) {
        size += ms->ents[lo - off + take].data_len;
        if (size > max_bytes)
            break;
        take++;
    }
    struct raft_entry *res = calloc(take, sizeof *res);
    if (res == NULL)
        return RAFT_ERR_NOMEM;
    for (size_t i = 0; i < take; i++) {
        if (raft_entry_copy(&res[i], &ms->ents[lo - off + i]) != RAFT_OK) {
            raft_entries_free(res, i);
            return RAFT_ERR_NOMEM;
        }
    }
    *out = res;
    *n_out = take;
    return RAFT_OK;
}

static int ms_term(void *ctx, uint64_t i, uint64_t *term)
{
    struct raft_memory_storage *ms = ctx;
    uint64_t off = ms->ents[0].index;
    *term = 0;
    if (i < off)
        return RAFT_ERR_COMPACTED;
    if (i - off >= ms->n)
        return RAFT_ERR_UNAVAILABLE;
    *term = ms->ents[i - off].term;
    return RAFT_OK;
}

static int ms_first_index(void *ctx, uint64_t *index)
{
    *index = first_index(ctx);
    return RAFT_OK;
}

static int ms_last_index(void *ctx, uint64_t *index)
{
    *index = last_index(ctx);
    return RAFT_OK;
}

static int ms_snapshot(void *ctx, struct raft_snapshot *out)
{
    struct raft_memory_storage *ms = ctx;
    memset(out, 0, sizeof *out);
    if (ms->snap_unavailable > 0) {
        ms->snap_unavailable--;
        return RAFT_ERR_SNAP_TEMP_UNAVAILABLE;
    }
    return raft_snapshot_copy(out, &ms->snap);
}

static const struct raft_storage_ops memory_ops = {
    .initial_state = ms_initial_state,
    .entries = ms_entries,
    .term = ms_term,
    .first_index = ms_first_index,
    .last_index = ms_last_index,
    .snapshot = ms_snapshot,
};

struct raft_storage raft_memory_storage_storage(struct raft_memory_storage *ms)
{
    return (struct raft_storage){.ops = &memory_ops, .ctx = ms};
}

void raft_memory_storage_set_hard_state(struct raft_memory_storage *ms,
                                        const struct raft_hard_state *hs)
{
    ms->hs = *hs;
}

void raft_memory_storage_hard_state(const struct raft_memory_storage *ms,
                                    struct raft_hard_state *out)
{
    *out = ms->hs;
}

int raft_memory_storage_set_conf_state(struct raft_memory_storage *ms,
                                       const struct raft_conf_state *cs)
{
    struct raft_conf_state copy;
    int rc = raft_conf_state_copy(&copy, cs);
    if (rc != RAFT_OK)
        return rc;
    raft_conf_state_free(&ms->cs);
    ms->cs = copy;
    return RAFT_OK;
}

static int reserve(struct raft_memory_storage *ms, size_t need)
{
    if (need <= ms->cap)
        return RAFT_OK;
    size_t cap = ms->cap * 2;
    while (cap < need)
        cap *= 2;
    struct raft_entry *p = realloc(ms->ents, cap * sizeof *p);
    if (p == NULL)
        return RAFT_ERR_NOMEM;
    ms->ents = p;
    ms->cap = cap;
    return RAFT_OK;
}

int raft_memory_storage_append(struct raft_memory_storage *ms, const struct raft_entry *ents,
                               size_t n)
{
    if (n == 0)
        return RAFT_OK;
    uint64_t first = first_index(ms);
    uint64_t last = ents[0].index + n - 1;
    if (last < first)
        return RAFT_OK; /* all already covered by the snapshot */
    if (first > ents[0].index) {
        size_t skip = (size_t)(first - ents[0].index);
        ents += skip;
        n -= skip;
    }
    uint64_t off = ents[0].index - ms->ents[0].index;
    if (off > ms->n)
        return RAFT_ERR_INVALID; /* a gap after the last entry */
    struct raft_entry *copies = calloc(n, sizeof *copies);
    if (copies == NULL)
        return RAFT_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (raft_entry_copy(&copies[i], &ents[i]) != RAFT_OK) {
            raft_entries_free(copies, i);
            return RAFT_ERR_NOMEM;
        }
    }
    if (reserve(ms, (size_t)off + n) != RAFT_OK) {
        raft_entries_free(copies, n);
        return RAFT_ERR_NOMEM;
    }
    for (size_t i = (size_t)off; i < ms->n; i++)
        raft_entry_free(&ms->ents[i]);
    memcpy(&ms->ents[off], copies, n * sizeof *copies);
    ms->n = (size_t)off + n;
    free(copies);
    return RAFT_OK;
}

int raft_memory_storage_apply_snapshot(struct raft_memory_storage *ms,
                                       const struct raft_snapshot *snap)
{
    if (snap->metadata.index <= ms->snap.metadata.index && ms->snap.metadata.index > 0)
        return RAFT_ERR_SNAP_OUT_OF_DATE;
    struct raft_snapshot copy;
    struct raft_conf_state cs;
    int rc = raft_snapshot_copy(&copy, snap);
    if (rc != RAFT_OK)
        return rc;
    rc = raft_conf_state_copy(&cs, &snap->metadata.conf_state);
    if (rc != RAFT_OK) {
        raft_snapshot_free(&copy);
        return rc;
    }
    raft_snapshot_free(&ms->snap);
    ms->snap = copy;
    raft_conf_state_free(&ms->cs);
    ms->cs = cs;
    for (size_t i = 0; i < ms->n; i++)
        raft_entry_free(&ms->ents[i]);
    ms->ents[0] = (struct raft_entry){.term = snap->metadata.term, .index = snap->metadata.index};
    ms->n = 1;
    return RAFT_OK;
}

int raft_memory_storage_create_snapshot(struct raft_memory_storage *ms, uint64_t index,
                                        const struct raft_conf_state *cs, const void *data,
                                        size_t data_len)
{
    if (index <= ms->snap.metadata.index)
        return RAFT_ERR_SNAP_OUT_OF_DATE;
    if (index > last_index(ms))
        return RAFT_ERR_UNAVAILABLE;
    struct raft_snapshot s = {0};
    s.metadata.index = index;
    s.metadata.term = ms->ents[index - ms->ents[0].index].term;
    s.data = (uint8_t *)data;
    s.data_len = data_len;
    s.metadata.conf_state = cs ? *cs : ms->cs;
    struct raft_snapshot copy;
    int rc = raft_snapshot_copy(&copy, &s);
    if (rc != RAFT_OK)
        return rc;
    raft_snapshot_free(&ms->snap);
    ms->snap = copy;
    return RAFT_OK;
}

int raft_memory_storage_compact(struct raft_memory_storage *ms, uint64_t index)
{
    uint64_t off = ms->ents[0].index;
    if (index <= off)
        return RAFT_ERR_COMPACTED;
    if (index > last_index(ms))
        return RAFT_ERR_UNAVAILABLE;
    size_t k = (size_t)(index - off);
    for (size_t i = 0; i < k; i++)
        raft_entry_free(&ms->ents[i]);
    /* the entry at index becomes the new dummy: keep its term, drop its data */
    free(ms->ents[k].data);
    ms->ents[k].data = NULL;
    ms->ents[k].data_len = 0;
    memmove(ms->ents, ms->ents + k, (ms->n - k) * sizeof *ms->ents);
    ms->n -= k;
    return RAFT_OK;
}

void raft_memory_storage_set_snapshot_unavailable(struct raft_memory_storage *ms, int n)
{
    ms->snap_unavailable = n;
}

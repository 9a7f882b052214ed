/* log.c — the Raft log: stable entries read through raft_storage plus the unstable tail. */
#include "raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

/* Always-on panic: the log's invariants protect committed data. */
static void log_panic(const struct raft_log *l, const char *what) __attribute__((noreturn));
static void log_panic(const struct raft_log *l, const char *what)
{
    if (l != NULL && l->log_fn != NULL)
        l->log_fn(l->log_ctx, RAFT_LOG_ERROR, what);
    abort();
}

/* ---- unstable ---- */

static bool unstable_maybe_first_index(const struct raft_unstable *u, uint64_t *i)
{
    if (u->has_snapshot) {
        *i = u->snapshot.metadata.index + 1;
        return true;
    }
    return false;
}

static bool unstable_maybe_last_index(const struct raft_unstable *u, uint64_t *i)
{
    if (u->n_ents > 0) {
        *i = u->offset + u->n_ents - 1;
        return true;
    }
    if (u->has_snapshot) {
        *i = u->snapshot.metadata.index;
        return true;
    }
    return false;
}

static bool unstable_maybe_term(const struct raft_unstable *u, uint64_t i, uint64_t *t)
{
    if (i < u->offset) {
        if (u->has_snapshot && u->snapshot.metadata.index == i) {
            *t = u->snapshot.metadata.term;
            return true;
        }
        return false;
    }
    uint64_t last;
    if (!unstable_maybe_last_index(u, &last) || i > last)
        return false;
    if (i - u->offset >= u->n_ents)
        return false;
    *t = u->ents[i - u->offset].term;
    return true;
}

static void unstable_drop_prefix(struct raft_unstable *u, size_t k)
{
    for (size_t j = 0; j < k; j++)
        raft_entry_free(&u->ents[j]);
    memmove(u->ents, u->ents + k, (u->n_ents - k) * sizeof *u->ents);
    u->n_ents -= k;
    u->offset += k;
}

static void unstable_truncate(struct raft_unstable *u, size_t keep)
{
    for (size_t j = keep; j < u->n_ents; j++)
        raft_entry_free(&u->ents[j]);
    u->n_ents = keep;
}

static int unstable_reserve(struct raft_unstable *u, size_t need)
{
    if (need <= u->cap_ents)
        return RAFT_OK;
    size_t cap = u->cap_ents ? u->cap_ents * 2 : 16;
    while (cap < need)
        cap *= 2;
    struct raft_entry *p = realloc(u->ents, cap * sizeof *p);
    if (p == NULL)
        return RAFT_ERR_NOMEM;
    u->ents = p;
    u->cap_ents = cap;
    return RAFT_OK;
}

/* ents are copied first so a failed allocation leaves the log untouched. */
static int unstable_truncate_and_append(struct raft_unstable *u, const struct raft_entry *ents,
                                        size_t n)
{
    int rc = RAFT_OK;
    struct raft_entry *copies = calloc(n, sizeof *copies);
    size_t copied = 0;
    if (copies == NULL)
        return RAFT_ERR_NOMEM;
    for (; copied < n; copied++) {
        rc = raft_entry_copy(&copies[copied], &ents[copied]);
        if (rc != RAFT_OK)
            goto cleanup;
    }
    uint64_t after = ents[0].index;
    size_t keep;
    if (after == u->offset + u->n_ents) {
        keep = u->n_ents;
    } else if (after <= u->offset) {
        keep = 0;
    } else {
        keep = (size_t)(after - u->offset);
        if (keep > u->n_ents)
            log_panic(NULL, "raft log: append would leave a gap");
    }
    rc = unstable_reserve(u, keep + n);
    if (rc != RAFT_OK)
        goto cleanup;
    unstable_truncate(u, keep);
    if (after <= u->offset)
        u->offset = after;
    memcpy(u->ents + u->n_ents, copies, n * sizeof *copies);
    u->n_ents += n;
    free(copies);
    return RAFT_OK;
cleanup:
    raft_entries_free(copies, copied);
    return rc;
}

/* ---- log ---- */

static uint64_t storage_first(const struct raft_log *l)
{
    uint64_t i = 0;
    if (l->storage.ops->first_index(l->storage.ctx, &i) != RAFT_OK)
        log_panic(l, "raft log: storage failed to report its first index");
    return i;
}

static uint64_t storage_last(const struct raft_log *l)
{
    uint64_t i = 0;
    if (l->storage.ops->last_index(l->storage.ctx, &i) != RAFT_OK)
        log_panic(l, "raft log: storage failed to report its last index");
    return i;
}

int raft_log_init(struct raft_log *l, struct raft_storage storage, uint64_t max_apply_bytes)
{
    memset(l, 0, sizeof *l);
    l->storage = storage;
    uint64_t first, last;
    int rc = storage.ops->first_index(storage.ctx, &first);
    if (rc != RAFT_OK)
        return rc;
    rc = storage.ops->last_index(storage.ctx, &last);
    if (rc != RAFT_OK)
        return rc;
    l->unstable.offset = last + 1;
    l->committed = first - 1;
    l->applied = first - 1;
    l->max_apply_bytes = max_apply_bytes ? max_apply_bytes : RAFT_NO_LIMIT;
    return RAFT_OK;
}

void raft_log_close(struct raft_log *l)
{
    unstable_truncate(&l->unstable, 0);
    free(l->unstable.ents);
    raft_snapshot_free(&l->unstable.snapshot);
    memset(l, 0, sizeof *l);
}

uint64_t raft_log_first_index(const struct raft_log *l)
{
    uint64_t i;
    if (unstable_maybe_first_index(&l->unstable, &i))
        return i;
    return storage_first(l);
}

uint64_t raft_log_last_index(const struct raft_log *l)
{
    uint64_t i;
    if (unstable_maybe_last_index(&l->unstable, &i))
        return i;
    return storage_last(l);
}

int raft_log_term(const struct raft_log *l, uint64_t i, uint64_t *term)
{
    *term = 0;
    uint64_t dummy = raft_log_first_index(l) - 1;
    if (i < dummy)
        return RAFT_ERR_COMPACTED;
    if (i > raft_log_last_index(l))
        return RAFT_ERR_UNAVAILABLE;
    if (unstable_maybe_term(&l->unstable, i, term))
        return RAFT_OK;
    int rc = l->storage.ops->term(l->storage.ctx, i, term);
    if (rc != RAFT_OK)
        *term = 0;
    return rc;
}

uint64_t raft_log_last_term(const struct raft_log *l)
{
    uint64_t t;
    if (raft_log_term(l, raft_log_last_index(l), &t) != RAFT_OK)
        log_panic(l, "raft log: the term of the last entry is unavailable");
    return t;
}

bool raft_log_match_term(const struct raft_log *l, uint64_t i, uint64_t term)
{
    uint64_t t;
    if (raft_log_term(l, i, &t) != RAFT_OK)
        return false;
    return t == term;
}

bool raft_log_is_up_to_date(const struct raft_log *l, uint64_t lasti, uint64_t term)
{
    uint64_t lt = raft_log_last_term(l);
    return term > lt || (term == lt && lasti >= raft_log_last_index(l));
}

static uint64_t limit_count(const struct raft_entry *ents, size_t n, uint64_t max_bytes,
                            uint64_t max_n)
{
    if (n == 0)
        return 0;
    uint64_t size = ents[0].data_len;
    size_t k = 1;
    for (; k < n; k++) {
        if (max_n && k >= max_n)
            break;
        size += ents[k].data_len;
        if (size > max_bytes)
            break;
    }
    return k;
}

int raft_log_slice(const struct raft_log *l, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                   uint64_t max_n, struct raft_entry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (lo > hi)
        return RAFT_ERR_INVALID;
    if (lo < raft_log_first_index(l))
        return RAFT_ERR_COMPACTED;
    if (hi > raft_log_last_index(l) + 1)
        return RAFT_ERR_UNAVAILABLE;
    if (lo == hi)
        return RAFT_OK;
    const struct raft_unstable *u = &l->unstable;
    struct raft_entry *res = NULL;
    size_t nres = 0;
    int rc;
    if (lo < u->offset) {
        uint64_t shi = hi < u->offset ? hi : u->offset;
        rc = l->storage.ops->entries(l->storage.ctx, lo, shi, max_bytes, &res, &nres);
        if (rc != RAFT_OK)
            return rc;
        if (nres < shi - lo)
            goto limit;
    }
    if (hi > u->offset) {
        uint64_t ulo = lo > u->offset ? lo : u->offset;
        size_t add = (size_t)(hi - ulo);
        struct raft_entry *p = realloc(res, (nres + add) * sizeof *p);
        if (p == NULL) {
            rc = RAFT_ERR_NOMEM;
            goto fail;
        }
        res = p;
        for (size_t k = 0; k < add; k++) {
            rc = raft_entry_copy(&res[nres], &u->ents[ulo - u->offset + k]);
            if (rc != RAFT_OK)
                goto fail;
            nres++;
        }
    }
limit:;
    size_t keep = (size_t)limit_count(res, nres, max_bytes, max_n);
    for (size_t k = keep; k < nres; k++)
        raft_entry_free(&res[k]);
    *out = res;
    *n = keep;
    return RAFT_OK;
fail:
    raft_entries_free(res, nres);
    return rc;
}

int raft_log_append(struct raft_log *l, const struct raft_entry *ents, size_t n)
{
    if (n == 0)
        return RAFT_OK;
    if (ents[0].index - 1 < l->committed)
        log_panic(l, "raft log: append would overwrite committed entries");
    return unstable_truncate_and_append(&l->unstable, ents, n);
}

static uint64_t find_conflict(const struct raft_log *l, const struct raft_entry *ents, size_t n,
                              size_t *pos)
{
    for (size_t k = 0; k < n; k++) {
        if (!raft_log_match_term(l, ents[k].index, ents[k].term)) {
            *pos = k;
            return ents[k].index;
        }
    }
    return 0;
}

int raft_log_maybe_append(struct raft_log *l, uint64_t index, uint64_t log_term, uint64_t commit,
                          const struct raft_entry *ents, size_t n, bool *ok, uint64_t *lastnew)
{
    *ok = false;
    if (!raft_log_match_term(l, index, log_term))
        return RAFT_OK;
    uint64_t lastnewi = index + n;
    size_t pos = 0;
    uint64_t ci = find_conflict(l, ents, n, &pos);
    if (ci != 0) {
        if (ci <= l->committed)
            log_panic(l, "raft log: an entry conflicts with a committed one");
        int rc = raft_log_append(l, ents + pos, n - pos);
        if (rc != RAFT_OK)
            return rc;
    }
    raft_log_commit_to(l, commit < lastnewi ? commit : lastnewi);
    *ok = true;
    *lastnew = lastnewi;
    return RAFT_OK;
}

void raft_log_commit_to(struct raft_log *l, uint64_t tocommit)
{
    if (l->committed < tocommit) {
        if (raft_log_last_index(l) < tocommit)
            log_panic(l, "raft log: commit beyond the last index (log corrupt or truncated)");
        l->committed = tocommit;
    }
}

bool raft_log_maybe_commit(struct raft_log *l, uint64_t max_index, uint64_t term)
{
    uint64_t t;
    if (max_index > l->committed && raft_log_term(l, max_index, &t) == RAFT_OK && t == term) {
        raft_log_commit_to(l, max_index);
        return true;
    }
    return false;
}

void raft_log_applied_to(struct raft_log *l, uint64_t i)
{
    if (i == 0)
        return;
    if (l->committed < i || i < l->applied)
        log_panic(l, "raft log: applied index must stay within [applied, committed]");
    l->applied = i;
}

void raft_log_stable_to(struct raft_log *l, uint64_t i, uint64_t t)
{
    struct raft_unstable *u = &l->unstable;
    uint64_t gt;
    if (!unstable_maybe_term(u, i, &gt))
        return;
    if (gt == t && i >= u->offset)
        unstable_drop_prefix(u, (size_t)(i + 1 - u->offset));
}

void raft_log_stable_snap_to(struct raft_log *l, uint64_t i)
{
    struct raft_unstable *u = &l->unstable;
    if (u->has_snapshot && u->snapshot.metadata.index == i) {
        raft_snapshot_free(&u->snapshot);
        u->has_snapshot = false;
    }
}

int raft_log_restore(struct raft_log *l, const struct raft_snapshot *snap)
{
    struct raft_snapshot copy;
    int rc = raft_snapshot_copy(&copy, snap);
    if (rc != RAFT_OK)
        return rc;
    struct raft_unstable *u = &l->unstable;
    l->committed = snap->metadata.index;
    unstable_truncate(u, 0);
    u->offset = snap->metadata.index + 1;
    raft_snapshot_free(&u->snapshot);
    u->snapshot = copy;
    u->has_snapshot = true;
    return RAFT_OK;
}

static uint64_t next_ents_start(const struct raft_log *l)
{
    uint64_t first = raft_log_first_index(l);
    return l->applied + 1 > first ? l->applied + 1 : first;
}

bool raft_log_has_next_ents(const struct raft_log *l)
{
    return l->committed + 1 > next_ents_start(l);
}

int raft_log_next_ents(const struct raft_log *l, struct raft_entry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    uint64_t off = next_ents_start(l);
    if (l->committed + 1 <= off)
        return RAFT_OK;
    return raft_log_slice(l, off, l->committed + 1, l->max_apply_bytes, 0, out, n);
}

int raft_log_snapshot(const struct raft_log *l, struct raft_snapshot *out)
{
    if (l->unstable.has_snapshot)
        return raft_snapshot_copy(out, &l->unstable.snapshot);
    return l->storage.ops->snapshot(l->storage.ctx, out);
}

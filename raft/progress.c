/* progress.c — the leader's view of one follower: match/next, probe/replicate/snapshot, inflights.
 */
#include "raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

int raft_progress_init(struct raft_progress *pr, uint64_t id, uint64_t match, uint64_t next,
                       size_t max_inflight)
{
    memset(pr, 0, sizeof *pr);
    pr->ins.buffer = calloc(max_inflight, sizeof *pr->ins.buffer);
    if (pr->ins.buffer == NULL)
        return RAFT_ERR_NOMEM;
    pr->ins.size = max_inflight;
    pr->id = id;
    pr->match = match;
    pr->next = next;
    pr->state = RAFT_PROGRESS_PROBE;
    return RAFT_OK;
}

void raft_progress_close(struct raft_progress *pr)
{
    free(pr->ins.buffer);
    memset(pr, 0, sizeof *pr);
}

static void reset_state(struct raft_progress *pr, enum raft_progress_state st)
{
    pr->paused = false;
    pr->pending_snapshot = 0;
    pr->state = st;
    raft_inflights_reset(&pr->ins);
}

void raft_progress_become_probe(struct raft_progress *pr)
{
    /* After a snapshot, probing resumes right after it: the follower has it
     * unless the report said otherwise, in which case match+1 is the floor. */
    if (pr->state == RAFT_PROGRESS_SNAPSHOT) {
        uint64_t ps = pr->pending_snapshot;
        reset_state(pr, RAFT_PROGRESS_PROBE);
        pr->next = pr->match + 1 > ps + 1 ? pr->match + 1 : ps + 1;
    } else {
        reset_state(pr, RAFT_PROGRESS_PROBE);
        pr->next = pr->match + 1;
    }
}

void raft_progress_become_replicate(struct raft_progress *pr)
{
    reset_state(pr, RAFT_PROGRESS_REPLICATE);
    pr->next = pr->match + 1;
}

void raft_progress_become_snapshot(struct raft_progress *pr, uint64_t snapi)
{
    reset_state(pr, RAFT_PROGRESS_SNAPSHOT);
    pr->pending_snapshot = snapi;
}

bool raft_progress_maybe_update(struct raft_progress *pr, uint64_t n)
{
    bool updated = false;
    if (pr->match < n) {
        pr->match = n;
        updated = true;
        pr->paused = false;
    }
    if (pr->next < n + 1)
        pr->next = n + 1;
    return updated;
}

/* rejected is the index the follower refused; last is its last index (reject_hint). */
bool raft_progress_maybe_decr_to(struct raft_progress *pr, uint64_t rejected, uint64_t last)
{
    if (pr->state == RAFT_PROGRESS_REPLICATE) {
        if (rejected <= pr->match)
            return false; /* stale */
        pr->next = pr->match + 1;
        return true;
    }
    if (pr->next - 1 != rejected)
        return false; /* stale: not the probe we are waiting for */
    uint64_t n = rejected < last + 1 ? rejected : last + 1;
    pr->next = n < 1 ? 1 : n;
    pr->paused = false;
    return true;
}

bool raft_progress_is_paused(const struct raft_progress *pr)
{
    switch (pr->state) {
    case RAFT_PROGRESS_PROBE:
        return pr->paused;
    case RAFT_PROGRESS_REPLICATE:
        return raft_inflights_full(&pr->ins);
    default:
        return true;
    }
}

bool raft_progress_need_snapshot_abort(const struct raft_progress *pr)
{
    return pr->state == RAFT_PROGRESS_SNAPSHOT && pr->match >= pr->pending_snapshot;
}

void raft_inflights_add(struct raft_inflights *in, uint64_t last)
{
    if (in->count >= in->size)
        abort(); /* callers check full() first */
    in->buffer[(in->start + in->count) % in->size] = last;
    in->count++;
}

void raft_inflights_free_to(struct raft_inflights *in, uint64_t to)
{
    if (in->count == 0 || to < in->buffer[in->start])
        return;
    size_t k = 0;
    size_t idx = in->start;
    for (; k < in->count; k++) {
        if (to < in->buffer[idx])
            break;
        idx = (idx + 1) % in->size;
    }
    in->count -= k;
    in->start = idx;
    if (in->count == 0)
        in->start = 0;
}

void raft_inflights_free_first_one(struct raft_inflights *in)
{
    if (in->count > 0)
        raft_inflights_free_to(in, in->buffer[in->start]);
}

bool raft_inflights_full(const struct raft_inflights *in)
{
    return in->count == in->size;
}

void raft_inflights_reset(struct raft_inflights *in)
{
    in->count = 0;
    in->start = 0;
}

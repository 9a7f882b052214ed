/* tso.c — the timestamp oracle: strictly increasing physical_ms << 18 | logical, crash-safe. */
#include "pd/pd_internal.h"

#include <stdlib.h>

/*
 * Safety rests on one persisted number, the window end: every timestamp ever
 * handed out has a physical part below it. The window is pushed ahead of the
 * clock (window_ms, a few seconds) with a synced write before any timestamp
 * at or past the old end is issued, so a restart — after a crash or with the
 * clock stepped back — resumes at max(clock, saved end) and never repeats.
 */

static int save_window(struct pd_meta_store *m, uint64_t end_ms, char *errmsg, size_t errmsg_len)
{
    char *buf;
    size_t len;
    int err = pd_codec_encode_u64(end_ms, &buf, &len);
    if (err != PD_OK)
        return err;
    err = pd_meta_store_put(m, PD_META_KEY_TSO, buf, len, true, errmsg, errmsg_len);
    free(buf);
    return err;
}

int pd_tso_load(struct pd_tso_state *t, struct pd_meta_store *m, uint64_t window_ms,
                uint64_t now_ms, char *errmsg, size_t errmsg_len)
{
    char *buf;
    size_t len;
    uint64_t saved = 0;
    int err = pd_meta_store_get(m, PD_META_KEY_TSO, &buf, &len, errmsg, errmsg_len);
    if (err == PD_OK) {
        err = pd_codec_decode_u64(buf, len, &saved);
        free(buf);
        if (err != PD_OK)
            return err;
    } else if (err != PD_ERR_NOT_FOUND) {
        return err;
    }
    uint64_t physical = now_ms > saved ? now_ms : saved;
    err = save_window(m, physical + window_ms, errmsg, errmsg_len);
    if (err != PD_OK)
        return err;
    t->physical_ms = physical;
    t->logical = 0;
    t->window_end_ms = physical + window_ms;
    t->window_ms = window_ms;
    return PD_OK;
}

int pd_tso_next(struct pd_tso_state *t, struct pd_meta_store *m, uint64_t now_ms, uint32_t count,
                uint64_t *ts, char *errmsg, size_t errmsg_len)
{
    if (count == 0 || count > PD_TSO_MAX_COUNT)
        return PD_ERR_INVALID;
    uint64_t physical = t->physical_ms, logical = t->logical;
    if (now_ms > physical) {
        physical = now_ms;
        logical = 0;
    }
    if (logical + count > PD_TSO_MAX_COUNT) {
        /* Logical space of this millisecond is used up: borrow the next one. */
        physical++;
        logical = 0;
    }
    if (physical >= t->window_end_ms) {
        uint64_t end = physical + t->window_ms;
        int err = save_window(m, end, errmsg, errmsg_len);
        if (err != PD_OK)
            return err;
        t->window_end_ms = end;
    }
    logical += count;
    t->physical_ms = physical;
    t->logical = logical;
    *ts = physical << PD_TSO_LOGICAL_BITS | logical;
    return PD_OK;
}

int pd_tso_refresh(struct pd_tso_state *t, struct pd_meta_store *m, uint64_t now_ms, char *errmsg,
                   size_t errmsg_len)
{
    /* Called from the scheduling tick so that requests rarely wait for the synced write. */
    uint64_t base = now_ms > t->physical_ms ? now_ms : t->physical_ms;
    if (base + t->window_ms / 2 < t->window_end_ms)
        return PD_OK;
    uint64_t end = base + t->window_ms;
    int err = save_window(m, end, errmsg, errmsg_len);
    if (err == PD_OK)
        t->window_end_ms = end;
    return err;
}

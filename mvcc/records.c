/* records.c — byte layout of lock records (CF lock) and write records (CF write). */
#include <stdlib.h>
#include <string.h>

#include "mvcc/mvcc_internal.h"

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

size_t mvcc_lock_encoded_len(const struct mvcc_lock *lock)
{
    return lock->primary_len + MVCC_LOCK_FIXED_BYTES;
}

void mvcc_lock_encode(const struct mvcc_lock *lock, uint8_t *out)
{
    if (lock->primary_len)
        memcpy(out, lock->primary, lock->primary_len);
    out += lock->primary_len;
    out[0] = (uint8_t)lock->kind;
    put_u64(out + 1, lock->start_ts);
    put_u64(out + 9, lock->ttl_ms);
}

int mvcc_lock_decode(const void *in, size_t len, struct mvcc_lock *out)
{
    const uint8_t *p = in;

    if (len < MVCC_LOCK_FIXED_BYTES)
        return MVCC_ERR_CORRUPT;
    size_t plen = len - MVCC_LOCK_FIXED_BYTES;
    uint8_t kind = p[plen];
    if (kind != MVCC_WRITE_PUT && kind != MVCC_WRITE_DELETE && kind != MVCC_WRITE_LOCK)
        return MVCC_ERR_CORRUPT;
    out->primary = p;
    out->primary_len = plen;
    out->kind = kind;
    out->start_ts = get_u64(p + plen + 1);
    out->ttl_ms = get_u64(p + plen + 9);
    out->buf = NULL;
    return MVCC_OK;
}

void mvcc_lock_release(struct mvcc_lock *lock)
{
    if (!lock)
        return;
    free(lock->buf);
    memset(lock, 0, sizeof(*lock));
}

size_t mvcc_write_encode(const struct mvcc_write *w, uint8_t out[MVCC_WRITE_RECORD_MAX])
{
    out[0] = (uint8_t)w->kind;
    put_u64(out + 1, w->start_ts);
    if (!w->has_short || w->kind != MVCC_WRITE_PUT || w->short_len > MVCC_SHORT_VALUE_MAX)
        return MVCC_WRITE_RECORD_BYTES;
    out[MVCC_WRITE_RECORD_BYTES] = MVCC_SHORT_VALUE_FLAG;
    out[MVCC_WRITE_RECORD_BYTES + 1] = (uint8_t)w->short_len;
    if (w->short_len)
        memcpy(out + MVCC_WRITE_RECORD_BYTES + 2, w->short_value, w->short_len);
    return MVCC_WRITE_RECORD_BYTES + 2 + w->short_len;
}

int mvcc_write_decode(const void *in, size_t len, struct mvcc_write *out)
{
    const uint8_t *p = in;

    if (len < MVCC_WRITE_RECORD_BYTES)
        return MVCC_ERR_CORRUPT;
    if (p[0] < MVCC_WRITE_PUT || p[0] > MVCC_WRITE_LOCK)
        return MVCC_ERR_CORRUPT;
    out->kind = p[0];
    out->start_ts = get_u64(p + 1);
    out->has_short = 0;
    out->short_value = NULL;
    out->short_len = 0;
    if (len == MVCC_WRITE_RECORD_BYTES)
        return MVCC_OK;
    /* Only a put carries a short value, exactly as long as its length byte says. */
    if (p[0] != MVCC_WRITE_PUT || len < MVCC_WRITE_RECORD_BYTES + 2 ||
        p[MVCC_WRITE_RECORD_BYTES] != MVCC_SHORT_VALUE_FLAG ||
        len != MVCC_WRITE_RECORD_BYTES + 2 + (size_t)p[MVCC_WRITE_RECORD_BYTES + 1])
        return MVCC_ERR_CORRUPT;
    out->has_short = 1;
    out->short_value = p + MVCC_WRITE_RECORD_BYTES + 2;
    out->short_len = p[MVCC_WRITE_RECORD_BYTES + 1];
    return MVCC_OK;
}

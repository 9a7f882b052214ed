/* codec.c — the stable binary format of stores, regions and counters in the meta store. */
#include "pd/pd_internal.h"

#include <stdlib.h>
#include <string.h>

/*
 * Format (all integers little-endian, fixed width):
 *   u64 value : 8 bytes.
 *   store v1  : u8 1 | u64 id | u8 state (0 Up, 1 Offline, 2 Tombstone) | u32 addr_len | addr.
 *   region v1 : u8 1 | u64 id | u64 conf_ver | u64 version | u32 start_len | start |
 *               u32 end_len | end | u32 peer_count | peer_count x (u64 peer_id, u64 store_id).
 * Only metapb fields are stored; leader, pending peers and sizes come back with heartbeats.
 * A new layout takes a new leading version byte; decoders reject versions they do not know.
 */

#define CODEC_VERSION 1

struct wbuf {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
};

static void w_bytes(struct wbuf *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void w_u64(struct wbuf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    w_bytes(b, x, 8);
}

static void w_u32(struct wbuf *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    w_bytes(b, x, 4);
}

static void w_u8(struct wbuf *b, uint8_t v)
{
    w_bytes(b, &v, 1);
}

static int w_finish(struct wbuf *b, char **out, size_t *len)
{
    if (b->oom) {
        free(b->p);
        return PD_ERR_NOMEM;
    }
    *out = b->p;
    *len = b->len;
    return PD_OK;
}

struct rbuf {
    const uint8_t *p;
    size_t len;
    size_t off;
    bool bad;
};

static const uint8_t *r_bytes(struct rbuf *b, size_t n)
{
    if (b->bad || b->len - b->off < n) {
        b->bad = true;
        return NULL;
    }
    const uint8_t *p = b->p + b->off;
    b->off += n;
    return p;
}

static uint64_t r_u64(struct rbuf *b)
{
    const uint8_t *p = r_bytes(b, 8);
    uint64_t v = 0;
    for (int i = 0; p && i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint32_t r_u32(struct rbuf *b)
{
    const uint8_t *p = r_bytes(b, 4);
    uint32_t v = 0;
    for (int i = 0; p && i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint8_t r_u8(struct rbuf *b)
{
    const uint8_t *p = r_bytes(b, 1);
    return p ? p[0] : 0;
}

int pd_codec_encode_u64(uint64_t v, char **out, size_t *len)
{
    struct wbuf b = {0};
    w_u64(&b, v);
    return w_finish(&b, out, len);
}

int pd_codec_decode_u64(const char *buf, size_t len, uint64_t *v)
{
    struct rbuf b = {(const uint8_t *)buf, len, 0, false};
    *v = r_u64(&b);
    return b.bad || b.off != len ? PD_ERR_CORRUPT : PD_OK;
}

int pd_codec_encode_store(const struct pd_store *s, char **out, size_t *len)
{
    struct wbuf b = {0};
    size_t alen = strnlen(s->address, PD_MAX_ADDR_BYTES - 1);
    w_u8(&b, CODEC_VERSION);
    w_u64(&b, s->id);
    w_u8(&b, (uint8_t)s->state);
    w_u32(&b, (uint32_t)alen);
    w_bytes(&b, s->address, alen);
    return w_finish(&b, out, len);
}

int pd_codec_decode_store(const char *buf, size_t len, struct pd_store *s)
{
    struct rbuf b = {(const uint8_t *)buf, len, 0, false};
    memset(s, 0, sizeof *s);
    if (r_u8(&b) != CODEC_VERSION)
        return PD_ERR_CORRUPT;
    s->id = r_u64(&b);
    uint8_t state = r_u8(&b);
    uint32_t alen = r_u32(&b);
    if (b.bad || state > PD_STORE_TOMBSTONE || alen >= PD_MAX_ADDR_BYTES)
        return PD_ERR_CORRUPT;
    const uint8_t *a = r_bytes(&b, alen);
    if (a == NULL || b.off != len)
        return PD_ERR_CORRUPT;
    memcpy(s->address, a, alen);
    s->state = (enum pd_store_state)state;
    return PD_OK;
}

int pd_codec_encode_region(const struct pd_region *r, char **out, size_t *len)
{
    struct wbuf b = {0};
    w_u8(&b, CODEC_VERSION);
    w_u64(&b, r->id);
    w_u64(&b, r->epoch.conf_ver);
    w_u64(&b, r->epoch.version);
    w_u32(&b, (uint32_t)r->start_key_len);
    w_bytes(&b, r->start_key, r->start_key_len);
    w_u32(&b, (uint32_t)r->end_key_len);
    w_bytes(&b, r->end_key, r->end_key_len);
    w_u32(&b, (uint32_t)r->peer_count);
    for (size_t i = 0; i < r->peer_count; i++) {
        w_u64(&b, r->peers[i].id);
        w_u64(&b, r->peers[i].store_id);
    }
    return w_finish(&b, out, len);
}

int pd_codec_decode_region(const char *buf, size_t len, struct pd_region *r)
{
    struct rbuf b = {(const uint8_t *)buf, len, 0, false};
    struct pd_region tmp;
    pd_region_init(&tmp);
    if (r_u8(&b) != CODEC_VERSION)
        return PD_ERR_CORRUPT;
    tmp.id = r_u64(&b);
    tmp.epoch.conf_ver = r_u64(&b);
    tmp.epoch.version = r_u64(&b);
    uint32_t slen = r_u32(&b);
    const uint8_t *s = slen <= PD_MAX_KEY_BYTES ? r_bytes(&b, slen) : NULL;
    uint32_t elen = r_u32(&b);
    const uint8_t *e = elen <= PD_MAX_KEY_BYTES ? r_bytes(&b, elen) : NULL;
    uint32_t n = r_u32(&b);
    if (b.bad || s == NULL || e == NULL || n > PD_MAX_PEERS)
        return PD_ERR_CORRUPT;
    for (uint32_t i = 0; i < n; i++) {
        tmp.peers[i].id = r_u64(&b);
        tmp.peers[i].store_id = r_u64(&b);
    }
    tmp.peer_count = n;
    if (b.bad || b.off != len)
        return PD_ERR_CORRUPT;
    int err = pd_region_set_keys(&tmp, s, slen, e, elen);
    if (err != PD_OK)
        return err;
    pd_region_clear(r);
    *r = tmp;
    return PD_OK;
}

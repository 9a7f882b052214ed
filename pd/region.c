/* region.c — region structs: key comparison, copying, peer look-ups, hex helpers. */
#include "pd/pd_internal.h"

#include <stdlib.h>
#include <string.h>

int pd_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int d = n ? memcmp(a, b, n) : 0;
    if (d != 0)
        return d < 0 ? -1 : 1;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

int pd_end_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    if (alen == 0 && blen == 0)
        return 0;
    if (alen == 0)
        return 1;
    if (blen == 0)
        return -1;
    return pd_key_cmp(a, alen, b, blen);
}

bool pd_region_contains_key(const struct pd_region *r, const uint8_t *key, size_t len)
{
    if (pd_key_cmp(r->start_key, r->start_key_len, key, len) > 0)
        return false;
    return r->end_key_len == 0 || pd_key_cmp(key, len, r->end_key, r->end_key_len) < 0;
}

bool pd_regions_overlap(const struct pd_region *a, const struct pd_region *b)
{
    /* a.start < b.end and b.start < a.end, with empty ends unbounded */
    bool a_before_b_end = b->end_key_len == 0 || pd_key_cmp(a->start_key, a->start_key_len,
                                                            b->end_key, b->end_key_len) < 0;
    bool b_before_a_end = a->end_key_len == 0 || pd_key_cmp(b->start_key, b->start_key_len,
                                                            a->end_key, a->end_key_len) < 0;
    return a_before_b_end && b_before_a_end;
}

bool pd_region_meta_equal(const struct pd_region *a, const struct pd_region *b)
{
    if (a->id != b->id || a->epoch.conf_ver != b->epoch.conf_ver ||
        a->epoch.version != b->epoch.version || a->peer_count != b->peer_count)
        return false;
    if (pd_key_cmp(a->start_key, a->start_key_len, b->start_key, b->start_key_len) != 0 ||
        pd_key_cmp(a->end_key, a->end_key_len, b->end_key, b->end_key_len) != 0)
        return false;
    for (size_t i = 0; i < a->peer_count; i++)
        if (a->peers[i].id != b->peers[i].id || a->peers[i].store_id != b->peers[i].store_id)
            return false;
    return true;
}

bool pd_region_peer_is_pending(const struct pd_region *r, uint64_t peer_id)
{
    for (size_t i = 0; i < r->pending_peer_count; i++)
        if (r->pending_peers[i].id == peer_id)
            return true;
    return false;
}

void pd_region_init(struct pd_region *r)
{
    memset(r, 0, sizeof *r);
}

void pd_region_clear(struct pd_region *r)
{
    free(r->start_key);
    free(r->end_key);
    memset(r, 0, sizeof *r);
}

static int dup_key(const void *src, size_t len, uint8_t **out)
{
    *out = NULL;
    if (len == 0)
        return PD_OK;
    *out = malloc(len);
    if (*out == NULL)
        return PD_ERR_NOMEM;
    memcpy(*out, src, len);
    return PD_OK;
}

int pd_region_set_keys(struct pd_region *r, const void *start, size_t start_len, const void *end,
                       size_t end_len)
{
    uint8_t *s = NULL, *e = NULL;
    if (start_len > PD_MAX_KEY_BYTES || end_len > PD_MAX_KEY_BYTES)
        return PD_ERR_INVALID;
    if (dup_key(start, start_len, &s) != PD_OK)
        return PD_ERR_NOMEM;
    if (dup_key(end, end_len, &e) != PD_OK) {
        free(s);
        return PD_ERR_NOMEM;
    }
    free(r->start_key);
    free(r->end_key);
    r->start_key = s;
    r->start_key_len = start_len;
    r->end_key = e;
    r->end_key_len = end_len;
    return PD_OK;
}

int pd_region_copy(struct pd_region *dst, const struct pd_region *src)
{
    if (dst == src)
        return PD_OK;
    struct pd_region tmp = *src;
    tmp.start_key = NULL;
    tmp.end_key = NULL;
    tmp.start_key_len = tmp.end_key_len = 0;
    int err = pd_region_set_keys(&tmp, src->start_key, src->start_key_len, src->end_key,
                                 src->end_key_len);
    if (err != PD_OK)
        return err;
    pd_region_clear(dst);
    *dst = tmp;
    return PD_OK;
}

int pd_region_add_peer(struct pd_region *r, uint64_t peer_id, uint64_t store_id)
{
    if (r->peer_count >= PD_MAX_PEERS)
        return PD_ERR_INVALID;
    r->peers[r->peer_count].id = peer_id;
    r->peers[r->peer_count].store_id = store_id;
    r->peer_count++;
    return PD_OK;
}

const struct pd_peer *pd_region_store_peer(const struct pd_region *r, uint64_t store_id)
{
    for (size_t i = 0; i < r->peer_count; i++)
        if (r->peers[i].store_id == store_id)
            return &r->peers[i];
    return NULL;
}

struct pd_region *pd_region_new_copy(const struct pd_region *src)
{
    struct pd_region *r = malloc(sizeof *r);
    if (r == NULL)
        return NULL;
    pd_region_init(r);
    if (pd_region_copy(r, src) != PD_OK) {
        free(r);
        return NULL;
    }
    return r;
}

void pd_region_free(struct pd_region *r)
{
    if (r == NULL)
        return;
    pd_region_clear(r);
    free(r);
}

void pd_regions_free(struct pd_region *regions, size_t count)
{
    if (regions == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        pd_region_clear(&regions[i]);
    free(regions);
}

void pd_hex_encode(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int pd_hex_decode(const char *in, size_t len, uint8_t *out)
{
    if (len % 2 != 0)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hex_digit(in[2 * i]), lo = hex_digit(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

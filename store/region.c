/* region.c — region metadata: copies, protobuf conversion, membership edits, range checks. */
#include "store/region.h"

#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"

static uint8_t *dup_bytes(const void *p, size_t len)
{
    uint8_t *d = malloc(len ? len : 1);
    if (d && len)
        memcpy(d, p, len);
    return d;
}

int store_region_copy(struct region *dst, const struct region *src)
{
    *dst = *src;
    dst->start_key = dup_bytes(src->start_key, src->start_key_len);
    dst->end_key = dup_bytes(src->end_key, src->end_key_len);
    dst->peers = malloc((src->n_peers ? src->n_peers : 1) * sizeof *dst->peers);
    if (!dst->start_key || !dst->end_key || !dst->peers) {
        store_region_free(dst);
        return -1;
    }
    if (src->n_peers)
        memcpy(dst->peers, src->peers, src->n_peers * sizeof *dst->peers);
    return 0;
}

void store_region_free(struct region *r)
{
    free(r->start_key);
    free(r->end_key);
    free(r->peers);
    memset(r, 0, sizeof *r);
}

int store_region_from_proto(struct region *dst, const Metapb__Region *src)
{
    memset(dst, 0, sizeof *dst);
    dst->id = src->id;
    dst->start_key = dup_bytes(src->start_key.data, src->start_key.len);
    dst->start_key_len = src->start_key.len;
    dst->end_key = dup_bytes(src->end_key.data, src->end_key.len);
    dst->end_key_len = src->end_key.len;
    if (src->region_epoch) {
        dst->conf_ver = src->region_epoch->conf_ver;
        dst->version = src->region_epoch->version;
    }
    dst->peers = malloc((src->n_peers ? src->n_peers : 1) * sizeof *dst->peers);
    if (!dst->start_key || !dst->end_key || !dst->peers) {
        store_region_free(dst);
        return -1;
    }
    for (size_t i = 0; i < src->n_peers; i++)
        dst->peers[i] = (struct region_peer){src->peers[i]->id, src->peers[i]->store_id};
    dst->n_peers = src->n_peers;
    return 0;
}

Metapb__Region *store_region_to_proto(const struct region *r)
{
    Metapb__Region *m = malloc(sizeof *m);
    if (!m)
        return NULL;
    metapb__region__init(m);
    m->id = r->id;
    m->start_key.data = dup_bytes(r->start_key, r->start_key_len);
    m->start_key.len = r->start_key_len;
    m->end_key.data = dup_bytes(r->end_key, r->end_key_len);
    m->end_key.len = r->end_key_len;
    m->region_epoch = malloc(sizeof *m->region_epoch);
    m->peers = calloc(r->n_peers ? r->n_peers : 1, sizeof *m->peers);
    if (!m->start_key.data || !m->end_key.data || !m->region_epoch || !m->peers)
        goto fail;
    metapb__region_epoch__init(m->region_epoch);
    m->region_epoch->conf_ver = r->conf_ver;
    m->region_epoch->version = r->version;
    for (size_t i = 0; i < r->n_peers; i++) {
        m->peers[i] = malloc(sizeof *m->peers[i]);
        if (!m->peers[i])
            goto fail;
        m->n_peers = i + 1;
        metapb__peer__init(m->peers[i]);
        m->peers[i]->id = r->peers[i].id;
        m->peers[i]->store_id = r->peers[i].store_id;
    }
    return m;
fail:
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return NULL;
}

const struct region_peer *store_region_peer_on_store(const struct region *r, uint64_t store_id)
{
    for (size_t i = 0; i < r->n_peers; i++)
        if (r->peers[i].store_id == store_id)
            return &r->peers[i];
    return NULL;
}

const struct region_peer *store_region_peer_by_id(const struct region *r, uint64_t peer_id)
{
    for (size_t i = 0; i < r->n_peers; i++)
        if (r->peers[i].id == peer_id)
            return &r->peers[i];
    return NULL;
}

int store_region_contains(const struct region *r, const void *key, size_t len)
{
    if (codec_bytes_cmp(key, len, r->start_key, r->start_key_len) < 0)
        return 0;
    return r->end_key_len == 0 || codec_bytes_cmp(key, len, r->end_key, r->end_key_len) < 0;
}

int store_region_contains_stored(const struct region *r, const void *key, size_t len)
{
    if (r->start_key_len && codec_key_cmp_stored(r->start_key, r->start_key_len, key, len) > 0)
        return 0;
    return r->end_key_len == 0 || codec_key_cmp_stored(r->end_key, r->end_key_len, key, len) > 0;
}

static uint8_t *encode_bound(const uint8_t *key, size_t len, size_t *out_len)
{
    *out_len = len ? codec_key_len(len) : 0;
    uint8_t *out = malloc(*out_len ? *out_len : 1);
    if (out && len)
        codec_key_encode(key, len, out);
    return out;
}

int store_region_data_range(const struct region *r, uint8_t **lo, size_t *lo_len, uint8_t **hi,
                            size_t *hi_len)
{
    *lo = encode_bound(r->start_key, r->start_key_len, lo_len);
    *hi = encode_bound(r->end_key, r->end_key_len, hi_len);
    if (*lo && *hi)
        return 0;
    free(*lo);
    free(*hi);
    *lo = *hi = NULL;
    return -1;
}

int store_region_add_peer(struct region *r, struct region_peer p)
{
    if (store_region_peer_by_id(r, p.id))
        return 0;
    struct region_peer *grown = realloc(r->peers, (r->n_peers + 1) * sizeof *grown);
    if (!grown)
        return -1;
    r->peers = grown;
    r->peers[r->n_peers++] = p;
    return 0;
}

int store_region_remove_peer(struct region *r, uint64_t peer_id)
{
    for (size_t i = 0; i < r->n_peers; i++) {
        if (r->peers[i].id == peer_id) {
            memmove(&r->peers[i], &r->peers[i + 1], (r->n_peers - i - 1) * sizeof *r->peers);
            r->n_peers--;
            return 0;
        }
    }
    return -1;
}

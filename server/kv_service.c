/* kv_service.c — the TinyKv method table and helpers shared by its handlers. */
#include "server/kv_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errorpb.pb-c.h"
#include "server/disk_guard.h"
#include "server/txn_service.h"
#include "store/raftstore.h"

size_t kv_service_methods(struct kv_service *svc, struct rpc_method *out)
{
    size_t n = 0;
    n += kv_raw_methods(svc, out + n);
    if (svc->mvcc)
        n += kv_txn_methods(svc, out + n);
    return n;
}

Errorpb__Error *kv_disk_refusal(const struct kv_service *svc, const Kvrpcpb__Context *ctx)
{
    Errorpb__Error *e = disk_guard_refusal(svc->disk);
    struct raftstore_peer_info info;
    if (e && svc->rs && ctx && ctx->region_id &&
        (raftstore_peer_info_of(svc->rs, ctx->region_id, &info) != 0 || !info.is_leader)) {
        protobuf_c_message_free_unpacked(&e->base, NULL);
        return NULL;
    }
    return e;
}

void kv_ctx_from_proto(const Kvrpcpb__Context *c, struct storage_ctx *out)
{
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    out->region_id = c->region_id;
    if (c->region_epoch) {
        out->region_conf_ver = c->region_epoch->conf_ver;
        out->region_version = c->region_epoch->version;
    }
    if (c->peer) {
        out->peer_id = c->peer->id;
        out->peer_store_id = c->peer->store_id;
    }
}

const char *kv_check_key(size_t len)
{
    if (len == 0)
        return "key is empty";
    if (len > KV_MAX_KEY_BYTES)
        return "key is longer than 8 KiB";
    return NULL;
}

static uint8_t *dup_bytes(const void *p, size_t len)
{
    uint8_t *d = malloc(len ? len : 1);
    if (d && len)
        memcpy(d, p, len);
    return d;
}

#define KV_EPOCH_REGIONS_MAX 8

/* Adds region r (owned, freed here) to m's current regions unless present or full. */
static void add_current_region(Errorpb__EpochNotMatch *m, struct region *r)
{
    for (size_t i = 0; i < m->n_current_regions; i++)
        if (m->current_regions[i]->id == r->id)
            goto done;
    if (m->n_current_regions < KV_EPOCH_REGIONS_MAX) {
        Metapb__Region *pr = store_region_to_proto(r);
        if (pr)
            m->current_regions[m->n_current_regions++] = pr;
    }
done:
    store_region_free(r);
}

static void fill_epoch_not_match(const struct kv_service *svc, const struct storage_ctx *ctx,
                                 const struct storage_error *err, Errorpb__EpochNotMatch *m)
{
    m->current_regions = calloc(KV_EPOCH_REGIONS_MAX, sizeof *m->current_regions);
    if (!m->current_regions)
        return;
    struct region r;
    if (raftstore_region(svc->rs, err->region_id, &r) == 0)
        add_current_region(m, &r);
    if (raftstore_region_next(svc->rs, err->region_id, &r) == 0)
        add_current_region(m, &r);
    for (size_t i = 0; ctx && i < ctx->n_keys; i++)
        if (raftstore_region_of_key(svc->rs, ctx->keys[i].data, ctx->keys[i].len, &r) == 0)
            add_current_region(m, &r);
}

static void fill_key_not_in_region(const struct kv_service *svc, const struct storage_ctx *ctx,
                                   const struct storage_error *err, Errorpb__KeyNotInRegion *k)
{
    struct region r;
    if (raftstore_region(svc->rs, err->region_id, &r) != 0)
        return;
    /* The key is known by position for reads; for writes, the first touched
     * key outside the region is the one. */
    const struct storage_key *key = NULL;
    if (ctx && err->key_pos && err->key_pos <= ctx->n_keys)
        key = &ctx->keys[err->key_pos - 1];
    for (size_t i = 0; !key && ctx && i < ctx->n_keys; i++)
        if (!store_region_contains(&r, ctx->keys[i].data, ctx->keys[i].len))
            key = &ctx->keys[i];
    if (key) {
        k->key.data = dup_bytes(key->data, key->len);
        k->key.len = k->key.data ? key->len : 0;
    }
    k->start_key.data = dup_bytes(r.start_key, r.start_key_len);
    k->start_key.len = k->start_key.data ? r.start_key_len : 0;
    k->end_key.data = dup_bytes(r.end_key, r.end_key_len);
    k->end_key.len = k->end_key.data ? r.end_key_len : 0;
    store_region_free(&r);
}

Errorpb__Error *kv_region_error_new(const struct kv_service *svc, const struct storage_ctx *ctx,
                                    const struct storage_error *err)
{
    if (!err || err->code != STORAGE_ERR_REGION)
        return NULL;
    Errorpb__Error *e = malloc(sizeof *e);
    if (!e)
        return NULL;
    errorpb__error__init(e);
    e->message = strdup(err->msg);
    switch (err->region_kind) {
    case STORAGE_REGION_ERR_NOT_LEADER: {
        Errorpb__NotLeader *nl = malloc(sizeof *nl);
        if (nl) {
            errorpb__not_leader__init(nl);
            nl->region_id = err->region_id;
            if (err->leader_peer_id) {
                nl->leader = malloc(sizeof *nl->leader);
                if (nl->leader) {
                    metapb__peer__init(nl->leader);
                    nl->leader->id = err->leader_peer_id;
                    nl->leader->store_id = err->leader_store_id;
                }
            }
        }
        e->not_leader = nl;
        break;
    }
    case STORAGE_REGION_ERR_REGION_NOT_FOUND: {
        Errorpb__RegionNotFound *rnf = malloc(sizeof *rnf);
        if (rnf) {
            errorpb__region_not_found__init(rnf);
            rnf->region_id = err->region_id;
        }
        e->region_not_found = rnf;
        break;
    }
    case STORAGE_REGION_ERR_KEY_NOT_IN_REGION: {
        Errorpb__KeyNotInRegion *k = malloc(sizeof *k);
        if (k) {
            errorpb__key_not_in_region__init(k);
            k->region_id = err->region_id;
            if (svc && svc->rs)
                fill_key_not_in_region(svc, ctx, err, k);
        }
        e->key_not_in_region = k;
        break;
    }
    case STORAGE_REGION_ERR_EPOCH_NOT_MATCH: {
        Errorpb__EpochNotMatch *m = malloc(sizeof *m);
        if (m) {
            errorpb__epoch_not_match__init(m);
            if (svc && svc->rs)
                fill_epoch_not_match(svc, ctx, err, m);
        }
        e->epoch_not_match = m;
        break;
    }
    case STORAGE_REGION_ERR_STALE_COMMAND: {
        Errorpb__StaleCommand *s = malloc(sizeof *s);
        if (s)
            errorpb__stale_command__init(s);
        e->stale_command = s;
        break;
    }
    case STORAGE_REGION_ERR_STORE_NOT_MATCH: {
        Errorpb__StoreNotMatch *s = malloc(sizeof *s);
        if (s)
            errorpb__store_not_match__init(s);
        e->store_not_match = s;
        break;
    }
    case STORAGE_REGION_ERR_SERVER_IS_BUSY: {
        Errorpb__ServerIsBusy *b = malloc(sizeof *b);
        if (b) {
            errorpb__server_is_busy__init(b);
            b->reason = strdup(err->msg);
        }
        e->server_is_busy = b;
        break;
    }
    case STORAGE_REGION_ERR_UNDETERMINED: {
        Errorpb__Undetermined *u = malloc(sizeof *u);
        if (u)
            errorpb__undetermined__init(u);
        e->undetermined = u;
        break;
    }
    default:
        break;
    }
    return e;
}

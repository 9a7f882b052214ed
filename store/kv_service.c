/* kv_service.c — the TinyKv method table and helpers shared by its handlers. */
#include "store/kv_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errorpb.pb-c.h"
#include "store/txn_service.h"

size_t kv_service_methods(struct kv_service *svc, struct rpc_method *out)
{
    size_t n = 0;
    n += kv_raw_methods(svc, out + n);
    if (svc->mvcc)
        n += kv_txn_methods(svc->mvcc, out + n);
    return n;
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

Errorpb__Error *kv_region_error_new(const struct storage_error *err)
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
        }
        e->key_not_in_region = k;
        break;
    }
    case STORAGE_REGION_ERR_EPOCH_NOT_MATCH: {
        Errorpb__EpochNotMatch *m = malloc(sizeof *m);
        if (m)
            errorpb__epoch_not_match__init(m);
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

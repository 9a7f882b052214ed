/* store_call.c — one request to a region leader with routing context; region and send errors. */
#include <string.h>

#include "client/client_internal.h"

/* Updates the cache for a region error; returns a short name for the detail. */
static const char *handle_region_error(struct client *c, const struct region_loc *loc,
                                       const Errorpb__Error *e)
{
    atomic_fetch_add(&c->stat_region_errors, 1);
    if (e->not_leader) {
        const Metapb__Peer *l = e->not_leader->leader;
        int member = 0;
        for (size_t i = 0; l && i < loc->r.n_peers; i++)
            member |= loc->r.peer_store_ids[i] == l->store_id;
        if (l && l->store_id && member)
            client_region_cache_set_leader(&c->regions, loc->r.id, l->id, l->store_id);
        else
            client_region_cache_invalidate(&c->regions, loc->r.id);
        return "not leader";
    }
    if (e->stale_command)
        return "stale command"; /* the same leader may well take it again */
    if (e->server_is_busy)
        return "server is busy"; /* the same leader, after a backoff */
    if (e->undetermined)
        return "undetermined"; /* an idempotent command: sending it again is safe */
    if (e->store_not_match)
        client_store_cache_invalidate(c, loc->r.leader_store_id);
    client_region_cache_invalidate(&c->regions, loc->r.id);
    if (e->epoch_not_match) {
        /* The store says which regions now cover the range: no need to ask the scheduler. */
        client_region_cache_learn(
            &c->regions, (const Metapb__Region *const *)e->epoch_not_match->current_regions,
            e->epoch_not_match->n_current_regions, loc->r.leader_store_id);
        return "epoch not match";
    }
    if (e->region_not_found)
        return "region not found";
    if (e->key_not_in_region)
        return "key not in region";
    if (e->store_not_match)
        return "store not match";
    return "region error";
}

int client_store_call(struct client *c, const struct region_loc *loc, const char *method,
                      ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                      ProtobufCMessage **resp, struct backoff *b)
{
    *resp = NULL;
    Kvrpcpb__Context ctx = KVRPCPB__CONTEXT__INIT;
    Metapb__RegionEpoch epoch = METAPB__REGION_EPOCH__INIT;
    Metapb__Peer peer = METAPB__PEER__INIT;
    ctx.region_id = loc->r.id;
    epoch.conf_ver = loc->r.conf_ver;
    epoch.version = loc->r.version;
    ctx.region_epoch = &epoch;
    peer.id = loc->r.leader_peer_id;
    peer.store_id = loc->r.leader_store_id;
    ctx.peer = &peer;
    void **slot = client_message_field(req, "context");
    if (slot)
        *slot = &ctx;
    struct rpc_error err = {0};
    int rc = rpc_client_unary(c->rpc, loc->addr, method, req, resp_desc, resp,
                              client_backoff_rpc_timeout_ms(b, c), &err);
    if (slot)
        *slot = NULL;
    if (rc) {
        int cr = client_rpc_error(rc, &err);
        client_seterr(c, cr, "store %s %s: %s", loc->addr, method, err.msg);
        if (cr != CLIENT_ERR_UNAVAILABLE && cr != CLIENT_ERR_TIMEOUT)
            return cr;
        /* A raw write that reached the store may apply: resending it could
         * apply it twice around another client's write. Only a store that
         * could not be connected to certainly did not get it. */
        int raw_write = strcmp(method, "/tinykvpb.TinyKv/RawPut") == 0 ||
                        strcmp(method, "/tinykvpb.TinyKv/RawDelete") == 0;
        int never_sent = cr == CLIENT_ERR_UNAVAILABLE &&
                         (strstr(err.msg, "connect") || strstr(err.msg, "Connection refused"));
        if (raw_write && !never_sent) {
            client_region_cache_on_send_failure(&c->regions, loc->r.id, loc->r.leader_store_id);
            rpc_client_reconnect(c->rpc, loc->addr);
            client_seterr(c, CLIENT_ERR_UNDETERMINED, "store %s %s: outcome undetermined: %s",
                          loc->addr, method, err.msg);
            return CLIENT_ERR_UNDETERMINED;
        }
        /* The leader may be gone: try its peers (one of them will know the new
         * leader), then the scheduler. The store may also have moved. */
        client_region_cache_on_send_failure(&c->regions, loc->r.id, loc->r.leader_store_id);
        client_store_cache_invalidate(c, loc->r.leader_store_id);
        /* A restarted store is then reached at the next try, not when the
         * old channel's own reconnect backoff lets it (seconds). */
        rpc_client_reconnect(c->rpc, loc->addr);
        if (client_backoff_sleep(b) < 0)
            return CLIENT_ERR_UNAVAILABLE;
        return CLIENT_RETRY_REGION;
    }
    void **eslot = client_message_field(*resp, "region_error");
    const Errorpb__Error *e = eslot ? *eslot : NULL;
    if (e && e->undetermined && strncmp(method, "/tinykvpb.TinyKv/Raw", 20) == 0) {
        /* A raw write may or may not apply: resending it could apply it twice
         * around another client's write. Transactional commands are idempotent
         * (same start and commit ts), so they retry below like StaleCommand. */
        atomic_fetch_add(&c->stat_region_errors, 1);
        client_seterr(c, CLIENT_ERR_UNDETERMINED, "region %llu on %s: outcome undetermined%s%s",
                      (unsigned long long)loc->r.id, loc->addr, e->message ? ": " : "",
                      e->message ? e->message : "");
        protobuf_c_message_free_unpacked(*resp, NULL);
        *resp = NULL;
        return CLIENT_ERR_UNDETERMINED;
    }
    if (e && e->disk_full) {
        /* Refused before anything was proposed; sending it again would meet the same disk. */
        atomic_fetch_add(&c->stat_region_errors, 1);
        client_seterr(c, CLIENT_ERR_NO_SPACE, "region %llu on %s: %s",
                      (unsigned long long)loc->r.id, loc->addr,
                      e->disk_full->reason && e->disk_full->reason[0] ? e->disk_full->reason
                                                                      : "disk full");
        protobuf_c_message_free_unpacked(*resp, NULL);
        *resp = NULL;
        return CLIENT_ERR_NO_SPACE;
    }
    if (e) {
        const char *what = handle_region_error(c, loc, e);
        client_seterr(c, CLIENT_ERR_TIMEOUT, "region %llu on %s: %s%s%s",
                      (unsigned long long)loc->r.id, loc->addr, what, e->message ? ": " : "",
                      e->message ? e->message : "");
        protobuf_c_message_free_unpacked(*resp, NULL);
        *resp = NULL;
        if (client_backoff_sleep(b) < 0)
            return CLIENT_ERR_TIMEOUT;
        return CLIENT_RETRY_REGION;
    }
    return 0;
}

int client_store_call_key(struct client *c, const void *key, size_t key_len, const char *method,
                          ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                          ProtobufCMessage **resp, struct backoff *b, struct region_loc *loc_out)
{
    for (;;) {
        struct region_loc loc;
        int rc = client_region_locate(c, key, key_len, b, &loc);
        if (rc)
            return rc;
        rc = client_store_call(c, &loc, method, req, resp_desc, resp, b);
        if (rc == 0 && loc_out)
            *loc_out = loc;
        else
            client_region_loc_clear(&loc);
        if (rc != CLIENT_RETRY_REGION)
            return rc;
    }
}

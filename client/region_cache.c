/* region_cache.c — regions by key and store addresses by id, filled from the scheduler. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int r = n ? memcmp(a, b, n) : 0;
    if (r)
        return r;
    return alen < blen ? -1 : alen > blen;
}

int client_region_contains(const struct region_entry *r, const void *key, size_t key_len)
{
    if (key_cmp(key, key_len, r->start_key, r->start_len) < 0)
        return 0;
    return r->end_len == 0 || key_cmp(key, key_len, r->end_key, r->end_len) < 0;
}

static void entry_free_fields(struct region_entry *e)
{
    free(e->start_key);
    free(e->end_key);
    free(e->peer_ids);
    free(e->peer_store_ids);
    memset(e, 0, sizeof *e);
}

static void entry_free(struct region_entry *e)
{
    if (e) {
        entry_free_fields(e);
        free(e);
    }
}

static void *dup_bytes(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

/* Deep copy of `src` into `dst` (whose fields are overwritten). */
static int entry_copy(struct region_entry *dst, const struct region_entry *src)
{
    *dst = *src;
    dst->start_key = dup_bytes(src->start_key, src->start_len);
    dst->end_key = dup_bytes(src->end_key, src->end_len);
    dst->peer_ids = dup_bytes(src->peer_ids, src->n_peers * sizeof(uint64_t));
    dst->peer_store_ids = dup_bytes(src->peer_store_ids, src->n_peers * sizeof(uint64_t));
    if (!dst->start_key || !dst->end_key || !dst->peer_ids || !dst->peer_store_ids) {
        entry_free_fields(dst);
        return CLIENT_ERR_NOMEM;
    }
    return 0;
}

/* A fresh entry from the scheduler's answer; NULL when out of memory. */
static struct region_entry *entry_from_proto(const Metapb__Region *r, const Metapb__Peer *leader)
{
    struct region_entry src = {0};
    src.id = r->id;
    if (r->region_epoch) {
        src.conf_ver = r->region_epoch->conf_ver;
        src.version = r->region_epoch->version;
    }
    src.start_key = r->start_key.data;
    src.start_len = r->start_key.len;
    src.end_key = r->end_key.data;
    src.end_len = r->end_key.len;
    uint64_t ids[r->n_peers + 1], stores[r->n_peers + 1];
    for (size_t i = 0; i < r->n_peers; i++) {
        ids[i] = r->peers[i]->id;
        stores[i] = r->peers[i]->store_id;
    }
    src.n_peers = r->n_peers;
    src.peer_ids = ids;
    src.peer_store_ids = stores;
    if (leader && leader->store_id) {
        src.leader_peer_id = leader->id;
        src.leader_store_id = leader->store_id;
    } else if (r->n_peers > 0) {
        /* Leader unknown: try the first peer; a NotLeader answer will correct it. */
        src.leader_peer_id = ids[0];
        src.leader_store_id = stores[0];
    }
    struct region_entry *e = malloc(sizeof *e);
    if (!e || entry_copy(e, &src) != 0) {
        free(e);
        return NULL;
    }
    return e;
}

void client_region_cache_init(struct region_cache *rc)
{
    pthread_mutex_init(&rc->mu, NULL);
    rc->entries = NULL;
    rc->n = rc->cap = 0;
}

void client_region_cache_close(struct region_cache *rc)
{
    for (size_t i = 0; i < rc->n; i++)
        entry_free(rc->entries[i]);
    free(rc->entries);
    rc->entries = NULL;
    rc->n = rc->cap = 0;
    pthread_mutex_destroy(&rc->mu);
}

/* Index of the last entry whose start_key <= key, or -1. Caller holds mu. */
static long find_floor(const struct region_cache *rc, const void *key, size_t key_len)
{
    long lo = 0, hi = (long)rc->n - 1, found = -1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        const struct region_entry *e = rc->entries[mid];
        if (key_cmp(e->start_key, e->start_len, key, key_len) <= 0) {
            found = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return found;
}

/* Publishes `e` (owned by the cache from now on), dropping every entry it
 * overlaps. Caller holds mu. Returns 0 or CLIENT_ERR_NOMEM (e freed). */
static int cache_insert(struct region_cache *rc, struct region_entry *e)
{
    if (rc->n + 1 > rc->cap) {
        size_t cap = rc->cap ? rc->cap * 2 : 16;
        struct region_entry **grown = realloc(rc->entries, cap * sizeof *grown);
        if (!grown) {
            entry_free(e);
            return CLIENT_ERR_NOMEM;
        }
        rc->entries = grown;
        rc->cap = cap;
    }
    size_t w = 0, pos = 0;
    int placed = 0;
    for (size_t i = 0; i < rc->n; i++) {
        struct region_entry *o = rc->entries[i];
        /* o overlaps e unless o ends before e starts or o starts after e ends. */
        int before = o->end_len && key_cmp(o->end_key, o->end_len, e->start_key, e->start_len) <= 0;
        int after = e->end_len && key_cmp(o->start_key, o->start_len, e->end_key, e->end_len) >= 0;
        if (!before && !after) {
            entry_free(o);
            continue;
        }
        if (after && !placed) {
            pos = w;
            placed = 1;
        }
        rc->entries[w++] = o;
    }
    if (!placed)
        pos = w;
    memmove(&rc->entries[pos + 1], &rc->entries[pos], (w - pos) * sizeof *rc->entries);
    rc->entries[pos] = e;
    rc->n = w + 1;
    return 0;
}

void client_region_cache_invalidate(struct region_cache *rc, uint64_t region_id)
{
    pthread_mutex_lock(&rc->mu);
    for (size_t i = 0; i < rc->n; i++) {
        if (rc->entries[i]->id == region_id) {
            entry_free(rc->entries[i]);
            memmove(&rc->entries[i], &rc->entries[i + 1], (rc->n - i - 1) * sizeof *rc->entries);
            rc->n--;
            break;
        }
    }
    pthread_mutex_unlock(&rc->mu);
}

void client_region_cache_set_leader(struct region_cache *rc, uint64_t region_id, uint64_t peer_id,
                                    uint64_t store_id)
{
    pthread_mutex_lock(&rc->mu);
    for (size_t i = 0; i < rc->n; i++) {
        struct region_entry *e = rc->entries[i];
        if (e->id != region_id)
            continue;
        /* Entries are shared with nobody (lookups copy), so editing in place is safe. */
        e->leader_peer_id = peer_id;
        e->leader_store_id = store_id;
        break;
    }
    pthread_mutex_unlock(&rc->mu);
}

void client_region_cache_learn(struct region_cache *rc, const Metapb__Region *const *regions,
                               size_t n, uint64_t store_id)
{
    for (size_t i = 0; i < n; i++) {
        const Metapb__Region *r = regions[i];
        /* The store that answered probably still leads the new regions it holds. */
        Metapb__Peer leader = METAPB__PEER__INIT;
        for (size_t k = 0; k < r->n_peers; k++)
            if (r->peers[k]->store_id == store_id)
                leader = *r->peers[k];
        struct region_entry *e = entry_from_proto(r, leader.store_id ? &leader : NULL);
        if (!e) {
            client_region_cache_clear(rc); /* stale entries must not survive a lost update */
            return;
        }
        pthread_mutex_lock(&rc->mu);
        if (cache_insert(rc, e) != 0) {
            pthread_mutex_unlock(&rc->mu);
            client_region_cache_clear(rc);
            return;
        }
        pthread_mutex_unlock(&rc->mu);
    }
}

void client_region_cache_clear(struct region_cache *rc)
{
    pthread_mutex_lock(&rc->mu);
    for (size_t i = 0; i < rc->n; i++)
        entry_free(rc->entries[i]);
    rc->n = 0;
    pthread_mutex_unlock(&rc->mu);
}

void client_region_cache_on_send_failure(struct region_cache *rc, uint64_t region_id,
                                         uint64_t store_id)
{
    pthread_mutex_lock(&rc->mu);
    for (size_t i = 0; i < rc->n; i++) {
        struct region_entry *e = rc->entries[i];
        if (e->id != region_id)
            continue;
        if (e->leader_store_id != store_id) {
            /* Someone already moved on from that store. */
        } else if (++e->send_failures < e->n_peers) {
            size_t k = 0;
            while (k < e->n_peers && e->peer_store_ids[k] != store_id)
                k++;
            k = k < e->n_peers ? (k + 1) % e->n_peers : 0;
            e->leader_peer_id = e->peer_ids[k];
            e->leader_store_id = e->peer_store_ids[k];
        } else {
            entry_free(e);
            memmove(&rc->entries[i], &rc->entries[i + 1], (rc->n - i - 1) * sizeof *rc->entries);
            rc->n--;
        }
        break;
    }
    pthread_mutex_unlock(&rc->mu);
}

void client_region_loc_clear(struct region_loc *loc)
{
    entry_free_fields(&loc->r);
    loc->addr[0] = 0;
}

/* Copies the cached region holding `key` into loc->r; 1 if found, 0 if not, <0 on OOM. */
static int cache_lookup(struct region_cache *rc, const void *key, size_t key_len,
                        struct region_loc *loc)
{
    int found = 0;
    pthread_mutex_lock(&rc->mu);
    long i = find_floor(rc, key, key_len);
    if (i >= 0 && client_region_contains(rc->entries[i], key, key_len))
        found = entry_copy(&loc->r, rc->entries[i]) == 0 ? 1 : -1;
    pthread_mutex_unlock(&rc->mu);
    return found;
}

/* Asks the scheduler for the region of `key` and caches it. */
static int load_region(struct client *c, const void *key, size_t key_len, struct backoff *b)
{
    for (;;) {
        Schedulerpb__GetRegionRequest req = SCHEDULERPB__GET_REGION_REQUEST__INIT;
        req.region_key.data = (uint8_t *)key;
        req.region_key.len = key_len;
        ProtobufCMessage *m = NULL;
        atomic_fetch_add(&c->stat_pd_region_lookups, 1);
        int rc = client_pd_call(c, "/schedulerpb.Scheduler/GetRegion", &req.base,
                                &schedulerpb__get_region_response__descriptor, &m, b);
        if (rc && rc != CLIENT_PD_NOT_READY)
            return rc;
        Schedulerpb__GetRegionResponse *resp = (Schedulerpb__GetRegionResponse *)m;
        if (rc) {
            /* Not bootstrapped, or no region yet: wait below. */
        } else if (resp->region) {
            struct region_entry *e = entry_from_proto(resp->region, resp->leader);
            protobuf_c_message_free_unpacked(m, NULL);
            if (!e)
                return client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
            if (!client_region_contains(e, key, key_len)) {
                entry_free(e);
                client_seterr(c, CLIENT_ERR_SERVER, "scheduler answered a region without the key");
            } else {
                pthread_mutex_lock(&c->regions.mu);
                rc = cache_insert(&c->regions, e);
                pthread_mutex_unlock(&c->regions.mu);
                return rc ? client_seterr(c, rc, "out of memory") : 0;
            }
        } else {
            protobuf_c_message_free_unpacked(m, NULL);
            client_seterr(c, CLIENT_ERR_UNAVAILABLE, "scheduler knows no region for the key yet");
        }
        /* No region yet (a cluster still bootstrapping, a split being reported): wait. */
        if (client_backoff_sleep(b) < 0)
            return CLIENT_ERR_UNAVAILABLE;
    }
}

/* ------------------------------------------------------------ store cache */

static int store_cache_get(struct client *c, uint64_t store_id, char *addr)
{
    int found = 0;
    pthread_mutex_lock(&c->store_mu);
    for (size_t i = 0; i < c->n_stores; i++) {
        if (c->stores[i].store_id == store_id) {
            memcpy(addr, c->stores[i].addr, CLIENT_ADDR_BYTES);
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&c->store_mu);
    return found;
}

static void store_cache_put(struct client *c, uint64_t store_id, const char *addr)
{
    pthread_mutex_lock(&c->store_mu);
    size_t i;
    for (i = 0; i < c->n_stores; i++)
        if (c->stores[i].store_id == store_id)
            break;
    if (i == c->n_stores) {
        if (c->n_stores == c->cap_stores) {
            size_t cap = c->cap_stores ? c->cap_stores * 2 : 8;
            struct store_addr *grown = realloc(c->stores, cap * sizeof *grown);
            if (!grown) {
                pthread_mutex_unlock(&c->store_mu);
                return; /* not cached; the next call asks again */
            }
            c->stores = grown;
            c->cap_stores = cap;
        }
        c->n_stores++;
    }
    c->stores[i].store_id = store_id;
    snprintf(c->stores[i].addr, CLIENT_ADDR_BYTES, "%s", addr);
    pthread_mutex_unlock(&c->store_mu);
}

void client_store_cache_invalidate(struct client *c, uint64_t store_id)
{
    pthread_mutex_lock(&c->store_mu);
    for (size_t i = 0; i < c->n_stores; i++) {
        if (c->stores[i].store_id == store_id) {
            c->stores[i] = c->stores[--c->n_stores];
            break;
        }
    }
    pthread_mutex_unlock(&c->store_mu);
}

static int store_addr_of(struct client *c, uint64_t store_id, char *addr, struct backoff *b)
{
    if (store_cache_get(c, store_id, addr))
        return 0;
    Schedulerpb__GetStoreRequest req = SCHEDULERPB__GET_STORE_REQUEST__INIT;
    req.store_id = store_id;
    ProtobufCMessage *m = NULL;
    int rc = client_pd_call(c, "/schedulerpb.Scheduler/GetStore", &req.base,
                            &schedulerpb__get_store_response__descriptor, &m, b);
    if (rc == CLIENT_PD_NOT_READY)
        return CLIENT_ERR_UNAVAILABLE;
    if (rc)
        return rc;
    Schedulerpb__GetStoreResponse *resp = (Schedulerpb__GetStoreResponse *)m;
    if (!resp->store || !resp->store->address || !resp->store->address[0]) {
        rc = client_seterr(c, CLIENT_ERR_UNAVAILABLE, "scheduler knows no address for store %llu",
                           (unsigned long long)store_id);
    } else if (resp->store->state == METAPB__STORE_STATE__Tombstone) {
        rc = client_seterr(c, CLIENT_ERR_UNAVAILABLE, "store %llu is a tombstone",
                           (unsigned long long)store_id);
    } else {
        snprintf(addr, CLIENT_ADDR_BYTES, "%s", resp->store->address);
        store_cache_put(c, store_id, addr);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

int client_region_locate(struct client *c, const void *key, size_t key_len, struct backoff *b,
                         struct region_loc *loc)
{
    memset(loc, 0, sizeof *loc);
    for (int tries = 0;; tries++) {
        int found = cache_lookup(&c->regions, key, key_len, loc);
        if (found < 0)
            return client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
        if (found)
            break;
        if (tries > 0 && client_backoff_sleep(b) < 0)
            return client_seterr(c, CLIENT_ERR_UNAVAILABLE, "no region for the key");
        int rc = load_region(c, key, key_len, b);
        if (rc)
            return rc;
    }
    if (loc->r.leader_store_id == 0) {
        client_region_loc_clear(loc);
        return client_seterr(c, CLIENT_ERR_UNAVAILABLE, "region has no peers");
    }
    int rc = store_addr_of(c, loc->r.leader_store_id, loc->addr, b);
    if (rc)
        client_region_loc_clear(loc);
    return rc;
}

int client_region_of_key(struct client *c, const void *key, size_t key_len,
                         struct client_region_info *info)
{
    memset(info, 0, sizeof *info);
    struct backoff b;
    client_backoff_init(&b, c);
    struct region_loc loc;
    int rc = client_region_locate(c, key, key_len, &b, &loc);
    if (rc)
        return rc;
    info->region_id = loc.r.id;
    info->conf_ver = loc.r.conf_ver;
    info->version = loc.r.version;
    info->start_key = loc.r.start_key;
    info->start_key_len = loc.r.start_len;
    info->end_key = loc.r.end_key;
    info->end_key_len = loc.r.end_len;
    info->leader_peer_id = loc.r.leader_peer_id;
    info->leader_store_id = loc.r.leader_store_id;
    snprintf(info->leader_addr, sizeof info->leader_addr, "%s", loc.addr);
    /* The keys moved into info. */
    loc.r.start_key = NULL;
    loc.r.end_key = NULL;
    client_region_loc_clear(&loc);
    return 0;
}

void client_region_info_clear(struct client_region_info *info)
{
    free(info->start_key);
    free(info->end_key);
    memset(info, 0, sizeof *info);
}

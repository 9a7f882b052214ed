/* cluster.c — the cluster object: open/load, bootstrap, IDs, TSO, stores, config, GC safe point. */
#include "pd/pd_internal.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

const char *pd_strerror(int err)
{
    switch (err) {
    case PD_OK:
        return "ok";
    case PD_ERR_NOMEM:
        return "out of memory";
    case PD_ERR_INVALID:
        return "invalid argument";
    case PD_ERR_IO:
        return "storage I/O error";
    case PD_ERR_NOT_BOOTSTRAPPED:
        return "cluster not bootstrapped";
    case PD_ERR_ALREADY_BOOTSTRAPPED:
        return "cluster already bootstrapped";
    case PD_ERR_NOT_FOUND:
        return "not found";
    case PD_ERR_STALE:
        return "stale heartbeat";
    case PD_ERR_TOMBSTONE:
        return "store is tombstone";
    case PD_ERR_EXISTS:
        return "already exists";
    case PD_ERR_CORRUPT:
        return "persisted data corrupt";
    case PD_ERR_STATE:
        return "not allowed in the current state";
    default:
        return "unknown error";
    }
}

const char *pd_store_state_name(enum pd_store_state s)
{
    switch (s) {
    case PD_STORE_UP:
        return "Up";
    case PD_STORE_OFFLINE:
        return "Offline";
    case PD_STORE_TOMBSTONE:
        return "Tombstone";
    }
    return "Unknown";
}

const char *pd_step_kind_name(enum pd_step_kind k)
{
    switch (k) {
    case PD_STEP_ADD_PEER:
        return "add-peer";
    case PD_STEP_REMOVE_PEER:
        return "remove-peer";
    case PD_STEP_TRANSFER_LEADER:
        return "transfer-leader";
    case PD_STEP_SPLIT:
        return "split-region";
    }
    return "unknown";
}

const char *pd_operator_kind_name(enum pd_operator_kind k)
{
    switch (k) {
    case PD_OP_KIND_LEADER:
        return "leader";
    case PD_OP_KIND_REGION:
        return "region";
    case PD_OP_KIND_REPLICA:
        return "replica";
    case PD_OP_KIND_ADMIN:
        return "admin";
    case PD_OP_KIND_SPLIT:
        return "split-region";
    }
    return "unknown";
}

static uint64_t realtime_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t pd_cluster_rand(struct pd_cluster *c)
{
    /* xorshift64*: plenty for picking candidates, and the state stays in the cluster. */
    uint64_t x = c->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

uint64_t pd_region_score_bytes(const struct pd_region *r)
{
    /* As PD: sizes are counted in MiB, at least 1, so small regions weigh
     * the same whether their store measured them yet or not (a new leader
     * reports RocksDB's estimate until its split check has scanned). */
    const uint64_t one_mib = 1024 * 1024;
    return r->approximate_size_bytes > one_mib ? r->approximate_size_bytes : one_mib;
}

uint64_t pd_cluster_now_ms(struct pd_cluster *c)
{
    return c->now_ms(c->clock_ctx);
}

int pd_cluster_set_err(struct pd_cluster *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    return err;
}

struct pd_store_entry *pd_cluster_find_store(struct pd_cluster *c, uint64_t id)
{
    for (size_t i = 0; i < c->store_count; i++)
        if (c->stores[i].store.id == id)
            return &c->stores[i];
    return NULL;
}

static int put_u64(struct pd_cluster *c, const char *key, uint64_t v)
{
    char *buf;
    size_t len;
    int err = pd_codec_encode_u64(v, &buf, &len);
    if (err != PD_OK)
        return err;
    err = pd_meta_store_put(c->meta, key, buf, len, true, c->errmsg, sizeof c->errmsg);
    free(buf);
    return err;
}

/* get_u64: PD_ERR_NOT_FOUND leaves *v untouched. */
static int get_u64(struct pd_cluster *c, const char *key, uint64_t *v)
{
    char *buf;
    size_t len;
    int err = pd_meta_store_get(c->meta, key, &buf, &len, c->errmsg, sizeof c->errmsg);
    if (err != PD_OK)
        return err;
    err = pd_codec_decode_u64(buf, len, v);
    free(buf);
    if (err != PD_OK)
        pd_cluster_set_err(c, err, "cannot decode %s", key);
    return err;
}

static int persist_store(struct pd_cluster *c, const struct pd_store *s)
{
    char key[PD_META_KEY_BYTES], *buf;
    size_t len;
    int err = pd_codec_encode_store(s, &buf, &len);
    if (err != PD_OK)
        return err;
    pd_meta_key_store(key, s->id);
    err = pd_meta_store_put(c->meta, key, buf, len, true, c->errmsg, sizeof c->errmsg);
    free(buf);
    return err;
}

static int append_store(struct pd_cluster *c, const struct pd_store *s)
{
    if (c->store_count == c->store_cap) {
        size_t cap = c->store_cap ? c->store_cap * 2 : 8;
        struct pd_store_entry *n = realloc(c->stores, cap * sizeof *n);
        if (n == NULL)
            return PD_ERR_NOMEM;
        c->stores = n;
        c->store_cap = cap;
    }
    struct pd_store_entry *e = &c->stores[c->store_count++];
    memset(e, 0, sizeof *e);
    e->store = *s;
    e->store.address[PD_MAX_ADDR_BYTES - 1] = '\0';
    e->stats.store_id = s->id;
    e->since_ms = pd_cluster_now_ms(c);
    return PD_OK;
}

static int load_store_cb(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
    struct pd_cluster *c = ctx;
    struct pd_store s;
    (void)key;
    (void)klen;
    if (pd_codec_decode_store(val, vlen, &s) != PD_OK)
        return pd_cluster_set_err(c, PD_ERR_CORRUPT, "cannot decode a store record");
    return append_store(c, &s);
}

static int load_region_cb(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
    struct pd_cluster *c = ctx;
    (void)key;
    (void)klen;
    struct pd_region tmp;
    pd_region_init(&tmp);
    int err = pd_codec_decode_region(val, vlen, &tmp);
    if (err != PD_OK)
        return pd_cluster_set_err(c, err, "cannot decode a region record");
    struct pd_region *r = pd_region_new_copy(&tmp);
    pd_region_clear(&tmp);
    if (r == NULL)
        return PD_ERR_NOMEM;
    if (pd_region_tree_first_overlap(&c->tree, r) != c->tree.count ||
        pd_region_tree_find_by_id(&c->tree, r->id) != NULL) {
        pd_region_free(r);
        return pd_cluster_set_err(c, PD_ERR_CORRUPT, "persisted regions overlap");
    }
    err = pd_region_tree_insert(&c->tree, r);
    if (err != PD_OK)
        pd_region_free(r);
    return err;
}

static int load_schedulers(struct pd_cluster *c)
{
    char *buf;
    size_t len;
    c->sched_balance_leader = true;
    c->sched_balance_region = true;
    int err =
        pd_meta_store_get(c->meta, PD_META_KEY_SCHEDULERS, &buf, &len, c->errmsg, sizeof c->errmsg);
    if (err == PD_ERR_NOT_FOUND)
        return PD_OK;
    if (err != PD_OK)
        return err;
    json_t *a = json_loadb(buf, len, 0, NULL);
    free(buf);
    if (!json_is_array(a)) {
        json_decref(a);
        return pd_cluster_set_err(c, PD_ERR_CORRUPT, "cannot decode the scheduler list");
    }
    c->sched_balance_leader = false;
    c->sched_balance_region = false;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        const char *n = json_string_value(v);
        if (n && strcmp(n, PD_SCHEDULER_BALANCE_LEADER) == 0)
            c->sched_balance_leader = true;
        else if (n && strcmp(n, PD_SCHEDULER_BALANCE_REGION) == 0)
            c->sched_balance_region = true;
    }
    json_decref(a);
    return PD_OK;
}

int pd_cluster_save_schedulers(struct pd_cluster *c)
{
    json_t *a = json_array();
    if (a == NULL)
        return PD_ERR_NOMEM;
    if (c->sched_balance_leader)
        json_array_append_new(a, json_string(PD_SCHEDULER_BALANCE_LEADER));
    if (c->sched_balance_region)
        json_array_append_new(a, json_string(PD_SCHEDULER_BALANCE_REGION));
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    if (text == NULL)
        return PD_ERR_NOMEM;
    int err = pd_meta_store_put(c->meta, PD_META_KEY_SCHEDULERS, text, strlen(text), true,
                                c->errmsg, sizeof c->errmsg);
    free(text);
    return err;
}

static int load_config(struct pd_cluster *c)
{
    char *buf;
    size_t len;
    pd_config_default(&c->cfg);
    int err =
        pd_meta_store_get(c->meta, PD_META_KEY_CONFIG, &buf, &len, c->errmsg, sizeof c->errmsg);
    if (err == PD_ERR_NOT_FOUND)
        return PD_OK;
    if (err != PD_OK)
        return err;
    err = pd_config_apply_json(&c->cfg, buf, len, c->errmsg, sizeof c->errmsg);
    free(buf);
    return err == PD_OK ? PD_OK : PD_ERR_CORRUPT;
}

static int load_all(struct pd_cluster *c)
{
    int err = get_u64(c, PD_META_KEY_CLUSTER_ID, &c->cluster_id);
    if (err == PD_ERR_NOT_FOUND) {
        uint64_t rnd = 0;
        if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
            rnd = (uint64_t)clock();
        /* PD's shape: creation time in the high bits, randomness below; kept below 2^63 so JSON
         * integers (signed 64-bit in jansson) carry it exactly. */
        c->cluster_id = ((realtime_ms(NULL) / 1000) << 32 | (rnd & 0xffffffffu)) & INT64_MAX;
        err = put_u64(c, PD_META_KEY_CLUSTER_ID, c->cluster_id);
    }
    if (err != PD_OK)
        return err;
    uint64_t boot = 0;
    err = get_u64(c, PD_META_KEY_BOOTSTRAPPED, &boot);
    if (err != PD_OK && err != PD_ERR_NOT_FOUND)
        return err;
    c->bootstrapped = boot != 0;
    err = get_u64(c, PD_META_KEY_GC_SAFE_POINT, &c->gc_safe_point);
    if (err != PD_OK && err != PD_ERR_NOT_FOUND)
        return err;
    if ((err = load_config(c)) != PD_OK || (err = load_schedulers(c)) != PD_OK)
        return err;
    err = pd_meta_store_scan(c->meta, PD_META_PREFIX_STORE, load_store_cb, c, c->errmsg,
                             sizeof c->errmsg);
    if (err != PD_OK)
        return err;
    return pd_meta_store_scan(c->meta, PD_META_PREFIX_REGION, load_region_cb, c, c->errmsg,
                              sizeof c->errmsg);
}

int pd_cluster_open(const struct pd_options *opts, struct pd_cluster **out, char *errmsg,
                    size_t errmsg_len)
{
    *out = NULL;
    struct pd_cluster *c = calloc(1, sizeof *c);
    if (c == NULL)
        return PD_ERR_NOMEM;
    int err = PD_OK;
    pthread_mutex_init(&c->mu, NULL);
    pd_region_tree_init(&c->tree);
    c->op_history = calloc(PD_OPERATOR_HISTORY, sizeof *c->op_history);
    if (c->op_history == NULL) {
        err = PD_ERR_NOMEM;
        goto fail;
    }
    c->now_ms = opts->now_ms ? opts->now_ms : realtime_ms;
    c->clock_ctx = opts->clock_ctx;
    c->registry = opts->metrics;
    /* Any non-zero seed will do; a fake clock makes the picks of a test repeatable. */
    c->rng = (pd_cluster_now_ms(c) ^ 0x9e3779b97f4a7c15ull) | 1;
    err = pd_meta_store_open(opts->data_dir, &c->meta, c->errmsg, sizeof c->errmsg);
    if (err != PD_OK)
        goto fail;
    if ((err = load_all(c)) != PD_OK)
        goto fail;
    err = pd_id_alloc_load(&c->ids, c->meta, opts->id_batch ? opts->id_batch : 1000, c->errmsg,
                           sizeof c->errmsg);
    if (err != PD_OK)
        goto fail;
    err = pd_tso_load(&c->tso, c->meta, opts->tso_window_ms ? opts->tso_window_ms : 3000,
                      pd_cluster_now_ms(c), c->errmsg, sizeof c->errmsg);
    if (err != PD_OK)
        goto fail;
    *out = c;
    return PD_OK;
fail:
    if (errmsg && errmsg_len)
        snprintf(errmsg, errmsg_len, "%s%s%s", pd_strerror(err), c->errmsg[0] ? ": " : "",
                 c->errmsg);
    pd_cluster_close(c);
    return err;
}

void pd_cluster_close(struct pd_cluster *c)
{
    if (c == NULL)
        return;
    pd_meta_store_close(c->meta);
    pd_region_tree_close(&c->tree);
    free(c->stores);
    free(c->ops);
    free(c->op_index);
    pd_split_jobs_free(c);
    free(c->op_history);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void pd_cluster_errmsg(struct pd_cluster *c, char *buf, size_t len)
{
    if (len == 0)
        return;
    pthread_mutex_lock(&c->mu);
    snprintf(buf, len, "%s", c->errmsg);
    pthread_mutex_unlock(&c->mu);
}

uint64_t pd_cluster_id(struct pd_cluster *c)
{
    return c->cluster_id; /* set once at open */
}

static int check_region(struct pd_cluster *c, const struct pd_region *r)
{
    if (r->id == 0)
        return pd_cluster_set_err(c, PD_ERR_INVALID, "region id 0");
    if (r->peer_count == 0 || r->peer_count > PD_MAX_PEERS)
        return pd_cluster_set_err(c, PD_ERR_INVALID, "region %llu has %zu peers",
                                  (unsigned long long)r->id, r->peer_count);
    if (r->start_key_len > PD_MAX_KEY_BYTES || r->end_key_len > PD_MAX_KEY_BYTES)
        return pd_cluster_set_err(c, PD_ERR_INVALID, "region %llu: key longer than %d bytes",
                                  (unsigned long long)r->id, PD_MAX_KEY_BYTES);
    if (r->end_key_len &&
        pd_key_cmp(r->start_key, r->start_key_len, r->end_key, r->end_key_len) >= 0)
        return pd_cluster_set_err(c, PD_ERR_INVALID, "region %llu: start key >= end key",
                                  (unsigned long long)r->id);
    for (size_t i = 0; i < r->peer_count; i++) {
        if (r->peers[i].id == 0 || r->peers[i].store_id == 0)
            return pd_cluster_set_err(c, PD_ERR_INVALID, "region %llu: peer with id 0",
                                      (unsigned long long)r->id);
        for (size_t j = 0; j < i; j++)
            if (r->peers[j].store_id == r->peers[i].store_id || r->peers[j].id == r->peers[i].id)
                return pd_cluster_set_err(c, PD_ERR_INVALID, "region %llu: duplicate peer",
                                          (unsigned long long)r->id);
    }
    return PD_OK;
}

/* store_valid: a non-zero id, a known state and a NUL-terminated address of printable ASCII
 * without spaces (it is shown in JSON and logs). */
static bool store_valid(const struct pd_store *s)
{
    if (s->id == 0 || s->state > PD_STORE_TOMBSTONE ||
        memchr(s->address, '\0', PD_MAX_ADDR_BYTES) == NULL || s->address[0] == '\0')
        return false;
    for (const char *a = s->address; *a; a++)
        if (*a <= ' ' || *a > '~')
            return false;
    return true;
}

int pd_cluster_check_region(struct pd_cluster *c, const struct pd_region *r)
{
    return check_region(c, r);
}

int pd_cluster_bootstrap(struct pd_cluster *c, const struct pd_store *store,
                         const struct pd_region *region)
{
    int err = PD_OK;
    char *sbuf = NULL, *rbuf = NULL, *bbuf = NULL;
    size_t slen, rlen, blen;
    struct pd_meta_batch *b = NULL;
    struct pd_region *copy = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->bootstrapped) {
        err = pd_cluster_set_err(c, PD_ERR_ALREADY_BOOTSTRAPPED, "cluster %llu is bootstrapped",
                                 (unsigned long long)c->cluster_id);
        goto cleanup;
    }
    if (!store_valid(store)) {
        err = pd_cluster_set_err(c, PD_ERR_INVALID, "store needs an id and a printable address");
        goto cleanup;
    }
    if (region && (err = check_region(c, region)) != PD_OK)
        goto cleanup;
    if (region && pd_region_store_peer(region, store->id) == NULL) {
        err = pd_cluster_set_err(c, PD_ERR_INVALID, "bootstrap region has no peer on the store");
        goto cleanup;
    }
    copy = region ? pd_region_new_copy(region) : NULL;
    b = pd_meta_batch_new(c->meta);
    if ((region && copy == NULL) || b == NULL) {
        err = PD_ERR_NOMEM;
        goto cleanup;
    }
    struct pd_store s = *store;
    s.state = PD_STORE_UP;
    if ((err = pd_codec_encode_store(&s, &sbuf, &slen)) != PD_OK ||
        (region && (err = pd_codec_encode_region(region, &rbuf, &rlen)) != PD_OK) ||
        (err = pd_codec_encode_u64(1, &bbuf, &blen)) != PD_OK)
        goto cleanup;
    char key[PD_META_KEY_BYTES];
    pd_meta_key_store(key, s.id);
    pd_meta_batch_put(b, key, sbuf, slen);
    if (region) {
        pd_meta_key_region(key, region->id);
        pd_meta_batch_put(b, key, rbuf, rlen);
    }
    pd_meta_batch_put(b, PD_META_KEY_BOOTSTRAPPED, bbuf, blen);
    /* Take every in-memory resource first so a failure below leaves nothing half-done. */
    bool appended = false;
    if ((err = pd_region_tree_reserve(&c->tree)) != PD_OK)
        goto cleanup;
    if (pd_cluster_find_store(c, s.id) == NULL) {
        if ((err = append_store(c, &s)) != PD_OK)
            goto cleanup;
        appended = true;
    }
    err = pd_meta_batch_write(c->meta, b, true, c->errmsg, sizeof c->errmsg);
    if (err != PD_OK) {
        if (appended)
            c->store_count--;
        goto cleanup;
    }
    /* Only an empty tree can be bootstrapped into; drop anything left from before. */
    while (c->tree.count > 0) {
        struct pd_region *old = c->tree.by_key[0];
        pd_region_tree_remove(&c->tree, old);
        pd_region_free(old);
    }
    if (copy) {
        memset(&copy->leader, 0, sizeof copy->leader); /* known from the first heartbeat */
        copy->pending_peer_count = 0;
        if ((err = pd_region_tree_insert(&c->tree, copy)) != PD_OK)
            goto cleanup;
        copy = NULL;
    }
    c->bootstrapped = true;
cleanup:
    pthread_mutex_unlock(&c->mu);
    pd_region_free(copy);
    pd_meta_batch_free(b);
    free(sbuf);
    free(rbuf);
    free(bbuf);
    return err;
}

bool pd_cluster_is_bootstrapped(struct pd_cluster *c)
{
    pthread_mutex_lock(&c->mu);
    bool b = c->bootstrapped;
    pthread_mutex_unlock(&c->mu);
    return b;
}

int pd_cluster_alloc_id_locked(struct pd_cluster *c, uint64_t *id)
{
    int err = pd_id_alloc_next(&c->ids, c->meta, id, c->errmsg, sizeof c->errmsg);
    if (err == PD_OK)
        c->metrics.ids_allocated++;
    return err;
}

int pd_cluster_alloc_id(struct pd_cluster *c, uint64_t *id)
{
    pthread_mutex_lock(&c->mu);
    int err = pd_cluster_alloc_id_locked(c, id);
    pthread_mutex_unlock(&c->mu);
    return err;
}

int pd_cluster_tso(struct pd_cluster *c, uint32_t count, uint64_t *ts)
{
    pthread_mutex_lock(&c->mu);
    int err =
        pd_tso_next(&c->tso, c->meta, pd_cluster_now_ms(c), count, ts, c->errmsg, sizeof c->errmsg);
    if (err == PD_OK)
        c->metrics.tso_requests++;
    pthread_mutex_unlock(&c->mu);
    return err;
}

int pd_cluster_put_store(struct pd_cluster *c, const struct pd_store *store)
{
    int err = PD_OK;
    pthread_mutex_lock(&c->mu);
    if (!c->bootstrapped) {
        err = pd_cluster_set_err(c, PD_ERR_NOT_BOOTSTRAPPED, "cluster not bootstrapped");
        goto cleanup;
    }
    if (!store_valid(store)) {
        err = pd_cluster_set_err(c, PD_ERR_INVALID, "store needs an id and a printable address");
        goto cleanup;
    }
    for (size_t i = 0; i < c->store_count; i++) {
        const struct pd_store_entry *e = &c->stores[i];
        if (e->store.id != store->id && e->store.state != PD_STORE_TOMBSTONE &&
            strcmp(e->store.address, store->address) == 0) {
            err = pd_cluster_set_err(c, PD_ERR_EXISTS, "store %llu already has address %s",
                                     (unsigned long long)e->store.id, store->address);
            goto cleanup;
        }
    }
    struct pd_store_entry *e = pd_cluster_find_store(c, store->id);
    if (e && e->store.state == PD_STORE_TOMBSTONE) {
        err = pd_cluster_set_err(c, PD_ERR_TOMBSTONE, "store %llu is tombstone",
                                 (unsigned long long)store->id);
        goto cleanup;
    }
    struct pd_store s = *store;
    /* A store (re)registering keeps the state PD decided (e.g. Offline); a new one is Up. */
    s.state = e ? e->store.state : PD_STORE_UP;
    if ((err = persist_store(c, &s)) != PD_OK)
        goto cleanup;
    if (e)
        e->store = s;
    else
        err = append_store(c, &s);
cleanup:
    pthread_mutex_unlock(&c->mu);
    return err;
}

int pd_cluster_store_infos(struct pd_cluster *c, struct pd_store_info **out, size_t *count)
{
    struct pd_store_info *infos = calloc(c->store_count ? c->store_count : 1, sizeof *infos);
    if (infos == NULL)
        return PD_ERR_NOMEM;
    uint64_t now = pd_cluster_now_ms(c);
    for (size_t i = 0; i < c->store_count; i++) {
        const struct pd_store_entry *e = &c->stores[i];
        struct pd_store_info *in = &infos[i];
        in->store = e->store;
        in->stats = e->stats;
        in->last_heartbeat_ms = e->last_heartbeat_ms;
        uint64_t seen = e->last_heartbeat_ms > e->since_ms ? e->last_heartbeat_ms : e->since_ms;
        in->disconnected =
            e->last_heartbeat_ms == 0 || now > e->last_heartbeat_ms + PD_STORE_DISCONNECT_MS;
        in->down = now > seen + c->cfg.max_store_down_time_ms;
    }
    for (size_t k = 0; k < c->tree.count; k++) {
        const struct pd_region *r = c->tree.by_key[k];
        for (size_t p = 0; p < r->peer_count; p++) {
            for (size_t i = 0; i < c->store_count; i++) {
                struct pd_store_info *in = &infos[i];
                if (in->store.id != r->peers[p].store_id)
                    continue;
                in->region_count++;
                in->region_size_bytes += r->approximate_size_bytes;
                in->region_score_bytes += pd_region_score_bytes(r);
                if (r->leader.id == r->peers[p].id) {
                    in->leader_count++;
                    in->leader_size_bytes += r->approximate_size_bytes;
                }
                if (pd_region_peer_is_pending(r, r->peers[p].id))
                    in->pending_peer_count++;
                break;
            }
        }
    }
    *out = infos;
    *count = c->store_count;
    return PD_OK;
}

bool pd_cluster_store_schedulable(const struct pd_store_info *s)
{
    return s->store.state == PD_STORE_UP && !s->disconnected && !s->down;
}

int pd_cluster_get_store(struct pd_cluster *c, uint64_t store_id, struct pd_store_info *out)
{
    struct pd_store_info *infos = NULL;
    size_t n = 0;
    pthread_mutex_lock(&c->mu);
    int err = pd_cluster_store_infos(c, &infos, &n);
    if (err == PD_OK) {
        err = pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "store %llu not found",
                                 (unsigned long long)store_id);
        for (size_t i = 0; i < n; i++)
            if (infos[i].store.id == store_id) {
                *out = infos[i];
                err = PD_OK;
            }
    }
    pthread_mutex_unlock(&c->mu);
    free(infos);
    return err;
}

int pd_cluster_get_all_stores(struct pd_cluster *c, struct pd_store_info **out, size_t *count)
{
    pthread_mutex_lock(&c->mu);
    int err = pd_cluster_store_infos(c, out, count);
    pthread_mutex_unlock(&c->mu);
    return err;
}

/* store_has_regions: whether any region keeps a peer on the store. c->mu held. */
bool pd_cluster_store_has_regions(struct pd_cluster *c, uint64_t store_id)
{
    for (size_t k = 0; k < c->tree.count; k++)
        if (pd_region_store_peer(c->tree.by_key[k], store_id))
            return true;
    return false;
}

int pd_cluster_set_store_state_locked(struct pd_cluster *c, uint64_t store_id,
                                      enum pd_store_state state, bool force)
{
    struct pd_store_entry *e = pd_cluster_find_store(c, store_id);
    if (e == NULL)
        return pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "store %llu not found",
                                  (unsigned long long)store_id);
    if (state > PD_STORE_TOMBSTONE)
        return pd_cluster_set_err(c, PD_ERR_INVALID, "unknown store state");
    if (e->store.state == state)
        return PD_OK;
    if (e->store.state == PD_STORE_TOMBSTONE)
        return pd_cluster_set_err(c, PD_ERR_TOMBSTONE, "store %llu is tombstone",
                                  (unsigned long long)store_id);
    if (state == PD_STORE_TOMBSTONE && !force && pd_cluster_store_has_regions(c, store_id))
        return pd_cluster_set_err(c, PD_ERR_STATE, "store %llu still has regions",
                                  (unsigned long long)store_id);
    struct pd_store s = e->store;
    s.state = state;
    int err = persist_store(c, &s);
    if (err == PD_OK)
        e->store = s;
    return err;
}

int pd_cluster_set_store_state(struct pd_cluster *c, uint64_t store_id, enum pd_store_state state,
                               bool force)
{
    pthread_mutex_lock(&c->mu);
    int err = pd_cluster_set_store_state_locked(c, store_id, state, force);
    pthread_mutex_unlock(&c->mu);
    return err;
}

int pd_cluster_store_heartbeat(struct pd_cluster *c, const struct pd_store_stats *stats)
{
    int err = PD_OK;
    pthread_mutex_lock(&c->mu);
    struct pd_store_entry *e = pd_cluster_find_store(c, stats->store_id);
    if (e == NULL) {
        err = pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "store %llu not found",
                                 (unsigned long long)stats->store_id);
    } else if (e->store.state == PD_STORE_TOMBSTONE) {
        err = pd_cluster_set_err(c, PD_ERR_TOMBSTONE, "store %llu is tombstone",
                                 (unsigned long long)stats->store_id);
    } else {
        e->stats = *stats;
        e->last_heartbeat_ms = pd_cluster_now_ms(c);
        c->metrics.store_heartbeats++;
    }
    pthread_mutex_unlock(&c->mu);
    return err;
}

int pd_cluster_get_config(struct pd_cluster *c, struct pd_config *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->cfg;
    pthread_mutex_unlock(&c->mu);
    return PD_OK;
}

int pd_cluster_put_config(struct pd_cluster *c, const struct pd_config *cfg)
{
    char *text = NULL;
    pthread_mutex_lock(&c->mu);
    int err = pd_config_validate(cfg, c->errmsg, sizeof c->errmsg);
    if (err != PD_OK)
        goto cleanup;
    text = pd_config_to_json(cfg);
    if (text == NULL) {
        err = PD_ERR_NOMEM;
        goto cleanup;
    }
    err = pd_meta_store_put(c->meta, PD_META_KEY_CONFIG, text, strlen(text), true, c->errmsg,
                            sizeof c->errmsg);
    if (err == PD_OK)
        c->cfg = *cfg;
cleanup:
    pthread_mutex_unlock(&c->mu);
    free(text);
    return err;
}

int pd_cluster_get_gc_safe_point(struct pd_cluster *c, uint64_t *safe_point)
{
    pthread_mutex_lock(&c->mu);
    *safe_point = c->gc_safe_point;
    pthread_mutex_unlock(&c->mu);
    return PD_OK;
}

int pd_cluster_update_gc_safe_point(struct pd_cluster *c, uint64_t safe_point, uint64_t *new_point)
{
    int err = PD_OK;
    pthread_mutex_lock(&c->mu);
    if (safe_point > c->gc_safe_point) {
        err = put_u64(c, PD_META_KEY_GC_SAFE_POINT, safe_point);
        if (err == PD_OK)
            c->gc_safe_point = safe_point;
    }
    *new_point = c->gc_safe_point;
    pthread_mutex_unlock(&c->mu);
    return err;
}

void pd_cluster_metrics(struct pd_cluster *c, struct pd_metrics *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->metrics;
    pthread_mutex_unlock(&c->mu);
}

struct metrics *pd_cluster_registry(struct pd_cluster *c)
{
    return c->registry;
}

/* http_api.c — the HTTP/JSON admin API (PD-compatible paths) over libmicrohttpd and jansson. */
#include "pd/pd_internal.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "metrics/metrics.h"
#include "proto/log.h"

/*
 * Paths live under /pd/api/v1 (plus /metrics at the root). Region keys in
 * JSON are uppercase hex of the raw bytes ("" for the unbounded end), as
 * pd-ctl prints them with --format=hex; /region/key/{key} takes the raw key
 * (URL-escaped), or hex with ?format=hex. Sizes in "approximate_size" and
 * "region_size" are MiB as in PD; the *_bytes fields carry exact bytes.
 * Errors are {"error": "..."}: 400 bad input, 401 missing or wrong admin
 * token on a mutating call, 404 unknown path or object, 405 wrong method,
 * 409 conflicting state (operator or scheduler exists, tombstone store),
 * 500 storage failures.
 */

#define HTTP_MAX_BODY_BYTES (64 * 1024)
#define HTTP_PREFIX "/pd/api/v1"

struct pd_http {
    struct MHD_Daemon *daemon;
    struct pd_cluster *c; /* borrowed */
    char *token;          /* NULL = no admin token required */
    char grpc_addr[PD_MAX_ADDR_BYTES];
    char http_addr[PD_MAX_ADDR_BYTES];
    uint16_t port;
};

/* Per-request state: the body as it arrives. */
struct http_req {
    char *body;
    size_t len;
    bool too_big;
};

struct reply {
    unsigned status;
    char *body; /* malloc'ed */
    const char *ctype;
    const char *allow; /* Allow header for 405 */
};

enum { M_GET = 1, M_POST = 2, M_DELETE = 4 };

struct call {
    struct pd_http *h;
    struct MHD_Connection *conn;
    int method;
    const char *args[4]; /* path segments matched by '*' and '**' (borrowed from the URL copy) */
    const struct http_req *rq;
    struct reply *out;
};

/* ---- replies ---- */

static void reply_json(struct call *k, unsigned status, json_t *j)
{
    k->out->status = status;
    k->out->ctype = "application/json";
    k->out->body = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (k->out->body == NULL) {
        k->out->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        k->out->body = strdup("{\"error\": \"out of memory\"}");
    }
    json_decref(j);
}

static void reply_error(struct call *k, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_error(struct call *k, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *text = json_string(msg);
    if (text == NULL) {
        /* Not UTF-8 (a request's bytes quoted, or cut inside a character by a precision): JSON
         * cannot carry it, and a NULL here would answer 500 "out of memory" to bad input. */
        for (char *c = msg; *c; c++)
            if ((unsigned char)*c >= 0x80)
                *c = '?';
        text = json_string(msg);
    }
    reply_json(k, status, text ? json_pack("{s:o}", "error", text) : NULL);
}

/* reply_pd_error maps a pd error code to a status, with the cluster's detail. */
static void reply_pd_error(struct call *k, int err)
{
    char detail[256];
    pd_cluster_errmsg(k->h->c, detail, sizeof detail);
    unsigned status;
    switch (err) {
    case PD_ERR_INVALID:
        status = MHD_HTTP_BAD_REQUEST;
        break;
    case PD_ERR_NOT_FOUND:
        status = MHD_HTTP_NOT_FOUND;
        break;
    case PD_ERR_EXISTS:
    case PD_ERR_STATE:
    case PD_ERR_TOMBSTONE:
    case PD_ERR_STALE:
    case PD_ERR_ALREADY_BOOTSTRAPPED:
    case PD_ERR_NOT_BOOTSTRAPPED:
        status = MHD_HTTP_CONFLICT;
        break;
    default:
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    reply_error(k, status, "%s: %s", pd_strerror(err), detail);
}

static void reply_ok(struct call *k)
{
    reply_json(k, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
}

/* ---- parsing helpers ---- */

/* parse_u64: a decimal id with no sign, spaces or overflow; 0 on success. */
static int parse_u64(const char *s, uint64_t *v)
{
    uint64_t n = 0;
    if (s == NULL || *s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || n > (UINT64_MAX - 9) / 10)
            return -1;
        n = n * 10 + (uint64_t)(*s - '0');
    }
    *v = n;
    return 0;
}

/* body_object parses the request body as a JSON object (400 on failure, NULL returned). */
static json_t *body_object(struct call *k)
{
    json_error_t jerr;
    json_t *j = json_loadb(k->rq->body ? k->rq->body : "", k->rq->len, 0, &jerr);
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        reply_error(k, MHD_HTTP_BAD_REQUEST, "body must be a JSON object");
        return NULL;
    }
    return j;
}

/* json_u64: an object member holding a positive integer id. */
static int json_u64(json_t *o, const char *name, uint64_t *v)
{
    json_t *m = json_object_get(o, name);
    if (!json_is_integer(m) || json_integer_value(m) <= 0)
        return -1;
    *v = (uint64_t)json_integer_value(m);
    return 0;
}

static char *hex_dup(const uint8_t *p, size_t len)
{
    char *s = malloc(2 * len + 1);
    if (s)
        pd_hex_encode(p, len, s);
    return s;
}

static void format_time(uint64_t ms, char *buf, size_t len)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static json_int_t mib(uint64_t bytes)
{
    /* PD counts a non-empty region as at least 1 MiB. */
    uint64_t m = bytes >> 20;
    return (json_int_t)(m == 0 && bytes > 0 ? 1 : m);
}

/* ---- JSON forms ---- */

static json_t *peer_json(const struct pd_peer *p)
{
    return json_pack("{s:I,s:I}", "id", (json_int_t)p->id, "store_id", (json_int_t)p->store_id);
}

static json_t *region_json(const struct pd_region *r)
{
    char *s = hex_dup(r->start_key, r->start_key_len), *e = hex_dup(r->end_key, r->end_key_len);
    json_t *peers = json_array(), *pending = json_array();
    for (size_t i = 0; peers && i < r->peer_count; i++)
        json_array_append_new(peers, peer_json(&r->peers[i]));
    for (size_t i = 0; pending && i < r->pending_peer_count; i++)
        json_array_append_new(pending, peer_json(&r->pending_peers[i]));
    json_t *j = NULL;
    if (s && e && peers && pending)
        j = json_pack("{s:I,s:s,s:s,s:{s:I,s:I},s:O,s:o,s:O,s:I,s:I}", "id", (json_int_t)r->id,
                      "start_key", s, "end_key", e, "epoch", "conf_ver",
                      (json_int_t)r->epoch.conf_ver, "version", (json_int_t)r->epoch.version,
                      "peers", peers, "leader", peer_json(&r->leader), "pending_peers", pending,
                      "approximate_size", mib(r->approximate_size_bytes), "approximate_size_bytes",
                      (json_int_t)r->approximate_size_bytes);
    json_decref(peers);
    json_decref(pending);
    free(s);
    free(e);
    return j;
}

static const char *store_state_name(const struct pd_store_info *s)
{
    if (s->store.state == PD_STORE_UP && s->down)
        return "Down";
    if (s->store.state == PD_STORE_UP && s->disconnected)
        return "Disconnected";
    return pd_store_state_name(s->store.state);
}

static json_t *store_json(const struct pd_store_info *s)
{
    char hb[80] = "";
    if (s->last_heartbeat_ms)
        format_time(s->last_heartbeat_ms, hb, sizeof hb);
    return json_pack(
        "{s:{s:I,s:s,s:i,s:s},s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:i,s:b,s:s,s:I}}",
        "store", "id", (json_int_t)s->store.id, "address", s->store.address, "state",
        (int)s->store.state, "state_name", store_state_name(s), "status", "capacity",
        (json_int_t)s->stats.capacity_bytes, "available", (json_int_t)s->stats.available_bytes,
        "region_count", (json_int_t)s->region_count, "leader_count", (json_int_t)s->leader_count,
        "region_size", mib(s->region_size_bytes), "region_size_bytes",
        (json_int_t)s->region_size_bytes, "leader_size", mib(s->leader_size_bytes),
        "pending_peer_count", (json_int_t)s->pending_peer_count, "used_size",
        (json_int_t)s->stats.used_size_bytes, "sending_snap_count",
        (int)s->stats.sending_snap_count, "receiving_snap_count",
        (int)s->stats.receiving_snap_count, "is_busy", s->stats.is_busy, "last_heartbeat_ts", hb,
        "last_heartbeat_ms", (json_int_t)s->last_heartbeat_ms);
}

/* split_keys_json: the hex keys of a running split operator, or NULL when it has ended. */
static json_t *split_keys_json(struct pd_cluster *c, uint64_t region_id)
{
    struct pd_key *keys;
    size_t n;
    if (pd_cluster_get_split_keys(c, region_id, &keys, &n) != PD_OK)
        return NULL;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        char *h = hex_dup(keys[i].data, keys[i].len);
        json_array_append_new(arr, h ? json_string(h) : json_null());
        free(h);
    }
    pd_keys_free(keys, n);
    return arr;
}

static json_t *operator_json(struct pd_cluster *c, const struct pd_operator *op)
{
    json_t *steps = json_array();
    for (size_t i = 0; steps && i < op->step_count; i++) {
        const struct pd_step *s = &op->steps[i];
        json_t *j = json_pack("{s:s,s:I,s:I}", "type", pd_step_kind_name(s->kind), "store_id",
                              (json_int_t)s->store_id, "peer_id", (json_int_t)s->peer_id);
        if (j && s->kind == PD_STEP_SPLIT) {
            json_t *keys = split_keys_json(c, op->region_id);
            json_object_set_new(j, "key_count", json_integer((json_int_t)s->split_key_count));
            if (keys)
                json_object_set_new(j, "keys", keys);
        }
        json_array_append_new(steps, j);
    }
    if (steps == NULL)
        return NULL;
    char created[80];
    format_time(op->create_ms, created, sizeof created);
    return json_pack("{s:I,s:s,s:s,s:o,s:I,s:s}", "region_id", (json_int_t)op->region_id, "desc",
                     op->name, "kind", pd_operator_kind_name(op->kind), "steps", steps,
                     "current_step", (json_int_t)op->current_step, "create_time", created);
}

/* ---- handlers ---- */

static void members_list(struct call *k, json_t **member)
{
    char url[PD_MAX_ADDR_BYTES + 16];
    snprintf(url, sizeof url, "http://%s", k->h->grpc_addr);
    char http[PD_MAX_ADDR_BYTES + 16];
    snprintf(http, sizeof http, "http://%s", k->h->http_addr);
    *member = json_pack("{s:s,s:I,s:[s],s:[s]}", "name", "tinyscheduler", "member_id",
                        (json_int_t)1, "client_urls", url, "peer_urls", http);
}

static void h_health(struct call *k)
{
    json_t *m;
    members_list(k, &m);
    if (m)
        json_object_set_new(m, "health", json_true());
    reply_json(k, MHD_HTTP_OK, m ? json_pack("[o]", m) : NULL);
}

static void h_members(struct call *k)
{
    json_t *m;
    members_list(k, &m);
    reply_json(k, MHD_HTTP_OK,
               m ? json_pack("{s:{s:I},s:[O],s:O}", "header", "cluster_id",
                             (json_int_t)pd_cluster_id(k->h->c), "members", m, "leader", m)
                 : NULL);
    json_decref(m);
}

static void h_cluster(struct call *k)
{
    struct pd_config cfg;
    pd_cluster_get_config(k->h->c, &cfg);
    reply_json(k, MHD_HTTP_OK,
               json_pack("{s:I,s:I,s:b}", "id", (json_int_t)pd_cluster_id(k->h->c),
                         "max_peer_count", (json_int_t)cfg.max_replicas, "is_bootstrapped",
                         pd_cluster_is_bootstrapped(k->h->c)));
}

static void send_config(struct call *k)
{
    struct pd_config cfg;
    pd_cluster_get_config(k->h->c, &cfg);
    char *text = pd_config_to_json(&cfg);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    reply_json(k, MHD_HTTP_OK, j);
}

static void h_config(struct call *k)
{
    if (k->method == M_GET) {
        send_config(k);
        return;
    }
    struct pd_config cfg;
    char err[256];
    pd_cluster_get_config(k->h->c, &cfg);
    if (pd_config_apply_json(&cfg, k->rq->body ? k->rq->body : "", k->rq->len, err, sizeof err) !=
        PD_OK) {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "%s", err);
        return;
    }
    int rc = pd_cluster_put_config(k->h->c, &cfg);
    if (rc != PD_OK) {
        reply_pd_error(k, rc);
        return;
    }
    send_config(k);
}

static void h_stores(struct call *k)
{
    struct pd_store_info *infos;
    size_t n;
    int rc = pd_cluster_get_all_stores(k->h->c, &infos, &n);
    if (rc != PD_OK) {
        reply_pd_error(k, rc);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, store_json(&infos[i]));
    free(infos);
    reply_json(k, MHD_HTTP_OK,
               arr ? json_pack("{s:I,s:o}", "count", (json_int_t)n, "stores", arr) : NULL);
}

static int store_id_arg(struct call *k, uint64_t *id)
{
    if (parse_u64(k->args[0], id) != 0 || *id == 0) {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "store id must be a positive integer");
        return -1;
    }
    return 0;
}

static void h_store(struct call *k)
{
    uint64_t id;
    if (store_id_arg(k, &id) != 0)
        return;
    int rc;
    if (k->method == M_DELETE) {
        rc = pd_cluster_set_store_state(k->h->c, id, PD_STORE_OFFLINE, false);
        if (rc == PD_OK)
            reply_ok(k);
        else
            reply_pd_error(k, rc);
        return;
    }
    struct pd_store_info info;
    rc = pd_cluster_get_store(k->h->c, id, &info);
    if (rc != PD_OK)
        reply_pd_error(k, rc);
    else
        reply_json(k, MHD_HTTP_OK, store_json(&info));
}

static void h_store_state(struct call *k)
{
    uint64_t id;
    if (store_id_arg(k, &id) != 0)
        return;
    const char *s = MHD_lookup_connection_value(k->conn, MHD_GET_ARGUMENT_KIND, "state");
    enum pd_store_state st;
    if (s && strcasecmp(s, "Up") == 0)
        st = PD_STORE_UP;
    else if (s && strcasecmp(s, "Offline") == 0)
        st = PD_STORE_OFFLINE;
    else if (s && strcasecmp(s, "Tombstone") == 0)
        st = PD_STORE_TOMBSTONE;
    else {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "state must be Up, Offline or Tombstone");
        return;
    }
    int rc = pd_cluster_set_store_state(k->h->c, id, st, false);
    if (rc == PD_OK)
        reply_ok(k);
    else
        reply_pd_error(k, rc);
}

static void reply_regions(struct call *k, struct pd_region *rs, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, region_json(&rs[i]));
    pd_regions_free(rs, n);
    reply_json(k, MHD_HTTP_OK,
               arr ? json_pack("{s:I,s:o}", "count", (json_int_t)n, "regions", arr) : NULL);
}

#define HTTP_REGION_LIMIT_DEFAULT 16 /* PD's defaultRegionLimit for /regions/key */
#define HTTP_REGION_LIMIT_MAX 10240  /* PD's maxRegionLimit: larger limits are cut to it */

/* query_limit reads ?limit= (absent: dflt); 400 and -1 when it is not a positive integer. */
static int query_limit(struct call *k, size_t dflt, size_t *limit)
{
    const char *v = MHD_lookup_connection_value(k->conn, MHD_GET_ARGUMENT_KIND, "limit");
    uint64_t n;
    if (v == NULL) {
        *limit = dflt;
        return 0;
    }
    if (parse_u64(v, &n) != 0 || n == 0) {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "limit must be a positive integer, not \"%.32s\"", v);
        return -1;
    }
    *limit = n > HTTP_REGION_LIMIT_MAX ? HTTP_REGION_LIMIT_MAX : (size_t)n;
    return 0;
}

/* query_key reads the key argument name into *key (malloc'ed, *len bytes; NULL and 0 when absent
 * or empty): hex when hex is set, else the raw (URL-decoded) text. 400 and -1 on bad hex. */
static int query_key(struct call *k, const char *name, bool hex, uint8_t **key, size_t *len)
{
    const char *v = MHD_lookup_connection_value(k->conn, MHD_GET_ARGUMENT_KIND, name);
    size_t n = v ? strlen(v) : 0;
    *key = NULL;
    *len = 0;
    if (n == 0)
        return 0;
    if (!hex) {
        if (n > PD_MAX_KEY_BYTES || (*key = malloc(n)) == NULL) {
            reply_error(k, MHD_HTTP_BAD_REQUEST, "%s is too long", name);
            return -1;
        }
        memcpy(*key, v, n);
        *len = n;
        return 0;
    }
    if (n > 2 * PD_MAX_KEY_BYTES || (*key = malloc(n / 2 + 1)) == NULL ||
        pd_hex_decode(v, n, *key) != 0) {
        free(*key);
        *key = NULL;
        reply_error(k, MHD_HTTP_BAD_REQUEST, "%s is not valid hex", name);
        return -1;
    }
    *len = n / 2;
    return 0;
}

/* query_hex: ?format=hex (true), raw or absent (false); 400 and -1 otherwise. */
static int query_hex(struct call *k, bool *hex)
{
    const char *fmt = MHD_lookup_connection_value(k->conn, MHD_GET_ARGUMENT_KIND, "format");
    *hex = fmt && strcmp(fmt, "hex") == 0;
    if (fmt && !*hex && strcmp(fmt, "raw") != 0) {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "format must be raw or hex");
        return -1;
    }
    return 0;
}

/* GET /regions[?limit=N&key=HEX]: every region in key order, or a page of them: from the region
 * holding key (or the first after it), at most limit. The next page starts at the last region's
 * end_key. */
static void h_regions(struct call *k)
{
    struct pd_region *rs;
    size_t n, limit;
    uint8_t *key = NULL;
    size_t key_len;
    if (query_limit(k, 0, &limit) != 0 || query_key(k, "key", true, &key, &key_len) != 0)
        return;
    int rc = pd_cluster_scan_regions(k->h->c, key ? key : (const uint8_t *)"", key_len, "", 0,
                                     limit, &rs, &n);
    free(key);
    if (rc != PD_OK)
        reply_pd_error(k, rc);
    else
        reply_regions(k, rs, n);
}

/* GET /regions/key?key=K[&end_key=E][&limit=N][&format=hex] (PD's scan): regions from the one
 * holding K, stopping before E, at most N (default 16, at most 10240). Keys are raw unless
 * format=hex. */
static void h_regions_key(struct call *k)
{
    bool hex;
    size_t limit, start_len, end_len;
    uint8_t *start = NULL, *end = NULL;
    if (query_hex(k, &hex) != 0 || query_limit(k, HTTP_REGION_LIMIT_DEFAULT, &limit) != 0 ||
        query_key(k, "key", hex, &start, &start_len) != 0)
        return;
    if (query_key(k, "end_key", hex, &end, &end_len) != 0) {
        free(start);
        return;
    }
    const uint8_t *s0 = start ? start : (const uint8_t *)"", *e0 = end ? end : (const uint8_t *)"";
    if (end_len && pd_key_cmp(s0, start_len, e0, end_len) >= 0) {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "end_key must come after key");
    } else {
        struct pd_region *rs;
        size_t n;
        int rc = pd_cluster_scan_regions(k->h->c, s0, start_len, e0, end_len, limit, &rs, &n);
        if (rc != PD_OK)
            reply_pd_error(k, rc);
        else
            reply_regions(k, rs, n);
    }
    free(start);
    free(end);
}

static void h_regions_count(struct call *k)
{
    reply_json(k, MHD_HTTP_OK,
               json_pack("{s:I}", "count", (json_int_t)pd_cluster_region_count(k->h->c)));
}

/* GET /regions/store/{id}: the regions with a peer on the store, in key order. */
static void h_regions_store(struct call *k)
{
    uint64_t id;
    if (parse_u64(k->args[0], &id) != 0 || id == 0) {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "store id must be a positive integer");
        return;
    }
    struct pd_region *rs;
    size_t n;
    int rc = pd_cluster_store_regions(k->h->c, id, &rs, &n);
    if (rc != PD_OK)
        reply_pd_error(k, rc);
    else
        reply_regions(k, rs, n);
}

static void reply_region(struct call *k, int rc, struct pd_region *r)
{
    if (rc != PD_OK)
        reply_pd_error(k, rc);
    else
        reply_json(k, MHD_HTTP_OK, region_json(r));
    pd_region_clear(r);
}

static void h_region_id(struct call *k)
{
    uint64_t id;
    if (parse_u64(k->args[0], &id) != 0) {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "region id must be an integer");
        return;
    }
    struct pd_region r;
    pd_region_init(&r);
    reply_region(k, pd_cluster_get_region_by_id(k->h->c, id, &r), &r);
}

static void h_region_key(struct call *k)
{
    const char *key = k->args[0];
    const char *fmt = MHD_lookup_connection_value(k->conn, MHD_GET_ARGUMENT_KIND, "format");
    size_t len = strlen(key);
    uint8_t *raw = NULL;
    if (fmt && strcmp(fmt, "hex") == 0) {
        if (len > 2 * PD_MAX_KEY_BYTES || (raw = malloc(len / 2 + 1)) == NULL ||
            pd_hex_decode(key, len, raw) != 0) {
            free(raw);
            reply_error(k, MHD_HTTP_BAD_REQUEST, "key is not valid hex");
            return;
        }
        len /= 2;
    } else if (fmt && strcmp(fmt, "raw") != 0) {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "format must be raw or hex");
        return;
    }
    struct pd_region r;
    pd_region_init(&r);
    reply_region(k, pd_cluster_get_region(k->h->c, raw ? raw : (const uint8_t *)key, len, &r), &r);
    free(raw);
}

/* POST /regions/split {"split_keys": ["<hex>", ...]} (PD's shape): every key is checked before
 * anything changes; the splits happen asynchronously, through the regions' leaders. */
static void h_regions_split(struct call *k)
{
    struct pd_key keys[PD_MAX_SPLIT_KEYS];
    size_t n = 0;
    json_t *o = body_object(k);
    if (o == NULL)
        return;
    json_t *arr = json_object_get(o, "split_keys");
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "need a non-empty \"split_keys\" array of hex keys");
        goto cleanup;
    }
    if (json_array_size(arr) > PD_MAX_SPLIT_KEYS) {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "at most %d split keys per request, not %zu",
                    PD_MAX_SPLIT_KEYS, json_array_size(arr));
        goto cleanup;
    }
    for (; n < json_array_size(arr); n++) {
        const char *hex = json_string_value(json_array_get(arr, n));
        size_t len = hex ? json_string_length(json_array_get(arr, n)) : 0;
        if (hex == NULL || len % 2 != 0 || len > 2 * PD_MAX_KEY_BYTES) {
            reply_error(k, MHD_HTTP_BAD_REQUEST,
                        "split key %zu must be a string of hex digit pairs (at most %d bytes)",
                        n + 1, PD_MAX_KEY_BYTES);
            goto cleanup;
        }
        if (len == 0) {
            reply_error(k, MHD_HTTP_BAD_REQUEST, "split key %zu is empty", n + 1);
            goto cleanup;
        }
        keys[n].len = len / 2;
        keys[n].data = malloc(keys[n].len);
        if (keys[n].data == NULL) {
            reply_error(k, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
            goto cleanup;
        }
        if (pd_hex_decode(hex, len, keys[n].data) != 0) {
            free(keys[n].data);
            reply_error(k, MHD_HTTP_BAD_REQUEST, "split key %zu is not hex", n + 1);
            goto cleanup;
        }
    }
    uint64_t ids[PD_MAX_SPLIT_KEYS];
    size_t nids = 0;
    int rc = pd_cluster_split_regions(k->h->c, keys, n, ids, &nids);
    if (rc != PD_OK) {
        reply_pd_error(k, rc);
        goto cleanup;
    }
    json_t *regions = json_array();
    for (size_t i = 0; regions && i < nids; i++)
        json_array_append_new(regions, json_integer((json_int_t)ids[i]));
    /* PD answers once the splits are done; here they are queued, so "regions-id" names the
     * regions being split (their left halves keep these ids). */
    reply_json(k, MHD_HTTP_OK,
               regions ? json_pack("{s:i,s:o}", "processed-percentage", 100, "regions-id", regions)
                       : NULL);
cleanup:
    for (size_t i = 0; i < n; i++)
        free(keys[i].data);
    json_decref(o);
}

static void h_operators(struct call *k)
{
    if (k->method == M_GET) {
        struct pd_operator *ops;
        size_t n;
        int rc = pd_cluster_get_operators(k->h->c, &ops, &n);
        if (rc != PD_OK) {
            reply_pd_error(k, rc);
            return;
        }
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
            json_array_append_new(arr, operator_json(k->h->c, &ops[i]));
        free(ops);
        reply_json(k, MHD_HTTP_OK, arr);
        return;
    }
    json_t *o = body_object(k);
    if (o == NULL)
        return;
    const char *name = json_string_value(json_object_get(o, "name"));
    uint64_t region, store;
    int rc;
    if (name == NULL || json_u64(o, "region_id", &region) != 0) {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "need \"name\" and a positive \"region_id\"");
    } else if (strcmp(name, "transfer-leader") == 0 || strcmp(name, "add-peer") == 0 ||
               strcmp(name, "remove-peer") == 0) {
        const char *field = strcmp(name, "remove-peer") == 0 ? "store_id" : "to_store_id";
        if (json_u64(o, field, &store) != 0 && json_u64(o, "store_id", &store) != 0) {
            reply_error(k, MHD_HTTP_BAD_REQUEST, "need a positive \"%s\"", field);
        } else {
            if (strcmp(name, "transfer-leader") == 0)
                rc = pd_cluster_add_transfer_leader(k->h->c, region, store);
            else if (strcmp(name, "add-peer") == 0)
                rc = pd_cluster_add_add_peer(k->h->c, region, store);
            else
                rc = pd_cluster_add_remove_peer(k->h->c, region, store);
            if (rc == PD_OK)
                reply_ok(k);
            else
                reply_pd_error(k, rc);
        }
    } else if (strcmp(name, "scatter-region") == 0) {
        rc = pd_cluster_scatter_region(k->h->c, region);
        if (rc == PD_OK)
            reply_ok(k);
        else
            reply_pd_error(k, rc);
    } else {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "unknown operator \"%.64s\"", name);
    }
    json_decref(o);
}

/* GET /operators/records[?limit=N]: operators that ended, newest first (default 50, at most
 * PD_OPERATOR_HISTORY), each with its status. */
static void h_operator_records(struct call *k)
{
    uint64_t limit = 50;
    const char *l = MHD_lookup_connection_value(k->conn, MHD_GET_ARGUMENT_KIND, "limit");
    if (l && (parse_u64(l, &limit) != 0 || limit == 0)) {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "limit must be a positive integer");
        return;
    }
    struct pd_operator_record *recs;
    size_t n;
    int rc = pd_cluster_get_operator_history(
        k->h->c, limit > PD_OPERATOR_HISTORY ? PD_OPERATOR_HISTORY : (size_t)limit, &recs, &n);
    if (rc != PD_OK) {
        reply_pd_error(k, rc);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *j = operator_json(k->h->c, &recs[i].op);
        if (j)
            json_object_set_new(j, "status", json_string(pd_operator_status_name(recs[i].status)));
        json_array_append_new(arr, j);
    }
    free(recs);
    reply_json(k, MHD_HTTP_OK, arr);
}

static void h_dashboard(struct call *k)
{
    k->out->status = MHD_HTTP_OK;
    k->out->ctype = "text/html; charset=utf-8";
    k->out->body = strdup(pd_dashboard_html());
    if (k->out->body == NULL)
        reply_error(k, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
}

static void h_operator(struct call *k)
{
    uint64_t id;
    if (parse_u64(k->args[0], &id) != 0) {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "region id must be an integer");
        return;
    }
    int rc;
    if (k->method == M_DELETE) {
        rc = pd_cluster_remove_operator(k->h->c, id);
        if (rc == PD_OK)
            reply_ok(k);
        else
            reply_pd_error(k, rc);
        return;
    }
    struct pd_operator op;
    enum pd_operator_status status;
    rc = pd_cluster_get_operator_status(k->h->c, id, &op, &status);
    if (rc != PD_OK) {
        reply_pd_error(k, rc);
        return;
    }
    json_t *j = operator_json(k->h->c, &op);
    if (j)
        json_object_set_new(j, "status", json_string(pd_operator_status_name(status)));
    reply_json(k, MHD_HTTP_OK, j);
}

static void h_schedulers(struct call *k)
{
    int rc;
    if (k->method == M_GET) {
        char **names;
        size_t n;
        rc = pd_cluster_list_schedulers(k->h->c, &names, &n);
        if (rc != PD_OK) {
            reply_pd_error(k, rc);
            return;
        }
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
            json_array_append_new(arr, json_string(names[i]));
        pd_names_free(names, n);
        reply_json(k, MHD_HTTP_OK, arr);
        return;
    }
    json_t *o = body_object(k);
    if (o == NULL)
        return;
    const char *name = json_string_value(json_object_get(o, "name"));
    if (name == NULL) {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "need \"name\"");
    } else if (strcmp(name, PD_SCHEDULER_BALANCE_LEADER) != 0 &&
               strcmp(name, PD_SCHEDULER_BALANCE_REGION) != 0) {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "unknown scheduler \"%.64s\"", name);
    } else if ((rc = pd_cluster_add_scheduler(k->h->c, name)) != PD_OK) {
        reply_pd_error(k, rc);
    } else {
        reply_ok(k);
    }
    json_decref(o);
}

static void h_scheduler(struct call *k)
{
    int rc = pd_cluster_remove_scheduler(k->h->c, k->args[0]);
    if (rc == PD_OK)
        reply_ok(k);
    else
        reply_pd_error(k, rc);
}

static void h_tso(struct call *k)
{
    uint64_t ts;
    int rc = pd_cluster_tso(k->h->c, 1, &ts);
    if (rc != PD_OK) {
        reply_pd_error(k, rc);
        return;
    }
    reply_json(k, MHD_HTTP_OK,
               json_pack("{s:I,s:I,s:I}", "ts", (json_int_t)ts, "physical",
                         (json_int_t)(ts >> PD_TSO_LOGICAL_BITS), "logical",
                         (json_int_t)(ts & PD_TSO_MAX_COUNT)));
}

static void h_gc_safe_point(struct call *k)
{
    uint64_t sp;
    pd_cluster_get_gc_safe_point(k->h->c, &sp);
    reply_json(k, MHD_HTTP_OK, json_pack("{s:I}", "safe_point", (json_int_t)sp));
}

/* metrics text grows a buffer with Prometheus exposition lines. */
struct text {
    char *p;
    size_t len, cap;
    bool oom;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_add(struct text *t, const char *fmt, ...)
{
    if (t->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if (t->p && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (p == NULL) {
            t->oom = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

static void counter(struct text *t, const char *name, const char *help, uint64_t v)
{
    text_add(t, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
             (unsigned long long)v);
}

static void h_metrics(struct call *k)
{
    struct pd_metrics m;
    struct text t = {0};
    struct pd_store_info *infos = NULL;
    size_t n = 0;
    pd_cluster_metrics(k->h->c, &m);
    counter(&t, "pd_region_heartbeats_total", "Region heartbeats received.", m.region_heartbeats);
    counter(&t, "pd_stale_region_heartbeats_total", "Region heartbeats refused as stale.",
            m.stale_region_heartbeats);
    counter(&t, "pd_store_heartbeats_total", "Store heartbeats received.", m.store_heartbeats);
    counter(&t, "pd_operators_created_total", "Operators created.", m.operators_created);
    counter(&t, "pd_operators_finished_total", "Operators finished.", m.operators_finished);
    counter(&t, "pd_operators_timed_out_total", "Operators dropped after their timeout.",
            m.operators_timed_out);
    counter(&t, "pd_operators_canceled_total", "Operators canceled.", m.operators_canceled);
    counter(&t, "pd_tso_requests_total", "Timestamp requests served.", m.tso_requests);
    counter(&t, "pd_ids_allocated_total", "IDs allocated.", m.ids_allocated);
    counter(&t, "pd_schedule_ticks_total", "Scheduling rounds run.", m.ticks);
    text_add(&t, "# HELP pd_regions Regions known.\n# TYPE pd_regions gauge\npd_regions %zu\n",
             pd_cluster_region_count(k->h->c));
    if (pd_cluster_get_all_stores(k->h->c, &infos, &n) == PD_OK) {
        text_add(&t, "# HELP pd_store_regions Regions with a peer on the store.\n"
                     "# TYPE pd_store_regions gauge\n");
        for (size_t i = 0; i < n; i++)
            text_add(&t, "pd_store_regions{store=\"%llu\",state=\"%s\"} %llu\n",
                     (unsigned long long)infos[i].store.id, store_state_name(&infos[i]),
                     (unsigned long long)infos[i].region_count);
        text_add(&t, "# HELP pd_store_leaders Regions led from the store.\n"
                     "# TYPE pd_store_leaders gauge\n");
        for (size_t i = 0; i < n; i++)
            text_add(&t, "pd_store_leaders{store=\"%llu\"} %llu\n",
                     (unsigned long long)infos[i].store.id,
                     (unsigned long long)infos[i].leader_count);
        free(infos);
    }
    /* Then the process's registry: the gRPC service's calls. */
    char *reg = NULL;
    if (metrics_render(pd_cluster_registry(k->h->c), &reg, NULL) != METRICS_OK)
        t.oom = true;
    else
        text_add(&t, "%s", reg);
    free(reg);
    if (t.oom) {
        free(t.p);
        reply_error(k, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    k->out->status = MHD_HTTP_OK;
    k->out->ctype = "text/plain; version=0.0.4";
    k->out->body = t.p ? t.p : strdup("");
}

/* ---- routing ---- */

struct route {
    const char *pattern; /* segments; "*" matches one, "**" the rest (at least one byte) */
    int methods;
    void (*fn)(struct call *k);
    const char *allow;
};

static const struct route routes[] = {
    {HTTP_PREFIX "/health", M_GET, h_health, "GET"},
    {HTTP_PREFIX "/members", M_GET, h_members, "GET"},
    {HTTP_PREFIX "/cluster", M_GET, h_cluster, "GET"},
    {HTTP_PREFIX "/config", M_GET | M_POST, h_config, "GET, POST"},
    {HTTP_PREFIX "/stores", M_GET, h_stores, "GET"},
    {HTTP_PREFIX "/store/*", M_GET | M_DELETE, h_store, "GET, DELETE"},
    {HTTP_PREFIX "/store/*/state", M_POST, h_store_state, "POST"},
    {HTTP_PREFIX "/regions", M_GET, h_regions, "GET"},
    {HTTP_PREFIX "/regions/split", M_POST, h_regions_split, "POST"},
    {HTTP_PREFIX "/regions/key", M_GET, h_regions_key, "GET"},
    {HTTP_PREFIX "/regions/count", M_GET, h_regions_count, "GET"},
    {HTTP_PREFIX "/regions/store/*", M_GET, h_regions_store, "GET"},
    {HTTP_PREFIX "/region/id/*", M_GET, h_region_id, "GET"},
    {HTTP_PREFIX "/region/key/**", M_GET, h_region_key, "GET"},
    {HTTP_PREFIX "/operators", M_GET | M_POST, h_operators, "GET, POST"},
    {HTTP_PREFIX "/operators/records", M_GET, h_operator_records, "GET"},
    {HTTP_PREFIX "/operators/*", M_GET | M_DELETE, h_operator, "GET, DELETE"},
    {HTTP_PREFIX "/schedulers", M_GET | M_POST, h_schedulers, "GET, POST"},
    {HTTP_PREFIX "/schedulers/*", M_DELETE, h_scheduler, "DELETE"},
    {HTTP_PREFIX "/tso", M_GET, h_tso, "GET"},
    {HTTP_PREFIX "/gc/safepoint", M_GET, h_gc_safe_point, "GET"},
    {HTTP_PREFIX "/metrics", M_GET, h_metrics, "GET"},
    {"/metrics", M_GET, h_metrics, "GET"},
    {"/dashboard", M_GET, h_dashboard, "GET"},
};

/* match fills args from path (a writable copy, cut at the matched segments) when it fits. */
static bool match(const char *pattern, char *path, const char **args)
{
    size_t na = 0;
    const char *p = pattern;
    char *u = path;
    for (;;) {
        if (*p == '\0')
            return *u == '\0';
        if (p[0] == '*' && p[1] == '*') {
            if (*u == '\0')
                return false;
            args[na] = u;
            return true;
        }
        if (*p == '*') {
            char *end = strchr(u, '/');
            if ((end ? (size_t)(end - u) : strlen(u)) == 0)
                return false;
            args[na++] = u;
            p++;
            if (*p == '\0')
                return end == NULL;
            if (end == NULL)
                return false;
            *end = '\0';
            u = end + 1;
            p++; /* past the '/' after the star */
            continue;
        }
        if (*p != *u)
            return false;
        p++;
        u++;
    }
}

static bool token_ok(struct pd_http *h, struct MHD_Connection *conn)
{
    if (h->token == NULL)
        return true;
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0)
        return false;
    const char *given = auth + 7;
    size_t a = strlen(given), b = strlen(h->token);
    unsigned char diff = (unsigned char)(a != b);
    for (size_t i = 0; i < a && i < b; i++)
        diff |= (unsigned char)(given[i] ^ h->token[i]);
    return diff == 0;
}

static void dispatch(struct call *k, const char *url, const char *method_name)
{
    if (strcmp(method_name, "GET") == 0 || strcmp(method_name, "HEAD") == 0)
        k->method = M_GET;
    else if (strcmp(method_name, "POST") == 0)
        k->method = M_POST;
    else if (strcmp(method_name, "DELETE") == 0)
        k->method = M_DELETE;
    else
        k->method = 0;
    size_t ulen = strlen(url);
    /* Tolerate one trailing slash, as PD does. */
    if (ulen > 1 && url[ulen - 1] == '/')
        ulen--;
    char *path = strndup(url, ulen);
    if (path == NULL) {
        reply_error(k, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    const struct route *found = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        memcpy(path, url, ulen);
        path[ulen] = '\0';
        memset(k->args, 0, sizeof k->args);
        if (!match(routes[i].pattern, path, k->args))
            continue;
        found = &routes[i];
        if (routes[i].methods & k->method)
            break;
    }
    if (found == NULL) {
        reply_error(k, MHD_HTTP_NOT_FOUND, "no such path");
    } else if (!(found->methods & k->method)) {
        reply_error(k, MHD_HTTP_METHOD_NOT_ALLOWED, "method %.16s not allowed", method_name);
        k->out->allow = found->allow;
    } else if (k->method != M_GET && !token_ok(k->h, k->conn)) {
        reply_error(k, MHD_HTTP_UNAUTHORIZED, "missing or wrong admin token");
    } else if (k->rq->too_big) {
        reply_error(k, MHD_HTTP_BAD_REQUEST, "body larger than %d bytes", HTTP_MAX_BODY_BYTES);
    } else {
        found->fn(k);
    }
    free(path);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct pd_http *h = cls;
    (void)version;
    struct http_req *rq = *con_cls;
    if (rq == NULL) {
        rq = calloc(1, sizeof *rq);
        if (rq == NULL)
            return MHD_NO;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->too_big || rq->len + n > HTTP_MAX_BODY_BYTES) {
            rq->too_big = true;
            return MHD_YES;
        }
        char *b = realloc(rq->body, rq->len + n + 1);
        if (b == NULL)
            return MHD_NO;
        memcpy(b + rq->len, upload_data, n);
        rq->body = b;
        rq->len += n;
        rq->body[rq->len] = '\0';
        return MHD_YES;
    }
    struct reply out = {0};
    struct call k = {.h = h, .conn = conn, .rq = rq, .out = &out};
    dispatch(&k, url, method);
    if (out.body == NULL)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(out.body), out.body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(out.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", out.ctype);
    if (out.allow)
        MHD_add_response_header(resp, "Allow", out.allow);
    enum MHD_Result ret = MHD_queue_response(conn, out.status, resp);
    MHD_destroy_response(resp);
    LOG(LOG_DEBUG, "http %s %s -> %u", method, url, out.status);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct http_req *rq = *con_cls;
    if (rq) {
        free(rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

/* split_host_port parses "host:port" or "[v6]:port". */
static int split_host_port(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        if ((size_t)(close - addr - 1) >= hlen)
            return -1;
        memcpy(host, addr + 1, (size_t)(close - addr - 1));
        host[close - addr - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL || (size_t)(colon - addr) >= hlen)
            return -1;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
    }
    if (strlen(colon + 1) == 0 || strlen(colon + 1) >= plen)
        return -1;
    strcpy(port, colon + 1);
    for (const char *p = port; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    return atoi(port) <= 65535 ? 0 : -1;
}

int pd_http_start(struct pd_cluster *c, const char *addr, const char *admin_token,
                  const char *grpc_addr, struct pd_http **out, char *errmsg, size_t errmsg_len)
{
    char host[PD_MAX_ADDR_BYTES], port[8];
    struct addrinfo hints = {0}, *ai = NULL;
    int err = PD_OK;
    *out = NULL;
    if (addr == NULL || split_host_port(addr, host, sizeof host, port, sizeof port) != 0) {
        snprintf(errmsg, errmsg_len, "bad HTTP address \"%s\" (want HOST:PORT)", addr ? addr : "");
        return PD_ERR_INVALID;
    }
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (gai != 0) {
        snprintf(errmsg, errmsg_len, "cannot resolve %s: %s", host, gai_strerror(gai));
        return PD_ERR_INVALID;
    }
    struct pd_http *h = calloc(1, sizeof *h);
    if (h == NULL) {
        err = PD_ERR_NOMEM;
        goto cleanup;
    }
    h->c = c;
    snprintf(h->grpc_addr, sizeof h->grpc_addr, "%s", grpc_addr ? grpc_addr : "127.0.0.1:2379");
    snprintf(h->http_addr, sizeof h->http_addr, "%s", addr);
    if (admin_token && admin_token[0] && (h->token = strdup(admin_token)) == NULL) {
        err = PD_ERR_NOMEM;
        goto cleanup;
    }
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
                                 ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_END);
    if (h->daemon == NULL) {
        snprintf(errmsg, errmsg_len, "cannot listen on %s", addr);
        err = PD_ERR_IO;
        goto cleanup;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : (uint16_t)atoi(port);
    LOG(LOG_INFO, "HTTP admin API listening on %s (port %u)%s", addr, (unsigned)h->port,
        h->token ? ", admin token required" : "");
    *out = h;
    h = NULL;
cleanup:
    if (ai)
        freeaddrinfo(ai);
    if (h) {
        free(h->token);
        free(h);
    }
    return err;
}

uint16_t pd_http_port(struct pd_http *h)
{
    return h->port;
}

void pd_http_stop(struct pd_http *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->daemon);
    free(h->token);
    free(h);
}

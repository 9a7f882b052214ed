/* ctl_admin.c — tinykv-ctl's admin subcommands over the scheduler's HTTP/JSON API (libcurl). */
#include "client/ctl_admin.h"

#include "client/ctl_check.h"

#include <ctype.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define API_PREFIX "/pd/api/v1"
#define TSO_LOGICAL_BITS                                                                           \
    18 /* ts = physical_ms << 18 | logical, as the scheduler hands them out                        \
        */

/* ---- aligned tables ---- */

#define TABLE_MAX_COLS 8

/* Rows of cells (copied strings), printed with each column padded to its widest cell. */
struct table {
    size_t ncols;
    size_t nrows, cap;
    char **cells; /* nrows * ncols, row-major */
    bool oom;
};

static void table_init(struct table *t, size_t ncols)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
}

/* table_row appends a row of t->ncols cells (NULL prints as "-"). */
static void table_row(struct table *t, ...)
{
    if (t->oom)
        return;
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **cells = realloc(t->cells, cap * t->ncols * sizeof *cells);
        if (!cells) {
            t->oom = true;
            return;
        }
        t->cells = cells;
        t->cap = cap;
    }
    va_list ap;
    va_start(ap, t);
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        const char *s = va_arg(ap, const char *);
        row[i] = strdup(s ? s : "-");
        if (!row[i])
            t->oom = true;
    }
    va_end(ap);
    t->nrows++;
}

static void table_print(const struct table *t)
{
    size_t width[TABLE_MAX_COLS] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            size_t n = s ? strlen(s) : 0;
            if (n > width[c])
                width[c] = n;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            if (c + 1 == t->ncols)
                printf("%s\n", s ? s : "");
            else
                printf("%-*s  ", (int)width[c], s ? s : "");
        }
    }
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

/* table_finish prints t (unless an allocation failed) and frees it; returns the exit status. */
static int table_finish(struct table *t)
{
    int rc = CTL_ADMIN_OK;
    if (t->oom) {
        fprintf(stderr, "tinykv-ctl: out of memory\n");
        rc = CTL_ADMIN_EXIT_API;
    } else {
        table_print(t);
    }
    table_free(t);
    return rc;
}

/* ---- formatting ---- */

static const char *u64s(char *buf, size_t len, uint64_t v)
{
    snprintf(buf, len, "%" PRIu64, v);
    return buf;
}

static const char *bytes_s(char *buf, size_t len, uint64_t v)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double d = (double)v;
    size_t u = 0;
    while (d >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        d /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%" PRIu64 " B", v);
    else
        snprintf(buf, len, "%.1f %s", d, units[u]);
    return buf;
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static uint64_t jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * key_s renders a key the API gave as hex: lowercase hex with --hex, else the
 * bytes with \xNN escapes for unprintable ones. empty names the unbounded
 * end. Returns a malloc'ed string (NULL on allocation failure).
 */
static char *key_s(const struct ctl_admin_options *o, const char *hex, const char *empty)
{
    size_t n = strlen(hex);
    if (n == 0)
        return strdup(empty);
    char *out = malloc(n * 2 + 1); /* 4 output bytes per 2 hex digits at most */
    if (!out)
        return NULL;
    size_t w = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);
        int c = hi < 0 || lo < 0 ? '?' : hi << 4 | lo;
        if (o->hex)
            w += (size_t)sprintf(out + w, "%02x", c);
        else if (c == '\\')
            w += (size_t)sprintf(out + w, "\\\\");
        else if (isprint(c) && c != ' ')
            out[w++] = (char)c;
        else
            w += (size_t)sprintf(out + w, "\\x%02x", c);
    }
    out[w] = '\0';
    return out;
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (s) {
        printf("%s\n", s);
        free(s);
    }
}

/* ---- HTTP ---- */

struct http_reply {
    long status;
    char *body;
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    struct http_reply *r = ctx;
    size_t add = size * n;
    char *b = realloc(r->body, r->len + add + 1);
    if (!b)
        return 0; /* curl reports a write error */
    memcpy(b + r->len, p, add);
    r->body = b;
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

static const char *base_of(const struct ctl_admin_options *o)
{
    const char *b = o->pd_http;
    if (!b || !b[0])
        b = getenv(CTL_ADMIN_ENV_PD_HTTP);
    return b && b[0] ? b : CTL_ADMIN_DEFAULT_PD_HTTP;
}

/*
 * http_call performs one request on the scheduler, bounded by the timeout.
 * Returns CTL_ADMIN_OK with r filled (r->body malloc'ed, caller frees) when
 * an answer came, else CTL_ADMIN_EXIT_UNREACHABLE (reported on stderr).
 */
static int http_call(const struct ctl_admin_options *o, const char *method, const char *path,
                     const char *body, struct http_reply *r)
{
    memset(r, 0, sizeof *r);
    const char *base = base_of(o);
    bool has_scheme = strncmp(base, "http://", 7) == 0 || strncmp(base, "https://", 8) == 0;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    char *url = NULL, *auth = NULL;
    struct curl_slist *hdrs = NULL;
    int rc = CTL_ADMIN_EXIT_UNREACHABLE;
    CURL *cu = curl_easy_init();
    if (!cu || asprintf(&url, "%s%.*s%s", has_scheme ? "" : "http://", (int)blen, base, path) < 0) {
        url = NULL;
        fprintf(stderr, "tinykv-ctl: out of memory\n");
        goto cleanup;
    }
    if (o->token && o->token[0]) {
        if (asprintf(&auth, "Authorization: Bearer %s", o->token) < 0) {
            auth = NULL;
            goto cleanup;
        }
        hdrs = curl_slist_append(hdrs, auth);
    }
    if (body)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
    /* The scheduler is reached directly; a proxy from the environment would only get in the way. */
    curl_easy_setopt(cu, CURLOPT_NOPROXY, "*");
    if (body)
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
    CURLcode cc = curl_easy_perform(cu);
    if (cc != CURLE_OK) {
        fprintf(stderr, "tinykv-ctl: cannot reach the scheduler at %.*s: %s\n", (int)blen, base,
                curl_easy_strerror(cc));
        free(r->body);
        r->body = NULL;
        goto cleanup;
    }
    curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &r->status);
    rc = CTL_ADMIN_OK;
cleanup:
    curl_slist_free_all(hdrs);
    free(auth);
    free(url);
    if (cu)
        curl_easy_cleanup(cu);
    return rc;
}

/*
 * api calls the admin API and parses its JSON answer into *out (the caller
 * decrefs it). An error status prints the API's message on stderr and
 * returns CTL_ADMIN_EXIT_API.
 */
static int api(const struct ctl_admin_options *o, const char *method, const char *path,
               const char *body, json_t **out)
{
    *out = NULL;
    struct http_reply r;
    int rc = http_call(o, method, path, body, &r);
    if (rc != CTL_ADMIN_OK)
        return rc;
    json_t *j = r.body ? json_loads(r.body, JSON_DECODE_ANY, NULL) : NULL;
    if (r.status < 200 || r.status > 299) {
        const char *msg = json_string_value(json_object_get(j, "error"));
        fprintf(stderr, "tinykv-ctl: %s (HTTP %ld)\n",
                msg      ? msg
                : r.body ? r.body
                         : "no message",
                r.status);
        json_decref(j);
        free(r.body);
        return CTL_ADMIN_EXIT_API;
    }
    free(r.body);
    if (!j) {
        fprintf(stderr, "tinykv-ctl: the scheduler's answer is not JSON\n");
        return CTL_ADMIN_EXIT_API;
    }
    *out = j;
    return CTL_ADMIN_OK;
}

/* api_done runs a mutating call and prints msg (or, with --json, the API's answer). */
static int api_done(const struct ctl_admin_options *o, const char *method, const char *path,
                    const char *body, const char *msg)
{
    json_t *j;
    int rc = api(o, method, path, body, &j);
    if (rc != CTL_ADMIN_OK)
        return rc;
    if (o->json)
        print_json(j);
    else
        printf("%s\n", msg);
    json_decref(j);
    return CTL_ADMIN_OK;
}

/* ---- arguments ---- */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tinykv-ctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    ctl_admin_usage(stderr);
    return CTL_ADMIN_EXIT_USAGE;
}

/* parse_id: a positive decimal id with nothing around it. */
static int parse_id(const char *s, uint64_t *id)
{
    uint64_t v = 0;
    if (!s || !*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v == 0 || v > INT64_MAX)
        return -1;
    *id = v;
    return 0;
}

/* verb_is: argv[0] (or def when there is none) equals name. */
static bool verb_is(int argc, char **argv, const char *name, const char *def)
{
    return strcmp(argc > 0 ? argv[0] : def, name) == 0;
}

/* ---- store ---- */

static const char *heartbeat_s(json_t *status)
{
    const char *ts = jstr(status, "last_heartbeat_ts");
    return ts[0] ? ts : "never";
}

/* GETs path: with --json prints the answer and sets *j NULL; else hands it
 * over for a table (the caller json_decrefs it). */
static int get_for_table(const struct ctl_admin_options *o, const char *path, json_t **j)
{
    int rc = api(o, "GET", path, NULL, j);
    if (rc != CTL_ADMIN_OK)
        return rc;
    if (o->json) {
        print_json(*j);
        json_decref(*j);
        *j = NULL;
    }
    return CTL_ADMIN_OK;
}

static int store_list(const struct ctl_admin_options *o)
{
    json_t *j;
    int rc = get_for_table(o, API_PREFIX "/stores", &j);
    if (rc != CTL_ADMIN_OK || !j)
        return rc;
    struct table t;
    table_init(&t, 6);
    table_row(&t, "ID", "ADDRESS", "STATE", "REGIONS", "LEADERS", "LAST-HEARTBEAT");
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(j, "stores"), i, e)
    {
        json_t *s = json_object_get(e, "store"), *st = json_object_get(e, "status");
        char id[24], regions[24], leaders[24];
        table_row(&t, u64s(id, sizeof id, jint(s, "id")), jstr(s, "address"), jstr(s, "state_name"),
                  u64s(regions, sizeof regions, jint(st, "region_count")),
                  u64s(leaders, sizeof leaders, jint(st, "leader_count")), heartbeat_s(st));
    }
    json_decref(j);
    return table_finish(&t);
}

static int store_show(const struct ctl_admin_options *o, uint64_t id)
{
    char path[96];
    snprintf(path, sizeof path, API_PREFIX "/store/%" PRIu64, id);
    json_t *j;
    int rc = get_for_table(o, path, &j);
    if (rc != CTL_ADMIN_OK || !j)
        return rc;
    json_t *s = json_object_get(j, "store"), *st = json_object_get(j, "status");
    char a[24], regions[96], leaders[96], cap[32], avail[32], used[32], snaps[96], pending[24];
    char sz1[32];
    snprintf(regions, sizeof regions, "%" PRIu64 " (%s)", jint(st, "region_count"),
             bytes_s(sz1, sizeof sz1, jint(st, "region_size_bytes")));
    snprintf(leaders, sizeof leaders, "%" PRIu64, jint(st, "leader_count"));
    snprintf(snaps, sizeof snaps, "sending %" PRIu64 ", receiving %" PRIu64,
             jint(st, "sending_snap_count"), jint(st, "receiving_snap_count"));
    struct table t;
    table_init(&t, 2);
    table_row(&t, "id", u64s(a, sizeof a, jint(s, "id")));
    table_row(&t, "address", jstr(s, "address"));
    table_row(&t, "state", jstr(s, "state_name"));
    table_row(&t, "regions", regions);
    table_row(&t, "leaders", leaders);
    table_row(&t, "pending peers", u64s(pending, sizeof pending, jint(st, "pending_peer_count")));
    table_row(&t, "capacity", bytes_s(cap, sizeof cap, jint(st, "capacity")));
    table_row(&t, "available", bytes_s(avail, sizeof avail, jint(st, "available")));
    table_row(&t, "used", bytes_s(used, sizeof used, jint(st, "used_size")));
    table_row(&t, "snapshots", snaps);
    table_row(&t, "busy", json_is_true(json_object_get(st, "is_busy")) ? "yes" : "no");
    table_row(&t, "last heartbeat", heartbeat_s(st));
    json_decref(j);
    return table_finish(&t);
}

static int run_store(const struct ctl_admin_options *o, int argc, char **argv)
{
    uint64_t id;
    char path[128], msg[160];
    if (verb_is(argc, argv, "list", "list")) {
        if (argc > 1)
            return usage_error("store list takes no arguments");
        return store_list(o);
    }
    if (argc < 2 || parse_id(argv[1], &id) != 0)
        return usage_error("store %s needs a store ID (a positive integer)", argv[0]);
    if (strcmp(argv[0], "show") == 0 && argc == 2)
        return store_show(o, id);
    if (strcmp(argv[0], "delete") == 0 && argc == 2) {
        snprintf(path, sizeof path, API_PREFIX "/store/%" PRIu64, id);
        snprintf(msg, sizeof msg,
                 "store %" PRIu64 " is Offline: its regions move away, then it becomes Tombstone",
                 id);
        return api_done(o, "DELETE", path, NULL, msg);
    }
    if (strcmp(argv[0], "state") == 0 && argc == 3) {
        const char *states[] = {"Up", "Offline", "Tombstone"};
        const char *state = NULL;
        for (size_t i = 0; i < 3; i++)
            if (strcasecmp(argv[2], states[i]) == 0)
                state = states[i];
        if (!state)
            return usage_error("store state must be Up, Offline or Tombstone, not '%s'", argv[2]);
        snprintf(path, sizeof path, API_PREFIX "/store/%" PRIu64 "/state?state=%s", id, state);
        snprintf(msg, sizeof msg, "store %" PRIu64 " is now %s", id, state);
        return api_done(o, "POST", path, "", msg);
    }
    return usage_error("unknown or incomplete store command '%s'", argv[0]);
}

/* ---- region ---- */

static void peers_s(json_t *r, char *buf, size_t len)
{
    size_t i, w = 0;
    json_t *p;
    buf[0] = '\0';
    json_array_foreach(json_object_get(r, "peers"), i, p)
    {
        int n = snprintf(buf + w, len - w, "%s%" PRIu64, i ? "," : "", jint(p, "store_id"));
        if (n < 0 || (size_t)n >= len - w)
            break;
        w += (size_t)n;
    }
}

/* region_list_path: /regions, with ?limit= and &key= (hex) when a page is asked for; malloc'ed,
 * NULL after printing a usage error or on allocation failure (*rc says which). */
static char *region_list_path(const struct ctl_admin_options *o, int *rc)
{
    const char *key = o->start_key ? o->start_key : "";
    size_t n = strlen(key);
    char *hex = malloc(2 * n + 1), *path = NULL;
    *rc = CTL_ADMIN_EXIT_API;
    if (!hex) {
        fprintf(stderr, "tinykv-ctl: out of memory\n");
        return NULL;
    }
    if (o->hex) {
        bool ok = n % 2 == 0;
        for (size_t i = 0; ok && i < n; i++)
            ok = hexval(key[i]) >= 0;
        if (!ok) {
            *rc = usage_error("bad hex key '%s'", key);
            free(hex);
            return NULL;
        }
        memcpy(hex, key, n + 1);
    } else {
        for (size_t i = 0; i < n; i++)
            sprintf(hex + 2 * i, "%02X", (unsigned char)key[i]);
        hex[2 * n] = '\0';
    }
    int w;
    if (o->region_limit)
        w = asprintf(&path, API_PREFIX "/regions?limit=%lu&key=%s", o->region_limit, hex);
    else if (n)
        w = asprintf(&path, API_PREFIX "/regions?key=%s", hex);
    else
        w = asprintf(&path, API_PREFIX "/regions");
    if (w < 0) {
        path = NULL;
        fprintf(stderr, "tinykv-ctl: out of memory\n");
    }
    free(hex);
    return path;
}

static int region_list(const struct ctl_admin_options *o)
{
    json_t *j;
    int rc;
    char *path = region_list_path(o, &rc);
    if (!path)
        return rc;
    rc = get_for_table(o, path, &j);
    free(path);
    if (rc != CTL_ADMIN_OK || !j)
        return rc;
    struct table t;
    table_init(&t, 8);
    table_row(&t, "ID", "START-KEY", "END-KEY", "VERSION", "CONF-VER", "LEADER-STORE", "STORES",
              "SIZE");
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(j, "regions"), i, r)
    {
        json_t *epoch = json_object_get(r, "epoch"), *leader = json_object_get(r, "leader");
        char id[24], ver[24], conf[24], lead[24], stores[256], size[32];
        char *start = key_s(o, jstr(r, "start_key"), "-inf");
        char *end = key_s(o, jstr(r, "end_key"), "+inf");
        peers_s(r, stores, sizeof stores);
        uint64_t ls = jint(leader, "store_id");
        table_row(&t, u64s(id, sizeof id, jint(r, "id")), start, end,
                  u64s(ver, sizeof ver, jint(epoch, "version")),
                  u64s(conf, sizeof conf, jint(epoch, "conf_ver")),
                  ls ? u64s(lead, sizeof lead, ls) : "-", stores,
                  bytes_s(size, sizeof size, jint(r, "approximate_size_bytes")));
        if (!start || !end)
            t.oom = true;
        free(start);
        free(end);
    }
    /* A full page that does not reach the end: say where the next one starts. */
    json_t *regions = json_object_get(j, "regions");
    size_t shown = json_array_size(regions);
    const char *last_end = shown ? jstr(json_array_get(regions, shown - 1), "end_key") : "";
    char *next =
        o->region_limit && shown == o->region_limit && last_end[0] ? key_s(o, last_end, "") : NULL;
    rc = table_finish(&t);
    if (next && rc == CTL_ADMIN_OK)
        printf("(next page: region list --limit %lu --start %s%s)\n", o->region_limit,
               o->hex ? "--hex " : "", next);
    free(next);
    json_decref(j);
    return rc;
}

static int region_print(const struct ctl_admin_options *o, const char *path)
{
    json_t *j;
    int rc = get_for_table(o, path, &j);
    if (rc != CTL_ADMIN_OK || !j)
        return rc;
    json_t *epoch = json_object_get(j, "epoch"), *leader = json_object_get(j, "leader");
    char id[24], ep[96], size[32], line[128];
    char *start = key_s(o, jstr(j, "start_key"), "-inf");
    char *end = key_s(o, jstr(j, "end_key"), "+inf");
    struct table t;
    table_init(&t, 2);
    table_row(&t, "id", u64s(id, sizeof id, jint(j, "id")));
    table_row(&t, "start key", start);
    table_row(&t, "end key", end);
    snprintf(ep, sizeof ep, "version %" PRIu64 ", conf_ver %" PRIu64, jint(epoch, "version"),
             jint(epoch, "conf_ver"));
    table_row(&t, "epoch", ep);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(j, "peers"), i, p)
    {
        bool is_leader = jint(p, "id") == jint(leader, "id");
        bool pending = false;
        size_t k;
        json_t *q;
        json_array_foreach(json_object_get(j, "pending_peers"), k, q)
        {
            pending |= jint(q, "id") == jint(p, "id");
        }
        snprintf(line, sizeof line, "peer %" PRIu64 " on store %" PRIu64 "%s%s", jint(p, "id"),
                 jint(p, "store_id"), is_leader ? " (leader)" : "", pending ? " (pending)" : "");
        table_row(&t, i == 0 ? "peers" : "", line);
    }
    if (!jint(leader, "id"))
        table_row(&t, "leader", "unknown");
    table_row(&t, "approximate size",
              bytes_s(size, sizeof size, jint(j, "approximate_size_bytes")));
    if (!start || !end)
        t.oom = true;
    free(start);
    free(end);
    json_decref(j);
    return table_finish(&t);
}

static int region_key(const struct ctl_admin_options *o, const char *key)
{
    size_t n = strlen(key);
    if (n == 0)
        return usage_error("region key needs a non-empty KEY (the first region starts at \"\")");
    if (o->hex) {
        bool ok = n % 2 == 0 && n > 0;
        for (size_t i = 0; ok && i < n; i++)
            ok = hexval(key[i]) >= 0;
        if (!ok)
            return usage_error("bad hex key '%s'", key);
    }
    CURL *cu = curl_easy_init();
    char *esc = cu ? curl_easy_escape(cu, key, (int)n) : NULL;
    char *path = NULL;
    int rc = CTL_ADMIN_EXIT_API;
    if (!esc ||
        asprintf(&path, API_PREFIX "/region/key/%s%s", esc, o->hex ? "?format=hex" : "") < 0) {
        path = NULL;
        fprintf(stderr, "tinykv-ctl: out of memory\n");
    } else {
        rc = region_print(o, path);
    }
    free(path);
    curl_free(esc);
    if (cu)
        curl_easy_cleanup(cu);
    return rc;
}

/*
 * region_split asks the scheduler to split the regions holding keys (argv,
 * as given or hex with --hex) there. The scheduler checks the keys (an empty
 * key or a region's own start key is its error, exit 1) and queues the
 * splits; the regions' leaders carry them out at their next heartbeat.
 */
static int region_split(const struct ctl_admin_options *o, int argc, char **argv)
{
    if (argc < 1)
        return usage_error("region split needs at least one KEY");
    json_t *keys = json_array();
    int rc = CTL_ADMIN_EXIT_API;
    for (int i = 0; keys && i < argc; i++) {
        size_t n = strlen(argv[i]);
        char *hex = malloc(2 * n + 1);
        if (!hex)
            break;
        if (o->hex) {
            bool ok = n % 2 == 0;
            for (size_t k = 0; ok && k < n; k++)
                ok = hexval(argv[i][k]) >= 0;
            if (!ok) {
                free(hex);
                json_decref(keys);
                return usage_error("bad hex key '%s'", argv[i]);
            }
            memcpy(hex, argv[i], n + 1);
        } else {
            for (size_t k = 0; k < n; k++)
                sprintf(hex + 2 * k, "%02X", (unsigned char)argv[i][k]);
            hex[2 * n] = '\0';
        }
        json_array_append_new(keys, json_string(hex));
        free(hex);
    }
    json_t *b = keys && json_array_size(keys) == (size_t)argc
                    ? json_pack("{s:O}", "split_keys", keys)
                    : NULL;
    char *body = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    json_decref(keys);
    if (!body) {
        fprintf(stderr, "tinykv-ctl: out of memory\n");
        return CTL_ADMIN_EXIT_API;
    }
    json_t *j;
    rc = api(o, "POST", API_PREFIX "/regions/split", body, &j);
    free(body);
    if (rc != CTL_ADMIN_OK)
        return rc;
    if (o->json) {
        print_json(j);
    } else {
        json_t *ids = json_object_get(j, "regions-id");
        size_t n = json_array_size(ids), i;
        json_t *id;
        printf("split queued at %d key%s for region%s", argc, argc == 1 ? "" : "s",
               n == 1 ? "" : "s");
        json_array_foreach(ids, i, id)
        {
            printf("%s %" JSON_INTEGER_FORMAT, i ? "," : "", json_integer_value(id));
        }
        printf("; each region's leader splits it at its next heartbeat (see region list)\n");
    }
    json_decref(j);
    return CTL_ADMIN_OK;
}

static const char *check_state_s(const struct ctl_check_replica *r, uint64_t index)
{
    if (!r->answered)
        return "no answer";
    if (r->index != index)
        return "not hashed";
    static const char *names[] = {"-", "computing", "computed", "consistent", "MISMATCH"};
    return r->state >= 0 && r->state <= CTL_CHECK_STATE_MISMATCH ? names[r->state] : "?";
}

/* The check's verdict: 1 consistent, -1 a mismatch (a replica found one, or two replicas'
 * hashes for the index differ), 0 not known. */
static int check_verdict(const struct ctl_check_replica *r, size_t n, uint64_t index, int rc)
{
    const struct ctl_check_replica *first = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!r[i].answered || r[i].index != index || r[i].state < CTL_CHECK_STATE_COMPUTED)
            continue;
        if (r[i].state == CTL_CHECK_STATE_MISMATCH || (first && first->hash != r[i].hash))
            return -1;
        first = first ? first : &r[i];
    }
    return rc == CTL_CHECK_OK ? 1 : 0;
}

static void check_print(const struct ctl_admin_options *o, uint64_t region_id, uint64_t index,
                        const struct ctl_check_replica *r, size_t n, int verdict, const char *why)
{
    const char *word = verdict > 0 ? "consistent" : verdict < 0 ? "MISMATCH" : "TIMEOUT";
    if (o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++) {
            char hash[24];
            snprintf(hash, sizeof hash, "%016" PRIx64, r[i].hash);
            json_array_append_new(
                arr, json_pack("{s:I,s:I,s:b,s:I,s:I,s:s,s:s,s:s}", "store_id",
                               (json_int_t)r[i].store_id, "peer_id", (json_int_t)r[i].peer_id,
                               "is_leader", r[i].is_leader, "applied_index",
                               (json_int_t)r[i].applied_index, "index", (json_int_t)r[i].index,
                               "hash", r[i].state >= CTL_CHECK_STATE_COMPUTED ? hash : "", "state",
                               check_state_s(&r[i], index), "error", r[i].error));
        }
        json_t *j = json_pack("{s:I,s:I,s:s,s:o}", "region_id", (json_int_t)region_id, "index",
                              (json_int_t)index, "result", word, "replicas", arr);
        print_json(j);
        json_decref(j);
        return;
    }
    struct table t;
    table_init(&t, 7);
    table_row(&t, "STORE", "PEER", "ROLE", "APPLIED", "INDEX", "HASH", "RESULT");
    for (size_t i = 0; i < n; i++) {
        char store[24], peer[24], applied[24], idx[24], hash[24];
        snprintf(hash, sizeof hash, "%016" PRIx64, r[i].hash);
        table_row(
            &t, u64s(store, sizeof store, r[i].store_id), u64s(peer, sizeof peer, r[i].peer_id),
            !r[i].answered   ? NULL
            : r[i].is_leader ? "leader"
                             : "follower",
            r[i].answered ? u64s(applied, sizeof applied, r[i].applied_index) : NULL,
            r[i].answered ? u64s(idx, sizeof idx, r[i].index) : NULL,
            r[i].answered && r[i].index == index && r[i].state >= CTL_CHECK_STATE_COMPUTED ? hash
                                                                                           : NULL,
            r[i].error[0] ? r[i].error : check_state_s(&r[i], index));
    }
    table_finish(&t);
    if (why && why[0])
        printf("region %" PRIu64 " at index %" PRIu64 ": %s (%s)\n", region_id, index, word, why);
    else
        printf("region %" PRIu64 " at index %" PRIu64 ": %s\n", region_id, index, word);
}

/*
 * region_check runs a consistency check of region id: the scheduler names its
 * replicas, their stores and its leader; the leader store starts the check
 * and every replica's store reports its hash at the check's index and its
 * verdict (client/ctl_check.c). Exit 0 consistent, 1 a mismatch, 3 no
 * verdict from every replica within --timeout.
 */
static int region_check(const struct ctl_admin_options *o, uint64_t id)
{
    char path[96];
    snprintf(path, sizeof path, API_PREFIX "/region/id/%" PRIu64, id);
    json_t *region = NULL, *stores = NULL;
    int rc = api(o, "GET", path, NULL, &region);
    if (rc == CTL_ADMIN_OK)
        rc = api(o, "GET", API_PREFIX "/stores", NULL, &stores);
    json_t *peers = json_object_get(region, "peers");
    size_t n = json_array_size(peers), i, k;
    struct ctl_check_replica *r = rc == CTL_ADMIN_OK ? calloc(n ? n : 1, sizeof *r) : NULL;
    if (rc == CTL_ADMIN_OK && !r) {
        fprintf(stderr, "tinykv-ctl: out of memory\n");
        rc = CTL_ADMIN_EXIT_API;
    }
    json_t *p, *s;
    json_array_foreach(r ? peers : NULL, i, p)
    {
        r[i].store_id = jint(p, "store_id");
        r[i].peer_id = jint(p, "id");
        json_array_foreach(json_object_get(stores, "stores"), k, s)
        {
            if (jint(json_object_get(s, "store"), "id") == r[i].store_id)
                r[i].addr = jstr(json_object_get(s, "store"), "address");
        }
        if (!r[i].addr || !r[i].addr[0]) {
            fprintf(stderr, "tinykv-ctl: the scheduler knows no address for store %" PRIu64 "\n",
                    r[i].store_id);
            rc = CTL_ADMIN_EXIT_API;
        }
    }
    if (rc == CTL_ADMIN_OK) {
        uint64_t index = 0;
        char why[256];
        int crc = ctl_check_region(id, r, n, jint(json_object_get(region, "leader"), "store_id"),
                                   o->timeout_ms, &index, why, sizeof why);
        if (crc == CTL_CHECK_NOT_STARTED) {
            fprintf(stderr, "tinykv-ctl: region %" PRIu64 ": the check did not start: %s\n", id,
                    why);
            rc = CTL_ADMIN_EXIT_UNREACHABLE;
        } else {
            int verdict = check_verdict(r, n, index, crc);
            check_print(o, id, index, r, n, verdict, verdict > 0 ? NULL : why);
            rc = verdict > 0   ? CTL_ADMIN_OK
                 : verdict < 0 ? CTL_ADMIN_EXIT_API
                               : CTL_ADMIN_EXIT_UNREACHABLE;
        }
    }
    free(r);
    json_decref(region);
    json_decref(stores);
    return rc;
}

static int run_region(const struct ctl_admin_options *o, int argc, char **argv)
{
    uint64_t id;
    char path[96];
    if (verb_is(argc, argv, "list", "list")) {
        if (argc > 1)
            return usage_error("region list takes no arguments (page with --limit N and "
                               "--start KEY)");
        return region_list(o);
    }
    if (strcmp(argv[0], "show") == 0) {
        if (argc != 2 || parse_id(argv[1], &id) != 0)
            return usage_error("region show needs a region ID (a positive integer)");
        snprintf(path, sizeof path, API_PREFIX "/region/id/%" PRIu64, id);
        return region_print(o, path);
    }
    if (strcmp(argv[0], "key") == 0) {
        if (argc != 2)
            return usage_error("region key needs one KEY");
        return region_key(o, argv[1]);
    }
    if (strcmp(argv[0], "split") == 0)
        return region_split(o, argc - 1, argv + 1);
    if (strcmp(argv[0], "check") == 0) {
        if (argc != 2 || parse_id(argv[1], &id) != 0)
            return usage_error("region check needs a region ID (a positive integer)");
        return region_check(o, id);
    }
    return usage_error("unknown region command '%s'", argv[0]);
}

/* ---- operator ---- */

static void steps_s(json_t *op, char *buf, size_t len)
{
    size_t i, w = 0;
    json_t *s;
    buf[0] = '\0';
    json_array_foreach(json_object_get(op, "steps"), i, s)
    {
        int n =
            strcmp(jstr(s, "type"), "split-region") == 0
                ? snprintf(buf + w, len - w, "%ssplit-region at %" PRIu64 " key%s", i ? ", " : "",
                           jint(s, "key_count"), jint(s, "key_count") == 1 ? "" : "s")
                : snprintf(buf + w, len - w, "%s%s store %" PRIu64 " (peer %" PRIu64 ")",
                           i ? ", " : "", jstr(s, "type"), jint(s, "store_id"), jint(s, "peer_id"));
        if (n < 0 || (size_t)n >= len - w)
            break;
        w += (size_t)n;
    }
}

static void progress_s(json_t *op, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRIu64 "/%zu", jint(op, "current_step"),
             json_array_size(json_object_get(op, "steps")));
}

static int operator_list(const struct ctl_admin_options *o)
{
    json_t *j;
    int rc = get_for_table(o, API_PREFIX "/operators", &j);
    if (rc != CTL_ADMIN_OK || !j)
        return rc;
    struct table t;
    table_init(&t, 6);
    table_row(&t, "REGION", "NAME", "KIND", "STEP", "STEPS", "CREATED");
    size_t i;
    json_t *op;
    json_array_foreach(j, i, op)
    {
        char region[24], prog[32], steps[512];
        progress_s(op, prog, sizeof prog);
        steps_s(op, steps, sizeof steps);
        table_row(&t, u64s(region, sizeof region, jint(op, "region_id")), jstr(op, "desc"),
                  jstr(op, "kind"), prog, steps, jstr(op, "create_time"));
    }
    json_decref(j);
    return table_finish(&t);
}

static int operator_show(const struct ctl_admin_options *o, uint64_t region)
{
    char path[96];
    snprintf(path, sizeof path, API_PREFIX "/operators/%" PRIu64, region);
    json_t *j;
    int rc = get_for_table(o, path, &j);
    if (rc != CTL_ADMIN_OK || !j)
        return rc;
    char id[24], prog[32], line[128];
    progress_s(j, prog, sizeof prog);
    struct table t;
    table_init(&t, 2);
    table_row(&t, "region", u64s(id, sizeof id, jint(j, "region_id")));
    table_row(&t, "name", jstr(j, "desc"));
    table_row(&t, "kind", jstr(j, "kind"));
    table_row(&t, "status", jstr(j, "status"));
    table_row(&t, "step", prog);
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(j, "steps"), i, s)
    {
        snprintf(line, sizeof line, "%zu. %s store %" PRIu64 " (peer %" PRIu64 ")", i + 1,
                 jstr(s, "type"), jint(s, "store_id"), jint(s, "peer_id"));
        table_row(&t, i == 0 ? "steps" : "", line);
        size_t k;
        json_t *key;
        json_array_foreach(json_object_get(s, "keys"), k, key)
        {
            char *ks = key_s(o, json_string_value(key) ? json_string_value(key) : "", "\"\"");
            snprintf(line, sizeof line, "   split key %s", ks ? ks : "?");
            free(ks);
            table_row(&t, "", line);
        }
    }
    table_row(&t, "created", jstr(j, "create_time"));
    json_decref(j);
    return table_finish(&t);
}

static int operator_add(const struct ctl_admin_options *o, int argc, char **argv)
{
    uint64_t region, store;
    if (argc != 4)
        return usage_error("operator add needs a kind, a REGION_ID and a STORE_ID");
    const char *kind = argv[1];
    if (strcmp(kind, "transfer-leader") != 0 && strcmp(kind, "add-peer") != 0 &&
        strcmp(kind, "remove-peer") != 0)
        return usage_error("operator kind must be transfer-leader, add-peer or remove-peer");
    if (parse_id(argv[2], &region) != 0 || parse_id(argv[3], &store) != 0)
        return usage_error("REGION_ID and STORE_ID must be positive integers");
    const char *field = strcmp(kind, "remove-peer") == 0 ? "store_id" : "to_store_id";
    char body[192], msg[160];
    snprintf(body, sizeof body,
             "{\"name\": \"%s\", \"region_id\": %" PRIu64 ", \"%s\": %" PRIu64 "}", kind, region,
             field, store);
    snprintf(msg, sizeof msg, "operator %s added for region %" PRIu64 " (store %" PRIu64 ")", kind,
             region, store);
    return api_done(o, "POST", API_PREFIX "/operators", body, msg);
}

static int run_operator(const struct ctl_admin_options *o, int argc, char **argv)
{
    uint64_t region;
    char path[96], msg[96];
    if (verb_is(argc, argv, "list", "list")) {
        if (argc > 1)
            return usage_error("operator list takes no arguments");
        return operator_list(o);
    }
    if (strcmp(argv[0], "add") == 0)
        return operator_add(o, argc, argv);
    if (strcmp(argv[0], "show") != 0 && strcmp(argv[0], "remove") != 0)
        return usage_error("unknown operator command '%s'", argv[0]);
    if (argc != 2 || parse_id(argv[1], &region) != 0)
        return usage_error("operator %s needs a REGION_ID (a positive integer)", argv[0]);
    if (strcmp(argv[0], "show") == 0)
        return operator_show(o, region);
    snprintf(path, sizeof path, API_PREFIX "/operators/%" PRIu64, region);
    snprintf(msg, sizeof msg, "operator of region %" PRIu64 " removed", region);
    return api_done(o, "DELETE", path, NULL, msg);
}

/* ---- scheduler ---- */

static int run_scheduler(const struct ctl_admin_options *o, int argc, char **argv)
{
    if (verb_is(argc, argv, "list", "list")) {
        if (argc > 1)
            return usage_error("scheduler list takes no arguments");
        json_t *j;
        int rc = api(o, "GET", API_PREFIX "/schedulers", NULL, &j);
        if (rc != CTL_ADMIN_OK)
            return rc;
        if (o->json) {
            print_json(j);
        } else {
            size_t i;
            json_t *n;
            json_array_foreach(j, i, n)
            {
                printf("%s\n", json_string_value(n) ? json_string_value(n) : "?");
            }
        }
        json_decref(j);
        return CTL_ADMIN_OK;
    }
    bool add = strcmp(argv[0], "add") == 0;
    if (!add && strcmp(argv[0], "remove") != 0)
        return usage_error("unknown scheduler command '%s'", argv[0]);
    if (argc != 2 || !argv[1][0] || strlen(argv[1]) > 64)
        return usage_error("scheduler %s needs a NAME", argv[0]);
    /* "balance-leader" is short for "balance-leader-scheduler", as pd-ctl spells them. */
    const char *suffix = "-scheduler";
    size_t n = strlen(argv[1]), sl = strlen(suffix);
    bool full = n > sl && strcmp(argv[1] + n - sl, suffix) == 0;
    char name[96], msg[160], path[192];
    snprintf(name, sizeof name, "%s%s", argv[1], full ? "" : suffix);
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return usage_error("bad scheduler name '%s'", argv[1]);
    snprintf(msg, sizeof msg, "scheduler %s %s", name, add ? "added" : "removed");
    if (add) {
        json_t *b = json_pack("{s:s}", "name", name);
        char *body = b ? json_dumps(b, 0) : NULL;
        json_decref(b);
        if (!body) {
            fprintf(stderr, "tinykv-ctl: out of memory\n");
            return CTL_ADMIN_EXIT_API;
        }
        int rc = api_done(o, "POST", API_PREFIX "/schedulers", body, msg);
        free(body);
        return rc;
    }
    snprintf(path, sizeof path, API_PREFIX "/schedulers/%s", name);
    return api_done(o, "DELETE", path, NULL, msg);
}

/* ---- config ---- */

static int config_print(const struct ctl_admin_options *o, json_t *j)
{
    if (o->json) {
        print_json(j);
        return CTL_ADMIN_OK;
    }
    struct table t;
    table_init(&t, 2);
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        char buf[64];
        if (json_is_integer(v))
            snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else if (json_is_string(v))
            snprintf(buf, sizeof buf, "%s", json_string_value(v));
        else
            snprintf(buf, sizeof buf, "%s", json_is_true(v) ? "true" : "false");
        table_row(&t, key, buf);
    }
    return table_finish(&t);
}

static int run_config(const struct ctl_admin_options *o, int argc, char **argv)
{
    json_t *j = NULL;
    int rc;
    if (verb_is(argc, argv, "show", "show")) {
        if (argc > 1)
            return usage_error("config show takes no arguments");
        rc = api(o, "GET", API_PREFIX "/config", NULL, &j);
    } else if (strcmp(argv[0], "set") == 0) {
        if (argc != 3 || !argv[1][0] || !argv[2][0])
            return usage_error("config set needs a KEY and a VALUE");
        /* Numbers go as JSON integers (counts, or seconds for durations), the rest as strings
         * ("30m", "1h30m"). */
        bool number = strspn(argv[2], "0123456789") == strlen(argv[2]) && strlen(argv[2]) < 19;
        json_t *b = number ? json_pack("{s:I}", argv[1], (json_int_t)strtoll(argv[2], NULL, 10))
                           : json_pack("{s:s}", argv[1], argv[2]);
        char *body = b ? json_dumps(b, 0) : NULL;
        json_decref(b);
        if (!body) {
            fprintf(stderr, "tinykv-ctl: out of memory\n");
            return CTL_ADMIN_EXIT_API;
        }
        rc = api(o, "POST", API_PREFIX "/config", body, &j);
        free(body);
    } else {
        return usage_error("unknown config command '%s'", argv[0]);
    }
    if (rc == CTL_ADMIN_OK)
        rc = config_print(o, j);
    json_decref(j);
    return rc;
}

/* ---- tso ---- */

static int run_tso(const struct ctl_admin_options *o, int argc, char **argv)
{
    (void)argv;
    if (argc > 0)
        return usage_error("tso takes no arguments");
    json_t *j;
    int rc = get_for_table(o, API_PREFIX "/tso", &j);
    if (rc != CTL_ADMIN_OK || !j)
        return rc;
    uint64_t ts = jint(j, "ts");
    uint64_t physical = ts >> TSO_LOGICAL_BITS, logical = ts & ((1u << TSO_LOGICAL_BITS) - 1);
    time_t secs = (time_t)(physical / 1000);
    struct tm tm;
    char when[64] = "?", a[24], b[96], c[24];
    if (gmtime_r(&secs, &tm))
        snprintf(when, sizeof when, "%04d-%02d-%02d %02d:%02d:%02d.%03u UTC", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (unsigned)(physical % 1000));
    snprintf(b, sizeof b, "%" PRIu64 " ms (%s)", physical, when);
    struct table t;
    table_init(&t, 2);
    table_row(&t, "ts", u64s(a, sizeof a, ts));
    table_row(&t, "physical", b);
    table_row(&t, "logical", u64s(c, sizeof c, logical));
    json_decref(j);
    return table_finish(&t);
}

/* ---- entry points ---- */

static const struct {
    const char *name;
    int (*run)(const struct ctl_admin_options *o, int argc, char **argv);
} commands[] = {
    {"store", run_store},         {"region", run_region}, {"operator", run_operator},
    {"scheduler", run_scheduler}, {"config", run_config}, {"tso", run_tso},
};

bool ctl_admin_is_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return true;
    return false;
}

int ctl_admin_run(const struct ctl_admin_options *o, int argc, char **argv)
{
    if (argc < 1 || !ctl_admin_is_command(argv[0]))
        return usage_error("unknown command '%s'", argc > 0 ? argv[0] : "");
    if (o->timeout_ms <= 0)
        return usage_error("the timeout must be positive");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "tinykv-ctl: cannot initialise libcurl\n");
        return CTL_ADMIN_EXIT_UNREACHABLE;
    }
    int rc = CTL_ADMIN_EXIT_USAGE;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, argv[0]) == 0)
            rc = commands[i].run(o, argc - 1, argv + 1);
    curl_global_cleanup();
    return rc;
}

void ctl_admin_usage(FILE *out)
{
    fprintf(out,
            "       tinykv-ctl [admin options] store [list | show ID | state ID "
            "Up|Offline|Tombstone | delete ID]\n"
            "       tinykv-ctl [admin options] region [list [--limit N] [--start KEY] | show ID |\n"
            "                                          key KEY | split KEY... | check ID]\n"
            "       tinykv-ctl [admin options] operator [list | show REGION_ID | remove "
            "REGION_ID]\n"
            "       tinykv-ctl [admin options] operator add transfer-leader|add-peer|remove-peer "
            "REGION_ID STORE_ID\n"
            "       tinykv-ctl [admin options] scheduler [list | add NAME | remove NAME]\n"
            "       tinykv-ctl [admin options] config [show | set KEY VALUE]\n"
            "       tinykv-ctl [admin options] tso\n");
}

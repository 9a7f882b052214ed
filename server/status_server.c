/* status_server.c — the store's HTTP status port (libmicrohttpd): metrics, status, regions. */
#include "server/status_server.h"

#include <ftw.h>
#include <pthread.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "metrics/metrics.h"
#include "proto/log.h"
#include "proto/version.h"
#include "store/raftstore.h"

struct status_server {
    struct MHD_Daemon *daemon;
    struct metrics *metrics; /* borrowed */
    pthread_mutex_t mu;      /* guards rs and store_id, set once the store is up */
    struct raftstore *rs;    /* borrowed; NULL in standalone mode or before attach */
    uint64_t store_id;
    char data_dir[1024];
    char mode[16];
    char addr[256];
    uint16_t port;
    uint64_t start_ns;   /* monotonic, for the uptime */
    time_t start_wall_s; /* wall clock, for people */
    struct metrics_gauge *regions, *leaders;
};

struct reply {
    unsigned status;
    char *body; /* malloc'ed */
    const char *ctype;
    const char *allow;
};

static void reply_json(struct reply *r, unsigned status, json_t *j)
{
    r->status = status;
    r->ctype = "application/json";
    r->body = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!r->body) {
        r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        r->body = strdup("{\"error\": \"out of memory\"}");
    }
}

static void reply_error(struct reply *r, unsigned status, const char *msg)
{
    reply_json(r, status, json_pack("{s:s}", "error", msg));
}

/* peers returns a malloc'ed copy of this store's peers (*n of them); NULL with *n 0 when none. */
static struct raftstore_peer_info *peers(struct status_server *s, size_t *n)
{
    *n = 0;
    pthread_mutex_lock(&s->mu);
    struct raftstore *rs = s->rs;
    pthread_mutex_unlock(&s->mu);
    if (!rs)
        return NULL;
    size_t cap = 64;
    for (;;) {
        struct raftstore_peer_info *p = malloc(cap * sizeof *p);
        if (!p)
            return NULL;
        size_t total = raftstore_peers(rs, p, cap);
        if (total <= cap) {
            *n = total;
            return p;
        }
        free(p);
        cap = total + 16; /* regions came while we looked: try again with room */
    }
}

static void h_metrics(struct status_server *s, struct reply *r)
{
    size_t n;
    struct raftstore_peer_info *p = peers(s, &n);
    int64_t leaders = 0;
    for (size_t i = 0; i < n; i++)
        leaders += p[i].is_leader != 0;
    free(p);
    metrics_gauge_set(s->regions, (int64_t)n);
    metrics_gauge_set(s->leaders, leaders);
    size_t len;
    if (metrics_render(s->metrics, &r->body, &len) != METRICS_OK) {
        reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    r->status = MHD_HTTP_OK;
    r->ctype = "text/plain; version=0.0.4";
}

/* Bytes used under the data directory (allocated blocks, as du counts them). nftw has no
 * context argument, so the sum goes through a thread-local. */
static _Thread_local uint64_t du_bytes;

static int du_visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F)
        du_bytes += (uint64_t)st->st_blocks * 512;
    return 0;
}

static void h_status(struct status_server *s, struct reply *r)
{
    du_bytes = 0;
    int du_ok = nftw(s->data_dir, du_visit, 16, FTW_PHYS) == 0;
    struct statvfs fs;
    int fs_ok = statvfs(s->data_dir, &fs) == 0;
    char started[64];
    struct tm tm;
    gmtime_r(&s->start_wall_s, &tm);
    strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &tm);
    pthread_mutex_lock(&s->mu);
    json_int_t store_id = (json_int_t)s->store_id;
    pthread_mutex_unlock(&s->mu);
    json_int_t uptime = (json_int_t)((metrics_now_ns() - s->start_ns) / 1000000000ull);
    json_t *j = json_pack("{s:s,s:s,s:I,s:s,s:s,s:I,s:s}", "version", TINYKV_VERSION, "mode",
                          s->mode, "store_id", store_id, "status_addr", s->addr, "start_time",
                          started, "uptime_seconds", uptime, "data_dir", s->data_dir);
    if (j) {
        json_object_set_new(j, "data_dir_bytes",
                            du_ok ? json_integer((json_int_t)du_bytes) : json_null());
        json_object_set_new(j, "capacity_bytes",
                            fs_ok ? json_integer((json_int_t)((uint64_t)fs.f_blocks * fs.f_frsize))
                                  : json_null());
        json_object_set_new(j, "available_bytes",
                            fs_ok ? json_integer((json_int_t)((uint64_t)fs.f_bavail * fs.f_frsize))
                                  : json_null());
    }
    reply_json(r, MHD_HTTP_OK, j);
}

static void h_regions(struct status_server *s, struct reply *r)
{
    size_t n;
    struct raftstore_peer_info *p = peers(s, &n);
    json_t *arr = json_array();
    size_t leaders = 0;
    for (size_t i = 0; arr && i < n; i++) {
        leaders += p[i].is_leader != 0;
        json_t *j = json_pack(
            "{s:I,s:I,s:I,s:s,s:I,s:I,s:I,s:I,s:{s:I,s:I},s:I}", "region_id",
            (json_int_t)p[i].region_id, "peer_id", (json_int_t)p[i].peer_id, "leader_peer_id",
            (json_int_t)p[i].leader_peer_id, "role", p[i].is_leader ? "leader" : "follower", "term",
            (json_int_t)p[i].term, "applied_index", (json_int_t)p[i].applied_index, "first_index",
            (json_int_t)p[i].first_index, "last_index", (json_int_t)p[i].last_index, "epoch",
            "conf_ver", (json_int_t)p[i].conf_ver, "version", (json_int_t)p[i].version,
            "peer_count", (json_int_t)p[i].n_peers);
        /* Measured by the split check where this peer led; null elsewhere. */
        if (j) {
            json_object_set_new(j, "approximate_size",
                                p[i].approximate_known
                                    ? json_integer((json_int_t)p[i].approximate_size_bytes)
                                    : json_null());
            json_object_set_new(j, "approximate_keys",
                                p[i].approximate_known
                                    ? json_integer((json_int_t)p[i].approximate_keys)
                                    : json_null());
        }
        json_array_append_new(arr, j);
    }
    free(p);
    pthread_mutex_lock(&s->mu);
    json_int_t store_id = (json_int_t)s->store_id;
    pthread_mutex_unlock(&s->mu);
    reply_json(r, MHD_HTTP_OK,
               arr ? json_pack("{s:I,s:I,s:I,s:o}", "store_id", store_id, "count", (json_int_t)n,
                               "leader_count", (json_int_t)leaders, "regions", arr)
                   : NULL);
}

static void dispatch(struct status_server *s, const char *url, const char *method, struct reply *r)
{
    static const struct {
        const char *path;
        void (*fn)(struct status_server *s, struct reply *r);
    } routes[] = {{"/metrics", h_metrics}, {"/status", h_status}, {"/regions", h_regions}};
    size_t len = strlen(url);
    if (len > 1 && url[len - 1] == '/')
        len--; /* one trailing slash is the same path */
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strlen(routes[i].path) != len || strncmp(routes[i].path, url, len) != 0)
            continue;
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
            reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET is allowed here");
            r->allow = "GET, HEAD";
            return;
        }
        routes[i].fn(s, r);
        return;
    }
    reply_error(r, MHD_HTTP_NOT_FOUND, "no such path (try /metrics, /status or /regions)");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    static int first_call_marker;
    if (*con_cls == NULL) {
        *con_cls = &first_call_marker; /* answer once the whole request has arrived */
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        *upload_data_size = 0; /* bodies are ignored: every route reads */
        return MHD_YES;
    }
    struct reply r = {0};
    dispatch(cls, url, method, &r);
    if (!r.body)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(r.body), r.body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(r.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", r.ctype);
    if (r.allow)
        MHD_add_response_header(resp, "Allow", r.allow);
    enum MHD_Result ret = MHD_queue_response(conn, r.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* split_host_port parses "host:port" or "[v6]:port"; 0 on success. */
static int split_host_port(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':' || (size_t)(close - addr - 1) >= hlen)
            return -1;
        memcpy(host, addr + 1, (size_t)(close - addr - 1));
        host[close - addr - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= hlen)
            return -1;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
    }
    size_t n = strlen(colon + 1);
    if (n == 0 || n >= plen)
        return -1;
    memcpy(port, colon + 1, n + 1);
    for (const char *p = port; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    return atoi(port) <= 65535 ? 0 : -1;
}

int status_server_start(const struct status_server_config *cfg, struct status_server **out,
                        char *errbuf, size_t errbuf_len)
{
    char host[256], port[8];
    struct addrinfo hints = {0}, *ai = NULL;
    struct status_server *s = NULL;
    int rc = -1;
    *out = NULL;
    if (!cfg->addr || split_host_port(cfg->addr, host, sizeof host, port, sizeof port) != 0) {
        snprintf(errbuf, errbuf_len, "bad status address \"%s\" (want HOST:PORT)",
                 cfg->addr ? cfg->addr : "");
        return -1;
    }
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (gai != 0) {
        snprintf(errbuf, errbuf_len, "cannot resolve %s: %s", host, gai_strerror(gai));
        return -1;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(errbuf, errbuf_len, "out of memory");
        goto cleanup;
    }
    s->metrics = cfg->metrics;
    pthread_mutex_init(&s->mu, NULL);
    s->rs = cfg->rs;
    s->store_id = cfg->store_id;
    snprintf(s->data_dir, sizeof s->data_dir, "%s", cfg->data_dir ? cfg->data_dir : ".");
    snprintf(s->mode, sizeof s->mode, "%s", cfg->mode ? cfg->mode : "cluster");
    snprintf(s->addr, sizeof s->addr, "%s", cfg->addr);
    s->start_ns = metrics_now_ns();
    s->start_wall_s = time(NULL);
    s->regions =
        metrics_gauge(s->metrics, "tinykv_regions", "Regions with a peer on this store.", NULL);
    s->leaders = metrics_gauge(s->metrics, "tinykv_leaders", "Regions this store leads.", NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
                                 ai->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(errbuf, errbuf_len, "cannot listen on %s for the status port", cfg->addr);
        goto cleanup;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : (uint16_t)atoi(port);
    LOG(LOG_INFO, "status port listening on %s (port %u): /metrics /status /regions", cfg->addr,
        (unsigned)s->port);
    *out = s;
    s = NULL;
    rc = 0;
cleanup:
    if (ai)
        freeaddrinfo(ai);
    if (s)
        pthread_mutex_destroy(&s->mu);
    free(s);
    return rc;
}

void status_server_attach(struct status_server *s, struct raftstore *rs, uint64_t store_id)
{
    pthread_mutex_lock(&s->mu);
    s->rs = rs;
    s->store_id = store_id;
    pthread_mutex_unlock(&s->mu);
}

uint16_t status_server_port(const struct status_server *s)
{
    return s->port;
}

void status_server_stop(struct status_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->daemon);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

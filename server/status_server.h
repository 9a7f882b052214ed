/* status_server.h — a store's HTTP status port: /metrics, /status and /regions (internal to
 * server/).
 */
#ifndef TINYKV_STORE_STATUS_SERVER_H
#define TINYKV_STORE_STATUS_SERVER_H

/*
 * What it owns: one libmicrohttpd daemon (its own thread) answering
 *   GET /metrics  the store's metrics registry as Prometheus text, after
 *                 refreshing the gauges it computes at scrape time
 *                 (tinykv_regions, tinykv_leaders);
 *   GET /status   JSON: version, store id, uptime, data directory and its
 *                 usage (bytes under it, the file system's capacity and free
 *                 space);
 *   GET /regions  JSON: this store's peers from raftstore_peers() (region,
 *                 peer, leader, role, term, applied/first/last index, epoch).
 * Anything else is answered with JSON {"error": "..."}: 404 for an unknown
 * path, 405 (with Allow) for a method other than GET/HEAD.
 *
 * Who calls it: tinykv-server's main, after the store is up; tests.
 * What it must never do: change the store (every route reads), or block the
 * raftstore (raftstore_peers copies under the store's own lock).
 */

#include <stddef.h>
#include <stdint.h>

struct metrics;
struct raftstore;
struct status_server;

struct status_server_config {
    const char *addr;        /* HOST:PORT to listen on (port 0 picks a free one); copied */
    struct metrics *metrics; /* borrowed; outlives the server; may be NULL */
    struct raftstore *rs;    /* borrowed; outlives the server; NULL in standalone mode */
    uint64_t store_id;       /* 0 in standalone mode */
    const char *data_dir;    /* copied */
    const char *mode;        /* "cluster" or "standalone"; copied */
};

/* status_server_start listens and serves; returns 0, or -1 with the reason in errbuf. */
int status_server_start(const struct status_server_config *cfg, struct status_server **out,
                        char *errbuf, size_t errbuf_len);

/* status_server_attach names the store once it is up (the port is bound first, so a taken port
 * fails the start before the store joins the cluster). `rs` is borrowed and must outlive the
 * server or be detached with NULL first. Until then /regions is empty and store_id 0. */
void status_server_attach(struct status_server *s, struct raftstore *rs, uint64_t store_id);

/* The port actually bound (useful with port 0). */
uint16_t status_server_port(const struct status_server *s);

/* status_server_stop stops serving (waits for requests in flight) and frees. NULL is a no-op. */
void status_server_stop(struct status_server *s);

#endif

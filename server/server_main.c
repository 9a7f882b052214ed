/* server_main.c — tinykv-server: one store serving the TinyKv gRPC API. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <errno.h>
#include <stdint.h>

#include "metrics/metrics.h"
#include "proto/log.h"
#include "proto/rpc.h"
#include "proto/version.h"
#include "store/engine.h"
#include "mvcc/mvcc.h"
#include "server/disk_guard.h"
#include "server/kv_service.h"
#include "server/node.h"
#include "server/status_server.h"

/* What a store keeps free for RocksDB and its Raft log past the last write it admits. */
#define DEFAULT_RESERVE_SPACE (128ULL << 20)

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tinykv-server [options]\n"
            "\n"
            "Serves one TinyKV store over gRPC (the tinykvpb.TinyKv service).\n"
            "\n"
            "  --addr HOST:PORT       listen address (default 127.0.0.1:20160)\n"
            "  --data-dir DIR         where the store keeps its data (default ./tinykv-data)\n"
            "  --scheduler HOST:PORT  the scheduler to join (default 127.0.0.1:2379)\n"
            "  --advertise-addr H:P   the address other stores and clients dial (default --addr)\n"
            "  --standalone           one store, no scheduler, no Raft\n"
            "  --raft-tick-ms MS      Raft base tick (default 100; elections take 10-20 ticks)\n"
            "  --status-addr H:P      HTTP status port: /metrics /status /regions\n"
            "                         (default 127.0.0.1:20180)\n"
            "  --region-max-size B    split a region bigger than this (default 144MiB)\n"
            "  --region-split-size B  ... at the first key past this size (default 96MiB)\n"
            "  --region-max-keys N    split a region with more keys (default 1440000)\n"
            "  --region-split-keys N  ... at the first key past this many (default 960000)\n"
            "  --split-check-ms MS    how often a leader checks its region's size (default 10000)\n"
            "                         (B: bytes, or with a KiB, MiB or GiB suffix)\n"
            "  --hibernate-ticks N    an idle region sleeps after N ticks without work\n"
            "                         (default 10, the election timeout; 0: never)\n"
            "  --idle-region-heartbeat-ticks N\n"
            "                         an asleep leader reports to the scheduler every N\n"
            "                         ticks (default 100)\n"
            "  --reserve-space B      refuse writes that add data while the data directory has\n"
            "                         no more free space than this (default 128MiB; 0: never)\n"
            "  --log-level LEVEL      error, warn, info or debug (default info)\n"
            "  --help                 this text\n"
            "  --version              print the version\n");
}

/* Parses a byte count with an optional KiB, MiB or GiB suffix; -1 if bad or 0. */
static int parse_bytes(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return -1;
    uint64_t mul = 1;
    if (strcmp(end, "KiB") == 0)
        mul = 1ULL << 10;
    else if (strcmp(end, "MiB") == 0)
        mul = 1ULL << 20;
    else if (strcmp(end, "GiB") == 0)
        mul = 1ULL << 30;
    else if (*end)
        return -1;
    if (v == 0 || v > UINT64_MAX / mul)
        return -1;
    *out = (uint64_t)v * mul;
    return 0;
}

/* Parses a whole decimal integer in [lo, hi]; -1 if it is not one. */
static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Cluster mode: a node joined to the scheduler, until a signal. */
static int run_cluster(struct node_config cfg, const char *status_addr, sigset_t *sigs)
{
    struct metrics *metrics = cfg.metrics;
    const char *data_dir = cfg.data_dir;
    char errbuf[1024] = "";
    /* The status port first: a taken port fails the start before the store joins the cluster. */
    struct status_server_config scfg = {
        .addr = status_addr, .metrics = metrics, .data_dir = data_dir, .mode = "cluster"};
    struct status_server *status;
    if (status_server_start(&scfg, &status, errbuf, sizeof errbuf) != 0) {
        fprintf(stderr, "tinykv-server: %s\n", errbuf);
        return 1;
    }
    struct node *node;
    if (node_start(&cfg, &node, errbuf, sizeof errbuf) != 0) {
        fprintf(stderr, "tinykv-server: %s\n", errbuf);
        status_server_stop(status);
        return 1;
    }
    status_server_attach(status, node_raftstore(node), node_store_id(node));
    int sig;
    sigwait(sigs, &sig);
    LOG(LOG_INFO, "signal %d: shutting down", sig);
    status_server_stop(status);
    node_stop(node);
    LOG(LOG_INFO, "stopped");
    return 0;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1:20160";
    const char *data_dir = "./tinykv-data";
    const char *scheduler = "127.0.0.1:2379";
    const char *advertise = NULL;
    const char *status_addr = "127.0.0.1:20180";
    int standalone = 0;
    int tick_ms = 100;
    uint64_t reserve_space = DEFAULT_RESERVE_SPACE;
    struct node_config ncfg = {0};
    static const struct option opts[] = {
        {"addr", required_argument, NULL, 'a'},
        {"data-dir", required_argument, NULL, 'd'},
        {"scheduler", required_argument, NULL, 's'},
        {"standalone", no_argument, NULL, 'S'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'v'},
        {"advertise-addr", required_argument, NULL, 'A'},
        {"raft-tick-ms", required_argument, NULL, 'T'},
        {"status-addr", required_argument, NULL, 'P'},
        {"region-max-size", required_argument, NULL, 1},
        {"region-split-size", required_argument, NULL, 2},
        {"region-max-keys", required_argument, NULL, 3},
        {"region-split-keys", required_argument, NULL, 4},
        {"split-check-ms", required_argument, NULL, 5},
        {"hibernate-ticks", required_argument, NULL, 6},
        {"idle-region-heartbeat-ticks", required_argument, NULL, 7},
        {"reserve-space", required_argument, NULL, 8},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            addr = optarg;
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 's':
            scheduler = optarg;
            break;
        case 'S':
            standalone = 1;
            break;
        case 'A':
            advertise = optarg;
            break;
        case 'P':
            status_addr = optarg;
            break;
        case 1:
        case 2:
        case 3:
        case 4: {
            uint64_t v;
            uint64_t *dst = c == 1   ? &ncfg.region_max_size
                            : c == 2 ? &ncfg.region_split_size
                            : c == 3 ? &ncfg.region_max_keys
                                     : &ncfg.region_split_keys;
            if (parse_bytes(optarg, &v) != 0 || (c >= 3 && strpbrk(optarg, "KMG"))) {
                fprintf(stderr, "tinykv-server: --%s: '%s' is not a %s\n", opts[c + 9].name, optarg,
                        c <= 2 ? "size (like 96MiB)" : "positive count");
                return 2;
            }
            *dst = v;
            break;
        }
        case 5:
            ncfg.split_check_ms = atoi(optarg);
            if (ncfg.split_check_ms < 10 || ncfg.split_check_ms > 3600000) {
                fprintf(stderr, "tinykv-server: --split-check-ms must be 10..3600000\n");
                return 2;
            }
            break;
        case 6:
            if (parse_int(optarg, 0, 1000000, &ncfg.hibernate_ticks) != 0) {
                fprintf(stderr,
                        "tinykv-server: --hibernate-ticks: '%s' is not a tick count "
                        "0..1000000 (0: never hibernate)\n",
                        optarg);
                return 2;
            }
            if (ncfg.hibernate_ticks == 0)
                ncfg.hibernate_ticks = -1; /* the raftstore's "never" */
            break;
        case 7:
            if (parse_int(optarg, 1, 1000000, &ncfg.idle_region_heartbeat_ticks) != 0) {
                fprintf(stderr,
                        "tinykv-server: --idle-region-heartbeat-ticks: '%s' is not a tick count "
                        "1..1000000\n",
                        optarg);
                return 2;
            }
            break;
        case 8:
            if (strcmp(optarg, "0") != 0 && parse_bytes(optarg, &reserve_space) != 0) {
                fprintf(stderr,
                        "tinykv-server: --reserve-space: '%s' is not a size (like 128MiB; 0: "
                        "never refuse)\n",
                        optarg);
                return 2;
            }
            if (strcmp(optarg, "0") == 0)
                reserve_space = 0;
            break;
        case 'T':
            tick_ms = atoi(optarg);
            if (tick_ms < 10 || tick_ms > 10000) {
                fprintf(stderr, "tinykv-server: --raft-tick-ms must be 10..10000\n");
                return 2;
            }
            break;
        case 'l':
            if ((log_current_level = log_level_parse(optarg)) < 0) {
                fprintf(stderr, "tinykv-server: unknown log level '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'v':
            printf("tinykv-server %s\n", TINYKV_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    /* As TiKV: one of a pair given, the other follows it (max = 1.5 x split). */
    uint64_t *pairs[2][2] = {{&ncfg.region_split_size, &ncfg.region_max_size},
                             {&ncfg.region_split_keys, &ncfg.region_max_keys}};
    for (int i = 0; i < 2; i++) {
        uint64_t *split = pairs[i][0], *max = pairs[i][1];
        if (*split && !*max)
            *max = *split / 2 * 3;
        else if (*max && !*split)
            *split = *max / 3 * 2 > 0 ? *max / 3 * 2 : 1;
        if (*split > *max) {
            fprintf(stderr, "tinykv-server: --region-split-%s must not exceed --region-max-%s\n",
                    i ? "keys" : "size", i ? "keys" : "size");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tinykv-server: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    /* Signals are taken by sigwait below; every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    rpc_process_hold();

    /* One registry for the whole process, freed after everything counting in it has stopped. */
    struct metrics *metrics = metrics_new();
    if (!metrics) {
        fprintf(stderr, "tinykv-server: out of memory\n");
        return 1;
    }
    if (!standalone) {
        ncfg.addr = addr;
        ncfg.advertise_addr = advertise;
        ncfg.data_dir = data_dir;
        ncfg.scheduler = scheduler;
        ncfg.tick_ms = tick_ms;
        ncfg.reserve_space_bytes = reserve_space;
        ncfg.metrics = metrics;
        int rc = run_cluster(ncfg, status_addr, &sigs);
        metrics_free(metrics);
        return rc;
    }

    if (mkdir(data_dir, 0755) != 0 && access(data_dir, W_OK) != 0) {
        fprintf(stderr, "tinykv-server: cannot use data directory %s\n", data_dir);
        return 1;
    }
    char kv_path[4096];
    snprintf(kv_path, sizeof kv_path, "%s/kv", data_dir);
    char errbuf[512] = "";
    struct storage *storage;
    if (standalone_storage_open(kv_path, &storage, errbuf, sizeof errbuf) != 0) {
        fprintf(stderr, "tinykv-server: %s\n", errbuf);
        return 1;
    }
    struct mvcc_engine *mvcc;
    if (mvcc_engine_new(storage, 0, &mvcc) != 0) {
        fprintf(stderr, "tinykv-server: cannot create the MVCC engine\n");
        storage_free(storage);
        return 1;
    }
    struct disk_guard disk;
    disk_guard_init(&disk, data_dir, reserve_space, 0);
    struct kv_service svc = {.storage = storage, .mvcc = mvcc, .metrics = metrics, .disk = &disk};
    struct rpc_method methods[KV_SERVICE_MAX_METHODS];
    size_t n = kv_service_methods(&svc, methods);
    struct rpc_server *server = rpc_server_new(addr, methods, n, 4, errbuf, sizeof errbuf);
    if (server)
        rpc_server_set_metrics(server, metrics);
    struct status_server *status = NULL;
    struct status_server_config scfg = {
        .addr = status_addr, .metrics = metrics, .data_dir = data_dir, .mode = "standalone"};
    if (!server || rpc_server_start(server) != 0 ||
        status_server_start(&scfg, &status, errbuf, sizeof errbuf) != 0) {
        fprintf(stderr, "tinykv-server: %s\n", errbuf[0] ? errbuf : "cannot start server");
        rpc_server_free(server);
        mvcc_engine_free(mvcc);
        storage_free(storage);
        disk_guard_destroy(&disk);
        metrics_free(metrics);
        return 1;
    }
    LOG(LOG_INFO, "standalone store serving on %s (port %d), data in %s", addr,
        rpc_server_port(server), data_dir);

    int sig;
    sigwait(&sigs, &sig);
    LOG(LOG_INFO, "signal %d: shutting down", sig);
    status_server_stop(status);
    rpc_server_free(server);
    mvcc_engine_free(mvcc);
    storage_free(storage);
    disk_guard_destroy(&disk);
    metrics_free(metrics);
    LOG(LOG_INFO, "stopped");
    return 0;
}

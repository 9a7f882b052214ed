/* server_main.c — tinykv-server: one store serving the TinyKv gRPC API. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics/metrics.h"
#include "proto/log.h"
#include "proto/rpc.h"
#include "proto/version.h"
#include "store/engine.h"
#include "mvcc/mvcc.h"
#include "server/kv_service.h"
#include "server/node.h"
#include "server/status_server.h"

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
            "  --log-level LEVEL      error, warn, info or debug (default info)\n"
            "  --help                 this text\n"
            "  --version              print the version\n");
}

/* Cluster mode: a node joined to the scheduler, until a signal. */
static int run_cluster(const char *addr, const char *advertise, const char *data_dir,
                       const char *scheduler, int tick_ms, const char *status_addr,
                       struct metrics *metrics, sigset_t *sigs)
{
    struct node_config cfg = {
        .addr = addr,
        .advertise_addr = advertise,
        .data_dir = data_dir,
        .scheduler = scheduler,
        .tick_ms = tick_ms,
        .metrics = metrics,
    };
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
        int rc =
            run_cluster(addr, advertise, data_dir, scheduler, tick_ms, status_addr, metrics, &sigs);
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
    struct kv_service svc = {.storage = storage, .mvcc = mvcc, .metrics = metrics};
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
    metrics_free(metrics);
    LOG(LOG_INFO, "stopped");
    return 0;
}

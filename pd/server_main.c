/* server_main.c — tinyscheduler-server: opens the cluster state, serves the admin API, ticks. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "metrics/metrics.h"
#include "pd/pd.h"
#include "proto/log.h"
#include "proto/rpc.h"

#define VERSION "0.1.0"

struct server_args {
    const char *addr;
    const char *http_addr;
    const char *data_dir;
    const char *admin_token;
    int log_level;
    long tick_ms;
};

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: tinyscheduler-server [options]\n"
        "  --addr HOST:PORT        gRPC address of the schedulerpb.Scheduler service\n"
        "                          (default 127.0.0.1:2379)\n"
        "  --http-addr HOST:PORT   HTTP/JSON admin API address (default 127.0.0.1:2378)\n"
        "  --data-dir DIR          where the cluster state lives (default ./tinyscheduler-data)\n"
        "  --log-level LEVEL       error, warn, info (default) or debug\n"
        "  --admin-token T         require \"Authorization: Bearer T\" on mutating HTTP calls\n"
        "                          (or set TINYSCHEDULER_ADMIN_TOKEN)\n"
        "  --schedule-interval-ms N  time between scheduling rounds (default 1000)\n"
        "  --help                  this text\n"
        "  --version               print the version\n");
}

/* parse_args: 0 to run, 1 to exit successfully (help/version), 2 on a usage error. */
static int parse_args(int argc, char **argv, struct server_args *a)
{
    static const struct option opts[] = {
        {"addr", required_argument, NULL, 'a'},
        {"http-addr", required_argument, NULL, 'H'},
        {"data-dir", required_argument, NULL, 'd'},
        {"log-level", required_argument, NULL, 'l'},
        {"admin-token", required_argument, NULL, 't'},
        {"schedule-interval-ms", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    a->addr = "127.0.0.1:2379";
    a->http_addr = "127.0.0.1:2378";
    a->data_dir = "tinyscheduler-data";
    a->admin_token = getenv("TINYSCHEDULER_ADMIN_TOKEN");
    a->log_level = LOG_INFO;
    a->tick_ms = 1000;
    int ch;
    char *end;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'a':
            a->addr = optarg;
            break;
        case 'H':
            a->http_addr = optarg;
            break;
        case 'd':
            a->data_dir = optarg;
            break;
        case 't':
            a->admin_token = optarg;
            break;
        case 'l':
            if ((a->log_level = log_level_parse(optarg)) < 0) {
                fprintf(stderr, "tinyscheduler-server: unknown log level \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'i':
            errno = 0;
            a->tick_ms = strtol(optarg, &end, 10);
            if (errno || *end || a->tick_ms < 10 || a->tick_ms > 3600000) {
                fprintf(stderr, "tinyscheduler-server: --schedule-interval-ms wants 10..3600000\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 1;
        case 'V':
            printf("tinyscheduler-server %s\n", VERSION);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tinyscheduler-server: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct server_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    log_current_level = a.log_level;

    /* Signals are taken synchronously by the main loop; block them before any thread starts so
     * every thread inherits the mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    rpc_process_hold();

    if (mkdir(a.data_dir, 0755) != 0 && errno != EEXIST) {
        LOG(LOG_ERROR, "cannot create data dir %s: %s", a.data_dir, strerror(errno));
        return 1;
    }
    struct pd_options opts = {0};
    opts.data_dir = a.data_dir;
    /* One registry for the process; freed after the services counting in it have stopped. */
    struct metrics *metrics = metrics_new();
    if (metrics == NULL) {
        LOG(LOG_ERROR, "out of memory");
        return 1;
    }
    opts.metrics = metrics;
    struct pd_cluster *c = NULL;
    struct pd_http *http = NULL;
    struct pd_grpc *grpc = NULL;
    char err[512];
    int exit_code = 1;
    rc = pd_cluster_open(&opts, &c, err, sizeof err);
    if (rc != PD_OK) {
        LOG(LOG_ERROR, "cannot open cluster state in %s: %s", a.data_dir, err);
        goto cleanup;
    }
    LOG(LOG_INFO, "cluster %llu (%s) in %s; gRPC on %s", (unsigned long long)pd_cluster_id(c),
        pd_cluster_is_bootstrapped(c) ? "bootstrapped" : "not bootstrapped", a.data_dir, a.addr);
    rc = pd_grpc_start(c, a.addr, &grpc, err, sizeof err);
    if (rc != PD_OK) {
        LOG(LOG_ERROR, "cannot start the gRPC service: %s", err);
        goto cleanup;
    }
    rc = pd_http_start(c, a.http_addr, a.admin_token, a.addr, &http, err, sizeof err);
    if (rc != PD_OK) {
        LOG(LOG_ERROR, "cannot start the HTTP API: %s", err);
        goto cleanup;
    }
    LOG(LOG_INFO, "tinyscheduler-server %s ready", VERSION);
    for (;;) {
        struct timespec wait = {a.tick_ms / 1000, (a.tick_ms % 1000) * 1000000};
        int sig = sigtimedwait(&stop, NULL, &wait);
        if (sig == SIGTERM || sig == SIGINT) {
            LOG(LOG_INFO, "signal %d: shutting down", sig);
            break;
        }
        if (sig < 0 && errno != EAGAIN && errno != EINTR) {
            LOG(LOG_ERROR, "sigtimedwait: %s", strerror(errno));
            break;
        }
        size_t made = 0;
        rc = pd_cluster_tick(c, &made);
        if (rc != PD_OK)
            LOG(LOG_WARN, "scheduling round failed: %s", pd_strerror(rc));
        else if (made)
            LOG(LOG_DEBUG, "scheduling round created %zu operators", made);
    }
    exit_code = 0;
cleanup:
    pd_grpc_stop(grpc);
    pd_http_stop(http);
    pd_cluster_close(c);
    metrics_free(metrics);
    if (exit_code == 0)
        LOG(LOG_INFO, "stopped");
    return exit_code;
}

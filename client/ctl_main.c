/* ctl_main.c — tinykv-ctl: a command-line client for a TinyKV store. */
#include <ctype.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/ctl_admin.h"
#include "client/client.h"
#include "kvrpcpb.pb-c.h"
#include "proto/rpc.h"
#include "proto/version.h"

struct ctl {
    struct rpc_client *rpc;
    const char *addr;
    const char *pd; /* raw commands route through the cluster's scheduler when set */
    const char *cf;
    int hex;
    int timeout_ms;
    uint32_t limit;
    long bench_ops;
    int bench_threads;
    long bench_value_size;
    struct ctl_admin_options admin;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tinykv-ctl [options] raw get KEY\n"
            "       tinykv-ctl [options] raw put KEY VALUE\n"
            "       tinykv-ctl [options] raw delete KEY\n"
            "       tinykv-ctl [options] raw scan [START_KEY] [--limit N]\n"
            "       tinykv-ctl [options] bench raw [--ops N] [--threads T] [--value-size B]\n");
    ctl_admin_usage(out);
    fprintf(out,
            "\n"
            "  --addr HOST:PORT   the store to talk to (default 127.0.0.1:20160)\n"
            "  --pd HOST:PORT     raw commands: ask the cluster's scheduler where each key\n"
            "                     lives and follow its region's leader (default $TINYKV_PD;\n"
            "                     without it they go to --addr)\n"
            "  --cf CF            column family: default, lock or write (default: default)\n"
            "  --hex              keys and values are given and printed as hex\n"
            "  --limit N          most pairs a scan prints (default 100); region list: most\n"
            "                     regions a page shows (default all)\n"
            "  --start KEY        region list: start at the region holding KEY\n"
            "  --timeout MS       deadline of each call (default 5000)\n"
            "  --ops N            bench: operations per phase (default 20000)\n"
            "  --threads T        bench: concurrent clients (default 4)\n"
            "  --value-size B     bench: bytes per value (default 100)\n"
            "  --pd-http HOST:PORT  admin: the scheduler's HTTP API (default $TINYKV_PD_HTTP,\n"
            "                     else 127.0.0.1:2378)\n"
            "  --json             admin: print the API's JSON instead of tables\n"
            "  --token T          admin: bearer token for changes (--admin-token of the\n"
            "                     scheduler)\n"
            "  --help, --version\n"
            "\n"
            "Values print as they are when printable, else with \\xNN escapes.\n"
            "Exit status: 0 ok, 1 not found or the store (or the admin API) reported an\n"
            "error, 2 usage, 3 the store (or the scheduler) could not be reached.\n");
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes an argument into *out (malloc'd); hex when asked. Returns 0 or -1. */
static int decode_arg(const struct ctl *ctl, const char *arg, ProtobufCBinaryData *out)
{
    size_t len = strlen(arg);
    if (!ctl->hex) {
        out->data = (uint8_t *)strdup(arg);
        out->len = len;
        return out->data ? 0 : -1;
    }
    if (len % 2)
        return -1;
    out->data = malloc(len / 2 + 1);
    if (!out->data)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hexval(arg[2 * i]), lo = hexval(arg[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(out->data);
            return -1;
        }
        out->data[i] = (uint8_t)(hi << 4 | lo);
    }
    out->len = len / 2;
    return 0;
}

static void print_bytes(const struct ctl *ctl, const ProtobufCBinaryData *b)
{
    for (size_t i = 0; i < b->len; i++) {
        uint8_t c = b->data[i];
        if (ctl->hex)
            printf("%02x", c);
        else if (c == '\\')
            fputs("\\\\", stdout);
        else if (isprint(c))
            putchar(c);
        else
            printf("\\x%02x", c);
    }
}

/* Prints a response's region error; returns 1 if there was one. */
static int region_failed(const Errorpb__Error *e)
{
    if (!e)
        return 0;
    if (e->not_leader && e->not_leader->leader)
        fprintf(stderr,
                "tinykv-ctl: this store is not the region's leader; its leader is on store %llu\n",
                (unsigned long long)e->not_leader->leader->store_id);
    else if (e->not_leader)
        fprintf(stderr, "tinykv-ctl: this store is not the region's leader (leader unknown yet)\n");
    else if (e->undetermined)
        fprintf(stderr, "tinykv-ctl: outcome undetermined (the write may or may not apply): %s\n",
                e->message ? e->message : "");
    else
        fprintf(stderr, "tinykv-ctl: region error: %s\n", e->message ? e->message : "unknown");
    return 1;
}

static int call_failed(const struct rpc_error *err, int rc)
{
    fprintf(stderr, "tinykv-ctl: %s: %s\n", rpc_strerror(rc), err->msg);
    return 3;
}

static int raw_get(struct ctl *ctl, const ProtobufCBinaryData *key)
{
    Kvrpcpb__RawGetRequest req = KVRPCPB__RAW_GET_REQUEST__INIT;
    req.key = *key;
    req.cf = (char *)ctl->cf;
    ProtobufCMessage *m;
    struct rpc_error err;
    int rc = rpc_client_unary(ctl->rpc, ctl->addr, "/tinykvpb.TinyKv/RawGet", &req.base,
                              &kvrpcpb__raw_get_response__descriptor, &m, ctl->timeout_ms, &err);
    if (rc)
        return call_failed(&err, rc);
    Kvrpcpb__RawGetResponse *resp = (Kvrpcpb__RawGetResponse *)m;
    int status = 0;
    if (region_failed(resp->region_error)) {
        status = 1;
    } else if (resp->error && resp->error[0]) {
        fprintf(stderr, "tinykv-ctl: %s\n", resp->error);
        status = 1;
    } else if (resp->not_found) {
        fprintf(stderr, "tinykv-ctl: not found\n");
        status = 1;
    } else {
        print_bytes(ctl, &resp->value);
        putchar('\n');
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return status;
}

/* Put (value non-NULL) or delete. */
static int raw_modify(struct ctl *ctl, const ProtobufCBinaryData *key,
                      const ProtobufCBinaryData *value)
{
    ProtobufCMessage *m;
    struct rpc_error err;
    int rc;
    if (value) {
        Kvrpcpb__RawPutRequest req = KVRPCPB__RAW_PUT_REQUEST__INIT;
        req.key = *key;
        req.value = *value;
        req.cf = (char *)ctl->cf;
        rc = rpc_client_unary(ctl->rpc, ctl->addr, "/tinykvpb.TinyKv/RawPut", &req.base,
                              &kvrpcpb__raw_put_response__descriptor, &m, ctl->timeout_ms, &err);
    } else {
        Kvrpcpb__RawDeleteRequest req = KVRPCPB__RAW_DELETE_REQUEST__INIT;
        req.key = *key;
        req.cf = (char *)ctl->cf;
        rc = rpc_client_unary(ctl->rpc, ctl->addr, "/tinykvpb.TinyKv/RawDelete", &req.base,
                              &kvrpcpb__raw_delete_response__descriptor, &m, ctl->timeout_ms, &err);
    }
    if (rc)
        return call_failed(&err, rc);
    /* Put and delete responses share their layout: region_error, error. */
    const char *error =
        value ? ((Kvrpcpb__RawPutResponse *)m)->error : ((Kvrpcpb__RawDeleteResponse *)m)->error;
    const Errorpb__Error *region_error = value ? ((Kvrpcpb__RawPutResponse *)m)->region_error
                                               : ((Kvrpcpb__RawDeleteResponse *)m)->region_error;
    int status = 0;
    if (region_failed(region_error)) {
        status = 1;
    } else if (error && error[0]) {
        fprintf(stderr, "tinykv-ctl: %s\n", error);
        status = 1;
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return status;
}

static int raw_scan(struct ctl *ctl, const ProtobufCBinaryData *start)
{
    Kvrpcpb__RawScanRequest req = KVRPCPB__RAW_SCAN_REQUEST__INIT;
    req.start_key = *start;
    req.limit = ctl->limit;
    req.cf = (char *)ctl->cf;
    ProtobufCMessage *m;
    struct rpc_error err;
    int rc = rpc_client_unary(ctl->rpc, ctl->addr, "/tinykvpb.TinyKv/RawScan", &req.base,
                              &kvrpcpb__raw_scan_response__descriptor, &m, ctl->timeout_ms, &err);
    if (rc)
        return call_failed(&err, rc);
    Kvrpcpb__RawScanResponse *resp = (Kvrpcpb__RawScanResponse *)m;
    int status = 0;
    if (region_failed(resp->region_error)) {
        status = 1;
    } else if (resp->error && resp->error[0]) {
        fprintf(stderr, "tinykv-ctl: %s\n", resp->error);
        status = 1;
    }
    for (size_t i = 0; i < resp->n_kvs; i++) {
        print_bytes(ctl, &resp->kvs[i]->key);
        putchar('\t');
        print_bytes(ctl, &resp->kvs[i]->value);
        putchar('\n');
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return status;
}

/* Exit status for a client library error. */
static int routed_failed(int rc)
{
    fprintf(stderr, "tinykv-ctl: %s\n", client_strerror(rc));
    return rc == CLIENT_ERR_UNAVAILABLE || rc == CLIENT_ERR_TIMEOUT ? 3 : 1;
}

/* Raw commands through the client library: routed by region, following leaders. */
static int run_raw_routed(struct ctl *ctl, const char *verb, const ProtobufCBinaryData *a,
                          const ProtobufCBinaryData *b)
{
    struct client_options opts = {.timeout_ms = ctl->timeout_ms};
    struct client *c;
    char err[256];
    if (client_new(ctl->pd, &opts, &c, err, sizeof err) != 0) {
        fprintf(stderr, "tinykv-ctl: %s\n", err);
        return 3;
    }
    int rc, status = 0;
    if (strcmp(verb, "get") == 0) {
        void *v;
        size_t len;
        rc = client_raw_get(c, ctl->cf, a->data, a->len, &v, &len);
        if (rc == CLIENT_ERR_NOT_FOUND) {
            fprintf(stderr, "tinykv-ctl: not found\n");
            status = 1;
        } else if (rc) {
            status = routed_failed(rc);
        } else {
            print_bytes(ctl, &(ProtobufCBinaryData){len, v});
            putchar('\n');
            free(v);
        }
    } else if (strcmp(verb, "put") == 0 || strcmp(verb, "delete") == 0) {
        rc = b ? client_raw_put(c, ctl->cf, a->data, a->len, b->data, b->len)
               : client_raw_delete(c, ctl->cf, a->data, a->len);
        if (rc)
            status = routed_failed(rc);
    } else {
        struct client_kv *kvs;
        size_t n;
        rc = client_raw_scan(c, ctl->cf, a->data, a->len, NULL, 0, ctl->limit, &kvs, &n);
        if (rc) {
            status = routed_failed(rc);
        } else {
            for (size_t i = 0; i < n; i++) {
                print_bytes(ctl, &(ProtobufCBinaryData){kvs[i].key_len, kvs[i].key});
                putchar('\t');
                print_bytes(ctl, &(ProtobufCBinaryData){kvs[i].value_len, kvs[i].value});
                putchar('\n');
            }
            client_kvs_free(kvs, n);
        }
    }
    client_free(c);
    return status;
}

static int run_raw(struct ctl *ctl, int argc, char **argv)
{
    if (argc < 1) {
        usage(stderr);
        return 2;
    }
    const char *verb = argv[0];
    int want = strcmp(verb, "put") == 0 ? 3 : strcmp(verb, "scan") == 0 ? -1 : 2;
    if (strcmp(verb, "get") && strcmp(verb, "put") && strcmp(verb, "delete") &&
        strcmp(verb, "scan")) {
        fprintf(stderr, "tinykv-ctl: unknown raw command '%s'\n", verb);
        return 2;
    }
    if ((want > 0 && argc != want) || (want < 0 && argc > 2)) {
        usage(stderr);
        return 2;
    }
    ProtobufCBinaryData a = {0, NULL}, b = {0, NULL};
    if ((argc > 1 && decode_arg(ctl, argv[1], &a) != 0) ||
        (argc > 2 && decode_arg(ctl, argv[2], &b) != 0)) {
        fprintf(stderr, "tinykv-ctl: bad hex argument\n");
        free(a.data);
        return 2;
    }
    int rc;
    if (ctl->pd)
        rc = run_raw_routed(ctl, verb, &a, strcmp(verb, "put") == 0 ? &b : NULL);
    else if (strcmp(verb, "get") == 0)
        rc = raw_get(ctl, &a);
    else if (strcmp(verb, "put") == 0)
        rc = raw_modify(ctl, &a, &b);
    else if (strcmp(verb, "delete") == 0)
        rc = raw_modify(ctl, &a, NULL);
    else
        rc = raw_scan(ctl, &a);
    free(a.data);
    free(b.data);
    return rc;
}

/* What the workers of one phase share with the thread drawing the progress line. */
struct bench_progress {
    _Atomic long done;       /* operations finished, by every worker */
    _Atomic int workers_out; /* workers that have returned */
};

struct bench_worker {
    struct ctl *ctl;
    int put; /* 1: RawPut phase, 0: RawGet phase */
    long first, count;
    uint64_t *lat_us; /* count entries */
    long errors;
    struct bench_progress *progress;
    struct timespec end; /* when the worker finished: the phase ends with its last worker */
    pthread_t thread;
};

static void *bench_run(void *arg)
{
    struct bench_worker *w = arg;
    struct ctl *ctl = w->ctl;
    uint8_t *value = malloc((size_t)ctl->bench_value_size + 1);
    if (!value) {
        w->errors = w->count;
        clock_gettime(CLOCK_MONOTONIC, &w->end);
        atomic_fetch_add(&w->progress->workers_out, 1);
        return NULL;
    }
    memset(value, 'v', (size_t)ctl->bench_value_size);
    for (long i = 0; i < w->count; i++) {
        char key[32];
        int klen = snprintf(key, sizeof key, "bench-%010ld", w->first + i);
        ProtobufCBinaryData k = {(size_t)klen, (uint8_t *)key};
        ProtobufCMessage *m = NULL;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int rc;
        if (w->put) {
            Kvrpcpb__RawPutRequest req = KVRPCPB__RAW_PUT_REQUEST__INIT;
            req.key = k;
            req.value = (ProtobufCBinaryData){(size_t)ctl->bench_value_size, value};
            rc =
                rpc_client_unary(ctl->rpc, ctl->addr, "/tinykvpb.TinyKv/RawPut", &req.base,
                                 &kvrpcpb__raw_put_response__descriptor, &m, ctl->timeout_ms, NULL);
            if (!rc && ((Kvrpcpb__RawPutResponse *)m)->error &&
                ((Kvrpcpb__RawPutResponse *)m)->error[0])
                rc = -1;
        } else {
            Kvrpcpb__RawGetRequest req = KVRPCPB__RAW_GET_REQUEST__INIT;
            req.key = k;
            rc =
                rpc_client_unary(ctl->rpc, ctl->addr, "/tinykvpb.TinyKv/RawGet", &req.base,
                                 &kvrpcpb__raw_get_response__descriptor, &m, ctl->timeout_ms, NULL);
            if (!rc && ((Kvrpcpb__RawGetResponse *)m)->not_found)
                rc = -1;
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        w->lat_us[i] = (uint64_t)((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000);
        if (rc)
            w->errors++;
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        atomic_fetch_add_explicit(&w->progress->done, 1, memory_order_relaxed);
    }
    free(value);
    clock_gettime(CLOCK_MONOTONIC, &w->end);
    atomic_fetch_add(&w->progress->workers_out, 1);
    return NULL;
}

static double since_s(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) + (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

/* On a terminal, draws one line with the phase's progress at once and every 200 ms until every
 * worker has returned, then clears it; elsewhere (a pipe, a file) prints nothing, so logs hold only
 * the summary lines. */
static void bench_wait(struct bench_progress *p, int workers, long total, const char *phase,
                       const struct timespec *start)
{
    int tty = isatty(STDOUT_FILENO);
    for (;;) {
        int finished = atomic_load(&p->workers_out) >= workers;
        if (tty) {
            long done = atomic_load_explicit(&p->done, memory_order_relaxed);
            double secs = since_s(start);
            printf("\r\033[Kraw %-4s %ld/%ld ops (%.0f%%)  %.0f ops/s  %.1f s", phase, done, total,
                   total ? 100.0 * (double)done / (double)total : 100.0,
                   secs > 0 ? done / secs : 0.0, secs);
            fflush(stdout);
        }
        if (finished)
            break;
        struct timespec tick = {0, 200 * 1000000L};
        nanosleep(&tick, NULL);
    }
    if (tty) {
        printf("\r\033[K");
        fflush(stdout);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs one phase across the worker threads and prints its figures. */
static int bench_phase(struct ctl *ctl, int put)
{
    int t = ctl->bench_threads;
    long per = ctl->bench_ops / t;
    struct bench_worker *w = calloc((size_t)t, sizeof *w);
    uint64_t *lat = calloc((size_t)(per * t) + 1, sizeof *lat);
    if (!w || !lat) {
        free(w);
        free(lat);
        return 1;
    }
    struct timespec a, b;
    struct bench_progress progress = {0};
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < t; i++) {
        w[i] = (struct bench_worker){.ctl = ctl,
                                     .put = put,
                                     .first = i * per,
                                     .count = per,
                                     .lat_us = lat + i * per,
                                     .progress = &progress};
        if (pthread_create(&w[i].thread, NULL, bench_run, &w[i]) != 0) {
            fprintf(stderr, "tinykv-ctl: cannot start bench thread %d\n", i);
            exit(1);
        }
    }
    bench_wait(&progress, t, per * t, put ? "put" : "get", &a);
    long errors = 0;
    for (int i = 0; i < t; i++) {
        pthread_join(w[i].thread, NULL);
        errors += w[i].errors;
    }
    /* Timed to the last worker's end, not to when the progress loop noticed it. */
    b = w[0].end;
    for (int i = 1; i < t; i++)
        if (w[i].end.tv_sec > b.tv_sec ||
            (w[i].end.tv_sec == b.tv_sec && w[i].end.tv_nsec > b.tv_nsec))
            b = w[i].end;
    double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    long n = per * t;
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
    printf("raw %-4s ops=%ld threads=%d value=%ldB  %.0f ops/s  p50=%.2fms p99=%.2fms "
           "max=%.2fms errors=%ld\n",
           put ? "put" : "get", n, t, ctl->bench_value_size, n / secs, n ? lat[n / 2] / 1000.0 : 0,
           n ? lat[n * 99 / 100] / 1000.0 : 0, n ? lat[n - 1] / 1000.0 : 0, errors);
    free(w);
    free(lat);
    return errors ? 1 : 0;
}

static int run_bench(struct ctl *ctl, int argc, char **argv)
{
    if (argc != 1 || strcmp(argv[0], "raw") != 0) {
        usage(stderr);
        return 2;
    }
    if (ctl->bench_threads < 1 || ctl->bench_ops < ctl->bench_threads ||
        ctl->bench_value_size < 0 || ctl->bench_value_size > 8 * 1024 * 1024) {
        fprintf(stderr, "tinykv-ctl: bad bench parameters\n");
        return 2;
    }
    int rc = bench_phase(ctl, 1);
    rc |= bench_phase(ctl, 0);
    return rc;
}

int main(int argc, char **argv)
{
    struct ctl ctl = {
        .addr = "127.0.0.1:20160",
        .cf = "",
        .timeout_ms = 5000,
        .limit = 100,
        .bench_ops = 20000,
        .bench_threads = 4,
        .bench_value_size = 100,
    };
    static const struct option opts[] = {
        {"addr", required_argument, NULL, 'a'},
        {"pd", required_argument, NULL, 'D'},
        {"cf", required_argument, NULL, 'c'},
        {"hex", no_argument, NULL, 'x'},
        {"limit", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'v'},
        {"ops", required_argument, NULL, 'o'},
        {"threads", required_argument, NULL, 'T'},
        {"value-size", required_argument, NULL, 'V'},
        {"pd-http", required_argument, NULL, 'P'}, /* admin subcommands (ctl_admin.h) */
        {"json", no_argument, NULL, 'j'},
        {"token", required_argument, NULL, 'k'},
        {"start", required_argument, NULL, 'S'}, /* admin: region list's first key */
        {NULL, 0, NULL, 0},
    };
    int c;
    char *end;
    ctl.pd = getenv("TINYKV_PD") && getenv("TINYKV_PD")[0] ? getenv("TINYKV_PD") : NULL;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            ctl.addr = optarg;
            break;
        case 'D':
            ctl.pd = optarg;
            break;
        case 'c':
            ctl.cf = optarg;
            break;
        case 'x':
            ctl.hex = 1;
            break;
        case 'n':
            ctl.limit = (uint32_t)strtoul(optarg, &end, 10);
            if (*end || !optarg[0]) {
                fprintf(stderr, "tinykv-ctl: bad --limit '%s'\n", optarg);
                return 2;
            }
            ctl.admin.region_limit = ctl.limit; /* region list pages only when asked to */
            break;
        case 'S':
            ctl.admin.start_key = optarg;
            break;
        case 't':
            ctl.timeout_ms = (int)strtol(optarg, &end, 10);
            if (*end || ctl.timeout_ms <= 0) {
                fprintf(stderr, "tinykv-ctl: bad --timeout '%s'\n", optarg);
                return 2;
            }
            break;
        case 'o':
        case 'T':
        case 'V': {
            long v = strtol(optarg, &end, 10);
            if (*end || !optarg[0] || v < 0) {
                fprintf(stderr, "tinykv-ctl: bad number '%s'\n", optarg);
                return 2;
            }
            if (c == 'o')
                ctl.bench_ops = v;
            else if (c == 'T')
                ctl.bench_threads = (int)v;
            else
                ctl.bench_value_size = v;
            break;
        }
        case 'P':
            ctl.admin.pd_http = optarg;
            break;
        case 'j':
            ctl.admin.json = true;
            break;
        case 'k':
            ctl.admin.token = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'v':
            printf("tinykv-ctl %s\n", TINYKV_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    if (ctl_admin_is_command(argv[optind])) {
        ctl.admin.hex = ctl.hex;
        ctl.admin.timeout_ms = ctl.timeout_ms;
        return ctl_admin_run(&ctl.admin, argc - optind, argv + optind);
    }
    int is_bench = strcmp(argv[optind], "bench") == 0;
    if (!is_bench && strcmp(argv[optind], "raw") != 0) {
        fprintf(stderr, "tinykv-ctl: unknown command '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    ctl.rpc = rpc_client_new();
    if (!ctl.rpc)
        return 3;
    int rc = is_bench ? run_bench(&ctl, argc - optind - 1, argv + optind + 1)
                      : run_raw(&ctl, argc - optind - 1, argv + optind + 1);
    rpc_client_free(ctl.rpc);
    return rc;
}

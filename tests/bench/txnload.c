/* txnload.c — one-key transactional writes beside raw puts, both through the client library
 * (tests/bench_etcd.py).
 *
 * N threads, each with one operation in flight, for a fixed time: `--mode txn` runs
 * begin + put + commit of one key (one-phase commit: a start ts, then one prewrite in which the
 * store takes the commit ts and writes), `--mode txn2pc` the same in two phases (the client's
 * two_phase_only: two timestamps, a prewrite and a commit), `--mode raw` a RawPut of the same
 * key and value. The ratios say what the transaction protocol costs over the raw write path.
 *
 *   txnload --pd HOST:PORT --mode txn|txn2pc|raw --threads N --seconds S [--value-size B]
 *           [--keys K]
 *
 * Output, one line: "txnload mode=.. threads=N ops=.. errors=.. conflicts=.. rps=.. p50_ms=..
 * p99_ms=.. tso_round_trips=.. tso_timestamps=.." (the last two over the whole run, warm-up
 * included: how well the client batched its timestamps). Write conflicts (keys are drawn at random
 * from K, so two transactions sometimes meet) count apart from other errors; neither is in the
 * latency figures. Exit status 0 when some operation succeeded, 1 otherwise, 2 on bad arguments.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "tests/bench/latency.h"

struct shared {
    struct client *client;
    int txn;
    size_t value_size;
    int keys;
    uint64_t start_ns, end_ns;
};

struct worker {
    struct shared *sh;
    pthread_t thread;
    unsigned seed;
    struct latencies lat;
    uint64_t errors, conflicts;
};

static int one_op(struct shared *sh, const char *key, const uint8_t *value)
{
    if (!sh->txn)
        return client_raw_put(sh->client, "", key, strlen(key), value, sh->value_size);
    struct client_txn *txn;
    int rc = client_txn_begin(sh->client, &txn);
    if (rc)
        return rc;
    rc = client_txn_put(txn, key, strlen(key), value, sh->value_size);
    if (!rc)
        rc = client_txn_commit(txn, NULL);
    client_txn_free(txn);
    return rc;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    uint8_t *value = malloc(sh->value_size ? sh->value_size : 1);
    if (!value)
        return NULL;
    memset(value, 'v', sh->value_size);
    for (;;) {
        uint64_t t0 = bench_now_ns();
        if (t0 >= sh->end_ns)
            break;
        char key[32];
        snprintf(key, sizeof key, "txnbench-%08d", (int)(rand_r(&w->seed) % (unsigned)sh->keys));
        int rc = one_op(sh, key, value);
        uint64_t t1 = bench_now_ns();
        if (t0 < sh->start_ns || t1 > sh->end_ns)
            continue; /* warm-up, or ended past the window */
        if (rc) {
            if (rc == CLIENT_ERR_CONFLICT)
                w->conflicts++;
            else
                w->errors++;
            continue;
        }
        if (latencies_add(&w->lat, t1 - t0) != 0)
            break;
    }
    free(value);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *pd = NULL;
    int txn = -1, two_phase = 0, threads = 1, keys = 100000;
    double seconds = 5, warmup = 1;
    size_t value_size = 100;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--pd"))
            pd = v;
        else if (!strcmp(a, "--mode") &&
                 (!strcmp(v, "txn") || !strcmp(v, "txn2pc") || !strcmp(v, "raw"))) {
            txn = strcmp(v, "raw") != 0;
            two_phase = !strcmp(v, "txn2pc");
        } else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(a, "--value-size"))
            value_size = (size_t)atol(v);
        else if (!strcmp(a, "--keys"))
            keys = atoi(v);
        else
            txn = -2;
    }
    if (!pd || txn < 0 || threads < 1 || threads > 1024 || seconds <= 0 || keys < 1 ||
        value_size > (1u << 20)) {
        fprintf(stderr, "usage: txnload --pd HOST:PORT --mode txn|txn2pc|raw --threads N "
                        "--seconds S [--value-size B] [--keys K]\n");
        return 2;
    }
    struct shared sh = {.txn = txn, .value_size = value_size, .keys = keys};
    char err[256];
    struct client_options opts = {.two_phase_only = two_phase};
    if (client_new(pd, &opts, &sh.client, err, sizeof err) != 0) {
        fprintf(stderr, "txnload: %s\n", err);
        return 1;
    }
    struct worker *ws = calloc((size_t)threads, sizeof *ws);
    if (!ws)
        return 1;
    sh.start_ns = bench_now_ns() + (uint64_t)(warmup * 1e9);
    sh.end_ns = sh.start_ns + (uint64_t)(seconds * 1e9);
    int started = 0;
    for (int i = 0; i < threads; i++) {
        ws[i] = (struct worker){.sh = &sh, .seed = 7919u * (unsigned)i + 1};
        if (pthread_create(&ws[i].thread, NULL, run, &ws[i]) != 0)
            break;
        started++;
    }
    struct latencies all = {0};
    uint64_t errors = 0, conflicts = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i].thread, NULL);
        errors += ws[i].errors;
        conflicts += ws[i].conflicts;
        if (latencies_take(&all, &ws[i].lat) != 0)
            latencies_free(&ws[i].lat);
    }
    size_t total = all.n;
    struct client_stats st;
    client_stats_get(sh.client, &st);
    double p50, p99;
    latencies_percentiles(&all, &p50, &p99);
    printf("txnload mode=%s threads=%d ops=%zu errors=%llu conflicts=%llu rps=%.0f p50_ms=%.2f "
           "p99_ms=%.2f tso_round_trips=%llu tso_timestamps=%llu\n",
           !txn        ? "raw"
           : two_phase ? "txn2pc"
                       : "txn",
           started, total, (unsigned long long)errors, (unsigned long long)conflicts,
           (double)total / seconds, p50, p99, (unsigned long long)st.tso_round_trips,
           (unsigned long long)st.tso_timestamps);
    latencies_free(&all);
    free(ws);
    client_free(sh.client);
    return total ? 0 : 1;
}

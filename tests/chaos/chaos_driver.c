/* chaos_driver.c — transactional workloads of the chaos suite, through the client library, printing
 * their histories.
 *
 * What it owns: a client (client/), worker threads for a bounded time, and
 * the history lines it prints: one JSON object per completed operation on
 * stdout, {"p":worker,"f":name,"t0":ms,"t1":ms,"type":"ok"|"fail"|"info",...}
 * with t0/t1 the wall clock (ms) at invocation and completion. "fail" means
 * certainly not applied, "info" that it may or may not have applied
 * (CLIENT_ERR_UNDETERMINED).
 *
 * Who calls it: tests/chaos/workloads.py, which checks the history
 * (tests/chaos/checkers.py).
 *
 * What it must never do: retry an operation on its own (a retry would hide
 * an undetermined outcome), or run past --duration plus one client timeout.
 *
 * Workloads:
 *   bank       accounts PREFIX00.., each starting at 100; transfers of 1..5
 *              between two accounts (refused when the balance is short) and
 *              snapshot reads of every account ("read", with the balances).
 *   monotonic  a counter KEY; "inc" reads and increments it in one
 *              transaction (value: the new value), "read" reads it.
 *   longfork   keys PREFIX<group>/<slot>, 4 slots a group, each written once
 *              ("insert", value 1, by whoever takes the next slot); "read"
 *              reads a whole recent group (value: [0|1 per slot]). Under
 *              snapshot isolation two reads of a group never each see an
 *              insert the other misses.
 */
#include <getopt.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"

struct driver {
    struct client *c;
    const char *workload;
    const char *prefix;
    int accounts;
    int threads;
    int duration_ms;
    uint64_t seed;
    uint64_t stop_at_ms;
    pthread_mutex_t out_mu;
    atomic_long next_slot; /* longfork: the next key to insert */
};

#define LONGFORK_SLOTS 4

struct worker {
    struct driver *d;
    int id;
    uint64_t rng;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Prints one history line; `extra` is more JSON members (",\"k\":v..."), may be "". */
static void emit(struct driver *d, int p, const char *f, uint64_t t0, const char *type, int rc,
                 const char *extra)
{
    pthread_mutex_lock(&d->out_mu);
    printf("{\"p\":%d,\"f\":\"%s\",\"t0\":%llu,\"t1\":%llu,\"type\":\"%s\"%s", p, f,
           (unsigned long long)t0, (unsigned long long)now_ms(), type, extra);
    if (rc)
        printf(",\"err\":\"%s\"", client_strerror(rc));
    printf("}\n");
    fflush(stdout);
    pthread_mutex_unlock(&d->out_mu);
}

static void account_key(const struct driver *d, int i, char *buf, size_t len)
{
    snprintf(buf, len, "%s%02d", d->prefix, i);
}

/* Reads an integer value; 0 if absent (*found 0). Returns a client code. */
static int get_int(struct client_txn *t, const char *key, long *out, int *found)
{
    void *v = NULL;
    size_t len = 0;
    int rc = client_txn_get(t, key, strlen(key), &v, &len);
    *found = rc == 0;
    *out = 0;
    if (rc == CLIENT_ERR_NOT_FOUND)
        return 0;
    if (rc)
        return rc;
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)(len < 31 ? len : 31), (const char *)v);
    *out = strtol(buf, NULL, 10);
    free(v);
    return 0;
}

static int put_int(struct client_txn *t, const char *key, long v)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld", v);
    return client_txn_put(t, key, strlen(key), buf, (size_t)n);
}

/* The type of a commit's (or an earlier step's) outcome. */
static const char *outcome(int rc)
{
    return rc == 0 ? "ok" : rc == CLIENT_ERR_UNDETERMINED ? "info" : "fail";
}

/* Creates the accounts once (an earlier undetermined attempt may have done it). */
static int bank_init(struct driver *d)
{
    char key[64];
    account_key(d, 0, key, sizeof key);
    uint64_t deadline = now_ms() + 60000;
    while (now_ms() < deadline) {
        uint64_t t0 = now_ms();
        struct client_txn *t;
        int rc = client_txn_begin(d->c, &t);
        if (rc)
            continue;
        long v;
        int found;
        rc = get_int(t, key, &v, &found);
        if (rc == 0 && found) {
            client_txn_free(t);
            return 0;
        }
        for (int i = 0; rc == 0 && i < d->accounts; i++) {
            account_key(d, i, key, sizeof key);
            rc = put_int(t, key, 100);
        }
        if (rc == 0)
            rc = client_txn_commit(t, NULL);
        client_txn_free(t);
        emit(d, -1, "init", t0, outcome(rc), rc, "");
        account_key(d, 0, key, sizeof key);
        if (rc == 0)
            return 0;
    }
    return -1;
}

static void bank_transfer(struct worker *w)
{
    struct driver *d = w->d;
    int from = (int)(rng_next(&w->rng) % (uint64_t)d->accounts);
    int to = (int)(rng_next(&w->rng) % (uint64_t)(d->accounts - 1));
    if (to >= from)
        to++;
    long amount = (long)(rng_next(&w->rng) % 5) + 1;
    char kf[64], kt[64], extra[128];
    account_key(d, from, kf, sizeof kf);
    account_key(d, to, kt, sizeof kt);
    snprintf(extra, sizeof extra, ",\"from\":%d,\"to\":%d,\"amount\":%ld", from, to, amount);
    uint64_t t0 = now_ms();
    struct client_txn *t;
    int rc = client_txn_begin(d->c, &t);
    if (rc) {
        emit(d, w->id, "transfer", t0, "fail", rc, extra);
        return;
    }
    long bf, bt;
    int ff, ft;
    rc = get_int(t, kf, &bf, &ff);
    if (!rc)
        rc = get_int(t, kt, &bt, &ft);
    if (!rc && (!ff || !ft))
        rc = CLIENT_ERR_NOT_FOUND;
    if (!rc && bf < amount) {
        client_txn_free(t);
        emit(d, w->id, "transfer", t0, "fail", 0, ",\"short\":1");
        return;
    }
    if (!rc)
        rc = put_int(t, kf, bf - amount);
    if (!rc)
        rc = put_int(t, kt, bt + amount);
    if (!rc)
        rc = client_txn_commit(t, NULL);
    client_txn_free(t);
    emit(d, w->id, "transfer", t0, outcome(rc), rc, extra);
}

static void bank_read(struct worker *w)
{
    struct driver *d = w->d;
    uint64_t t0 = now_ms();
    struct client_txn *t;
    int rc = client_txn_begin(d->c, &t);
    if (rc) {
        emit(d, w->id, "read", t0, "fail", rc, "");
        return;
    }
    char extra[1024];
    size_t off = (size_t)snprintf(extra, sizeof extra, ",\"value\":[");
    for (int i = 0; i < d->accounts && !rc; i++) {
        char key[64];
        long v;
        int found;
        account_key(d, i, key, sizeof key);
        rc = get_int(t, key, &v, &found);
        if (!rc && off < sizeof extra - 32)
            off += (size_t)snprintf(extra + off, sizeof extra - off, "%s%ld", i ? "," : "",
                                    found ? v : -1000000);
    }
    snprintf(extra + off, sizeof extra - off, "]");
    client_txn_free(t);
    emit(d, w->id, "read", t0, rc ? "fail" : "ok", rc, rc ? "" : extra);
}

static void mono_inc(struct worker *w)
{
    struct driver *d = w->d;
    uint64_t t0 = now_ms();
    struct client_txn *t;
    int rc = client_txn_begin(d->c, &t);
    if (rc) {
        emit(d, w->id, "inc", t0, "fail", rc, "");
        return;
    }
    long v;
    int found;
    rc = get_int(t, d->prefix, &v, &found);
    if (!rc)
        rc = put_int(t, d->prefix, v + 1);
    if (!rc)
        rc = client_txn_commit(t, NULL);
    client_txn_free(t);
    char extra[64];
    snprintf(extra, sizeof extra, ",\"value\":%ld", v + 1);
    emit(d, w->id, "inc", t0, outcome(rc), rc, extra);
}

static void mono_read(struct worker *w)
{
    struct driver *d = w->d;
    uint64_t t0 = now_ms();
    struct client_txn *t;
    int rc = client_txn_begin(d->c, &t);
    long v = 0;
    int found;
    if (!rc) {
        rc = get_int(t, d->prefix, &v, &found);
        client_txn_free(t);
    }
    char extra[64];
    snprintf(extra, sizeof extra, ",\"value\":%ld", v);
    emit(d, w->id, "read", t0, rc ? "fail" : "ok", rc, rc ? "" : extra);
}

static void longfork_key(const struct driver *d, long group, int slot, char *buf, size_t len)
{
    snprintf(buf, len, "%s%ld/%d", d->prefix, group, slot);
}

static void longfork_insert(struct worker *w)
{
    struct driver *d = w->d;
    long k = atomic_fetch_add(&d->next_slot, 1);
    long group = k / LONGFORK_SLOTS;
    int slot = (int)(k % LONGFORK_SLOTS);
    char key[64], extra[64];
    longfork_key(d, group, slot, key, sizeof key);
    snprintf(extra, sizeof extra, ",\"group\":%ld,\"slot\":%d", group, slot);
    uint64_t t0 = now_ms();
    struct client_txn *t;
    int rc = client_txn_begin(d->c, &t);
    if (!rc) {
        rc = client_txn_put(t, key, strlen(key), "1", 1);
        if (!rc)
            rc = client_txn_commit(t, NULL);
        client_txn_free(t);
    }
    emit(d, w->id, "insert", t0, outcome(rc), rc, extra);
}

static void longfork_read(struct worker *w)
{
    struct driver *d = w->d;
    long cur = atomic_load(&d->next_slot) / LONGFORK_SLOTS;
    long group = cur - (long)(rng_next(&w->rng) % 3);
    if (group < 0)
        group = 0;
    uint64_t t0 = now_ms();
    struct client_txn *t = NULL;
    int rc = client_txn_begin(d->c, &t);
    char extra[128];
    size_t off = (size_t)snprintf(extra, sizeof extra, ",\"group\":%ld,\"value\":[", group);
    for (int i = 0; !rc && i < LONGFORK_SLOTS; i++) {
        char key[64];
        long v;
        int found;
        longfork_key(d, group, i, key, sizeof key);
        rc = get_int(t, key, &v, &found);
        off += (size_t)snprintf(extra + off, sizeof extra - off, "%s%d", i ? "," : "", found);
    }
    snprintf(extra + off, sizeof extra - off, "]");
    if (t)
        client_txn_free(t);
    emit(d, w->id, "read", t0, rc ? "fail" : "ok", rc, rc ? "" : extra);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const char *wl = w->d->workload;
    while (now_ms() < w->d->stop_at_ms) {
        /* Half the workers mostly write, the other half mostly read. */
        int write = (int)(rng_next(&w->rng) % 4) < (w->id % 2 ? 1 : 3);
        if (strcmp(wl, "bank") == 0)
            write ? bank_transfer(w) : bank_read(w);
        else if (strcmp(wl, "monotonic") == 0)
            write ? mono_inc(w) : mono_read(w);
        else
            write ? longfork_insert(w) : longfork_read(w);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct driver d = {
        .prefix = NULL, .accounts = 5, .threads = 4, .duration_ms = 10000, .seed = 1};
    const char *pd = NULL;
    int timeout_ms = 4000;
    static const struct option longopts[] = {
        {"pd", required_argument, NULL, 'p'},       {"prefix", required_argument, NULL, 'k'},
        {"accounts", required_argument, NULL, 'a'}, {"threads", required_argument, NULL, 't'},
        {"duration", required_argument, NULL, 'd'}, {"seed", required_argument, NULL, 's'},
        {"timeout", required_argument, NULL, 'o'},  {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'p':
            pd = optarg;
            break;
        case 'k':
            d.prefix = optarg;
            break;
        case 'a':
            d.accounts = atoi(optarg);
            break;
        case 't':
            d.threads = atoi(optarg);
            break;
        case 'd':
            d.duration_ms = (int)(atof(optarg) * 1000);
            break;
        case 's':
            d.seed = strtoull(optarg, NULL, 10);
            break;
        case 'o':
            timeout_ms = atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    if (optind >= argc || !pd || d.accounts < 2 || d.threads < 1 || d.threads > 64 ||
        (strcmp(argv[optind], "bank") != 0 && strcmp(argv[optind], "monotonic") != 0 &&
         strcmp(argv[optind], "longfork") != 0)) {
        fprintf(stderr, "usage: chaos_driver bank|monotonic|longfork --pd HOST:PORT [--prefix P] "
                        "[--accounts N] [--threads T] [--duration S] [--seed X] [--timeout MS]\n");
        return 2;
    }
    d.workload = argv[optind];
    if (!d.prefix)
        d.prefix = strcmp(d.workload, "bank") == 0        ? "bank/acct-"
                   : strcmp(d.workload, "monotonic") == 0 ? "mono/counter"
                                                          : "longfork/";
    pthread_mutex_init(&d.out_mu, NULL);
    struct client_options opts = {.timeout_ms = timeout_ms, .rpc_timeout_ms = timeout_ms / 2};
    char err[256];
    if (client_new(pd, &opts, &d.c, err, sizeof err) != 0) {
        fprintf(stderr, "chaos_driver: %s\n", err);
        return 1;
    }
    if (strcmp(d.workload, "bank") == 0 && bank_init(&d) != 0) {
        fprintf(stderr, "chaos_driver: could not create the accounts\n");
        client_free(d.c);
        return 1;
    }
    d.stop_at_ms = now_ms() + (uint64_t)d.duration_ms;
    struct worker w[64];
    pthread_t th[64];
    for (int i = 0; i < d.threads; i++) {
        w[i] = (struct worker){&d, i, (d.seed + 1) * 0x9e3779b97f4a7c15ULL + (uint64_t)i * 7919};
        if (!w[i].rng)
            w[i].rng = 1;
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < d.threads; i++)
        pthread_join(th[i], NULL);
    client_free(d.c);
    return 0;
}

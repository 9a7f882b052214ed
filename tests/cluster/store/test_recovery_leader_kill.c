/* test_recovery_leader_kill.c — writes through the client library across SIGKILLs of the leader
 * store (real scheduler and stores). */
/*
 * A real tinyscheduler-server and three tinykv-server processes (from
 * $BINDIR, default bin/). Writer threads share one long-lived client with the
 * mount's deadlines (5 s an operation, 2 s an attempt): two do raw puts, two
 * commit one-key transactions (what a file create through the mount does).
 * The store leading the region is SIGKILLed, later started again, three
 * times; each round prints how long after the kill each kind of write
 * succeeded again, and the longest single failed or successful call. No
 * time is asserted: each recovery is waited for within a generous bound.
 * RECOVERY_ROUNDS=N changes the number of kills (default 3).
 * Also checks that every acknowledged write is readable at the end.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/client.h"
#include "tests/lib/test_util.h"

#define STORES 3
#define RAW_WRITERS 2
#define TXN_WRITERS 2
#define WRITERS (RAW_WRITERS + TXN_WRITERS)
/* How long one recovery may take before the test gives up (not a target). */
#define BOUND_MS 30000
#define MAX_ACKED 200000

struct proc {
    pid_t pid;
    int port;
    char data[4200];
    char log[4200];
};

struct cluster {
    char *dir;
    char bindir[4096];
    int pd_port, http_port;
    struct proc pd;
    struct proc store[STORES];
};

struct writer {
    struct client *c;
    int id;
    int txn;
    atomic_int *stop;
    _Atomic uint64_t round_start_ms; /* kill time of the current round */
    _Atomic uint64_t recovered_ms;   /* end of the first call started after it that succeeded */
    _Atomic uint64_t longest_call_ms;
    _Atomic uint64_t failures;
    /* acknowledged keys: "w<id>-<n>" for n < acked */
    _Atomic uint64_t acked;
};

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static void proc_start(struct proc *p, char *const argv[])
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *f = freopen(p->log, "a", stderr);
        (void)f;
        execv(argv[0], argv);
        _exit(127);
    }
    p->pid = pid;
}

static void proc_kill(struct proc *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGKILL);
    int status;
    waitpid(p->pid, &status, 0);
    p->pid = 0;
}

static void store_start(struct cluster *cl, int i)
{
    char bin[4200], addr[64], sched[64];
    snprintf(bin, sizeof bin, "%s/tinykv-server", cl->bindir);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", cl->store[i].port);
    snprintf(sched, sizeof sched, "127.0.0.1:%d", cl->pd_port);
    char *argv[] = {bin,
                    "--addr",
                    addr,
                    "--data-dir",
                    cl->store[i].data,
                    "--scheduler",
                    sched,
                    "--status-addr",
                    "127.0.0.1:0",
                    "--log-level",
                    getenv("RECOVERY_STORE_LOG") ? getenv("RECOVERY_STORE_LOG") : "warn",
                    NULL};
    proc_start(&cl->store[i], argv);
}

/* The scheduler's JSON at /pd/api/v1/<path>, or NULL. */
static json_t *http_json(struct cluster *cl, const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "curl -s -m 3 http://127.0.0.1:%d/pd/api/v1/%s", cl->http_port, path);
    FILE *f = popen(cmd, "r");
    if (!f)
        return NULL;
    json_error_t jerr;
    json_t *j = json_loadf(f, 0, &jerr);
    pclose(f);
    return j;
}

/* The index of the store leading the (only) region, when it has `peers` peers; else -1. */
static int leader_index(struct cluster *cl, size_t peers)
{
    json_t *regions = http_json(cl, "regions");
    json_t *stores = http_json(cl, "stores");
    int found = -1;
    json_t *r = json_array_get(json_object_get(regions, "regions"), 0);
    json_int_t leader_store =
        json_integer_value(json_object_get(json_object_get(r, "leader"), "store_id"));
    if (r && leader_store && json_array_size(json_object_get(r, "peers")) == peers) {
        json_t *arr = json_object_get(stores, "stores"), *s;
        size_t k;
        json_array_foreach(arr, k, s)
        {
            json_t *st = json_object_get(s, "store");
            if (json_integer_value(json_object_get(st, "id")) != leader_store)
                continue;
            const char *a = json_string_value(json_object_get(st, "address"));
            for (int i = 0; a && i < STORES; i++) {
                char want[64];
                snprintf(want, sizeof want, "127.0.0.1:%d", cl->store[i].port);
                if (strcmp(a, want) == 0)
                    found = i;
            }
        }
    }
    json_decref(regions);
    json_decref(stores);
    return found;
}

static int write_one(struct writer *w, uint64_t n)
{
    char key[64];
    int len = snprintf(key, sizeof key, "w%d-%llu", w->id, (unsigned long long)n);
    if (!w->txn)
        return client_raw_put(w->c, NULL, key, (size_t)len, "v", 1);
    struct client_txn *t = NULL;
    int rc = client_txn_begin(w->c, &t);
    if (rc == 0)
        rc = client_txn_put(t, key, (size_t)len, "v", 1);
    if (rc == 0)
        rc = client_txn_commit(t, NULL);
    else if (t)
        client_txn_rollback(t);
    client_txn_free(t);
    return rc;
}

static void *writer_loop(void *arg)
{
    struct writer *w = arg;
    while (!atomic_load(w->stop)) {
        uint64_t n = atomic_load(&w->acked);
        if (n >= MAX_ACKED)
            break;
        uint64_t t0 = test_now_ms();
        int rc = write_one(w, n);
        uint64_t took = test_now_ms() - t0;
        uint64_t prev = atomic_load(&w->longest_call_ms);
        while (took > prev && !atomic_compare_exchange_weak(&w->longest_call_ms, &prev, took))
            ;
        if (rc == 0) {
            atomic_store(&w->acked, n + 1);
            uint64_t zero = 0;
            if (t0 >= atomic_load(&w->round_start_ms))
                atomic_compare_exchange_strong(&w->recovered_ms, &zero, t0 + took);
        } else {
            /* An undetermined or failed write is written again under the same key. */
            atomic_fetch_add(&w->failures, 1);
            sleep_ms(1);
        }
        sleep_ms(5); /* a steady stream of writes, not a benchmark */
    }
    return NULL;
}

/* The leader store is SIGKILLed (three times, restarted in between) while raw and transactional
 * writers run through one client: writes resume after each kill and none acknowledged is lost. */
static void test_recovery_writes_resume_after_leader_sigkill(void **state)
{
    (void)state;
    struct cluster cl = {.dir = test_tmpdir_new("tinykv-recovery-kill")};
    assert_non_null(cl.dir);
    const char *bindir = getenv("BINDIR");
    snprintf(cl.bindir, sizeof cl.bindir, "%s", bindir && bindir[0] ? bindir : "bin");
    cl.pd_port = test_free_port();
    cl.http_port = test_free_port();
    snprintf(cl.pd.data, sizeof cl.pd.data, "%s/pd", cl.dir);
    snprintf(cl.pd.log, sizeof cl.pd.log, "%s/pd.log", cl.dir);
    char pdbin[4200], pdaddr[64], pdhttp[64];
    snprintf(pdbin, sizeof pdbin, "%s/tinyscheduler-server", cl.bindir);
    assert_int_equal(access(pdbin, X_OK), 0);
    snprintf(pdaddr, sizeof pdaddr, "127.0.0.1:%d", cl.pd_port);
    snprintf(pdhttp, sizeof pdhttp, "127.0.0.1:%d", cl.http_port);
    char *pdargv[] = {pdbin,        "--addr",   pdaddr,        "--http-addr", pdhttp,
                      "--data-dir", cl.pd.data, "--log-level", "warn",        NULL};
    proc_start(&cl.pd, pdargv);
    uint64_t until = test_now_ms() + BOUND_MS;
    while (!port_open(cl.pd_port)) {
        assert_true(test_now_ms() < until);
        sleep_ms(5);
    }
    for (int i = 0; i < STORES; i++) {
        cl.store[i].port = test_free_port();
        snprintf(cl.store[i].data, sizeof cl.store[i].data, "%s/store%d", cl.dir, i);
        snprintf(cl.store[i].log, sizeof cl.store[i].log, "%s/store%d.log", cl.dir, i);
        store_start(&cl, i);
        sleep_ms(300); /* the first store bootstraps; the others join */
    }
    until = test_now_ms() + BOUND_MS;
    while (leader_index(&cl, STORES) < 0) {
        assert_true(test_now_ms() < until);
        sleep_ms(200);
    }

    struct client_options o = {0};
    o.timeout_ms = 5000; /* tinykv-fuse's defaults */
    o.rpc_timeout_ms = 2000;
    struct client *c = NULL;
    char err[256] = "";
    assert_int_equal(client_new(pdaddr, &o, &c, err, sizeof err), 0);
    atomic_int stop = 0;
    struct writer w[WRITERS];
    pthread_t th[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].c = c;
        w[i].id = i;
        w[i].txn = i >= RAW_WRITERS;
        w[i].stop = &stop;
        assert_int_equal(pthread_create(&th[i], NULL, writer_loop, &w[i]), 0);
    }
    sleep_ms(1000);

    const char *rounds_env = getenv("RECOVERY_ROUNDS");
    int rounds = rounds_env ? atoi(rounds_env) : 3;
    uint64_t worst[2] = {0, 0};
    for (int r = 0; r < rounds; r++) {
        int l = -1;
        until = test_now_ms() + BOUND_MS;
        while ((l = leader_index(&cl, STORES)) < 0) {
            assert_true(test_now_ms() < until);
            sleep_ms(100);
        }
        uint64_t killed = test_now_ms();
        for (int i = 0; i < WRITERS; i++) {
            atomic_store(&w[i].round_start_ms, killed);
            atomic_store(&w[i].recovered_ms, 0);
        }
        proc_kill(&cl.store[l]);
        uint64_t back[2] = {0, 0}; /* raw, txn: the latest writer's recovery */
        for (int i = 0; i < WRITERS; i++) {
            until = killed + BOUND_MS;
            while (atomic_load(&w[i].recovered_ms) == 0) {
                assert_true(test_now_ms() < until);
                sleep_ms(5);
            }
            uint64_t t = atomic_load(&w[i].recovered_ms) - killed;
            if (t > back[w[i].txn])
                back[w[i].txn] = t;
        }
        printf("round %d: leader store %d SIGKILLed; raw puts again after %llu ms, transactions "
               "after %llu ms\n",
               r + 1, l, (unsigned long long)back[0], (unsigned long long)back[1]);
        fflush(stdout);
        for (int k = 0; k < 2; k++)
            if (back[k] > worst[k])
                worst[k] = back[k];
        /* Started again, it catches up before the next round kills another leader. */
        store_start(&cl, l);
        until = test_now_ms() + BOUND_MS;
        while (!port_open(cl.store[l].port)) {
            assert_true(test_now_ms() < until);
            sleep_ms(20);
        }
        sleep_ms(3000);
    }
    atomic_store(&stop, 1);
    uint64_t longest = 0, failures = 0;
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(th[i], NULL);
        if (w[i].longest_call_ms > longest)
            longest = w[i].longest_call_ms;
        failures += w[i].failures;
    }
    printf("writes through the client after a leader SIGKILL: worst %llu ms (raw), %llu ms "
           "(transactions) over %d rounds; %llu calls failed meanwhile, the longest call took "
           "%llu ms (deadline %d)\n",
           (unsigned long long)worst[0], (unsigned long long)worst[1], rounds,
           (unsigned long long)failures, (unsigned long long)longest, o.timeout_ms);

    /* Every acknowledged write is there. */
    size_t missing = 0;
    for (int i = 0; i < WRITERS; i++) {
        for (uint64_t n = 0; n < w[i].acked; n++) {
            char key[64];
            int len = snprintf(key, sizeof key, "w%d-%llu", i, (unsigned long long)n);
            int rc;
            if (!w[i].txn) {
                void *v = NULL;
                size_t vl = 0;
                rc = client_raw_get(c, NULL, key, (size_t)len, &v, &vl);
                free(v);
            } else {
                struct client_txn *t = NULL;
                void *v = NULL;
                size_t vl = 0;
                rc = client_txn_begin(c, &t);
                if (rc == 0)
                    rc = client_txn_get(t, key, (size_t)len, &v, &vl);
                free(v);
                if (t)
                    client_txn_rollback(t);
                client_txn_free(t);
            }
            if (rc != 0) {
                if (missing++ < 5)
                    printf("acknowledged %s not read back: %s\n", key, client_strerror(rc));
            }
        }
    }
    assert_int_equal(missing, 0);
    client_free(c);
    for (int i = 0; i < STORES; i++)
        proc_kill(&cl.store[i]);
    proc_kill(&cl.pd);
    if (getenv("RECOVERY_KEEP_LOGS"))
        printf("logs kept in %s\n", cl.dir);
    else
        test_tmpdir_remove(cl.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recovery_writes_resume_after_leader_sigkill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

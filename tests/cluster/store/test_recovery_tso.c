/* test_recovery_tso.c — the client library's TSO stream across restarts of a real scheduler. */
/*
 * A real tinyscheduler-server (from $BINDIR, default bin/) is SIGKILLed and
 * started again every 2-3 s while client threads ask for timestamps with the
 * mount's deadlines (5 s an operation, 2 s an attempt). Each restart prints
 * how long after the new scheduler accepted connections the client got a
 * timestamp again, and the longest any single call waited. Nothing asserts a
 * time: each recovery is only waited for within a generous bound.
 * TEST_SEED=N repeats a run's restart spacing; RECOVERY_RESTARTS=N changes
 * how many restarts (default 6).
 */
#include <arpa/inet.h>
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

#define TSO_THREADS 4
/* How long one recovery may take before the test gives up (not a target). */
#define RECOVERY_BOUND_MS 30000

struct sched {
    char *dir;
    char bin[4096];
    int port, http_port;
    pid_t pid;
};

struct shared {
    struct client *c;
    atomic_int stop;
    _Atomic uint64_t up_ms;        /* when the scheduler last started listening */
    _Atomic uint64_t recovered_ms; /* end of the first call started after up_ms that succeeded */
    _Atomic uint64_t longest_call_ms;
    _Atomic uint64_t calls, failures;
    _Atomic uint64_t went_backwards;
};

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* 1 once something accepts TCP connections on 127.0.0.1:port. */
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

static void sched_start(struct sched *s)
{
    char addr[64], http[64], data[4200], log[4200];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s->port);
    snprintf(http, sizeof http, "127.0.0.1:%d", s->http_port);
    snprintf(data, sizeof data, "%s/pd", s->dir);
    snprintf(log, sizeof log, "%s/pd.log", s->dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *f = freopen(log, "a", stderr);
        (void)f;
        execl(s->bin, s->bin, "--addr", addr, "--http-addr", http, "--data-dir", data,
              "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
}

/* Waits (bounded) until the scheduler listens; returns the time it did. */
static uint64_t sched_wait_up(struct sched *s)
{
    uint64_t until = test_now_ms() + RECOVERY_BOUND_MS;
    while (!port_open(s->port)) {
        assert_true(test_now_ms() < until);
        int status;
        assert_int_equal(waitpid(s->pid, &status, WNOHANG), 0); /* it must not have died */
        sleep_ms(2);
    }
    return test_now_ms();
}

static void sched_kill(struct sched *s)
{
    kill(s->pid, SIGKILL);
    int status;
    waitpid(s->pid, &status, 0);
    s->pid = 0;
}

static void *tso_loop(void *arg)
{
    struct shared *sh = arg;
    client_ts last = 0;
    while (!atomic_load(&sh->stop)) {
        uint64_t t0 = test_now_ms();
        client_ts ts = 0;
        int rc = client_tso(sh->c, &ts);
        uint64_t took = test_now_ms() - t0;
        atomic_fetch_add(&sh->calls, 1);
        uint64_t prev = atomic_load(&sh->longest_call_ms);
        while (took > prev && !atomic_compare_exchange_weak(&sh->longest_call_ms, &prev, took))
            ;
        if (rc == 0) {
            if (ts <= last)
                atomic_fetch_add(&sh->went_backwards, 1);
            last = ts;
            uint64_t zero = 0;
            if (t0 >= atomic_load(&sh->up_ms))
                atomic_compare_exchange_strong(&sh->recovered_ms, &zero, t0 + took);
        } else {
            atomic_fetch_add(&sh->failures, 1);
            sleep_ms(1); /* a caller that retries at once, as the mount's next request does */
        }
    }
    return NULL;
}

/* How long after `up` a client made now takes to get a timestamp: what the
 * restarted scheduler itself needs, for comparison. */
static uint64_t fresh_client_tso_ms(const char *addr, uint64_t up)
{
    struct client_options o = {0};
    o.timeout_ms = 5000;
    o.rpc_timeout_ms = 2000;
    uint64_t until = up + RECOVERY_BOUND_MS;
    for (;;) {
        struct client *c = NULL;
        char err[256];
        client_ts ts;
        int rc = client_new(addr, &o, &c, err, sizeof err);
        if (rc == 0)
            rc = client_tso(c, &ts);
        client_free(c);
        if (rc == 0)
            return test_now_ms() - up;
        assert_true(test_now_ms() < until);
        sleep_ms(5);
    }
}

/* Scheduler restarts every 2-3 s while four threads ask for timestamps: each restart is followed
 * by timestamps again, which never go backwards. */
static void test_recovery_tso_across_scheduler_restarts(void **state)
{
    (void)state;
    const char *bindir = getenv("BINDIR");
    const char *seed_env = getenv("TEST_SEED");
    const char *n_env = getenv("RECOVERY_RESTARTS");
    unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
    int restarts = n_env ? atoi(n_env) : 6;
    printf("TEST_SEED=%u restarts=%d\n", seed, restarts);
    srand(seed);

    struct sched s = {.dir = test_tmpdir_new("tinykv-recovery-tso")};
    assert_non_null(s.dir);
    snprintf(s.bin, sizeof s.bin, "%s/tinyscheduler-server", bindir && bindir[0] ? bindir : "bin");
    assert_int_equal(access(s.bin, X_OK), 0);
    s.port = test_free_port();
    s.http_port = test_free_port();
    sched_start(&s);
    sched_wait_up(&s);

    char addr[64], err[256] = "";
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s.port);
    struct client_options o = {0};
    o.timeout_ms = 5000; /* tinykv-fuse's defaults */
    o.rpc_timeout_ms = 2000;
    struct shared sh = {0};
    assert_int_equal(client_new(addr, &o, &sh.c, err, sizeof err), 0);
    client_ts first;
    assert_int_equal(client_tso(sh.c, &first), 0);

    pthread_t th[TSO_THREADS];
    for (int i = 0; i < TSO_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, tso_loop, &sh), 0);

    uint64_t worst = 0, sum = 0;
    for (int r = 0; r < restarts; r++) {
        sleep_ms(2000 + rand() % 1000);
        uint64_t killed = test_now_ms();
        sched_kill(&s);
        atomic_store(&sh.up_ms, UINT64_MAX);
        atomic_store(&sh.recovered_ms, 0);
        /* Down for a moment, as a supervisor's restart would leave it. */
        sleep_ms(100 + rand() % 400);
        sched_start(&s);
        uint64_t up = sched_wait_up(&s);
        atomic_store(&sh.up_ms, up);
        uint64_t until = up + RECOVERY_BOUND_MS;
        uint64_t fresh_ms = fresh_client_tso_ms(addr, up);
        while (atomic_load(&sh.recovered_ms) == 0) {
            assert_true(test_now_ms() < until);
            sleep_ms(1);
        }
        uint64_t rec = atomic_load(&sh.recovered_ms) - up;
        printf("restart %d: down %llu ms, timestamps again %llu ms after the scheduler "
               "listened (a new client: %llu ms)\n",
               r + 1, (unsigned long long)(up - killed), (unsigned long long)rec,
               (unsigned long long)fresh_ms);
        fflush(stdout);
        sum += rec;
        if (rec > worst)
            worst = rec;
    }
    atomic_store(&sh.stop, 1);
    for (int i = 0; i < TSO_THREADS; i++)
        pthread_join(th[i], NULL);
    printf("recovery after a scheduler restart: mean %llu ms, worst %llu ms over %d restarts; "
           "longest single call %llu ms (deadline 5000); %llu calls, %llu failed\n",
           (unsigned long long)(restarts ? sum / (uint64_t)restarts : 0), (unsigned long long)worst,
           restarts, (unsigned long long)atomic_load(&sh.longest_call_ms),
           (unsigned long long)atomic_load(&sh.calls),
           (unsigned long long)atomic_load(&sh.failures));
    assert_int_equal(atomic_load(&sh.went_backwards), 0);
    client_free(sh.c);
    sched_kill(&s);
    test_tmpdir_remove(s.dir);
}

/* A scheduler frozen with SIGSTOP for 3 s: every TSO call returns by its own deadline (its stream
 * is dead while the TCP connection stays up), and timestamps come again once it runs. */
static void test_recovery_tso_frozen_scheduler_calls_end_by_deadline(void **state)
{
    (void)state;
    const char *bindir = getenv("BINDIR");
    struct sched s = {.dir = test_tmpdir_new("tinykv-recovery-tso-stop")};
    assert_non_null(s.dir);
    snprintf(s.bin, sizeof s.bin, "%s/tinyscheduler-server", bindir && bindir[0] ? bindir : "bin");
    s.port = test_free_port();
    s.http_port = test_free_port();
    sched_start(&s);
    sched_wait_up(&s);
    char addr[64], err[256] = "";
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s.port);
    struct client_options o = {0};
    o.timeout_ms = 1000;
    o.rpc_timeout_ms = 400;
    struct shared sh = {0};
    assert_int_equal(client_new(addr, &o, &sh.c, err, sizeof err), 0);
    client_ts ts;
    assert_int_equal(client_tso(sh.c, &ts), 0);

    pthread_t th[TSO_THREADS];
    for (int i = 0; i < TSO_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, tso_loop, &sh), 0);
    sleep_ms(300);
    kill(s.pid, SIGSTOP);
    uint64_t stopped = test_now_ms();
    sleep_ms(3000);
    atomic_store(&sh.up_ms, UINT64_MAX);
    atomic_store(&sh.recovered_ms, 0);
    uint64_t longest_frozen = atomic_load(&sh.longest_call_ms);
    uint64_t failed = atomic_load(&sh.failures);
    kill(s.pid, SIGCONT);
    uint64_t cont = test_now_ms();
    atomic_store(&sh.up_ms, cont);
    while (atomic_load(&sh.recovered_ms) == 0) {
        assert_true(test_now_ms() < cont + RECOVERY_BOUND_MS);
        sleep_ms(1);
    }
    printf("frozen for %llu ms: %llu calls failed, the longest call took %llu ms (deadline %d); "
           "timestamps again %llu ms after SIGCONT\n",
           (unsigned long long)(cont - stopped), (unsigned long long)failed,
           (unsigned long long)longest_frozen, o.timeout_ms,
           (unsigned long long)(atomic_load(&sh.recovered_ms) - cont));
    atomic_store(&sh.stop, 1);
    for (int i = 0; i < TSO_THREADS; i++)
        pthread_join(th[i], NULL);
    /* While frozen nothing can succeed: the calls must have failed, not hung. */
    assert_true(failed > 0);
    assert_int_equal(atomic_load(&sh.went_backwards), 0);
    client_free(sh.c);
    sched_kill(&s);
    test_tmpdir_remove(s.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recovery_tso_across_scheduler_restarts),
        cmocka_unit_test(test_recovery_tso_frozen_scheduler_calls_end_by_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

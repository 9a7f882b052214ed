/* test_server.c — the real tinyscheduler-server: SIGKILL/restart keeps TSO and state. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#define TOKEN "crash-test-token"

struct server {
    pid_t pid;
    uint16_t port;
    char dir[64];
    char bin[512];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

struct buf {
    char *p;
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    struct buf *b = ctx;
    char *q = realloc(b->p, b->len + size * n + 1);
    if (q == NULL)
        return 0;
    memcpy(q + b->len, p, size * n);
    b->p = q;
    b->len += size * n;
    b->p[b->len] = '\0';
    return size * n;
}

/* http performs one call; returns the status (0 when the connection failed) and the body. */
static long http(const struct server *s, const char *method, const char *path, const char *body,
                 char **out)
{
    CURL *cu = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)s->port, path);
    struct buf b = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " TOKEN);
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
    if (body)
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
    long status = 0;
    if (curl_easy_perform(cu) == CURLE_OK)
        curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(cu);
    if (out)
        *out = b.p ? b.p : calloc(1, 1);
    else
        free(b.p);
    return status;
}

static json_t *get_json(const struct server *s, const char *path)
{
    char *body;
    long st = http(s, "GET", path, NULL, &body);
    if (st != 200)
        fail_msg("GET %s: status %ld: %s", path, st, body);
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    assert_non_null(j);
    return j;
}

static uint64_t get_tso(const struct server *s)
{
    json_t *j = get_json(s, "/pd/api/v1/tso");
    uint64_t ts = (uint64_t)json_integer_value(json_object_get(j, "ts"));
    json_decref(j);
    return ts;
}

static void start(struct server *s)
{
    s->port = free_port();
    char http_addr[64], grpc_addr[64], log[128];
    snprintf(http_addr, sizeof http_addr, "127.0.0.1:%u", (unsigned)s->port);
    snprintf(grpc_addr, sizeof grpc_addr, "127.0.0.1:%u", (unsigned)free_port());
    snprintf(log, sizeof log, "%s.log", s->dir);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        execl(s->bin, s->bin, "--data-dir", s->dir, "--http-addr", http_addr, "--addr", grpc_addr,
              "--log-level", "warn", "--admin-token", TOKEN, "--schedule-interval-ms", "50",
              (char *)NULL);
        _exit(127);
    }
    /* Bounded wait for the API to answer. */
    uint64_t deadline = now_ms() + 10000;
    while (http(s, "GET", "/pd/api/v1/health", NULL, NULL) != 200) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid)
            fail_msg("server exited during start-up (status %d); see %s", status, log);
        if (now_ms() > deadline)
            fail_msg("server not answering after 10 s; see %s", log);
        usleep(20 * 1000);
    }
}

static void kill_hard(struct server *s)
{
    kill(s->pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(s->pid, &status, 0), s->pid);
    assert_true(WIFSIGNALED(status));
    s->pid = 0;
}

static int setup(void **state)
{
    struct server *s = calloc(1, sizeof *s);
    const char *bindir = getenv("BINDIR") ? getenv("BINDIR") : "bin";
    snprintf(s->bin, sizeof s->bin, "%s/tinyscheduler-server", bindir);
    if (access(s->bin, X_OK) != 0)
        fail_msg("%s missing: build it with `make %s`", s->bin, s->bin);
    strcpy(s->dir, "/tmp/pd_server_XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    *state = s;
    return 0;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct server *s = *state;
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    nftw(s->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    char log[128];
    snprintf(log, sizeof log, "%s.log", s->dir);
    unlink(log);
    free(s);
    return 0;
}

/* After a SIGKILL and a restart on the same data dir, the TSO is above every timestamp handed out
 * before, and the config, scheduler set and cluster id are as the killed process left them. */
static void test_sigkill_keeps_tso_and_state(void **state)
{
    struct server *s = *state;
    start(s);
    json_t *j = get_json(s, "/pd/api/v1/cluster");
    json_int_t cluster_id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    uint64_t t1 = get_tso(s);
    assert_int_equal(http(s, "POST", "/pd/api/v1/config",
                          "{\"max-replicas\": 5, \"max-store-down-time\": \"2h\"}", NULL),
                     200);
    assert_int_equal(
        http(s, "DELETE", "/pd/api/v1/schedulers/balance-leader-scheduler", NULL, NULL), 200);
    uint64_t t2 = get_tso(s);
    assert_true(t2 > t1);
    kill_hard(s);

    start(s);
    uint64_t t3 = get_tso(s);
    assert_true(t3 > t2);
    j = get_json(s, "/pd/api/v1/cluster");
    assert_int_equal(json_integer_value(json_object_get(j, "id")), cluster_id);
    json_decref(j);
    j = get_json(s, "/pd/api/v1/config");
    assert_int_equal(json_integer_value(json_object_get(j, "max-replicas")), 5);
    assert_string_equal(json_string_value(json_object_get(j, "max-store-down-time")), "2h0m0s");
    json_decref(j);
    j = get_json(s, "/pd/api/v1/schedulers");
    assert_int_equal(json_array_size(j), 1);
    assert_string_equal(json_string_value(json_array_get(j, 0)), "balance-region-scheduler");
    json_decref(j);
}

struct hammer {
    const struct server *s;
    _Atomic int stop;
    _Atomic uint64_t count;
    uint64_t max_ts; /* read after join */
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    while (!h->stop) {
        char *body;
        if (http(h->s, "GET", "/pd/api/v1/tso", NULL, &body) == 200) {
            json_t *j = json_loads(body, 0, NULL);
            uint64_t ts = (uint64_t)json_integer_value(json_object_get(j, "ts"));
            json_decref(j);
            if (ts > h->max_ts)
                h->max_ts = ts;
            h->count++;
        } else {
            h->stop = 1; /* the server is gone */
        }
        free(body);
    }
    return NULL;
}

/* Killing the server in the middle of a stream of TSO requests, several times at random moments,
 * never lets a timestamp repeat or go back. Seed: PD_TEST_SEED. */
static void test_sigkill_during_tso_stream(void **state)
{
    struct server *s = *state;
    unsigned seed = getenv("PD_TEST_SEED") ? (unsigned)atoi(getenv("PD_TEST_SEED")) : 4242u;
    print_message("seed %u (PD_TEST_SEED)\n", seed);
    srand(seed);
    uint64_t seen = 0;
    for (int round = 0; round < 3; round++) {
        start(s);
        uint64_t first = get_tso(s);
        assert_true(first > seen);
        struct hammer h = {.s = s};
        pthread_t th;
        pthread_create(&th, NULL, hammer_run, &h);
        uint64_t deadline = now_ms() + 10000;
        while (h.count == 0 && now_ms() < deadline)
            usleep(1000);
        usleep((useconds_t)(50 + rand() % 250) * 1000);
        kill_hard(s);
        h.stop = 1;
        pthread_join(th, NULL);
        assert_true(h.count > 0);
        if (h.max_ts > seen)
            seen = h.max_ts;
    }
    start(s);
    assert_true(get_tso(s) > seen);
}

/* SIGTERM shuts the server down cleanly (exit status 0) and the data dir opens again. */
static void test_sigterm_clean_exit(void **state)
{
    struct server *s = *state;
    start(s);
    uint64_t t1 = get_tso(s);
    kill(s->pid, SIGTERM);
    int status;
    assert_int_equal(waitpid(s->pid, &status, 0), s->pid);
    s->pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    start(s);
    assert_true(get_tso(s) > t1);
}

/* Command-line handling: --version and --help succeed, unknown options and bad values exit 2. */
static void test_command_line(void **state)
{
    struct server *s = *state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --version >/dev/null 2>&1", s->bin);
    assert_int_equal(WEXITSTATUS(system(cmd)), 0);
    snprintf(cmd, sizeof cmd, "%s --help >/dev/null 2>&1", s->bin);
    assert_int_equal(WEXITSTATUS(system(cmd)), 0);
    snprintf(cmd, sizeof cmd, "%s --bogus >/dev/null 2>&1", s->bin);
    assert_int_equal(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "%s --log-level loud >/dev/null 2>&1", s->bin);
    assert_int_equal(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "%s --data-dir %s --http-addr nonsense >/dev/null 2>&1", s->bin,
             s->dir);
    assert_int_equal(WEXITSTATUS(system(cmd)), 1);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_sigkill_keeps_tso_and_state),
        T(test_sigkill_during_tso_stream),
        T(test_sigterm_clean_exit),
        T(test_command_line),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}

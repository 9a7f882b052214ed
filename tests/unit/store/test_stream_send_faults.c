/* test_stream_send_faults.c — the stream sends the store loop starts without waiting
 * (rpc_stream_try_send, store/transport.c): a peer that dies while such a send is in flight, or
 * between two sends, ends the stream with an error within a bounded time, and no later send
 * waits. The peer is a real process (this binary run with --hold) whose server takes one
 * message and then never reads again, so the client's sends back up in flow control. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kvrpcpb.pb-c.h"
#include "proto/rpc.h"
#include "tests/lib/test_util.h"

#define METHOD "/test.Hold/Stream"
#define VALUE_BYTES (1024 * 1024)

/* --hold: the peer. Its one handler keeps the first message's worker forever, so the stream's
 * next message is never received. */
static void hold_forever(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    (void)call;
    (void)msg;
    (void)arg;
    for (;;)
        pause();
}

static int serve_and_hold(int port_fd)
{
    struct rpc_method m = {.name = METHOD,
                           .kind = RPC_BIDI_STREAM,
                           .request = &kvrpcpb__raw_put_request__descriptor,
                           .on_message = hold_forever,
                           .blocking = 1};
    char err[256];
    struct rpc_server *s = rpc_server_new("127.0.0.1:0", &m, 1, 1, err, sizeof err);
    if (!s || rpc_server_start(s) != 0) {
        fprintf(stderr, "hold: %s\n", err);
        return 1;
    }
    int port = rpc_server_port(s);
    if (write(port_fd, &port, sizeof port) != (ssize_t)sizeof port)
        return 1;
    close(port_fd);
    for (;;)
        pause();
}

struct peer {
    pid_t pid;
    char addr[64];
};

/* Starts the peer process and learns its port. */
static void peer_start(struct peer *p)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        /* Gone with this process, whatever happens to it, and holding none of its output (a
         * test runner reading it would wait for a leftover peer). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, STDOUT_FILENO);
            dup2(devnull, STDERR_FILENO);
        }
        close(fds[0]);
        char fd_arg[16];
        snprintf(fd_arg, sizeof fd_arg, "%d", fds[1]);
        execl("/proc/self/exe", "test_stream_send_faults", "--hold", fd_arg, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    int port = 0;
    ssize_t n;
    do
        n = read(fds[0], &port, sizeof port);
    while (n < 0 && errno == EINTR);
    close(fds[0]);
    assert_int_equal(n, (ssize_t)sizeof port);
    snprintf(p->addr, sizeof p->addr, "127.0.0.1:%d", port);
}

static void peer_kill(struct peer *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGKILL);
    int status;
    waitpid(p->pid, &status, 0);
    p->pid = 0;
}

/* Each test has its own peer, killed at the end whatever the test did. */
static int setup(void **state)
{
    struct peer *p = calloc(1, sizeof *p);
    assert_non_null(p);
    peer_start(p);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    peer_kill(*state);
    free(*state);
    return 0;
}

/* Opens the stream and waits for its first message to go out (the connection is up). */
static struct rpc_stream *open_stream(struct rpc_client *c, const struct peer *p)
{
    struct rpc_error err;
    struct rpc_stream *st =
        rpc_stream_open(c, p->addr, METHOD, &kvrpcpb__raw_put_response__descriptor, 0, &err);
    assert_non_null(st);
    Kvrpcpb__RawPutRequest first = KVRPCPB__RAW_PUT_REQUEST__INIT;
    first.key = (ProtobufCBinaryData){1, (uint8_t *)"k"};
    assert_int_equal(rpc_stream_send(st, &first.base, 10000, &err), 0);
    return st;
}

/* A 1 MiB message: a few fill the peer's flow-control window. */
static Kvrpcpb__RawPutRequest *big_message(void)
{
    static uint8_t value[VALUE_BYTES];
    static Kvrpcpb__RawPutRequest req = KVRPCPB__RAW_PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){1, (uint8_t *)"k"};
    req.value = (ProtobufCBinaryData){sizeof value, value};
    return &req;
}

/* Tries sends until one is left in flight (the peer reads nothing more); returns how many went
 * out at once. */
static int fill_until_pending(struct rpc_stream *st)
{
    struct rpc_error err;
    for (int i = 0; i < 256; i++) {
        int rc = rpc_stream_try_send(st, &big_message()->base, &err);
        if (rc == RPC_ERR_PENDING)
            return i;
        assert_int_equal(rc, 0);
    }
    fail_msg("256 MiB went out without a send left in flight");
    return -1;
}

/* The peer dies while a send is in flight: waiting for that send ends in an error within its
 * bound (not a hang), and the stream refuses every later send at once. */
static void test_peer_killed_with_a_send_in_flight(void **state)
{
    struct peer *p = *state;
    struct rpc_client *c = rpc_client_new();
    assert_non_null(c);
    struct rpc_error err;
    struct rpc_stream *st = open_stream(c, p);
    assert_true(fill_until_pending(st) >= 0);
    /* A second try while one is in flight is refused, not queued. */
    assert_int_equal(rpc_stream_try_send(st, &big_message()->base, &err), RPC_ERR_PENDING);

    peer_kill(p);
    uint64_t t0 = test_now_ms();
    int rc = rpc_stream_finish_send(st, 10000, &err);
    assert_int_equal(rc, RPC_ERR_CLOSED);
    assert_true(test_now_ms() - t0 < 10000);
    assert_int_equal(rpc_stream_try_send(st, &big_message()->base, &err), RPC_ERR_CLOSED);
    assert_int_equal(rpc_stream_send(st, &big_message()->base, 1000, &err), RPC_ERR_CLOSED);
    rpc_stream_free(st);
    rpc_client_free(c);
}

/* The peer dies between sends: the sends after it fail (the first may still be taken by the
 * socket) within a bounded time, and none waits. */
static void test_peer_killed_between_sends(void **state)
{
    struct peer *p = *state;
    struct rpc_client *c = rpc_client_new();
    assert_non_null(c);
    struct rpc_error err;
    struct rpc_stream *st = open_stream(c, p);
    Kvrpcpb__RawPutRequest small = KVRPCPB__RAW_PUT_REQUEST__INIT;
    small.key = (ProtobufCBinaryData){1, (uint8_t *)"k"};

    peer_kill(p);
    uint64_t deadline = test_now_ms() + 10000;
    int rc = 0;
    while (test_now_ms() < deadline) {
        rc = rpc_stream_try_send(st, &small.base, &err);
        if (rc == RPC_ERR_PENDING)
            rc = rpc_stream_finish_send(st, 10000, &err);
        if (rc != 0)
            break;
        usleep(10000);
    }
    assert_int_equal(rc, RPC_ERR_CLOSED);
    assert_int_equal(rpc_stream_try_send(st, &small.base, &err), RPC_ERR_CLOSED);
    rpc_stream_free(st);
    rpc_client_free(c);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--hold") == 0)
        return serve_and_hold(atoi(argv[2]));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_peer_killed_with_a_send_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_killed_between_sends, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

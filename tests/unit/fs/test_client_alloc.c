/* test_client_alloc.c — allocation failures in the client's transaction buffer are clean NOMEM. */
/*
 * The program interposes malloc, calloc, realloc and free on glibc's own
 * entry points. On the test thread only (gRPC's threads are left alone), an
 * armed countdown refuses the N-th allocation, and allocations and frees are
 * counted so a leak shows as a non-zero balance. AddressSanitizer owns the
 * allocator, so under it the test skips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/client.h"
#include "tests/lib/fake_pd.h"

#if defined(__SANITIZE_ADDRESS__)
#define ALLOC_HOOKS 0
#else
#define ALLOC_HOOKS 1

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static __thread int armed;      /* count and fail on this thread */
static __thread long countdown; /* allocations left before one fails; <0: never */
static __thread int refused;    /* an allocation was refused since arming */
static __thread long balance;   /* allocations minus frees while armed */

static int refuse(void)
{
    if (!armed || countdown < 0)
        return 0;
    if (countdown-- == 0) {
        refused = 1;
        return 1;
    }
    return 0;
}

void *malloc(size_t n)
{
    if (refuse())
        return NULL;
    void *p = __libc_malloc(n);
    if (armed && p)
        balance++;
    return p;
}

void *calloc(size_t n, size_t size)
{
    if (refuse())
        return NULL;
    void *p = __libc_calloc(n, size);
    if (armed && p)
        balance++;
    return p;
}

void *realloc(void *old, size_t n)
{
    if (refuse())
        return NULL;
    void *p = __libc_realloc(old, n);
    if (armed && p && !old)
        balance++;
    return p;
}

void free(void *p)
{
    if (armed && p)
        balance--;
    __libc_free(p);
}
#endif

/* What a buffered key should read as: NULL absent, else the value. */
struct model {
    const char *key;
    const char *value;
};

/* Runs a fixed sequence of buffer operations, with the `n`-th allocation
 * refused; returns 1 if an allocation was refused. */
static int run_with_failure(struct client *c, long n)
{
#if ALLOC_HOOKS
    struct model m[] = {{"a", NULL}, {"b", NULL}, {"c", NULL}, {"d", NULL}};
    const struct {
        int del;
        int key;
        const char *value;
    } ops[] = {
        {0, 1, "b1"}, {0, 0, "a1"}, {0, 3, "d1"}, {0, 1, "b2"},
        {1, 2, NULL}, {1, 0, NULL}, {0, 2, "c1"}, {0, 0, "a2"},
    };
    /* The transaction object comes from a TSO round trip (gRPC on this
     * thread), so it is made before arming: one block the balance will see freed. */
    struct client_txn *t = NULL;
    assert_int_equal(client_txn_begin(c, &t), 0);
    countdown = n;
    refused = 0;
    balance = 0;
    armed = 1;
    int rc;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        const char *k = m[ops[i].key].key;
        if (ops[i].del) {
            rc = client_txn_delete(t, k, 1);
            /* Deletes are remembered as an empty marker in the model. */
            if (rc == 0)
                m[ops[i].key].value = "";
        } else {
            rc = client_txn_put(t, k, 1, ops[i].value, strlen(ops[i].value));
            if (rc == 0)
                m[ops[i].key].value = ops[i].value;
        }
        if (rc != 0 && rc != CLIENT_ERR_NOMEM)
            fail_msg("n=%ld op %zu: %s", n, i, client_strerror(rc));
    }
    /* Reads of buffered keys never reach a store; a failed copy is NOMEM too. */
    for (size_t i = 0; i < 4; i++) {
        if (!m[i].value)
            continue;
        void *v = NULL;
        size_t len = 0;
        rc = client_txn_get(t, m[i].key, 1, &v, &len);
        if (rc == CLIENT_ERR_NOMEM)
            continue;
        if (m[i].value[0] == 0) {
            assert_int_equal(rc, CLIENT_ERR_NOT_FOUND);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(len, strlen(m[i].value));
            assert_memory_equal(v, m[i].value, len);
            free(v);
        }
    }
    client_txn_free(t);
    armed = 0;
    assert_int_equal(balance, -1);
    return refused;
#else
    (void)c;
    (void)n;
    return 0;
#endif
}

/* Every allocation of put, delete and buffered get failing in turn gives NOMEM, keeps the
 * buffer consistent and leaks nothing. */
static void test_buffer_allocation_failures(void **state)
{
    (void)state;
    if (!ALLOC_HOOKS)
        skip();
    struct fake_pd *pd = fake_pd_new();
    assert_non_null(pd);
    struct client *c;
    char err[256];
    assert_int_equal(client_new(fake_pd_addr(pd), NULL, &c, err, sizeof err), 0);
    (void)client_last_error(c); /* the thread's error buffer exists before counting */
    long n = 0;
    while (run_with_failure(c, n))
        n++;
    printf("alloc: %ld allocation points failed in turn\n", n);
    assert_true(n > 10);
    client_free(c);
    fake_pd_free(pd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buffer_allocation_failures),
    };
    return cmocka_run_group_tests_name("client_alloc", tests, NULL, NULL);
}

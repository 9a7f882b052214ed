/* test_store.h — in-process standalone stores and a fault-injecting proxy for client tests. */
#ifndef TINYKV_TESTS_TEST_STORE_H
#define TINYKV_TESTS_TEST_STORE_H

/*
 * What it owns: a standalone store (RocksDB in a temporary directory, an
 * MVCC engine, the TinyKv service with raw and Kv* methods on 127.0.0.1,
 * port 0), and a proxy server that forwards every TinyKv KV method to a
 * target address, answering region errors or UNAVAILABLE first when told
 * to, and recording the routing context it saw.
 *
 * Who calls it: client tests. A standalone store ignores the region
 * context, so region-error behaviour is tested through the proxy.
 *
 * What it must never do: change a forwarded request or response.
 */

#include <stddef.h>
#include <stdint.h>

struct test_store;

/* test_store_new opens a store in a fresh temporary directory; NULL on failure. */
struct test_store *test_store_new(void);
/* "127.0.0.1:PORT", borrowed for the store's life. */
const char *test_store_addr(const struct test_store *s);
/* test_store_set_tso gives the store's engine timestamps from the scheduler at pd_addr
 * (borrowed), so prewrites that ask commit in one phase, as a cluster store's do. Call it before
 * any request; returns 0 or -1. */
int test_store_set_tso(struct test_store *s, const char *pd_addr);
/* Stops the server, closes the engine and removes the directory. */
void test_store_free(struct test_store *s);

enum test_proxy_fault {
    TEST_PROXY_NONE = 0,
    TEST_PROXY_NOT_LEADER,      /* with the hint given to test_proxy_inject (0: no hint) */
    TEST_PROXY_EPOCH_NOT_MATCH, /* no current regions attached */
    TEST_PROXY_REGION_NOT_FOUND,
    TEST_PROXY_STALE_COMMAND,
    TEST_PROXY_UNAVAILABLE,   /* the call ends with gRPC status UNAVAILABLE */
    TEST_PROXY_LOSE_RESPONSE, /* forwarded, then the call ends UNAVAILABLE anyway */
    TEST_PROXY_UNDETERMINED,  /* region error `undetermined` (not forwarded) */
};

struct test_proxy_stats {
    uint64_t calls;     /* requests received */
    uint64_t faults;    /* answered with an injected fault */
    uint64_t forwarded; /* passed to the target */
    /* The routing context of the last request. */
    uint64_t last_region_id;
    uint64_t last_conf_ver;
    uint64_t last_version;
    uint64_t last_peer_id;
    uint64_t last_peer_store_id;
    uint64_t last_lock_ttl; /* of the last KvPrewrite */
};

struct test_proxy;

/* test_proxy_new serves on 127.0.0.1 port 0 and forwards to `target_addr` (copied). */
struct test_proxy *test_proxy_new(const char *target_addr);
const char *test_proxy_addr(const struct test_proxy *p);
void test_proxy_free(struct test_proxy *p);

/* The next `times` requests (-1: every request) get `fault`. */
void test_proxy_inject(struct test_proxy *p, enum test_proxy_fault fault, int times,
                       uint64_t hint_peer_id, uint64_t hint_store_id);

/* Like test_proxy_inject (no hint), for requests of one method only (its
 * full name, e.g. "/tinykvpb.TinyKv/KvCommit"). */
void test_proxy_inject_method(struct test_proxy *p, const char *method, enum test_proxy_fault fault,
                              int times);

/* Every request after this gets, with probability percent/100, a fault
 * drawn from all the kinds above (region errors, UNAVAILABLE, lost
 * responses). Draws follow `seed` in arrival order. percent 0 stops it. */
void test_proxy_inject_random(struct test_proxy *p, int percent, uint64_t seed);

/* When `version` is non-zero, a request whose context epoch version differs
 * gets EpochNotMatch (as a store would after a split). */
void test_proxy_require_version(struct test_proxy *p, uint64_t version);

/* EpochNotMatch answers carry these regions as current_regions (copied;
 * n 0 clears them), as a store does after a split. */
struct fake_pd_region;
void test_proxy_set_current_regions(struct test_proxy *p, const struct fake_pd_region *regions,
                                    size_t n);

void test_proxy_get_stats(struct test_proxy *p, struct test_proxy_stats *out);

#endif

/* pd_mock.c — the mock cluster used by the scheduler tests. */
#include "tests/lib/pd_mock.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

static uint64_t mock_clock(void *ctx)
{
    return ((struct pd_mock *)ctx)->now_ms;
}

void pd_mock_open(struct pd_mock *m)
{
    memset(m, 0, sizeof *m);
    m->now_ms = 1700000000000ull;
    struct pd_options opts = {0};
    opts.now_ms = mock_clock;
    opts.clock_ctx = m;
    char err[256];
    assert_int_equal(pd_cluster_open(&opts, &m->c, err, sizeof err), PD_OK);
    struct pd_store s = {.id = 1, .state = PD_STORE_UP};
    snprintf(s.address, sizeof s.address, "127.0.0.1:20001");
    struct pd_region r;
    pd_region_init(&r);
    r.id = 1;
    r.epoch.version = 1;
    r.epoch.conf_ver = 1;
    assert_int_equal(pd_region_add_peer(&r, 1001, 1), PD_OK);
    assert_int_equal(pd_cluster_bootstrap(m->c, &s, &r), PD_OK);
    pd_region_clear(&r);
    pd_mock_heartbeat_store(m, 1);
}

void pd_mock_close(struct pd_mock *m)
{
    pd_cluster_close(m->c);
    m->c = NULL;
}

void pd_mock_heartbeat_store(struct pd_mock *m, uint64_t id)
{
    struct pd_store_stats st = {0};
    st.store_id = id;
    st.capacity_bytes = 100ull << 30;
    st.available_bytes = 50ull << 30;
    assert_int_equal(pd_cluster_store_heartbeat(m->c, &st), PD_OK);
}

void pd_mock_add_store(struct pd_mock *m, uint64_t id)
{
    struct pd_store s = {.id = id, .state = PD_STORE_UP};
    snprintf(s.address, sizeof s.address, "127.0.0.1:%llu", 20000 + (unsigned long long)id);
    assert_int_equal(pd_cluster_put_store(m->c, &s), PD_OK);
    pd_mock_heartbeat_store(m, id);
}

uint64_t pd_mock_peer_id(uint64_t region_id, uint64_t store_id)
{
    return region_id * 1000 + store_id;
}

void pd_mock_region(struct pd_region *r, uint64_t id, const char *start, const char *end,
                    uint64_t version, uint64_t conf_ver, uint64_t size_mib, uint64_t leader_store,
                    const uint64_t *stores, size_t n)
{
    r->id = id;
    assert_int_equal(pd_region_set_keys(r, start, strlen(start), end, strlen(end)), PD_OK);
    r->epoch.version = version;
    r->epoch.conf_ver = conf_ver;
    r->approximate_size_bytes = size_mib * PD_MOCK_MIB;
    r->peer_count = 0;
    r->pending_peer_count = 0;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pd_region_add_peer(r, pd_mock_peer_id(id, stores[i]), stores[i]), PD_OK);
    r->leader.id = pd_mock_peer_id(id, leader_store);
    r->leader.store_id = leader_store;
}

int pd_mock_region_hb(struct pd_mock *m, uint64_t id, const char *start, const char *end,
                      uint64_t version, uint64_t conf_ver, uint64_t size_mib, uint64_t leader_store,
                      const uint64_t *stores, size_t n)
{
    struct pd_region r;
    pd_region_init(&r);
    pd_mock_region(&r, id, start, end, version, conf_ver, size_mib, leader_store, stores, n);
    int err = pd_cluster_region_heartbeat(m->c, &r, NULL, NULL);
    pd_region_clear(&r);
    return err;
}

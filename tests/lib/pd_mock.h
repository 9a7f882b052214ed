/* pd_mock.h — mock cluster for scheduler tests: in-memory cluster, fake clock, builders. */
#ifndef TINYKV_TESTS_PD_MOCK_H
#define TINYKV_TESTS_PD_MOCK_H

#include "pd/pd.h"

#define PD_MOCK_MIB (1024ull * 1024)

struct pd_mock {
    struct pd_cluster *c;
    uint64_t now_ms; /* the fake wall clock; tests move it forward */
};

/* pd_mock_open opens an in-memory cluster (data_dir NULL unless given) with a fake clock and
 * bootstraps it with store 1 and region 1 covering everything (epoch 1/1, peer 1 on store 1);
 * tests replace region 1 by sending regions with version >= 2. */
void pd_mock_open(struct pd_mock *m);
void pd_mock_close(struct pd_mock *m);

/* pd_mock_add_store registers store id (address "127.0.0.1:<20000+id>") and heartbeats it. */
void pd_mock_add_store(struct pd_mock *m, uint64_t id);
/* pd_mock_heartbeat_store sends a store heartbeat at the current fake time. */
void pd_mock_heartbeat_store(struct pd_mock *m, uint64_t id);

/*
 * pd_mock_region builds a region in r (initialised by the caller): keys are C strings ("" for
 * unbounded), peers on stores[0..n) with peer ids region_id*1000+store_id, leader on
 * leader_store, the given epoch and size in MiB.
 */
void pd_mock_region(struct pd_region *r, uint64_t id, const char *start, const char *end,
                    uint64_t version, uint64_t conf_ver, uint64_t size_mib, uint64_t leader_store,
                    const uint64_t *stores, size_t n);
/* pd_mock_region_hb builds the region and sends its heartbeat; returns the heartbeat's result. */
int pd_mock_region_hb(struct pd_mock *m, uint64_t id, const char *start, const char *end,
                      uint64_t version, uint64_t conf_ver, uint64_t size_mib, uint64_t leader_store,
                      const uint64_t *stores, size_t n);
/* pd_mock_peer_id: the peer id pd_mock_region gives region id's peer on store_id. */
uint64_t pd_mock_peer_id(uint64_t region_id, uint64_t store_id);

#endif

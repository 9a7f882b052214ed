/* fake_pd.h — an in-process fake scheduler for client tests: layout, stores, TSO, counters. */
#ifndef TINYKV_TESTS_FAKE_PD_H
#define TINYKV_TESTS_FAKE_PD_H

/*
 * What it owns: an rpc_server on 127.0.0.1 (port 0) serving the
 * schedulerpb.Scheduler methods a client needs — GetMembers, Tso (bidi
 * stream), GetRegion, GetPrevRegion, GetRegionByID, ScanRegions, GetStore,
 * GetAllStores — from a layout the test sets and may change at any time.
 * Who calls it: client tests (tests/unit/fs/test_client_*.c).
 * What it must never do: persist anything, or answer methods it does not
 * know with anything but UNIMPLEMENTED.
 */

#include <stddef.h>
#include <stdint.h>

#define FAKE_PD_MAX_PEERS 3
#define FAKE_PD_CLUSTER_ID 4242

struct fake_pd_peer {
    uint64_t id;
    uint64_t store_id;
};

/* One region of the layout. Keys are NUL-terminated strings (copied);
 * "" for end means +inf. */
struct fake_pd_region {
    uint64_t id;
    const char *start;
    const char *end;
    uint64_t conf_ver;
    uint64_t version;
    size_t n_peers;
    struct fake_pd_peer peers[FAKE_PD_MAX_PEERS];
    int leader; /* index into peers the scheduler reports as leader; -1: none */
};

/* A common layout: two regions split at "m" (ids 1 and 2, epoch 1/2), both
 * with one peer (11 and 21) on store 1, leader the first peer. */
extern const struct fake_pd_region fake_pd_split_at_m[2];

/* Call counts since start. */
struct fake_pd_counts {
    uint64_t get_members;
    uint64_t tso_requests;   /* TsoRequest messages on any stream */
    uint64_t tso_timestamps; /* sum of their counts */
    uint64_t tso_max_count;  /* largest count asked at once */
    uint64_t get_region;     /* GetRegion + GetPrevRegion */
    uint64_t get_region_by_id;
    uint64_t scan_regions;
    uint64_t get_store;
    uint64_t get_all_stores;
};

struct fake_pd;

/* fake_pd_new starts the server on a free loopback port; NULL on failure. */
struct fake_pd *fake_pd_new(void);
/* fake_pd_new_at listens on `listen_addr` ("127.0.0.1:PORT"), e.g. to
 * restart a scheduler where clients expect it. */
struct fake_pd *fake_pd_new_at(const char *listen_addr);
void fake_pd_free(struct fake_pd *pd);

/* "127.0.0.1:PORT" — borrowed for the fake's life. */
const char *fake_pd_addr(const struct fake_pd *pd);

/* Adds or replaces a store's address (copied). */
void fake_pd_set_store(struct fake_pd *pd, uint64_t store_id, const char *addr);

/* Replaces the whole region layout (copied). A key outside every region
 * gets a REGION_NOT_FOUND header error from GetRegion. */
void fake_pd_set_regions(struct fake_pd *pd, const struct fake_pd_region *regions, size_t n);

/* Delays every TSO answer by `ms` (to make batching observable). */
void fake_pd_set_tso_delay_ms(struct fake_pd *pd, int ms);

void fake_pd_get_counts(struct fake_pd *pd, struct fake_pd_counts *out);

#endif

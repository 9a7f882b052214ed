/* ctl_check.h — tinykv-ctl's region consistency check: the gRPC side (debugpb.Debug on stores). */
#ifndef TINYKV_CLIENT_CTL_CHECK_H
#define TINYKV_CLIENT_CTL_CHECK_H

/*
 * Owns: starting a region's consistency check at its leader store
 * (debugpb.Debug/CheckRegionConsistency, following NotLeader hints) and
 * polling every replica's store (debugpb.Debug/RegionConsistency) until each
 * reported its verdict for the check's index or the deadline passed.
 * Called by: ctl_admin.c (`region check ID`), which finds the replicas and
 * their stores' addresses through the scheduler and prints the result.
 * Must never: wait past its deadline, or print (the caller does).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One replica: the caller fills store_id, peer_id and addr; ctl_check_region the rest. */
struct ctl_check_replica {
    uint64_t store_id, peer_id;
    const char *addr; /* the store's gRPC address, borrowed for the call */
    /* What the store last answered (answered 0: it never did). */
    bool answered, is_leader;
    uint64_t applied_index;
    uint64_t index; /* the check this replica last saw */
    int state;      /* debugpb ConsistencyState: 0 none .. 4 mismatch */
    uint64_t hash, leader_hash;
    uint64_t mismatch_index;
    char error[300]; /* the store's error, or why it could not be reached */
};

enum {
    CTL_CHECK_OK = 0,      /* every replica reported its verdict for *index */
    CTL_CHECK_NOT_STARTED, /* no store started the check before the deadline (errbuf says why) */
    CTL_CHECK_INCOMPLETE,  /* started at *index, but some replica had no verdict by the deadline */
};

/* The states a replica reports (debugpb ConsistencyState). */
enum {
    CTL_CHECK_STATE_NONE = 0,
    CTL_CHECK_STATE_COMPUTING = 1,
    CTL_CHECK_STATE_COMPUTED = 2,
    CTL_CHECK_STATE_CONSISTENT = 3,
    CTL_CHECK_STATE_MISMATCH = 4,
};

/*
 * ctl_check_region checks region_id, whose replicas are r[0..n): starts the
 * check at leader_store_id (0: unknown, try each), then waits for every
 * replica, all within timeout_ms. Fills *index (0 if never started) and each
 * r[i]; returns CTL_CHECK_*, with a reason in errbuf when not OK.
 */
int ctl_check_region(uint64_t region_id, struct ctl_check_replica *r, size_t n,
                     uint64_t leader_store_id, int timeout_ms, uint64_t *index, char *errbuf,
                     size_t errbuf_len);

#endif

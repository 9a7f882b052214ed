/* pd_fixture.h — the in-memory scheduler state the fuzz targets that reach pd/ start from. */
#ifndef TINYKV_TESTS_FUZZ_PD_FIXTURE_H
#define TINYKV_TESTS_FUZZ_PD_FIXTURE_H

#include <stddef.h>

struct pd_cluster;

/*
 * fuzz_pd_cluster_new opens an in-memory cluster bootstrapped with store 1
 * and region 2 (all keys, one peer 3 on store 1, its leader), plus stores
 * 2..`stores` Up and empty. Aborts on failure (a harness fault, not a
 * finding). Owned by the caller: pd_cluster_close.
 */
struct pd_cluster *fuzz_pd_cluster_new(size_t stores);

#endif

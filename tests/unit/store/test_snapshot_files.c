/* test_snapshot_files.c — region snapshots as files, in-process: a new peer catches up on a few
 * MiB through a snapshot file sent in chunks, and a transfer cut halfway is retried. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/snapshot_transfer.h"
#include "tests/lib/test_cluster.h"
#include "tests/lib/test_util.h"

#define OP_TIMEOUT 10000
#define N_KEYS 64
#define VALUE_BYTES (64 * 1024) /* 4 MiB in all */

static char *value_of(int i)
{
    char *v = malloc(VALUE_BYTES + 1);
    memset(v, 'a' + i % 26, VALUE_BYTES);
    snprintf(v, 16, "%06d", i);
    v[6] = '-';
    v[VALUE_BYTES] = '\0';
    return v;
}

/* One store holds region 1 with N_KEYS values of 64 KiB. */
static struct test_cluster *loaded_cluster(void)
{
    struct test_cluster_options o = {.n_stores = 3, .n_region_peers = 1, .seed = 7};
    struct test_cluster *c = test_cluster_new(&o);
    assert_non_null(c);
    assert_true(test_cluster_leader(c, OP_TIMEOUT) > 0);
    char k[32];
    for (int i = 0; i < N_KEYS; i++) {
        snprintf(k, sizeof k, "big%03d", i);
        char *v = value_of(i);
        assert_int_equal(test_cluster_put(c, k, v, OP_TIMEOUT), 0);
        free(v);
    }
    return c;
}

/* Bytes of the snapshot files in a store's snapshot directory; *tmp counts half-written ones. */
static uint64_t snap_bytes(struct test_cluster *c, int store, const char *prefix, int *tmp)
{
    const char *dir = snapshot_dir(test_cluster_store(c, store));
    DIR *d = opendir(dir);
    uint64_t total = 0;
    *tmp = 0;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, ".tmp"))
            (*tmp)++;
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        char path[1200];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) == 0)
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

static void assert_all_read_back(struct test_cluster *c, int store)
{
    char k[32];
    for (int i = 0; i < N_KEYS; i++) {
        snprintf(k, sizeof k, "big%03d", i);
        char *want = value_of(i);
        assert_true(test_cluster_wait_local(c, store, k, want, 15000));
        free(want);
    }
}

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* A peer added to a region of 4 MiB catches up from the leader's snapshot file: the file holds
 * the data (so the Raft message only its manifest), arrives in 1 MiB chunks, and is removed
 * once applied; no half-written file stays on either side. A restart of the new peer's store
 * removes snapshot files left over (half received, or never applied). */
static void test_new_peer_catches_up_by_file_snapshot(void **state)
{
    (void)state;
    struct test_cluster *c = loaded_cluster();
    long rss_before = peak_rss_kib();
    assert_int_equal(test_cluster_add_peer(c, 2, 102, OP_TIMEOUT), 0);
    assert_all_read_back(c, 2);
    int tmp;
    uint64_t gen = snap_bytes(c, 1, "gen_", &tmp);
    assert_true(gen >= (uint64_t)N_KEYS * VALUE_BYTES);
    assert_int_equal(tmp, 0);
    /* The received file goes once applied (bounded wait: the apply finished before the
     * values showed, the removal follows it at once). */
    uint64_t deadline = test_now_ms() + 5000;
    while (snap_bytes(c, 2, "rcv_", &tmp) != 0 && test_now_ms() < deadline)
        usleep(20000);
    assert_int_equal(snap_bytes(c, 2, "rcv_", &tmp), 0);
    assert_int_equal(tmp, 0);
    printf("snapshot file %llu bytes; peak RSS grew by %ld KiB while it moved\n",
           (unsigned long long)gen, peak_rss_kib() - rss_before);
    /* A restart finds a half-received file (a crash mid-transfer) and a complete one never
     * applied: it removes both, and the replica still has every value. */
    char path[1200], dir2[600];
    const char *names[] = {"rcv_1_90_0badf00d.snap.tmp", "rcv_1_91_0badf00d.snap"};
    snprintf(dir2, sizeof dir2, "%s", snapshot_dir(test_cluster_store(c, 2)));
    test_cluster_stop_store(c, 2);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir2, names[i]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs("partial", f);
        fclose(f);
    }
    test_cluster_start_store(c, 2);
    assert_int_equal(snap_bytes(c, 2, "rcv_", &tmp), 0);
    assert_int_equal(tmp, 0);
    assert_all_read_back(c, 2);
    test_cluster_free(c);
}

/* Two transfers cut halfway leave no file behind on the receiver and are reported failed; the
 * leader sends the snapshot again and the new peer catches up with every value. */
static void test_cut_transfer_is_retried(void **state)
{
    (void)state;
    struct test_cluster *c = loaded_cluster();
    test_cluster_cut_snapshots(c, 2);
    assert_int_equal(test_cluster_add_peer(c, 3, 103, OP_TIMEOUT), 0);
    assert_all_read_back(c, 3);
    assert_int_equal(test_cluster_cut_snapshots(c, 0), 2);
    int tmp;
    snap_bytes(c, 3, "rcv_", &tmp);
    assert_int_equal(tmp, 0);
    test_cluster_free(c);
}

/* While the leader cannot write snapshot files (its snapshot directory is a plain file), the
 * generations fail and the new peer waits; once the directory is back, the next generation
 * works and the peer catches up (a failed generation is not waited for forever). */
static void test_failed_generation_is_retried(void **state)
{
    (void)state;
    struct test_cluster *c = loaded_cluster();
    const char *dir = snapshot_dir(test_cluster_store(c, 1));
    char aside[600];
    snprintf(aside, sizeof aside, "%s.aside", dir);
    assert_int_equal(rename(dir, aside), 0);
    FILE *blocker = fopen(dir, "w");
    assert_non_null(blocker);
    fclose(blocker);
    assert_int_equal(test_cluster_add_peer(c, 2, 102, OP_TIMEOUT), 0);
    usleep(1500 * 1000); /* several generations fail meanwhile */
    char *v = test_cluster_local_get(c, 2, "big000");
    assert_null(v);
    assert_int_equal(unlink(dir), 0);
    assert_int_equal(rename(aside, dir), 0);
    assert_all_read_back(c, 2);
    test_cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_peer_catches_up_by_file_snapshot),
        cmocka_unit_test(test_cut_transfer_is_retried),
        cmocka_unit_test(test_failed_generation_is_retried),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

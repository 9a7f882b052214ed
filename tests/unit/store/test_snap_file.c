/* test_snap_file.c — snapshot files: chunked round trips, checks of size and checksum, the .tmp
 * name until finish, cleanup of leftovers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/snap_file.h"
#include "tests/lib/test_util.h"

#define N_RECORDS 3000
#define VALUE_BYTES 1500 /* about 4.5 MiB in all: several write buffers */

static int setup(void **state)
{
    *state = test_tmpdir_new("tinykv-snapfile");
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    test_tmpdir_remove(*state);
    return 0;
}

static int exists(const char *dir, const char *name)
{
    char path[1024];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

static void record(int i, char *key, size_t key_cap, uint8_t *value)
{
    snprintf(key, key_cap, "key-%06d", i);
    memset(value, 'a' + i % 26, VALUE_BYTES);
    value[0] = (uint8_t)i;
}

/* write_records writes N_RECORDS records into dir/name; returns its size and checksum. */
static void write_records(const char *dir, const char *name, uint64_t *size, uint32_t *crc)
{
    struct snap_file_writer w;
    assert_int_equal(snap_file_create(&w, dir, name, 0), SNAP_FILE_OK);
    uint8_t value[VALUE_BYTES];
    char key[32];
    for (int i = 0; i < N_RECORDS; i++) {
        record(i, key, sizeof key, value);
        assert_int_equal(
            snap_file_put(&w, (uint8_t)(i % 3), key, (uint32_t)strlen(key), value, VALUE_BYTES),
            SNAP_FILE_OK);
    }
    /* Nothing under the final name before finish: a crash here leaves only the .tmp file. */
    assert_false(exists(dir, name));
    assert_int_equal(snap_file_finish(&w, 0, 0, 0, size, crc), SNAP_FILE_OK);
    assert_true(exists(dir, name));
    assert_true(*size > (uint64_t)N_RECORDS * VALUE_BYTES);
}

/* A file written record by record reads back the same records, in order, through a buffer that
 * stays the size of one record, not of the file. */
static void test_round_trip(void **state)
{
    const char *dir = *state;
    uint64_t size;
    uint32_t crc;
    write_records(dir, "gen_2_7_98.snap", &size, &crc);
    struct snap_file_reader r;
    assert_int_equal(snap_file_open(&r, dir, "gen_2_7_98.snap", size, crc), SNAP_FILE_OK);
    uint8_t want[VALUE_BYTES];
    char key[32];
    int i = 0;
    for (;; i++) {
        uint8_t cf;
        const uint8_t *k, *v;
        uint32_t kl, vl;
        int rc = snap_file_next(&r, &cf, &k, &kl, &v, &vl);
        if (rc == 0)
            break;
        assert_int_equal(rc, 1);
        record(i, key, sizeof key, want);
        assert_int_equal(cf, i % 3);
        assert_int_equal(kl, strlen(key));
        assert_memory_equal(k, key, kl);
        assert_int_equal(vl, VALUE_BYTES);
        assert_memory_equal(v, want, VALUE_BYTES);
    }
    assert_int_equal(i, N_RECORDS);
    assert_true(r.cap <= 64 * 1024); /* never grew towards the file's 4.5 MiB */
    snap_file_close(&r);
}

/* A receiver copying the file in 1 MiB chunks gets the same bytes; checked against the sender's
 * size and checksum it takes the final name, and a reader accepts it. */
static void test_chunked_copy(void **state)
{
    const char *dir = *state;
    uint64_t size, got_size;
    uint32_t crc, got_crc;
    write_records(dir, "gen_5_6_40.snap", &size, &crc);
    struct snap_file_reader r;
    assert_int_equal(snap_file_open(&r, dir, "gen_5_6_40.snap", size, crc), SNAP_FILE_OK);
    struct snap_file_writer w;
    assert_int_equal(snap_file_create(&w, dir, "rcv_5_6_40.snap", 1), SNAP_FILE_OK);
    uint8_t *chunk = malloc(1 << 20);
    size_t n;
    do {
        assert_int_equal(snap_file_read(&r, chunk, 1 << 20, &n), SNAP_FILE_OK);
        assert_int_equal(snap_file_append(&w, chunk, n), SNAP_FILE_OK);
    } while (n);
    free(chunk);
    snap_file_close(&r);
    assert_int_equal(snap_file_finish(&w, 1, size, crc, &got_size, &got_crc), SNAP_FILE_OK);
    assert_int_equal(got_size, size);
    assert_int_equal(got_crc, crc);
    assert_int_equal(snap_file_open(&r, dir, "rcv_5_6_40.snap", size, crc), SNAP_FILE_OK);
    snap_file_close(&r);
}

/* A transfer cut halfway never takes the final name: finish against the manifest refuses it
 * and removes it; so does a copy with one byte changed; abort removes the .tmp file. */
static void test_cut_and_corrupt_transfers(void **state)
{
    const char *dir = *state;
    uint64_t size;
    uint32_t crc;
    write_records(dir, "gen_9_6_12.snap", &size, &crc);
    struct snap_file_reader r;
    uint8_t *chunk = malloc(1 << 20);
    size_t n;
    for (int flip = 0; flip < 2; flip++) {
        assert_int_equal(snap_file_open(&r, dir, "gen_9_6_12.snap", size, crc), SNAP_FILE_OK);
        struct snap_file_writer w;
        assert_int_equal(snap_file_create(&w, dir, "rcv_9_6_12.snap", 1), SNAP_FILE_OK);
        uint64_t copied = 0;
        do {
            assert_int_equal(snap_file_read(&r, chunk, 1 << 20, &n), SNAP_FILE_OK);
            if (flip && n)
                chunk[n / 2] ^= 1;
            assert_int_equal(snap_file_append(&w, chunk, n), SNAP_FILE_OK);
            copied += n;
        } while (n && (flip || copied < size / 2));
        snap_file_close(&r);
        assert_int_equal(snap_file_finish(&w, 1, size, crc, NULL, NULL), SNAP_FILE_ERR_CORRUPT);
        assert_false(exists(dir, "rcv_9_6_12.snap"));
        assert_false(exists(dir, "rcv_9_6_12.snap.tmp"));
    }
    free(chunk);
    struct snap_file_writer w;
    assert_int_equal(snap_file_create(&w, dir, "rcv_9_6_13.snap", 1), SNAP_FILE_OK);
    assert_int_equal(snap_file_append(&w, "partial", 7), SNAP_FILE_OK);
    assert_true(exists(dir, "rcv_9_6_13.snap.tmp"));
    snap_file_abort(&w);
    assert_false(exists(dir, "rcv_9_6_13.snap.tmp"));
}

/* A complete file that changed on disk, or is shorter or longer than promised, does not open. */
static void test_open_checks_size_and_checksum(void **state)
{
    const char *dir = *state;
    uint64_t size;
    uint32_t crc;
    write_records(dir, "gen_3_6_20.snap", &size, &crc);
    struct snap_file_reader r;
    assert_int_equal(snap_file_open(&r, dir, "gen_3_6_20.snap", size + 1, crc),
                     SNAP_FILE_ERR_CORRUPT);
    assert_int_equal(snap_file_open(&r, dir, "gen_3_6_20.snap", size, crc ^ 1),
                     SNAP_FILE_ERR_CORRUPT);
    assert_int_equal(snap_file_open(&r, dir, "missing.snap", size, crc), SNAP_FILE_ERR_IO);
    char path[1024];
    snprintf(path, sizeof path, "%s/gen_3_6_20.snap", dir);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 4096, SEEK_SET);
    fputc('!', f);
    fclose(f);
    assert_int_equal(snap_file_open(&r, dir, "gen_3_6_20.snap", size, crc), SNAP_FILE_ERR_CORRUPT);
    assert_int_equal(snap_file_crc32(0, "123456789", 9), 0xCBF43926u); /* the check value */
}

/* At start every snapshot file, complete or half written, is removed; other files stay. */
static void test_clean_dir(void **state)
{
    const char *dir = *state;
    uint64_t size;
    uint32_t crc;
    write_records(dir, "gen_1_6_10.snap", &size, &crc);
    struct snap_file_writer w;
    assert_int_equal(snap_file_create(&w, dir, "rcv_4_6_10.snap", 1), SNAP_FILE_OK);
    assert_int_equal(snap_file_append(&w, "half", 4), SNAP_FILE_OK);
    close(w.fd); /* as a crash leaves it */
    free(w.buf);
    char path[1024];
    snprintf(path, sizeof path, "%s/keep.txt", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(snap_file_clean_dir(dir), 2);
    assert_false(exists(dir, "gen_1_6_10.snap"));
    assert_false(exists(dir, "rcv_4_6_10.snap.tmp"));
    assert_true(exists(dir, "keep.txt"));
    assert_int_equal(snap_file_clean_dir("/nonexistent-tinykv-dir"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_and_corrupt_transfers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_checks_size_and_checksum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

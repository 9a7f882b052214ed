/* test_path_codec.c — unit tests of fs/path_codec.c: the key<->path escaping and path parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "fs/fs.h"

#define RANDOM_ROUNDS 20000

static unsigned long long seed;

/* xorshift64*: deterministic per seed. */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* Maps `key` to its path and parses the path back; checks the round trip. */
static void assert_key_round_trip(const uint8_t *key, size_t len)
{
    char path[CLIENT_MAX_KEY_BYTES * 3 + 8];
    static struct fs_path p;
    int is_dir = 0;

    assert_int_equal(fs_key_to_path(key, len, path, sizeof path, &is_dir), FS_OK);
    assert_int_equal(fs_path_parse(path, &p), FS_OK);
    assert_int_equal(p.kind, FS_PATH_NODE);
    assert_int_equal(p.snapshot_ts, 0);
    /* A directory marker's path names the directory: the key without its '/'. */
    assert_int_equal(is_dir, key[len - 1] == '/');
    assert_int_equal(p.key_len, len - (size_t)is_dir);
    assert_memory_equal(p.key, key, p.key_len);
    /* Only a directory may have "%" (the empty component) as its last name. */
    if (p.last_empty)
        assert_true(is_dir);
}

static void expect_path(const char *key, const char *want_path, int want_dir)
{
    char path[1024];
    int is_dir = -1;

    assert_int_equal(fs_key_to_path((const uint8_t *)key, strlen(key), path, sizeof path, &is_dir),
                     FS_OK);
    assert_string_equal(path, want_path);
    assert_int_equal(is_dir, want_dir);
    assert_key_round_trip((const uint8_t *)key, strlen(key));
}

/* Documented examples map to the documented paths and back. */
static void test_documented_examples(void **state)
{
    (void)state;
    expect_path("a", "/a", 0);
    expect_path("a/b/c", "/a/b/c", 0);
    expect_path("dir/", "/dir", 1);
    expect_path("a//b", "/a/%/b", 0);
    expect_path("/", "/%", 1);
    expect_path("a//", "/a/%", 1);
    expect_path("100%", "/100%", 0);
    expect_path("a%b", "/a%b", 0);
    expect_path("%41", "/%2541", 0);
    expect_path("%", "/%25", 0);
    expect_path("%2e", "/%2e", 0);
    expect_path(".", "/%2E", 0);
    expect_path("..", "/%2E%2E", 0);
    expect_path("x/./..", "/x/%2E/%2E%2E", 0);
    expect_path("...", "/...", 0);
    expect_path(".snapshots", "/%2Esnapshots", 0);
    expect_path(".snapshots/a", "/%2Esnapshots/a", 0);
    expect_path("a/.snapshots", "/a/.snapshots", 0);
    expect_path("sp ace/\xc3\xbcn\xc3\xaf", "/sp ace/\xc3\xbcn\xc3\xaf", 0);

    uint8_t nul_key[] = {'a', 0, 'b'};
    char path[64];
    int is_dir;
    assert_int_equal(fs_key_to_path(nul_key, 3, path, sizeof path, &is_dir), FS_OK);
    assert_string_equal(path, "/a%00b");
    assert_key_round_trip(nul_key, 3);
}

/* Names that are not the canonical encoding of their bytes name nothing. */
static void test_non_canonical_rejected(void **state)
{
    static struct fs_path p;
    const char *bad[] = {"/%41",     "/%2Ex", "/%2E.", "/a//b", "/%2Esnapshotsx/../%41",
                         "/a/%2F%4", "/%252"};

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* ("%252" decodes to "%2", whose '%' is not followed by two hex digits: "%2".) */
        assert_int_equal(fs_path_parse(bad[i], &p), FS_ERR_INVALID);
    }
    /* A nested ".snapshots" is an ordinary name and must not be escaped. */
    assert_int_equal(fs_path_parse("/a/%2Esnapshots", &p), FS_ERR_INVALID);
    assert_int_equal(fs_path_parse("/a/.snapshots", &p), FS_OK);
    assert_int_equal(fs_path_parse("relative", &p), FS_ERR_INVALID);
}

/* The reserved top-level directory parses into the snapshot view. */
static void test_snapshot_paths(void **state)
{
    static struct fs_path p;

    (void)state;
    assert_int_equal(fs_path_parse("/", &p), FS_OK);
    assert_int_equal(p.kind, FS_PATH_ROOT);
    assert_int_equal(fs_path_parse("/.snapshots", &p), FS_OK);
    assert_int_equal(p.kind, FS_PATH_SNAPSHOT_LIST);
    assert_int_equal(fs_path_parse("/.snapshots/470717921233469441", &p), FS_OK);
    assert_int_equal(p.kind, FS_PATH_ROOT);
    assert_true(p.snapshot_ts == 470717921233469441ULL);
    assert_int_equal(fs_path_parse("/.snapshots/42/docs/.snapshots", &p), FS_OK);
    assert_int_equal(p.kind, FS_PATH_NODE);
    assert_true(p.snapshot_ts == 42);
    assert_int_equal(p.key_len, strlen("docs/.snapshots"));
    assert_memory_equal(p.key, "docs/.snapshots", p.key_len);
    assert_int_equal(fs_path_parse("/.snapshots/42/%2Esnapshots", &p), FS_OK);
    assert_memory_equal(p.key, ".snapshots", p.key_len);
    assert_int_equal(fs_path_parse("/%2Esnapshots/x", &p), FS_OK);
    assert_int_equal(p.snapshot_ts, 0);
    assert_memory_equal(p.key, ".snapshots/x", p.key_len);
    assert_int_equal(fs_path_parse("/.snapshots/0", &p), FS_ERR_NOT_FOUND);
    assert_int_equal(fs_path_parse("/.snapshots/042", &p), FS_ERR_NOT_FOUND);
    assert_int_equal(fs_path_parse("/.snapshots/12a", &p), FS_ERR_NOT_FOUND);
    assert_int_equal(fs_path_parse("/.snapshots/18446744073709551616", &p), FS_ERR_NOT_FOUND);
    assert_int_equal(fs_path_parse("/.snapshots/18446744073709551615", &p), FS_OK);
}

/* Keys over the size limit and names over NAME_MAX are ENAMETOOLONG, not truncated. */
static void test_limits(void **state)
{
    static char path[CLIENT_MAX_KEY_BYTES * 2];
    static struct fs_path p;
    uint8_t comp[300];
    char name[FS_NAME_MAX + 1];
    size_t n, pos = 0;

    (void)state;
    memset(comp, 'x', sizeof comp);
    assert_int_equal(fs_name_encode(comp, 255, 0, name, sizeof name, &n), FS_OK);
    assert_int_equal(n, 255);
    assert_int_equal(fs_name_encode(comp, 256, 0, name, sizeof name, &n), FS_ERR_NAME_TOO_LONG);
    comp[0] = 0; /* "%00": 253 + 3 > 255 */
    assert_int_equal(fs_name_encode(comp, 254, 0, name, sizeof name, &n), FS_ERR_NAME_TOO_LONG);

    /* 40 components of 200 bytes: a key of 8039 bytes fits; 41 do not. */
    for (int c = 0; c < 41; c++) {
        path[pos++] = '/';
        memset(path + pos, 'k', 200);
        pos += 200;
        path[pos] = '\0';
        if (c == 39)
            assert_int_equal(fs_path_parse(path, &p), FS_OK);
    }
    assert_int_equal(fs_path_parse(path, &p), FS_ERR_NAME_TOO_LONG);
}

/* Random keys over an alphabet rich in special bytes survive key -> path -> key. */
static void test_random_keys_round_trip(void **state)
{
    static const uint8_t alphabet[] = {'/', '/', '%', '%', '.', '.', '0',  '2',  '5', 'A',
                                       'E', 'F', 'e', 'a', ' ', 0,   0xFF, 0xC3, 's', 'n'};
    uint64_t s = seed;

    (void)state;
    for (int round = 0; round < RANDOM_ROUNDS; round++) {
        uint8_t key[48];
        size_t len = 1 + next_random(&s) % 40;
        for (size_t i = 0; i < len; i++)
            key[i] = alphabet[next_random(&s) % sizeof alphabet];
        if (next_random(&s) % 8 == 0 && len >= 10)
            memcpy(key, ".snapshots", 10);
        assert_key_round_trip(key, len);
    }
}

/* Random names: every name that decodes is the encoding of what it decodes to (bijective). */
static void test_random_names_canonical(void **state)
{
    static const char alphabet[] = "%%%..025AEFeaz ";
    uint64_t s = seed ^ 0x9E3779B97F4A7C15ULL;
    int valid = 0;

    (void)state;
    for (int round = 0; round < RANDOM_ROUNDS; round++) {
        char name[16], again[FS_NAME_MAX + 1];
        uint8_t bytes[16];
        size_t len = 1 + next_random(&s) % 10, n, again_len;
        int top = (int)(next_random(&s) % 2);
        for (size_t i = 0; i < len; i++)
            name[i] = alphabet[next_random(&s) % (sizeof alphabet - 1)];
        name[len] = '\0';
        if (fs_name_decode(name, len, top, bytes, sizeof bytes, &n) != FS_OK)
            continue;
        valid++;
        assert_int_equal(fs_name_encode(bytes, n, top, again, sizeof again, &again_len), FS_OK);
        assert_int_equal(again_len, len);
        assert_memory_equal(again, name, len);
        /* Encoded names are usable file names. */
        assert_null(memchr(again, '/', again_len));
        assert_false(strcmp(again, ".") == 0 || strcmp(again, "..") == 0);
        assert_false(top && strcmp(again, FS_SNAPSHOT_DIR) == 0);
    }
    assert_true(valid > RANDOM_ROUNDS / 10);
}

int main(void)
{
    const char *env = getenv("FS_CODEC_SEED");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_documented_examples),
        cmocka_unit_test(test_non_canonical_rejected),
        cmocka_unit_test(test_snapshot_paths),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_random_keys_round_trip),
        cmocka_unit_test(test_random_names_canonical),
    };

    seed = env ? strtoull(env, NULL, 10) : (unsigned long long)time(NULL);
    if (seed == 0)
        seed = 1;
    printf("test_path_codec: seed %llu (re-run with FS_CODEC_SEED=%llu)\n", seed, seed);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_dcache.c — unit tests of fs/dcache.c: which missing names a directory listing answers for.
 * (Listings read from a cluster, and their expiry, are tested through real mounts in
 * tests/cluster/fs/test_fs_tools.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fs/dcache.h"
#include "fs/fs_internal.h"
#include "fs/meta.h"

#define K(s) (const uint8_t *)(s), strlen(s)

/* A directory this mount just made answers "absent" for any name but those made in it since. */
static void test_new_directory_knows_its_names(void **state)
{
    struct fs_dcache *dc = fs_dcache_new();

    (void)state;
    assert_non_null(dc);
    fs_dcache_note_empty_dir(dc, K("d"), fs_mono_ms());
    assert_true(fs_dcache_absent(dc, K("d/x")));
    fs_dcache_note(dc, K("d/x"));
    assert_false(fs_dcache_absent(dc, K("d/x")));
    assert_true(fs_dcache_absent(dc, K("d/y")));
    /* Not a child of d: its directory has no listing. */
    assert_false(fs_dcache_absent(dc, K("e/x")));
    assert_false(fs_dcache_absent(dc, K("dx")));
    /* The new directory's name is noted in its parent too (no listing of the root here). */
    assert_false(fs_dcache_absent(dc, K("d")));
    fs_dcache_free(dc);
}

/* Many names: the set grows and keeps every one. */
static void test_many_names_kept(void **state)
{
    struct fs_dcache *dc = fs_dcache_new();
    char key[32];

    (void)state;
    fs_dcache_note_empty_dir(dc, K("big"), fs_mono_ms());
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "big/f%d", i);
        fs_dcache_note(dc, K(key));
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "big/f%d", i);
        assert_false(fs_dcache_absent(dc, K(key)));
    }
    assert_true(fs_dcache_absent(dc, K("big/f5000")));
    assert_true(fs_dcache_absent(dc, K("big/f")));
    fs_dcache_free(dc);
}

/* A listing older than the TTL answers nothing. */
static void test_old_listing_answers_nothing(void **state)
{
    struct fs_dcache *dc = fs_dcache_new();

    (void)state;
    fs_dcache_note_empty_dir(dc, K("old"), fs_mono_ms() - FS_DCACHE_TTL_MS - 1);
    assert_false(fs_dcache_absent(dc, K("old/x")));
    fs_dcache_note_empty_dir(dc, K("new"), fs_mono_ms());
    assert_true(fs_dcache_absent(dc, K("new/x")));
    fs_dcache_free(dc);
}

/* The root's children are keys without '/'; its listing is the empty key's. */
static void test_root_directory(void **state)
{
    struct fs_dcache *dc = fs_dcache_new();

    (void)state;
    fs_dcache_note_empty_dir(dc, K(""), fs_mono_ms());
    assert_true(fs_dcache_absent(dc, K("top")));
    fs_dcache_note(dc, K("top"));
    assert_false(fs_dcache_absent(dc, K("top")));
    assert_false(fs_dcache_absent(dc, K("top/below"))); /* top has no listing */
    fs_dcache_free(dc);
}

/* A rename forgets the listings at and below both places, and nothing beside them. */
static void test_forget_subtree(void **state)
{
    struct fs_dcache *dc = fs_dcache_new();
    int64_t now = fs_mono_ms();

    (void)state;
    fs_dcache_note_empty_dir(dc, K("a"), now);
    fs_dcache_note_empty_dir(dc, K("a/b"), now);
    fs_dcache_note_empty_dir(dc, K("a/b/c"), now);
    fs_dcache_note_empty_dir(dc, K("ab"), now);
    fs_dcache_forget(dc, K("a/b"));
    assert_true(fs_dcache_absent(dc, K("a/x")));
    assert_false(fs_dcache_absent(dc, K("a/b/x")));
    assert_false(fs_dcache_absent(dc, K("a/b/c/x")));
    assert_true(fs_dcache_absent(dc, K("ab/x")));
    fs_dcache_forget(dc, K(""));
    assert_false(fs_dcache_absent(dc, K("a/x")));
    assert_false(fs_dcache_absent(dc, K("ab/x")));
    fs_dcache_free(dc);
}

/* Past FS_DCACHE_DIRS directories the least recently used listing goes; the others stay. */
static void test_least_recently_used_goes(void **state)
{
    struct fs_dcache *dc = fs_dcache_new();
    char key[32];
    int64_t now = fs_mono_ms();
    int kept = 0;

    (void)state;
    for (int i = 0; i < FS_DCACHE_DIRS + 1; i++) {
        snprintf(key, sizeof key, "d%d", i);
        fs_dcache_note_empty_dir(dc, K(key), now + i); /* d0 is the least recently used */
    }
    assert_false(fs_dcache_absent(dc, K("d0/x")));
    for (int i = 1; i < FS_DCACHE_DIRS + 1; i++) {
        snprintf(key, sizeof key, "d%d/x", i);
        kept += fs_dcache_absent(dc, K(key));
    }
    assert_int_equal(kept, FS_DCACHE_DIRS);
    fs_dcache_free(dc);
}

/* A directory's attributes are kept for FS_DCACHE_ATTR_MS; a change of any directory's record
 * drops every copy, and a copy read before that change is not kept. */
static void test_directory_attributes(void **state)
{
    struct fs_dcache *dc = fs_dcache_new();
    struct fs_meta m, got;
    uint64_t epoch;

    (void)state;
    memset(&m, 0, sizeof m);
    m.mode = S_IFDIR | 0750;
    m.subdirs = 3;
    assert_false(fs_dcache_attrs(dc, K("d"), &got));
    epoch = fs_dcache_attr_epoch(dc);
    fs_dcache_keep_attrs(dc, K("d"), &m, epoch, fs_mono_ms());
    assert_true(fs_dcache_attrs(dc, K("d"), &got));
    assert_int_equal(got.mode, m.mode);
    assert_int_equal(got.subdirs, 3);
    assert_false(fs_dcache_attrs(dc, K("e"), &got));
    /* Too old. */
    fs_dcache_keep_attrs(dc, K("old"), &m, epoch, fs_mono_ms() - FS_DCACHE_ATTR_MS - 1);
    assert_false(fs_dcache_attrs(dc, K("old"), &got));
    /* A change drops them, and a read begun before it is not kept. */
    fs_dcache_attrs_changed(dc);
    assert_false(fs_dcache_attrs(dc, K("d"), &got));
    fs_dcache_keep_attrs(dc, K("d"), &m, epoch, fs_mono_ms());
    assert_false(fs_dcache_attrs(dc, K("d"), &got));
    fs_dcache_keep_attrs(dc, K("d"), &m, fs_dcache_attr_epoch(dc), fs_mono_ms());
    assert_true(fs_dcache_attrs(dc, K("d"), &got));
    /* The root is the empty key. */
    fs_dcache_keep_attrs(dc, K(""), &m, fs_dcache_attr_epoch(dc), fs_mono_ms());
    assert_true(fs_dcache_attrs(dc, K(""), &got));
    fs_dcache_free(dc);
}

/* A mount without a cache (lookupcache=positive) answers nothing and takes every call. */
static void test_no_cache(void **state)
{
    (void)state;
    assert_false(fs_dcache_absent(NULL, K("d/x")));
    fs_dcache_note(NULL, K("d/x"));
    fs_dcache_note_empty_dir(NULL, K("d"), fs_mono_ms());
    fs_dcache_forget(NULL, K("d"));
    fs_dcache_attrs_changed(NULL);
    fs_dcache_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_directory_knows_its_names),
        cmocka_unit_test(test_many_names_kept),
        cmocka_unit_test(test_old_listing_answers_nothing),
        cmocka_unit_test(test_root_directory),
        cmocka_unit_test(test_forget_subtree),
        cmocka_unit_test(test_least_recently_used_goes),
        cmocka_unit_test(test_directory_attributes),
        cmocka_unit_test(test_no_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

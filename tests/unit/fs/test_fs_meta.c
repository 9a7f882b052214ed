/* test_fs_meta.c — unit tests of fs/meta.c: the metadata record, its keys, and the reserved name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fs/fs_internal.h"
#include "fs/meta.h"

/* A record survives encode and decode field by field, negative times included. */
static void test_record_round_trip(void **state)
{
    struct fs_meta m, back;
    uint8_t buf[FS_META_RECORD_BYTES];

    (void)state;
    memset(&m, 0, sizeof m);
    m.mode = S_IFREG | 04755;
    m.uid = 1000;
    m.gid = 4294967294u;
    m.subdirs = 7;
    m.size = (uint64_t)1 << 40;
    m.atime.tv_sec = -86400 * 365; /* before 1970: tar can ask for it */
    m.atime.tv_nsec = 5;
    m.mtime.tv_sec = 1700000000;
    m.mtime.tv_nsec = 999999999;
    m.ctime.tv_sec = 1;
    m.rdev = 0x0801;
    fs_meta_encode(&m, buf);
    assert_int_equal(buf[0], FS_META_VERSION);
    assert_int_equal(fs_meta_decode(buf, sizeof buf, &back), 0);
    assert_int_equal(back.mode, m.mode);
    assert_int_equal(back.uid, m.uid);
    assert_int_equal(back.gid, m.gid);
    assert_int_equal(back.subdirs, m.subdirs);
    assert_int_equal(back.size, m.size);
    assert_int_equal(back.atime.tv_sec, m.atime.tv_sec);
    assert_int_equal(back.atime.tv_nsec, m.atime.tv_nsec);
    assert_int_equal(back.mtime.tv_sec, m.mtime.tv_sec);
    assert_int_equal(back.mtime.tv_nsec, m.mtime.tv_nsec);
    assert_int_equal(back.ctime.tv_sec, 1);
    assert_int_equal(back.rdev, m.rdev);
}

/* A record of another version or length reads as absent (the defaults apply). */
static void test_foreign_record_is_absent(void **state)
{
    struct fs_meta m, back;
    uint8_t buf[FS_META_RECORD_BYTES + 1];

    (void)state;
    memset(&m, 0, sizeof m);
    fs_meta_encode(&m, buf);
    assert_int_equal(fs_meta_decode(buf, FS_META_RECORD_BYTES - 1, &back), -1);
    assert_int_equal(fs_meta_decode(buf, FS_META_RECORD_BYTES + 1, &back), -1);
    buf[0] = FS_META_VERSION + 1;
    assert_int_equal(fs_meta_decode(buf, FS_META_RECORD_BYTES, &back), -1);
    assert_int_equal(fs_meta_decode("hello", 5, &back), -1);
}

/* A node's record key is the reserved prefix and its key; the root's is the prefix alone. */
static void test_record_keys(void **state)
{
    uint8_t out[CLIENT_MAX_KEY_BYTES + FS_META_PREFIX_LEN];

    (void)state;
    assert_int_equal(fs_meta_key((const uint8_t *)"a/b", 3, out), 6);
    assert_memory_equal(out, "\0m/a/b", 6);
    assert_int_equal(fs_meta_key(NULL, 0, out), FS_META_PREFIX_LEN);
    assert_memory_equal(out, FS_RESERVED_TOP "/", FS_META_PREFIX_LEN);
}

/* No path names a metadata key: the reserved top-level component has no name, and
 * "%00m" neither parses nor is produced, while the same bytes lower down are ordinary. */
static void test_reserved_component_has_no_name(void **state)
{
    static struct fs_path p;
    char path[64], name[FS_NAME_MAX + 1];
    size_t n;
    int is_dir;

    (void)state;
    assert_int_equal(fs_name_encode((const uint8_t *)FS_RESERVED_TOP, FS_RESERVED_TOP_LEN, 1, name,
                                    sizeof name, &n),
                     FS_ERR_INVALID);
    assert_int_equal(fs_key_to_path((const uint8_t *)"\0m/x", 4, path, sizeof path, &is_dir),
                     FS_ERR_INVALID);
    assert_int_equal(fs_path_parse("/%00m", &p), FS_ERR_INVALID);
    assert_int_equal(fs_path_parse("/%00m/x", &p), FS_ERR_INVALID);
    /* Nested, or with other bytes, it is an ordinary escaped name. */
    assert_int_equal(fs_path_parse("/a/%00m", &p), FS_OK);
    assert_int_equal(p.key_len, 4);
    assert_memory_equal(p.key, "a/\0m", 4);
    assert_int_equal(fs_path_parse("/%00mm", &p), FS_OK);
    assert_int_equal(fs_path_parse("/%00", &p), FS_OK);
}

/* Attributes become st_* fields: directories count 2 + their subdirectories, files 1. */
static void test_meta_to_stat(void **state)
{
    struct fs_meta m;
    struct stat st;

    (void)state;
    memset(&m, 0, sizeof m);
    m.mode = S_IFDIR | 0750;
    m.subdirs = 3;
    m.size = 99;
    fs_meta_to_stat(&m, &st);
    assert_int_equal(st.st_nlink, 5);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(st.st_mode, S_IFDIR | 0750);
    m.mode = S_IFREG | 0600;
    m.size = 1000;
    fs_meta_to_stat(&m, &st);
    assert_int_equal(st.st_nlink, 1);
    assert_int_equal(st.st_size, 1000);
    assert_int_equal(st.st_blocks, 2);
}

/* Outside a FUSE request a new node belongs to the process (no request context). */
static void test_new_node_without_context(void **state)
{
    struct fs_meta m;

    (void)state;
    fs_meta_new(S_IFREG | 0640, &m);
    assert_int_equal(m.mode, S_IFREG | 0640);
    assert_int_equal(m.uid, getuid());
    assert_true(m.mtime.tv_sec > 1600000000);
    assert_int_equal(m.subdirs, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_foreign_record_is_absent),
        cmocka_unit_test(test_record_keys),
        cmocka_unit_test(test_reserved_component_has_no_name),
        cmocka_unit_test(test_meta_to_stat),
        cmocka_unit_test(test_new_node_without_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

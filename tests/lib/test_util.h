/* test_util.h — small helpers shared by tests: temporary directories, free ports, polling. */
#ifndef TINYKV_TESTS_TEST_UTIL_H
#define TINYKV_TESTS_TEST_UTIL_H

#include <stdint.h>

/* test_tmpdir_new makes a fresh directory under $TMPDIR (or /tmp) named
 * after `prefix`; returns a malloc'd path, or NULL. */
char *test_tmpdir_new(const char *prefix);

/* test_tmpdir_remove deletes the tree at `path` and frees the string. */
void test_tmpdir_remove(char *path);

/* test_free_port asks the kernel for a currently free loopback TCP port. */
int test_free_port(void);

/* test_now_ms: a monotonic clock in milliseconds. */
uint64_t test_now_ms(void);

#endif

/* mem_storage.h — an in-memory Storage (store/storage.h) for tests. */
#ifndef TINYKV_TESTS_LIB_MEM_STORAGE_H
#define TINYKV_TESTS_LIB_MEM_STORAGE_H

/*
 * What it owns: one sorted map per CF (default, lock, write), kept as an
 * immutable, reference-counted sorted array: a write builds new arrays under
 * the storage mutex (copy-on-write), so a reader is just a reference to the
 * arrays current at its creation and never sees later writes. Entries are
 * shared between versions by reference count.
 *
 * Who calls it: unit tests of mvcc/ and any other module that needs a
 * Storage without RocksDB.
 *
 * What it must never do: be used in production (every write copies the
 * pointer arrays of the CFs it touches: O(entries) per write).
 *
 * Thread safety: storage_write and storage_reader may be called from any
 * thread; a reader and its iterators are used by one thread at a time.
 * Readers must be freed before the storage.
 *
 * Fault injection: mem_storage_inject_error makes the next write, or the
 * next reader creation, fail with a given code (e.g. STORAGE_ERR_REGION with
 * a region error kind), so tests can check error propagation.
 */

#include <stddef.h>

#include "store/storage.h"

/* Creates an empty storage. *out is owned by the caller: storage_free(). 0 or STORAGE_ERR_NOMEM. */
int mem_storage_new(struct storage **out);

enum mem_storage_fault_op {
    MEM_STORAGE_FAULT_WRITE = 0,
    MEM_STORAGE_FAULT_READER = 1,
};

/*
 * The next `count` calls of `op` fail with `code` (STORAGE_ERR_*); for
 * STORAGE_ERR_REGION, the error carries `region_kind` and region id 1.
 * `s` must come from mem_storage_new.
 */
void mem_storage_inject_error(struct storage *s, enum mem_storage_fault_op op, int count, int code,
                              enum storage_region_error_kind region_kind);

/* Number of keys currently in `cf`. */
size_t mem_storage_count(struct storage *s, enum storage_cf cf);

/* Number of successful storage_write calls so far. */
size_t mem_storage_write_count(struct storage *s);

#endif

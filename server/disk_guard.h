/* disk_guard.h — whether a store's disk still has room for writes that add data (internal to
 * server/). */
#ifndef TINYKV_SERVER_DISK_GUARD_H
#define TINYKV_SERVER_DISK_GUARD_H

/*
 * What it owns: the free space of one data directory, read with statvfs at most every
 * DISK_GUARD_CHECK_MS, against a reserve in bytes.
 * Who calls it: the raw and transactional handlers (kv_service's `disk`) before a write that
 * adds data: RawPut, and a KvPrewrite that puts more keys than it deletes. Deletes, commits,
 * rollbacks and lock resolution are never refused, so a full store can still free space and
 * finish what it admitted.
 * What it must never do: block (statvfs of a local directory is the only call); refuse when the
 * space cannot be read (it then lets writes through, as a store without a guard does).
 *
 * The reserve is what RocksDB and the Raft log keep for themselves past the last admitted write:
 * a store that ran out of disk could not write its log, and stops. The refusal is the region
 * error DiskFull (errorpb field 15, as TiKV), which clients report instead of retrying.
 */

#include <pthread.h>
#include <stdint.h>

#include "errorpb.pb-c.h"

#define DISK_GUARD_CHECK_MS 500

struct disk_guard {
    char dir[4096];
    uint64_t reserve_bytes; /* 0: never refuse */
    uint64_t store_id;      /* named in the refusal (0 in standalone mode) */
    pthread_mutex_t mu;
    uint64_t checked_ms; /* guarded by mu: when `avail` was read */
    uint64_t avail;      /* guarded by mu: bytes free for unprivileged users then */
    int known;           /* guarded by mu: statvfs answered */
};

void disk_guard_init(struct disk_guard *g, const char *dir, uint64_t reserve_bytes,
                     uint64_t store_id);
void disk_guard_destroy(struct disk_guard *g);

/* NULL while the disk has more free space than the reserve (or g is NULL, or the space is
 * unknown); else a DiskFull region error saying how much is free, owned by the caller
 * (protobuf_c_message_free_unpacked(..., NULL)). On allocation failure also NULL. */
Errorpb__Error *disk_guard_refusal(struct disk_guard *g);

#endif

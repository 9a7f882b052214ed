/* engine.h — the RocksDB engine of one store: column families default, lock, write (internal to
 * store/). */
#ifndef TINYKV_STORE_ENGINE_H
#define TINYKV_STORE_ENGINE_H

/*
 * What it owns: one RocksDB instance with the data column families, its
 * options and CF handles.
 * Who calls it: the standalone storage now, the raftstore's kv DB later.
 * What it must never do: interpret keys; hold locks across RocksDB calls
 * (RocksDB is itself thread-safe).
 */

#include <rocksdb/c.h>

#include "store/storage.h"

struct engine;

/*
 * engine_open opens (creating if missing) the database in directory `path`
 * with the data CFs (default, lock, write) and the meta CF (ENGINE_CF_META)
 * where the raftstore keeps per-region apply and region state beside the data
 * they describe. `sync` makes every write wait for its WAL to reach the disk.
 * On failure returns STORAGE_ERR_IO with the reason in errbuf.
 */
int engine_open(const char *path, int sync, struct engine **out, char *errbuf, size_t errbuf_len);

/* The meta column family's index for engine_cf (not part of the Storage interface). */
#define ENGINE_CF_META STORAGE_CF_COUNT
#define ENGINE_CF_COUNT (STORAGE_CF_COUNT + 1)

/* engine_write_batch writes a batch the caller built (raftstore paths that
 * mix data and meta CFs); `sync` overrides the engine's default for it. */
int engine_write_batch(struct engine *e, rocksdb_writebatch_t *wb, int sync, char *errbuf,
                       size_t errbuf_len);
void engine_close(struct engine *e);

/*
 * Machine-crash model, for tests. engine_open_crash_model opens an engine
 * that remembers where its WAL stood after each synced write (and does not
 * flush memtables at close); engine_close_crashed then closes it and cuts
 * the WAL back to that point, so a reopen sees exactly what a power loss
 * would have left: every synced write and whatever was flushed to tables,
 * and none of the unsynced writes after the last sync.
 */
int engine_open_crash_model(const char *path, int sync, struct engine **out, char *errbuf,
                            size_t errbuf_len);
void engine_close_crashed(struct engine *e);

/*
 * engine_format_check makes sure the kv DB speaks today's key layout
 * (store/keys.h KEYS_FORMAT_STAMP): an empty DB is stamped, a stamped one
 * passes, and one that holds data without the stamp (an older layout) or
 * with another stamp is refused with STORAGE_ERR_INVALID and the reason in
 * errbuf, before anything reads it.
 */
int engine_format_check(struct engine *e, char *errbuf, size_t errbuf_len);

/* Borrowed handles, valid until engine_close. */
rocksdb_t *engine_db(struct engine *e);
rocksdb_column_family_handle_t *engine_cf(struct engine *e, int cf);

/* engine_write applies `mods` in one atomic write batch. */
int engine_write(struct engine *e, const struct storage_modify *mods, size_t n, char *errbuf,
                 size_t errbuf_len);

/*
 * engine_approximate_size: RocksDB's estimate of the bytes the data CFs hold
 * in [start, end) (end_len 0: no bound), from its files; data not yet
 * flushed from memory counts only when the range is every key.
 */
uint64_t engine_approximate_size(struct engine *e, const void *start, size_t start_len,
                                 const void *end, size_t end_len);

/*
 * engine_snapshot_reader returns a Storage reader over a RocksDB snapshot
 * taken now; it is owned by the caller (storage_reader_free).
 */
int engine_snapshot_reader(struct engine *e, struct storage_reader **out);

/*
 * engine_snapshot_reader_bounded is engine_snapshot_reader whose iterators
 * stop at the data range [lo, hi) (copied; a 0 length: unbounded on that
 * side; RocksDB iterate bounds), so a region's reader never sees another
 * region's keys.
 */
int engine_snapshot_reader_bounded(struct engine *e, const void *lo, size_t lo_len, const void *hi,
                                   size_t hi_len, struct storage_reader **out);

/*
 * standalone_storage_open: the Storage interface straight over an engine in
 * `dir` — no replication, no regions (`--standalone`). Writes are synced.
 * *out is owned by the caller (storage_free closes the engine).
 */
int standalone_storage_open(const char *dir, struct storage **out, char *errbuf, size_t errbuf_len);

#endif

/* mvcc_internal.h — mvcc/'s internal interfaces: key codec, records, MvccTxn, latches, helpers. */
#ifndef TINYKV_MVCC_MVCC_INTERNAL_H
#define TINYKV_MVCC_MVCC_INTERNAL_H

/*
 * Only files of mvcc/ and mvcc's own unit tests include this header; other
 * modules use mvcc/mvcc.h.
 */

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/codec.h"
#include "mvcc/mvcc.h"

/* ---- codec.c: MVCC keys over the one key space (codec/codec.h) ---- */

/*
 * mvcc_key_encode builds enc(key) ++ ~ts BE. *out is malloc'd and owned by the
 * caller. Errors: MVCC_ERR_NOMEM.
 */
int mvcc_key_encode(const void *key, size_t key_len, uint64_t ts, uint8_t **out, size_t *out_len);

/*
 * Lock CF keys are enc(key) with no suffix. mvcc_lock_key_encode: *out is
 * malloc'd and owned by the caller (MVCC_ERR_NOMEM). mvcc_lock_key_decode:
 * *user is malloc'd and owned by the caller (MVCC_ERR_CORRUPT, _NOMEM).
 */
int mvcc_lock_key_encode(const void *key, size_t key_len, uint8_t **out, size_t *out_len);
int mvcc_lock_key_decode(const void *enc, size_t enc_len, uint8_t **user, size_t *user_len);

/*
 * mvcc_key_decode splits an encoded key into the user key (malloc'd into
 * *user, owned by the caller; may be NULL when only ts is wanted, then the
 * key is decoded into a scratch buffer) and its timestamp. Errors:
 * MVCC_ERR_CORRUPT, MVCC_ERR_NOMEM.
 */
int mvcc_key_decode(const void *enc, size_t enc_len, uint8_t **user, size_t *user_len,
                    uint64_t *ts);

/*
 * mvcc_key_has_prefix tells whether encoded key `enc` (with a ts suffix)
 * belongs to user key `key`, by comparing with its encoded prefix `prefix`
 * (= enc(key)). Returns 1 or 0.
 */
int mvcc_key_has_prefix(const void *enc, size_t enc_len, const uint8_t *prefix, size_t prefix_len);

/* ---- records.c: lock and write records ---- */

enum mvcc_write_kind {
    MVCC_WRITE_PUT = 1,
    MVCC_WRITE_DELETE = 2,
    MVCC_WRITE_ROLLBACK = 3,
    MVCC_WRITE_LOCK = 4,
};

#define MVCC_LOCK_FIXED_BYTES 17
#define MVCC_WRITE_RECORD_BYTES 9 /* kind, start ts; then, for a short value, 'v', len, bytes */
#define MVCC_SHORT_VALUE_MAX 255
#define MVCC_SHORT_VALUE_FLAG 'v'
#define MVCC_WRITE_RECORD_MAX (MVCC_WRITE_RECORD_BYTES + 2 + MVCC_SHORT_VALUE_MAX)

/*
 * A decoded lock. primary points into `buf` when buf is set (then buf is
 * owned and released by mvcc_lock_release), else it is borrowed.
 */
struct mvcc_lock {
    const uint8_t *primary;
    size_t primary_len;
    uint64_t start_ts;
    uint64_t ttl_ms;
    enum mvcc_write_kind kind; /* PUT, DELETE or LOCK */
    void *buf;
};

struct mvcc_write {
    uint64_t start_ts;
    enum mvcc_write_kind kind;
    /* A put whose value is kept in the record itself (TiKV's short value: up to
     * MVCC_SHORT_VALUE_MAX bytes, written by one-phase commits) instead of in CF default at
     * (key, start_ts). Decoding borrows it from the record's bytes. */
    int has_short;
    const uint8_t *short_value;
    size_t short_len;
};

/* The lock and write record kind of a prewrite mutation's op (PUT, DEL or LOCK). */
static inline enum mvcc_write_kind mvcc_write_kind_of_op(enum mvcc_op op)
{
    return op == MVCC_OP_PUT   ? MVCC_WRITE_PUT
           : op == MVCC_OP_DEL ? MVCC_WRITE_DELETE
                               : MVCC_WRITE_LOCK;
}

/* Bytes of the encoded lock record. */
size_t mvcc_lock_encoded_len(const struct mvcc_lock *lock);
/* Encodes into out (mvcc_lock_encoded_len bytes). */
void mvcc_lock_encode(const struct mvcc_lock *lock, uint8_t *out);
/* Decodes; primary points into `in` (borrowed), buf is NULL. MVCC_ERR_CORRUPT if malformed. */
int mvcc_lock_decode(const void *in, size_t len, struct mvcc_lock *out);
void mvcc_lock_release(struct mvcc_lock *lock);

/* Encodes into out; returns the record's length. A short value is kept only on a put of at most
 * MVCC_SHORT_VALUE_MAX bytes. */
size_t mvcc_write_encode(const struct mvcc_write *w, uint8_t out[MVCC_WRITE_RECORD_MAX]);
/* Decodes; a short value points into `in`. MVCC_ERR_CORRUPT if malformed. */
int mvcc_write_decode(const void *in, size_t len, struct mvcc_write *out);

/* ---- txn.c: MvccTxn, one command's reads and buffered writes ---- */

/* A buffered modification; key and value are owned copies. */
struct mvcc_txn_mod {
    enum storage_modify_kind kind;
    enum storage_cf cf;
    uint8_t *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
};

/*
 * A transaction's view for one command: reads go to `reader` (borrowed for
 * the txn's life) — lock reads also see the txn's own buffered lock changes —
 * and writes are buffered until mvcc_txn_write puts them in one batch.
 */
struct mvcc_txn {
    struct storage_reader *reader;
    uint64_t start_ts;
    struct mvcc_txn_mod *mods;
    size_t n_mods;
    size_t cap_mods;
};

void mvcc_txn_init(struct mvcc_txn *txn, struct storage_reader *reader, uint64_t start_ts);
/* Frees buffered writes. The reader is not freed. */
void mvcc_txn_close(struct mvcc_txn *txn);

/* Buffering; all copy their arguments. Errors: MVCC_ERR_NOMEM. */
int mvcc_txn_put_lock(struct mvcc_txn *txn, const void *key, size_t key_len,
                      const struct mvcc_lock *lock);
int mvcc_txn_delete_lock(struct mvcc_txn *txn, const void *key, size_t key_len);
int mvcc_txn_put_value(struct mvcc_txn *txn, const void *key, size_t key_len, const void *value,
                       size_t value_len);
int mvcc_txn_delete_value(struct mvcc_txn *txn, const void *key, size_t key_len);
int mvcc_txn_put_write(struct mvcc_txn *txn, const void *key, size_t key_len, uint64_t commit_ts,
                       const struct mvcc_write *w);

/*
 * mvcc_txn_get_lock reads key's lock: *found is 1 and *out holds it (owned:
 * mvcc_lock_release) or *found is 0. Errors: MVCC_ERR_NOMEM, MVCC_ERR_STORAGE,
 * MVCC_ERR_CORRUPT.
 */
int mvcc_txn_get_lock(struct mvcc_txn *txn, const void *key, size_t key_len, struct mvcc_lock *out,
                      int *found);

/*
 * mvcc_txn_get_value reads the value visible at the txn's start_ts (newest
 * put committed at or before it; delete hides; rollback/lock skipped),
 * ignoring locks. *value is malloc'd (owned) when *found is 1.
 */
int mvcc_txn_get_value(struct mvcc_txn *txn, const void *key, size_t key_len, void **value,
                       size_t *value_len, int *found);
/* mvcc_txn_get_version is mvcc_txn_get_value that also gives the version's
 * *commit_ts (commit_ts may be NULL). */
int mvcc_txn_get_version(struct mvcc_txn *txn, const void *key, size_t key_len, void **value,
                         size_t *value_len, uint64_t *commit_ts, int *found);

/*
 * mvcc_txn_current_write finds the write record of this transaction (record
 * start_ts == txn start_ts) on key: *found, *w and its *commit_ts. It and the two
 * finders below leave w->short_value NULL: the record's bytes are gone when they
 * return (has_short and short_len stay).
 */
int mvcc_txn_current_write(struct mvcc_txn *txn, const void *key, size_t key_len,
                           struct mvcc_write *w, uint64_t *commit_ts, int *found);

/* mvcc_txn_write_at_start finds the write record of any transaction at commit ts == the txn's
 * start ts on key (*found, *w). */
int mvcc_txn_write_at_start(struct mvcc_txn *txn, const void *key, size_t key_len,
                            struct mvcc_write *w, int *found);

/* mvcc_txn_most_recent_write finds key's newest write record of any kind. */
int mvcc_txn_most_recent_write(struct mvcc_txn *txn, const void *key, size_t key_len,
                               struct mvcc_write *w, uint64_t *commit_ts, int *found);

/*
 * mvcc_txn_write writes every buffered modification in one atomic batch
 * (nothing when none). Returns 0, MVCC_ERR_NOMEM, MVCC_ERR_REGION or
 * MVCC_ERR_STORAGE with *err filled.
 */
int mvcc_txn_write(struct mvcc_txn *txn, struct storage *s, const struct storage_ctx *ctx,
                   struct storage_error *err);
/* mvcc_txn_write_async is mvcc_txn_write through storage_write_async: cb runs exactly once (at
 * once, with rc 0, when nothing is buffered; with STORAGE_ERR_NOMEM when the batch cannot be
 * built). The buffered modifications are copied by the storage before the call returns. */
void mvcc_txn_write_async(struct mvcc_txn *txn, struct storage *s, const struct storage_ctx *ctx,
                          storage_write_cb cb, void *arg);

/* ---- latches.c ---- */

/*
 * Latches: a fixed table of hash slots; a command holds the slots of all its
 * keys while it reads, checks and writes (for a replicated write, until Raft has
 * answered it). Slots are taken one by one in ascending order (so two commands
 * can never wait on each other in a cycle). A command that finds a slot busy
 * keeps the slots it has and waits in the table's FIFO of waiters, without a
 * thread: each release walks the waiters and hands the freed slots on, and a
 * waiter that now holds every slot is told so through its callback, on the
 * releasing thread after the table's mutex is dropped. The blocking form waits
 * on a condition variable for that callback.
 */
typedef void (*mvcc_latch_granted_fn)(void *arg);

/* What one command holds: sorted distinct slots (owned), and its place in the wait list. */
struct mvcc_latch_guard {
    size_t *slots;
    size_t n_slots;
    size_t n_held; /* slots[0 .. n_held) are ours; guarded by the table's mu */
    mvcc_latch_granted_fn granted;
    void *granted_arg;
    struct mvcc_latch_guard *next_waiter; /* guarded by the table's mu */
};

struct mvcc_latches {
    pthread_mutex_t mu;
    uint8_t *busy; /* guarded by mu */
    size_t n_slots;
    struct mvcc_latch_guard *waiters, **waiters_tail; /* FIFO, guarded by mu */
};

int mvcc_latches_init(struct mvcc_latches *l, size_t n_slots);
void mvcc_latches_close(struct mvcc_latches *l);
/* Slot of a key: exposed for tests. */
size_t mvcc_latches_slot(const struct mvcc_latches *l, const void *key, size_t key_len);
/* Blocks until every key's slot is held. Errors: MVCC_ERR_NOMEM (nothing held). */
int mvcc_latches_acquire(struct mvcc_latches *l, const struct mvcc_key_slice *keys, size_t n,
                         struct mvcc_latch_guard *g);
/*
 * mvcc_latches_acquire_async takes every key's slot without blocking: it returns 1 when all are
 * held now (granted is not called), 0 when the command waits (granted(arg) runs once they are
 * all held, on the thread of the release that completed them; g must stay put until then),
 * or -MVCC_ERR_NOMEM (nothing held).
 */
int mvcc_latches_acquire_async(struct mvcc_latches *l, const struct mvcc_key_slice *keys, size_t n,
                               struct mvcc_latch_guard *g, mvcc_latch_granted_fn granted,
                               void *arg);
/* Releases a guard whose slots are all held (or an empty one). */
void mvcc_latches_release(struct mvcc_latches *l, struct mvcc_latch_guard *g);

/* ---- mem_locks.c ---- */

/*
 * The keys of a one-phase commit from before it asks for its commit ts until its write has
 * applied (or failed). A reader at read_ts that could see such a write (its commit ts is not
 * known yet, or is <= read_ts) waits for it before taking its snapshot: the write has no lock
 * record in the lock CF to stop the reader the way a prewrite's lock does, so without this a
 * read could miss a commit below its own timestamp and then see it on a second look.
 */
struct mvcc_mem_lock {
    const struct mvcc_key_slice *keys; /* borrowed from the prewrite, valid while listed */
    size_t n_keys;
    uint64_t commit_ts; /* 0 until taken; guarded by the table's mu */
    struct mvcc_mem_lock *prev, *next;
};

/*
 * A one-phase commit whose snapshot came from a region's leader may take its commit ts here
 * instead of from the TSO: one above every ts any reader on this store has read at (max_ts) and
 * above its start ts. That is enough once max_ts also covers every read the region's earlier
 * leaders served, which a TSO answer asked for in the current leader's term does (those reads
 * took their ts before this leader could be elected, hence before the answer): such a
 * (region, term) is "synced". The write then carries the term, so no other term proposes it.
 * A ts more than MVCC_LOCAL_TS_SLACK above the newest TSO answer seen is not trusted (a
 * client's bogus read ts must not push commits into the future): such commits ask the TSO.
 */
#define MVCC_SYNCED_SLOTS 1024
#define MVCC_LOCAL_TS_SLACK ((uint64_t)1000 << 18) /* 1 s of TSO physical time */

struct mvcc_mem_locks {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* CLOCK_MONOTONIC; broadcast on every change */
    struct mvcc_mem_lock *head; /* guarded by mu */
    int waiters;                /* readers waiting now, guarded by mu (tests look at it) */
    int ready;
    /* Guarded by mu. */
    uint64_t max_ts;   /* the highest read ts or TSO answer seen */
    uint64_t last_tso; /* the highest TSO answer seen */
    struct synced_term {
        uint64_t region_id, term; /* term 0: empty */
    } synced[MVCC_SYNCED_SLOTS];  /* direct-mapped by region id: an evicted one syncs again */
};

int mvcc_mem_locks_init(struct mvcc_mem_locks *l);
void mvcc_mem_locks_close(struct mvcc_mem_locks *l);
/* add lists m (caller-owned, listed until remove) with commit ts unknown. */
void mvcc_mem_locks_add(struct mvcc_mem_locks *l, struct mvcc_mem_lock *m);
void mvcc_mem_locks_set_commit_ts(struct mvcc_mem_locks *l, struct mvcc_mem_lock *m,
                                  uint64_t commit_ts);
void mvcc_mem_locks_remove(struct mvcc_mem_locks *l, struct mvcc_mem_lock *m);
/*
 * add_local lists m with a commit ts chosen here (*commit_ts) when (region_id, term) is synced
 * and the ts is trusted; returns 1 then, else 0 with m not listed. term 0 never is.
 */
int mvcc_mem_locks_add_local(struct mvcc_mem_locks *l, struct mvcc_mem_lock *m, uint64_t region_id,
                             uint64_t term, uint64_t start_ts, uint64_t *commit_ts);
/* A TSO answer asked for after a snapshot of (region_id, term) was taken: max_ts covers it, and
 * the pair is synced (term 0: only the ts counts). */
void mvcc_mem_locks_tso_seen(struct mvcc_mem_locks *l, uint64_t region_id, uint64_t term,
                             uint64_t ts);
/*
 * mvcc_mem_locks_wait raises max_ts to read_ts, then waits, at most timeout_ms, until no listed
 * lock that may commit at or below read_ts holds a key in [start, end) (end_len 0: no upper
 * bound), or the key start itself when end is NULL. Returns 0, or 1 when the time ran out, or 2
 * (max_ts untouched, nothing waited for) when read_ts lies more than MVCC_READ_TS_AHEAD_MS past
 * both the wall clock and last_tso. A read at MVCC_TS_MAX (the newest versions) waits like any
 * other but leaves max_ts as it is.
 */
int mvcc_mem_locks_wait(struct mvcc_mem_locks *l, const void *start, size_t start_len,
                        const void *end, size_t end_len, uint64_t read_ts, int timeout_ms);

/* ---- engine.c: the engine and shared command helpers ---- */

struct mvcc_engine {
    struct storage *storage; /* borrowed */
    struct mvcc_latches latches;
    struct mvcc_mem_locks mem_locks;
    /* Where one-phase commits take their commit ts; NULL: prewrites never commit in one phase. */
    mvcc_ts_fn ts_source;
    void *ts_source_arg;
    mvcc_ts_async_fn ts_source_async; /* preferred over ts_source when set */
    void *ts_source_async_arg;
    int mem_lock_wait_ms; /* MVCC_MEM_LOCK_WAIT_MS; tests shorten it */
};

/*
 * mvcc_wait_mem_locks is mvcc_mem_locks_wait for a read command: when the time runs out it
 * fills serr as a ServerIsBusy region error and returns MVCC_ERR_REGION.
 */
int mvcc_wait_mem_locks(struct mvcc_engine *e, const void *start, size_t start_len, const void *end,
                        size_t end_len, uint64_t read_ts, struct storage_error *serr);

/*
 * mvcc_key_error_set fills e with kind and a formatted message; locked and
 * conflict fields are left for the caller.
 */
void mvcc_key_error_set(struct mvcc_key_error *e, enum mvcc_key_error_kind kind, const char *fmt,
                        ...) __attribute__((format(printf, 3, 4)));

/* Fills a LOCKED error from a lock found on key. Errors: MVCC_ERR_NOMEM. */
int mvcc_key_error_locked(struct mvcc_key_error *e, const void *key, size_t key_len,
                          const struct mvcc_lock *lock);

/*
 * mvcc_check_key reports an INVALID key error for an empty or oversized key
 * (`what` names it in the message). Returns 1 if invalid.
 */
int mvcc_check_key(struct mvcc_key_error *e, const char *what, const void *key, size_t key_len);

/*
 * mvcc_open_reader opens a snapshot reader, mapping a storage failure to
 * MVCC_ERR_REGION / MVCC_ERR_STORAGE / MVCC_ERR_NOMEM with serr and errmsg
 * (256 bytes) filled.
 */
int mvcc_open_reader(struct mvcc_engine *e, const struct storage_ctx *ctx,
                     struct storage_reader **out, struct storage_error *serr, char *errmsg);

/*
 * mvcc_reader_outcome is mvcc_open_reader's mapping for an asynchronous reader's answer (rc, err
 * as storage_reader_cb gives them): returns the MVCC code with serr and errmsg filled.
 */
int mvcc_reader_outcome(int rc, const struct storage_error *err, struct storage_error *serr,
                        char *errmsg);

/* mvcc_write_outcome maps a storage write's answer (rc, err as storage_write_cb gives them) to
 * an MVCC code, filling serr. */
int mvcc_write_outcome(int rc, const struct storage_error *err, struct storage_error *serr);

/* A blocking form's wait for its asynchronous command: init, pass mvcc_sync_done with the
 * waiter as done's arg, then mvcc_sync_wait returns the command's code. */
struct mvcc_sync {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int rc;
};
void mvcc_sync_init(struct mvcc_sync *w);
void mvcc_sync_done(void *arg, int rc);
int mvcc_sync_wait(struct mvcc_sync *w);

/* Maps a storage return code to an MVCC code. */
int mvcc_from_storage(int storage_code);

/* Copies a byte string into a fresh malloc'd buffer (NULL on failure; a 1-byte
 * allocation for len 0 so success is never NULL). */
void *mvcc_memdup(const void *p, size_t len);

/* Fills errmsg (256 bytes) for a nonzero code unless already filled. */
void mvcc_errmsg_default(char *errmsg, int code, const struct storage_error *serr);

/*
 * Helpers shared by commit, rollback, check txn status and resolve lock: the
 * per-key steps, buffering into txn. *kerr is set on a key error.
 */
int mvcc_commit_key(struct mvcc_txn *txn, const void *key, size_t key_len, uint64_t commit_ts,
                    struct mvcc_key_error *kerr);
int mvcc_rollback_key(struct mvcc_txn *txn, const void *key, size_t key_len,
                      struct mvcc_key_error *kerr);

#endif

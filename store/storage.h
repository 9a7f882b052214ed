/* storage.h — the Storage interface: how MVCC and the KV service read and write a store's data. */
#ifndef TINYKV_STORE_STORAGE_H
#define TINYKV_STORE_STORAGE_H

/*
 * What it owns: nothing but the shape of the contract. A `struct storage` is
 * a vtable over one of two implementations: the standalone engine (RocksDB,
 * no replication, store/standalone_storage.c) and, later, the Raft-replicated
 * store. Tests also provide an in-memory one (tests/lib/mem_storage.c).
 *
 * Who calls it: the gRPC TinyKv service (raw handlers) and mvcc/ (the
 * transactional handlers). mvcc/ includes this header and nothing else of
 * store/.
 *
 * What it must never do: interpret keys or values (MVCC encoding is mvcc's
 * business), or let a reader see writes made after it was created.
 *
 * Column families are fixed: default, lock, write.
 *
 * Thread safety: `storage_write` and `storage_reader` may be called from any
 * thread concurrently. A reader and its iterators are used by one thread at a
 * time.
 */

#include <stddef.h>
#include <stdint.h>

enum storage_cf {
    STORAGE_CF_DEFAULT = 0,
    STORAGE_CF_LOCK = 1,
    STORAGE_CF_WRITE = 2,
    STORAGE_CF_COUNT = 3,
};

/* Error codes, in this module's range. 0 is success. */
enum {
    STORAGE_OK = 0,
    STORAGE_ERR_NOT_FOUND = 1000, /* get: the key has no value */
    STORAGE_ERR_NOMEM,
    STORAGE_ERR_IO,      /* the engine failed; detail in err->msg */
    STORAGE_ERR_INVALID, /* bad argument: unknown CF, empty key, ... */
    STORAGE_ERR_REGION,  /* a region error (replicated storage only); see err->region */
    STORAGE_ERR_CLOSED,  /* the storage is shutting down */
};

/* A user key, borrowed. */
struct storage_key {
    const void *data;
    size_t len;
};

/* Region routing of a request, from kvrpcpb.Context. Zeroes in standalone mode. */
struct storage_ctx {
    uint64_t region_id;
    uint64_t region_conf_ver;
    uint64_t region_version;
    uint64_t peer_id;
    uint64_t peer_store_id;
    /* The user keys a read touches (a scan: its start key), borrowed for the
     * call; may be none. A replicated storage answers KeyNotInRegion when
     * one lies outside the region, before it confirms leadership. */
    const struct storage_key *keys;
    size_t n_keys;
    /* How long a replicated write may wait for Raft before it is answered undetermined;
     * 0: the storage's own timeout. A caller that holds something until the write's fate is
     * known (a one-phase commit's in-memory lock) asks for longer. */
    int timeout_ms;
    /* Nonzero: a replicated write is proposed only by the region's leader in this Raft term,
     * else answered StaleCommand (a one-phase commit whose ts this store chose in that term). */
    uint64_t term;
};

/* Region error kinds, mirroring errorpb.Error's variants. */
enum storage_region_error_kind {
    STORAGE_REGION_ERR_NONE = 0,
    STORAGE_REGION_ERR_NOT_LEADER,
    STORAGE_REGION_ERR_REGION_NOT_FOUND,
    STORAGE_REGION_ERR_KEY_NOT_IN_REGION,
    STORAGE_REGION_ERR_EPOCH_NOT_MATCH,
    STORAGE_REGION_ERR_STALE_COMMAND,
    STORAGE_REGION_ERR_STORE_NOT_MATCH,
    STORAGE_REGION_ERR_SERVER_IS_BUSY,
    /* A write was proposed but its fate is unknown (deadline passed, peer
     * closed): it may or may not apply. errorpb.Error.undetermined on the wire. */
    STORAGE_REGION_ERR_UNDETERMINED,
};

/* Detail of a failed call. Filled without allocating. */
struct storage_error {
    int code;
    enum storage_region_error_kind region_kind;
    uint64_t region_id;
    uint64_t leader_peer_id;  /* NOT_LEADER hint, 0 if unknown */
    uint64_t leader_store_id; /* NOT_LEADER hint, 0 if unknown */
    /* KEY_NOT_IN_REGION: 1 + the index in ctx->keys of the key outside (0: unknown). */
    size_t key_pos;
    char msg[256];
};

enum storage_modify_kind {
    STORAGE_MODIFY_PUT = 0,
    STORAGE_MODIFY_DELETE = 1,
};

/* One change of a write batch. All pointers are borrowed for the call. */
struct storage_modify {
    enum storage_modify_kind kind;
    enum storage_cf cf;
    const void *key;
    size_t key_len;
    const void *value; /* PUT only */
    size_t value_len;
};

struct storage;
struct storage_reader;
struct storage_iter;

/* Completions of the asynchronous forms below. `err` is borrowed for the call (NULL when rc is
 * 0); a reader is owned by the callee (storage_reader_free). */
typedef void (*storage_write_cb)(void *arg, int rc, const struct storage_error *err);
typedef void (*storage_reader_cb)(void *arg, int rc, struct storage_reader *reader,
                                  const struct storage_error *err);

struct storage_ops {
    int (*write)(struct storage *s, const struct storage_ctx *ctx,
                 const struct storage_modify *mods, size_t n, struct storage_error *err);
    int (*reader)(struct storage *s, const struct storage_ctx *ctx, struct storage_reader **out,
                  struct storage_error *err);
    void (*free)(struct storage *s);
    /* Optional (NULL: the wrappers run the blocking forms and call back at once). */
    void (*write_async)(struct storage *s, const struct storage_ctx *ctx,
                        const struct storage_modify *mods, size_t n, storage_write_cb cb,
                        void *arg);
    void (*reader_async)(struct storage *s, const struct storage_ctx *ctx, storage_reader_cb cb,
                         void *arg);
};

struct storage_reader_ops {
    int (*get)(struct storage_reader *r, enum storage_cf cf, const void *key, size_t key_len,
               void **value, size_t *value_len);
    int (*iter)(struct storage_reader *r, enum storage_cf cf, struct storage_iter **out);
    void (*free)(struct storage_reader *r);
};

struct storage_iter_ops {
    void (*seek)(struct storage_iter *it, const void *key, size_t key_len);
    int (*valid)(const struct storage_iter *it);
    void (*next)(struct storage_iter *it);
    const void *(*key)(const struct storage_iter *it, size_t *len);
    const void *(*value)(const struct storage_iter *it, size_t *len);
    void (*free)(struct storage_iter *it);
};

/* Implementations embed these as their first member. */
struct storage {
    const struct storage_ops *ops;
};
struct storage_reader {
    const struct storage_reader_ops *ops;
    /* A replicated storage's snapshot: the Raft term in which the region's leader took it, always
     * nonzero. 0: no leadership term (standalone, tests), which never lets mvcc/ choose a commit
     * ts itself. */
    uint64_t term;
};
struct storage_iter {
    const struct storage_iter_ops *ops;
};

/*
 * storage_write applies every modification of `mods` atomically: all or none.
 * Returns 0, or STORAGE_ERR_* with `err` filled (err may be NULL).
 */
static inline int storage_write(struct storage *s, const struct storage_ctx *ctx,
                                const struct storage_modify *mods, size_t n,
                                struct storage_error *err)
{
    return s->ops->write(s, ctx, mods, n, err);
}

/*
 * storage_reader opens a consistent snapshot: it sees every write that
 * returned before this call and none after. On success *out is owned by the
 * caller and released with storage_reader_free, after its iterators.
 */
static inline int storage_reader(struct storage *s, const struct storage_ctx *ctx,
                                 struct storage_reader **out, struct storage_error *err)
{
    return s->ops->reader(s, ctx, out, err);
}

/*
 * storage_write_async is storage_write answered through cb instead of by return: cb runs exactly
 * once, on any thread (the store loop, a timer, or this one before the call returns), within
 * the storage's request deadline. `mods` and ctx are copied before the call returns (ctx->keys
 * too). For callers that must not park a thread while Raft works (the gRPC handlers).
 */
static inline void storage_write_async(struct storage *s, const struct storage_ctx *ctx,
                                       const struct storage_modify *mods, size_t n,
                                       storage_write_cb cb, void *arg)
{
    if (s->ops->write_async) {
        s->ops->write_async(s, ctx, mods, n, cb, arg);
        return;
    }
    struct storage_error err = {0};
    int rc = s->ops->write(s, ctx, mods, n, &err);
    cb(arg, rc, rc ? &err : NULL);
}

/* storage_reader_async is storage_reader answered through cb, on the same terms. */
static inline void storage_reader_async(struct storage *s, const struct storage_ctx *ctx,
                                        storage_reader_cb cb, void *arg)
{
    if (s->ops->reader_async) {
        s->ops->reader_async(s, ctx, cb, arg);
        return;
    }
    struct storage_error err = {0};
    struct storage_reader *r = NULL;
    int rc = s->ops->reader(s, ctx, &r, &err);
    cb(arg, rc, rc ? NULL : r, rc ? &err : NULL);
}

/* storage_is_async: whether the async forms really answer later (so a caller on a thread that
 * must not block may use them) rather than blocking inside the call. */
static inline int storage_is_async(const struct storage *s)
{
    return s->ops->write_async && s->ops->reader_async;
}

static inline void storage_free(struct storage *s)
{
    if (s)
        s->ops->free(s);
}

/*
 * storage_reader_get looks `key` up in `cf`. On success *value is a malloc'd
 * copy owned by the caller (free()), *value_len its length; a missing key is
 * STORAGE_ERR_NOT_FOUND with *value NULL.
 */
static inline int storage_reader_get(struct storage_reader *r, enum storage_cf cf, const void *key,
                                     size_t key_len, void **value, size_t *value_len)
{
    return r->ops->get(r, cf, key, key_len, value, value_len);
}

/*
 * storage_reader_iter opens a forward iterator over `cf` of the snapshot,
 * unpositioned until the first seek. *out is owned by the caller.
 */
static inline int storage_reader_iter(struct storage_reader *r, enum storage_cf cf,
                                      struct storage_iter **out)
{
    return r->ops->iter(r, cf, out);
}

static inline void storage_reader_free(struct storage_reader *r)
{
    if (r)
        r->ops->free(r);
}

/* Position at the first key >= key (bytewise order). */
static inline void storage_iter_seek(struct storage_iter *it, const void *key, size_t key_len)
{
    it->ops->seek(it, key, key_len);
}

static inline int storage_iter_valid(const struct storage_iter *it)
{
    return it->ops->valid(it);
}

static inline void storage_iter_next(struct storage_iter *it)
{
    it->ops->next(it);
}

/* Key and value of the current entry: borrowed until the next seek, next or free. */
static inline const void *storage_iter_key(const struct storage_iter *it, size_t *len)
{
    return it->ops->key(it, len);
}

static inline const void *storage_iter_value(const struct storage_iter *it, size_t *len)
{
    return it->ops->value(it, len);
}

static inline void storage_iter_free(struct storage_iter *it)
{
    if (it)
        it->ops->free(it);
}

/* Name of a CF ("default", "lock", "write"); storage_cf_parse maps a name
 * (empty means default) to its CF, or returns -1. */
const char *storage_cf_name(enum storage_cf cf);
int storage_cf_parse(const char *name, size_t len);

/* Human-readable text for a STORAGE_ERR_* code. */
const char *storage_strerror(int code);

#endif

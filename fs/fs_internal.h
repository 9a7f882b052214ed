/* fs_internal.h — what the fs/ files share: the struct fs, open-file handles, key helpers. */
#ifndef TINYKV_FS_FS_INTERNAL_H
#define TINYKV_FS_FS_INTERNAL_H

#define FUSE_USE_VERSION 31
#include <fuse.h>
#include <pthread.h>
#include <sys/statvfs.h>
#include <time.h>

#include "fs/dcache.h"
#include "fs/fs.h"
#include "fs/meta.h"

/* Times a blind whole-file write (or a small transaction) is tried on write conflicts. */
#define FS_CONFLICT_RETRIES 12

struct fs {
    struct client *client; /* borrowed; thread-safe */
    struct fs_options opts;
    struct timespec mount_time; /* mtime/ctime of everything */
    uid_t uid;
    gid_t gid;
    pthread_mutex_t handles_lock;
    struct fs_handle *handles; /* every open file; guarded by handles_lock */
    pthread_mutex_t space_lock;
    struct statvfs space;       /* the last statfs answer; guarded by space_lock */
    struct timespec space_time; /* when it was asked (CLOCK_MONOTONIC); guarded by space_lock */
    int space_valid;            /* guarded by space_lock */
    struct fs_dcache *dcache;   /* listings for negative look-ups; NULL: none (dcache.h) */
    pthread_mutex_t commit_lock;
    struct fs_commit_wait *commit_queue; /* closes waiting for a group commit; commit_lock */
    struct fs_commit_wait **commit_tail; /* guarded by commit_lock */
    int committing;                      /* group commits running; guarded by commit_lock */
};

/* How long a statfs answer is reused (the stores report every few seconds anyway). */
#define FS_SPACE_CACHE_MS 2000
/* A read-only open file re-reads its file at EOF when its copy is older than this (tail -f). */
#define FS_EOF_REFRESH_MS 200

/*
 * One open file: the whole value read at open (a fresh timestamp) and every
 * write since, committed with the file's record as one transaction on
 * flush/fsync/release. A create writes nothing until then (`created`).
 * `lock` guards every field but the links (the kernel may send reads and
 * writes of one handle on several threads). Lock order: fs->handles_lock,
 * then h->lock.
 */
/* Chunks an open file of a chunked file keeps in memory (FS_CHUNK_BYTES each). */
#define FS_CHUNK_CACHE 8
/* Dirty chunks written per transaction before the close. */
#define FS_CHUNK_WRITE_BATCH 2

/* A cached chunk of an open file. */
struct fs_chunk_slot {
    uint8_t *data; /* FS_CHUNK_BYTES; NULL: slot unused */
    uint64_t index;
    uint64_t last_use;
    int dirty;
};

/* A chunk written during this open (data key committed, pointer not yet). */
struct fs_chunk_ptr {
    uint64_t index;
    uint64_t gen;
};

struct fs_handle {
    pthread_mutex_t lock;
    struct fs_path path;    /* the key written back (not a snapshot unless read_only); changed
                             * holding both fs->handles_lock and h->lock, so either reads it */
    struct client_txn *txn; /* began at open (or after the last commit); NULL if none */
    uint8_t *data;          /* malloc'd value buffer */
    size_t len;
    size_t cap;
    struct fs_meta meta;     /* the file's attributes as this open file has them */
    int meta_pending;        /* read-only open of an inline file: the record is not read yet
                              * (fs_handle_meta reads it at read_ts); meta has defaults */
    client_ts read_ts;       /* the view of the open (or of the last refresh); 0: none */
    int dirty;               /* writes (or a create) not yet committed */
    int blind;               /* content does not depend on what was read (O_TRUNC, create) */
    int created;             /* made by create and not committed: nothing in the store yet */
    int excl;                /* created with O_EXCL: losing to another creator is EEXIST */
    int read_only;           /* opened O_RDONLY or in a snapshot */
    int sticky_err;          /* negative errno of a failed commit that can never succeed */
    int detached;            /* its file was unlinked here: commits write nothing */
    struct timespec fetched; /* CLOCK_MONOTONIC of the last read of the value */
    /* Chunked files (fs/meta.h): data is unused, len is the size. */
    int chunked;
    uint64_t chunk_id;       /* whose chunks this open file reads and writes */
    int fresh_id;            /* chunk_id was made by this open file: no chunks before it */
    uint64_t old_chunk_id;   /* the file's previous id, dropped after the next commit */
    uint64_t floor;          /* least size since the last commit: older chunks past it are gone */
    uint64_t base_len;       /* the size at open or at the last commit */
    struct client_txn *snap; /* read-only view at open or at the last commit */
    struct fs_chunk_slot cache[FS_CHUNK_CACHE];
    uint64_t tick;                /* LRU clock of the cache */
    uint64_t last_read_index;     /* the chunk the last read ended in (read-ahead) */
    int dropped;                  /* written chunks were cut off by a truncate */
    struct fs_chunk_ptr *pending; /* sorted by index */
    size_t n_pending, cap_pending;
    /* Links in fs->handles; guarded by fs->handles_lock. */
    struct fs_handle *prev, *next;
    int listed;
};

/* The filesystem of the calling FUSE thread. */
struct fs *fs_current(void);

/* Negative errno for a client/fs code (0 stays 0). */
int fs_neg_errno(int code);

/* CLIENT_OK if `ts` is not in the future (a TSO round trip), CLIENT_ERR_NOT_FOUND if it is. */
int fs_snapshot_check(struct fs *fs, client_ts ts);

/* A read transaction for `p`: the snapshot's ts (not in the future), or a fresh one. */
int fs_txn_for_read(struct fs *fs, const struct fs_path *p, struct client_txn **txn);

/* What a node is, read in `txn`. *value (may be NULL) gets the file's value
 * (malloc'd, caller frees). Returns 0 with *is_dir set, or -ENOENT, -EIO... */
int fs_node_stat(struct client_txn *txn, const struct fs_path *p, int *is_dir, void **value,
                 size_t *value_len);

/* The prefix of keys below the directory `p` ("" for a root) into buf; returns its length. */
size_t fs_dir_prefix(const struct fs_path *p, uint8_t *buf);

/* *found = whether a key starts with `prefix` (with skip_marker, other than the prefix itself). */
int fs_prefix_has_keys(struct client_txn *txn, const uint8_t *prefix, size_t prefix_len,
                       int skip_marker, int *found);

/* Called for each immediate child met by fs_scan_children: its component, whether the key
 * went on below it (a subdirectory), and the value of the key (with_values only). A nonzero
 * return stops the scan and is returned. */
typedef int (*fs_child_fn)(void *arg, const uint8_t *comp, size_t clen, int below,
                           const uint8_t *value, size_t vlen);

/* Visits the immediate children of the keys starting with `prefix` (ops_dir.c), once per
 * subtree. 0 or a negative errno (or fn's nonzero return). */
int fs_scan_children(struct client_txn *txn, const uint8_t *prefix, size_t plen, int with_values,
                     fs_child_fn fn, void *arg);

/* The exclusive end of the keys starting with `prefix`; *end_len 0 means +inf. */
void fs_prefix_end(const uint8_t *prefix, size_t len, uint8_t *end, size_t *end_len);

/*
 * fs_run_txn runs `body` in a fresh read-write transaction and commits it;
 * on a write conflict it starts over (up to FS_CONFLICT_RETRIES times, the
 * body re-reading what it needs). `body` returns 0 to commit or a negative
 * errno to roll back. Returns 0 or a negative errno (EAGAIN after the last
 * conflict).
 */
int fs_run_txn(struct fs *fs, int (*body)(struct client_txn *txn, void *arg), void *arg);

/* Sleeps a random 0.5 ms .. 2^min(attempt,6) ms before retrying after a conflict. */
void fs_conflict_backoff(int attempt);

/* The CLOCK_MONOTONIC milliseconds now, and whether an operation begun at `start_ms` has used
 * up the mount's op_timeout_ms (then it stops retrying: one slow operation must not hold the
 * kernel's directory lock, and everyone queued behind it, for long). */
int64_t fs_mono_ms(void);
int fs_op_expired(const struct fs *fs, int64_t start_ms);

/* -EROFS for a read-only mount or a path in a snapshot, else 0. */
int fs_check_writable(struct fs *fs, const struct fs_path *p);

/* Operation families (ops_*.c). */
int fs_op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi);
int fs_op_statfs(const char *path, struct statvfs *st);
int fs_op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi);
int fs_op_getxattr(const char *path, const char *name, char *value, size_t size);
int fs_op_listxattr(const char *path, char *list, size_t size);
int fs_op_setxattr(const char *path, const char *name, const char *value, size_t size, int flags);
int fs_op_removexattr(const char *path, const char *name);
int fs_op_opendir(const char *path, struct fuse_file_info *fi);
int fs_op_releasedir(const char *path, struct fuse_file_info *fi);
int fs_op_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                  struct fuse_file_info *fi, enum fuse_readdir_flags flags);
int fs_op_mkdir(const char *path, mode_t mode);
int fs_op_rmdir(const char *path);
int fs_op_create(const char *path, mode_t mode, struct fuse_file_info *fi);
int fs_op_open(const char *path, struct fuse_file_info *fi);
int fs_op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi);
int fs_op_write(const char *path, const char *buf, size_t size, off_t off,
                struct fuse_file_info *fi);
int fs_op_truncate(const char *path, off_t size, struct fuse_file_info *fi);
int fs_op_flush(const char *path, struct fuse_file_info *fi);
int fs_op_fsync(const char *path, int datasync, struct fuse_file_info *fi);
int fs_op_release(const char *path, struct fuse_file_info *fi);
int fs_op_unlink(const char *path);
int fs_op_rename(const char *from, const char *to, unsigned int flags);

int fs_op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi);
int fs_op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi);
int fs_op_symlink(const char *target, const char *path);
int fs_op_readlink(const char *path, char *buf, size_t size);
int fs_op_mknod(const char *path, mode_t mode, dev_t dev);
int fs_op_link(const char *from, const char *to);

/* The name libfuse gives an unlinked file that is still open (it renames it there, then
 * unlinks that name at the last close): such a rename is an unlink here. */
#define FS_HIDDEN_PREFIX ".fuse_hidden"
/* 1 if the last component of `p` is one of libfuse's hidden names. */
int fs_path_is_hidden(const struct fs_path *p);

/* Handles (handle.c). */

/*
 * fs_handle_new opens `p`: with create_mode != 0 it is a create (mode with
 * S_IFREG) that writes nothing until the first commit. Returns 0 and *out,
 * or a negative errno (ENOENT, EEXIST for O_CREAT|O_EXCL of an existing file).
 */
int fs_handle_new(struct fs *fs, const struct fs_path *p, int flags, mode_t create_mode,
                  struct fs_handle **out);
/* Reads the record of a handle opened without it (meta_pending) in the open's view, so
 * h->meta is complete (caller holds h->lock). 0 or a negative errno (meta keeps defaults). */
int fs_handle_meta(struct fs *fs, struct fs_handle *h);
/* Commits the handle's writes and record (caller holds h->lock). 0 or a negative errno. */
int fs_handle_commit(struct fs *fs, struct fs_handle *h);
void fs_handle_free(struct fs *fs, struct fs_handle *h);
/* For a read-only handle at EOF: re-reads the file if the copy is older than
 * FS_EOF_REFRESH_MS, so readers polling at the end (tail -f) see appends. Caller holds h->lock. */
void fs_handle_refresh_at_eof(struct fs *fs, struct fs_handle *h);

/*
 * commit_group.c: the first commit of a file made by create (no read, no O_EXCL, inline, at
 * most FS_COMMIT_GROUP_MAX_BYTES) waits with the others arriving meanwhile, and whoever finds
 * fewer than FS_COMMIT_GROUP_INFLIGHT group commits running commits everything waiting (up to
 * FS_COMMIT_GROUP_MAX closes and FS_COMMIT_GROUP_MAX_BYTES) in one transaction: 16 writers
 * make one prewrite per batch
 * instead of one per file, and a lone writer's commit is its own as before. Each file's
 * content and record still switch in one transaction (a stronger promise: several switch
 * together).
 */
#define FS_COMMIT_GROUP_MAX 64
/* Group commits in flight at once: the next batch forms and goes while one waits for its
 * replicas (one at a time left the stores idle between batches). */
#define FS_COMMIT_GROUP_INFLIGHT 2
#define FS_COMMIT_GROUP_MAX_BYTES (256 * 1024)
/* fs_commit_group's answer when the batch failed for a reason of one of its closes (a write
 * conflict): commit alone. */
#define FS_COMMIT_ALONE (-1)
struct fs_commit_wait;
/* 1 if h's next commit may go in a group (caller holds h->lock). */
int fs_commit_group_eligible(const struct fs_handle *h);
/* Commits h's content and the record *m (borrowed) with whatever else waits; caller holds
 * h->lock. CLIENT_OK and *commit_ts, another CLIENT_* code for the whole batch (timeout,
 * unavailable, undetermined), or FS_COMMIT_ALONE. */
int fs_commit_group(struct fs *fs, struct fs_handle *h, const struct fs_meta *m,
                    client_ts *commit_ts);

/* chunks.c: the chunk mode of an open file (caller holds h->lock). */
/* Switches an inline open file to chunks under a new id (its data becomes chunk 0...). */
int fs_handle_make_chunked(struct fs *fs, struct fs_handle *h);
int fs_handle_chunk_read(struct fs *fs, struct fs_handle *h, char *buf, size_t size, uint64_t off);
int fs_handle_chunk_write(struct fs *fs, struct fs_handle *h, const char *buf, size_t size,
                          uint64_t off);
int fs_handle_chunk_truncate(struct fs *fs, struct fs_handle *h, uint64_t size);
/* Writes every dirty chunk (data keys only). */
int fs_handle_chunk_flush(struct fs *fs, struct fs_handle *h);
/* In the closing transaction: the pointers of the chunks written, and the removal of those
 * past a truncation. */
int fs_handle_chunk_pointers(struct fs_handle *h, struct client_txn *txn);
/* After the closing commit at `commit_ts`: drop replaced chunks, move the view forward. */
void fs_handle_chunk_committed(struct fs *fs, struct fs_handle *h, client_ts commit_ts);
/* Frees the chunk state (and deletes data keys written but never committed). */
void fs_handle_chunk_release(struct fs *fs, struct fs_handle *h);
/* Deletes every chunk key of `id` (best effort, several transactions). */
void fs_chunks_drop(struct fs *fs, uint64_t id);

/* Commits the open files of `key` made by create and not yet written, so that the
 * store has the file before an operation on its name (open, rename, chmod...). */
void fs_handles_settle(struct fs *fs, const uint8_t *key, size_t key_len);

/* 1 and *m (the size is what the open file holds) if an open file of `key` in this mount
 * knows more than the store: unflushed writes, a create not yet committed, or an unlinked
 * name (then *unlinked = 1). 0 otherwise. */
int fs_handles_stat(struct fs *fs, const uint8_t *key, size_t key_len, struct fs_meta *m,
                    int *unlinked);

/* Calls fn for each open file made by create here and not yet committed whose key is
 * `prefix` (a directory's, fs_dir_prefix) and one more component `comp` (borrowed for the
 * call), with its attributes; stops at fn's first non-zero return, which it returns. fn runs
 * holding fs->handles_lock and must not call back into the handles. */
int fs_handles_list_created(struct fs *fs, const uint8_t *prefix, size_t plen,
                            int (*fn)(void *arg, const uint8_t *comp, size_t clen,
                                      const struct fs_meta *m),
                            void *arg);

/* After an attribute change of `key` committed here: open files of it take the new
 * attributes (their size stays theirs) and commit blind from now on. */
void fs_handles_attr_changed(struct fs *fs, const uint8_t *key, size_t key_len,
                             const struct fs_meta *m);

/* After an unlink of `key` in the live keyspace: open files of it write nothing more. */
void fs_handles_unlinked(struct fs *fs, const uint8_t *key, size_t key_len);

/* After a rename: open files of `from` (a file's key, or with is_dir every key
 * below the directory `from`) write back to the new place. */
void fs_handles_renamed(struct fs *fs, const struct fs_path *from, const struct fs_path *to,
                        int is_dir);

#endif

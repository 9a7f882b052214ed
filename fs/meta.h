/* meta.h — the filesystem's metadata layout (internal to fs/): keys, records, node look-up. */
#ifndef TINYKV_FS_META_H
#define TINYKV_FS_META_H

/*
 * What it owns: where a node's attributes live in the keyspace, the record
 * that holds them, and how a node is found (meta.c is the one place that
 * knows; the operations call these helpers).
 *
 * The layout:
 *   - Content keys. A file's key is its path (fs.h has the codec) and, for
 *     a file of at most FS_INLINE_MAX_BYTES, its value is exactly the file's
 *     content. A larger file is chunked (below) and its key holds the empty
 *     value. A symlink's key holds its target; a FIFO, socket
 *     or device node's key holds the empty value. A directory is its marker
 *     key "dir/" (empty value) or any key below it. So `tinykv-ctl` and any
 *     KV client keep seeing files as keys with their contents.
 *   - Metadata keys. The node with key K (a directory's K has no marker
 *     '/'; the root's K is empty) has its attributes at "\0m/" K: a
 *     top-level component "\0m" that the path codec reserves (no path names
 *     it, readdir of the root skips it). The metadata keys mirror the tree,
 *     so a directory's children's records are the range "\0m/" K "/" and a
 *     listing reads them with one scan beside the names.
 *   - Chunks, under the reserved top-level component "\0c" (FS_CHUNK_TOP),
 *     keyed by the file's chunk id (a TSO timestamp, unique; it stays with
 *     the file through renames, so a rename moves no chunk):
 *       pointer "\0c/" be64(id) 'p' be64(index) -> be64(gen): chunk `index`
 *         (FS_CHUNK_BYTES of the file from index * FS_CHUNK_BYTES) is the
 *         data key of that generation; no pointer: the chunk is zeros;
 *       data    "\0c/" be64(id) 'd' be64(index) be64(gen) -> the bytes (a
 *         shorter value is followed by zeros), gen being the start ts of the
 *         transaction that wrote it.
 *     Data keys are written in their own transactions while the file is
 *     written (memory stays bounded by FS_CHUNK_CACHE chunks per open file);
 *     the close commits the pointers, the record and the content key in one
 *     transaction, so readers see the old file or the new one whole. Data
 *     keys no pointer names (replaced generations, a failed close's) are
 *     deleted after the commit; a writer that dies before it leaves them.
 *     A rewrite from scratch (create, O_TRUNC, growing past the inline size)
 *     takes a new id and drops the old id's keys after its commit.
 *   - The record (struct fs_meta; FS_META_RECORD_BYTES, little-endian):
 *       u8 version (1), u8 flags (bit 0: chunked), u8 reserved[2], u32 mode (S_IFMT | permission
 * bits), u32 uid, u32 gid, u32 subdirs (directories: subdirectories made and removed through the
 * mount; st_nlink is 2 + subdirs), u32 reserved, u64 size (what getattr reports without reading the
 * content), i64 atime_ns, i64 mtime_ns, i64 ctime_ns (nanoseconds since the Unix epoch), u64 rdev,
 * u64 chunk id (chunked files). A record of another version or length reads as absent.
 *   - A node without a record (written through the KV API, or made before
 *     this layout) gets the defaults: the mounting user, 0644 files, 0755
 *     directories, the mount time; a file's size then comes from its value.
 *   - Attributes come from the record alone (getattr, lookup and the checks
 *     of a change read one key, never the content). So a content key deleted
 *     through the KV API without its record leaves a name that stats with its
 *     old attributes but that open and readdir do not find (they go by the
 *     content keys); an unlink through a mount removes what is left.
 *
 * How operations touch it (every change is one transaction with the content):
 *   - create + writes + close: one commit, at the close, putting the content
 *     and the record; nothing before it (the open file serves its own mount:
 *     fs_handles_stat, readdir), so other mounts find no such name until the
 *     close and a mount that dies before it leaves nothing behind. Closes of
 *     new files arriving together share one transaction (commit_group.c).
 *   - chmod/chown/utimens: the record (ctime too).
 *   - write/truncate: content and record (size, mtime, ctime).
 *   - unlink: deletes the content key and the record.
 *   - mkdir/rmdir: the marker, the record, and the parent's subdirs count.
 *   - rename: moves the content key(s) and the record(s) (a directory's whole
 *     "\0m/" K "/" range too), sets the moved node's ctime, and moves one
 *     subdirectory count between the parents.
 *   - atime is set at creation and by utimens only (reads never write).
 *
 * Who calls it: the ops_*.c files and handle.c. What it must never do: write
 * a record without the content change it describes in the same transaction.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "fs/fs.h"

/* The metadata keys' prefix: FS_RESERVED_TOP (fs.h) and a '/'. */
#define FS_META_PREFIX "\0m/"
#define FS_META_PREFIX_LEN 3
#define FS_META_RECORD_BYTES 72
#define FS_META_CHUNKED 1 /* flags: the content is in chunks */

/* The reserved top-level component of the chunk keys, and the keys' prefix. */
#define FS_CHUNK_TOP "\0c"
#define FS_CHUNK_TOP_LEN 2
#define FS_CHUNK_PREFIX "\0c/"
#define FS_CHUNK_PREFIX_LEN 3
#define FS_CHUNK_PTR_KEY_BYTES (FS_CHUNK_PREFIX_LEN + 8 + 1 + 8)
#define FS_CHUNK_DATA_KEY_BYTES (FS_CHUNK_PTR_KEY_BYTES + 8)
/* Files up to this size are one key whose value is the content. */
#define FS_INLINE_MAX_BYTES (1024 * 1024)
/* Larger ones are cut into chunks of this size. */
#define FS_CHUNK_BYTES (1024 * 1024)
/* Largest file (EFBIG past it). */
#define FS_MAX_FILE_BYTES (16ULL << 40)
#define FS_META_VERSION 1

/* A node's attributes. */
struct fs_meta {
    uint32_t mode; /* S_IFMT | permission bits */
    uint32_t uid;
    uint32_t gid;
    uint32_t subdirs; /* directories only */
    uint64_t size;
    struct timespec atime, mtime, ctime;
    uint64_t rdev;
    uint32_t flags;    /* FS_META_CHUNKED */
    uint64_t chunk_id; /* chunked files: the id of their chunk keys */
};

struct fs;
struct fs_path;
struct client_txn;

/* Writes "\0m/" + key into out (capacity CLIENT_MAX_KEY_BYTES + FS_META_PREFIX_LEN); returns its
 * length. */
size_t fs_meta_key(const uint8_t *key, size_t key_len, uint8_t *out);

/* Chunk keys (see above) into out; return their length. */
size_t fs_chunk_ptr_key(uint64_t id, uint64_t index, uint8_t *out);
size_t fs_chunk_data_key(uint64_t id, uint64_t index, uint64_t gen, uint8_t *out);

/* The record's bytes (FS_META_RECORD_BYTES) into buf. */
void fs_meta_encode(const struct fs_meta *m, uint8_t *buf);
/* 0 and *m filled, or -1 for a record of another version or length. */
int fs_meta_decode(const void *buf, size_t len, struct fs_meta *m);

/* The attributes of a node without a record: `mode` is S_IFDIR or S_IFREG (or another type). */
void fs_meta_default(const struct fs *fs, uint32_t type, uint64_t size, struct fs_meta *m);
/* A new node made by the calling FUSE request's process: its uid/gid, `mode`, times now. */
void fs_meta_new(uint32_t mode, struct fs_meta *m);

/* The current wall-clock time. */
struct timespec fs_now(void);

/* st_* of a node from its attributes. */
void fs_meta_to_stat(const struct fs_meta *m, struct stat *st);

/* The record of `key` in txn: 0 and *found, or a CLIENT_ERR_* code. */
int fs_meta_get(struct client_txn *txn, const uint8_t *key, size_t key_len, struct fs_meta *m,
                int *found);
/* Buffers a put (or a delete) of the record of `key` in txn; CLIENT_* code. */
int fs_meta_put(struct client_txn *txn, const uint8_t *key, size_t key_len,
                const struct fs_meta *m);
int fs_meta_delete(struct client_txn *txn, const uint8_t *key, size_t key_len);

/*
 * fs_node_lookup finds the node `p` (a FS_PATH_NODE or a root) in txn: 0 with
 * *m its attributes (the record or the defaults) and *has_record, or -ENOENT,
 * -EIO... When `value` is not NULL and the node is not a directory, *value
 * gets its content (malloc'd, caller frees) and m->size its length; without
 * it only keys are read (no content download) unless the node has no record.
 */
int fs_node_lookup(struct fs *fs, struct client_txn *txn, const struct fs_path *p,
                   struct fs_meta *m, int *has_record, void **value, size_t *value_len);

/* Adds `delta` to the subdirectory count of the parent directory of `p` (its record, made
 * with the defaults if it has none) in txn; a negative errno or 0. */
int fs_meta_parent_adjust(struct fs *fs, struct client_txn *txn, const struct fs_path *p,
                          int delta);

#endif

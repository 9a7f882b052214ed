/* fs.h — public API of fs/: the key<->path codec and the tinykv-fuse filesystem object. */
#ifndef TINYKV_FS_FS_H
#define TINYKV_FS_FS_H

/*
 * What it owns: the mapping between TinyKV keys and file paths (pure, no
 * I/O), and one mounted filesystem's state — its client, its options and the
 * per-open-file write buffers (struct fs_handle, internal).
 *
 * Who calls it: fs/fuse_main.c (tinykv-fuse) builds a struct fs and hands
 * fs_fuse_operations() to libfuse's multithreaded loop; unit tests call the
 * codec directly.
 *
 * What it must never do: talk gRPC itself (everything goes through client/),
 * hang past the client's deadline, or report a write as done that was not
 * committed. It never shows part of a write: a file's new content (and its
 * metadata record, fs/meta.h) switches in one transaction at close.
 *
 * The mapping (bijective: every key has exactly one path and every valid
 * path exactly one key):
 *   - A key is split at every '/' byte into components; a path is the
 *     components' names joined by '/' below the mount root. A key whose last
 *     component is empty (it ends with '/') is the marker of the directory
 *     named by the components before it (mkdir writes it); any other key is
 *     a file (or a symlink or special node, as its record in fs/meta.h says).
 *   - A component's name is its bytes (never containing '/'), except:
 *       NUL -> "%00" ("%2F" is never valid: every '/' of a key separates);
 *       '%' -> "%25" when two upper-case hex digits follow it (it would read
 *       as an escape), else '%' stays as it is ("100%" and "a%b" are plain);
 *       the empty component -> "%" (so "a//b" is the file "a/%/b"), and
 *       the component "%" -> "%25";
 *       "." -> "%2E" and ".." -> "%2E%2E";
 *       at the top level only, the reserved name ".snapshots" -> "%2Esnapshots".
 *     Other bytes (spaces, UTF-8, any byte 0x01-0xFF but '/') stay as they
 *     are. Hex digits are upper case. A name that is not the canonical
 *     encoding of what it decodes to ("%41", "%2Ex") names nothing (ENOENT)
 *     and cannot be created (EINVAL).
 *   - A name "%" (the empty component) can only be a directory.
 *   - Keys are at most CLIENT_MAX_KEY_BYTES - 4 (room for a directory
 *     marker's '/' and the 3-byte metadata prefix); encoded names at most FS_NAME_MAX bytes
 * (ENAMETOOLONG).
 *   - /.snapshots/<ts>/... is a read-only view of the whole keyspace as of
 *     the TSO timestamp <ts> (decimal, no leading zeros). /.snapshots lists
 *     empty; any <ts> not in the future may be entered (a future one: ENOENT).
 *   - If a key is both a file and has keys below it (possible only through
 *     the client API), the file is shown and the keys below it are not.
 *
 * Consistency (close-to-open): open reads the whole value (a chunked file:
 * its chunks as they are read; a read-only open of a small file reads only
 * the value, and its record in the same view when fstat asks) at a fresh
 * timestamp and reads of that open
 * file see only it (direct I/O, no shared page cache); a read-only open file
 * at its end re-reads the file when its copy is older than 200 ms (tail -f).
 * Writes are buffered per open file (a chunked file's in at most
 * FS_CHUNK_CACHE chunks, written out as data keys) and committed with the
 * record in one transaction on flush (every close), fsync and release; a
 * create writes nothing before that (a create without O_EXCL does not even
 * take a timestamp: its commit begins the transaction; other mounts find no
 * such name before the close). An open with O_TRUNC, or a create,
 * is a blind write: a write conflict is retried with a fresh transaction and
 * the last committer wins whole. Any other modified open commits in the
 * transaction begun at open, so a commit of the same key by someone else
 * since then fails the close/fsync with EAGAIN (and every later one of that
 * open file). A commit that cannot reach the cluster fails with EIO and stays
 * pending for the next flush or the release.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "client/client.h"

/* Error codes (0 is success), in this module's range. */
enum {
    FS_OK = 0,
    FS_ERR_INVALID = 8000, /* not a canonical name or path */
    FS_ERR_NOT_FOUND,      /* a path into the reserved namespace that names nothing */
    FS_ERR_NAME_TOO_LONG,  /* a key over CLIENT_MAX_KEY_BYTES or a name over FS_NAME_MAX */
    FS_ERR_NOMEM,
};

/* The longest encoded name of one path component (Linux NAME_MAX). */
#define FS_NAME_MAX 255
/* The reserved top-level key component of the filesystem's own keys (metadata,
 * fs/meta.h): it has no name, so no path reaches those keys. */
#define FS_RESERVED_TOP "\0m"
#define FS_RESERVED_TOP_LEN 2
/* The same for the chunks of large files: NUL 'c'. */
#define FS_RESERVED_CHUNKS_TOP "\0c"
/* The top-level directory holding the time-travel views. */
#define FS_SNAPSHOT_DIR ".snapshots"
/* Most keys a directory rename moves in one transaction (more: EXDEV). */
#define FS_RENAME_MAX_KEYS 1000
/* Most value bytes a directory rename moves in one transaction (more: EXDEV). */
#define FS_RENAME_MAX_BYTES (64 * 1024 * 1024)

/* Human-readable text for an FS_ERR_* code. */
const char *fs_strerror(int code);

/* The errno (positive) for an FS_ERR_* or CLIENT_ERR_* code; 0 for 0. */
int fs_errno_of(int code);

/* ----------------------------------------------------------------- codec */

/*
 * fs_name_encode writes the name of one key component (`comp`, `len` bytes,
 * borrowed) into `out` (capacity `cap`, NUL-terminated). `top_level` is
 * non-zero when the component is the first of its key (the reserved name is
 * escaped there). *name_len gets the name's length. FS_ERR_NAME_TOO_LONG
 * when it would exceed FS_NAME_MAX or `cap` - 1; FS_ERR_INVALID if `comp`
 * holds a '/'.
 */
int fs_name_encode(const uint8_t *comp, size_t len, int top_level, char *out, size_t cap,
                   size_t *name_len);

/*
 * fs_name_decode appends the bytes `name` (`name_len` bytes, borrowed)
 * stands for to `out` (capacity `cap`) and sets *out_len to how many it
 * wrote. FS_ERR_INVALID if the name is not canonical, FS_ERR_NAME_TOO_LONG
 * if `cap` is too small.
 */
int fs_name_decode(const char *name, size_t name_len, int top_level, uint8_t *out, size_t cap,
                   size_t *out_len);

/* Where a FUSE path points. */
enum fs_path_kind {
    FS_PATH_ROOT,          /* "/" of the live keyspace or of a snapshot */
    FS_PATH_NODE,          /* a file or directory: `key` is its key (without a marker '/') */
    FS_PATH_SNAPSHOT_LIST, /* "/.snapshots" */
};

struct fs_path {
    enum fs_path_kind kind;
    client_ts snapshot_ts; /* 0: the live keyspace; else the read-only view at that ts */
    size_t key_len;
    int last_empty; /* the last component is the empty one ("%"): a directory only */
    uint8_t key[CLIENT_MAX_KEY_BYTES];
};

/*
 * fs_path_parse decodes an absolute FUSE path (borrowed) into *out
 * (caller-allocated). FS_ERR_INVALID for a non-canonical name,
 * FS_ERR_NOT_FOUND for a malformed snapshot path, FS_ERR_NAME_TOO_LONG when
 * the key (plus a marker '/') would be over CLIENT_MAX_KEY_BYTES.
 */
int fs_path_parse(const char *path, struct fs_path *out);

/*
 * fs_key_to_path writes the path ("/..." NUL-terminated) of `key` into `out`
 * (capacity `cap`) and sets *is_dir to 1 if the key is a directory marker
 * (the path is then the directory's). FS_ERR_INVALID for the empty key,
 * FS_ERR_NAME_TOO_LONG if a name is over FS_NAME_MAX or `cap` is too small.
 */
int fs_key_to_path(const uint8_t *key, size_t key_len, char *out, size_t cap, int *is_dir);

/* ------------------------------------------------------------ filesystem */

struct fs_options {
    int read_only;              /* refuse every change with EROFS */
    int op_timeout_ms;          /* conflict retries of one operation stop after this long [5000] */
    int exact_negative_lookups; /* ask the cluster for every missing name (no listing cache) */
};

struct fs;
struct fuse_operations;

/*
 * fs_new makes the filesystem over `client` (borrowed; must outlive the
 * struct fs). *out is owned by the caller (fs_free). FS_ERR_NOMEM.
 */
int fs_new(struct client *client, const struct fs_options *opts, struct fs **out);
void fs_free(struct fs *fs);

/*
 * The libfuse high-level operations (FUSE_USE_VERSION 31). Pass as fuse_new's
 * user data the address of a `struct fs *` (borrowed) that points at the
 * filesystem by the time the loop starts (init() dereferences it; the mount
 * can thus be made before the client exists, e.g. before daemonizing). Each
 * operation finds the struct fs through fuse_get_context(). Errors are negative errnos: EIO when
 * the cluster cannot be reached within the client's deadline, EAGAIN when a commit lost a
 * write-write conflict, EFBIG past FS_MAX_FILE_BYTES, EROFS on a
 * read-only mount or a snapshot, EPERM for link,
 * EXDEV for a directory rename over FS_RENAME_MAX_KEYS keys.
 */
const struct fuse_operations *fs_fuse_operations(void);

#endif

/* dcache.h — the mount's short-lived memory of whole directory listings (internal to fs/). */
#ifndef TINYKV_FS_DCACHE_H
#define TINYKV_FS_DCACHE_H

/*
 * What it owns: for a few directories, the set of names a listing found (read
 * at a fresh timestamp, less than FS_DCACHE_TTL_MS ago) plus every name this
 * mount made there since. A look-up of a name that set lacks is answered
 * ENOENT without asking the cluster. That is what makes creating many files
 * cheap: the kernel looks every new name up first, holding the directory's
 * lock, so each of those look-ups (a timestamp, a record read and a key probe)
 * used to serialize every writer of the directory.
 *
 * Why it is right: a name absent from a listing taken at ts T was not
 * committed before T (the listing's start), and this mount's own names are
 * added as they are made (create, the commit at close, mkdir, mknod,
 * symlink, rename), including while a listing is being taken. So a negative
 * answer is at most FS_DCACHE_TTL_MS stale for changes made by other mounts,
 * the same 1 s bound the kernel's caches and the copies below put on
 * positive answers. The names' listing answers only absence: a present name
 * is looked up (below, or in the cluster). Names this
 * mount removed stay in the set (a present name is only a reason to ask).
 * A directory renamed, or one whose listing is too large (FS_DCACHE_MAX_NAMES
 * names, FS_DCACHE_MAX_SUBDIRS subdirectories), is not cached.
 *
 * It also keeps each directory's attributes (its record) for
 * FS_DCACHE_ATTR_MS after they were read. The kernel drops its copy of a
 * directory's attributes after every create in it and asks again, holding
 * the directory's lock, to check the creator's permission: without this, one
 * read per create, serialized. Creating, writing or removing a file leaves
 * its directory's record as it was; the operations that change a directory's
 * record (mkdir, rmdir, rename, chmod, chown, utimens) drop every copy when
 * they are done (fs_dcache_attrs_changed), and a copy read before that is not
 * kept. The kernel keeps what it is given for FS_ATTR_TIMEOUT_S, so another
 * mount's change shows within FS_DCACHE_ATTR_MS + FS_ATTR_TIMEOUT_S = 1 s.
 *
 * And, for a directory whose names are being looked up one after another
 * (stat of many files, `cat *`, `make`, `git status`: FS_DCACHE_LIST_AFTER
 * look-ups that went to the cluster, each less than a second after the last),
 * its children's records from the missed name on (FS_DCACHE_CHILD_SCAN of
 * them), read with one scan at a fresh timestamp and each used for
 * FS_DCACHE_ATTR_MS, with the same 1 s bound as a directory's own attributes
 * (the kernel is told to keep entries FS_ATTR_TIMEOUT_S too). A child this
 * mount changes (a commit at close, unlink, truncate, a new node) loses its
 * copy when the change is done, also from a listing being read at the time
 * (a chmod, a mkdir's or rmdir's parent, both ends of a rename too). Only
 * records answer: a child without one (written through the KV API), and any
 * name the listing lacks, is looked up as before; an open file with
 * unflushed writes is answered by the open file before this is asked.
 *
 * Who calls it: getattr (the kernel's look-up) asks fs_dcache_absent before
 * the cluster and fs_dcache_missed after an ENOENT from it; the operations
 * that make a name call fs_dcache_note; rename calls fs_dcache_forget.
 * What it must never do: answer for a snapshot path, say "absent" for a name
 * this mount made, or hold a lock while it talks to the cluster.
 */

#include <stddef.h>
#include <stdint.h>

/* A listing answers for this long after the timestamp it was read at was asked. */
#define FS_DCACHE_TTL_MS 1000
/* A directory's attributes are reused for this long after they were read. */
#define FS_DCACHE_ATTR_MS 200
/* What the kernel is told to keep attributes (and entries) for: with FS_DCACHE_ATTR_MS, 1 s. */
#define FS_ATTR_TIMEOUT_S (1.0 - FS_DCACHE_ATTR_MS / 1000.0)
/* Look-ups of one directory's children that go to the cluster within a second before the
 * children's records are read in one scan instead. */
#define FS_DCACHE_LIST_AFTER 4
/* Records one such scan reads (one request), from the missed name on in key order: a large
 * directory is covered by several scans, each answering for its own FS_DCACHE_ATTR_MS. */
#define FS_DCACHE_CHILD_SCAN 1024
/* Directories remembered at once (the least recently used goes). */
#define FS_DCACHE_DIRS 32
/* Listings larger than this are not kept (their directory is asked again after the TTL). */
#define FS_DCACHE_MAX_NAMES 16384
#define FS_DCACHE_MAX_SUBDIRS 64

struct fs;
struct fs_dcache;
struct fs_meta;

struct fs_dcache *fs_dcache_new(void);
void fs_dcache_free(struct fs_dcache *dc);

/* 1 if the node `key` is known not to exist: its directory has a fresh listing that lacks
 * its name. */
int fs_dcache_absent(struct fs_dcache *dc, const uint8_t *key, size_t key_len);

/* A look-up of `key` found nothing: lists its directory unless a fresh listing is there or
 * being taken (one scan of names and one of records, keys only). Errors leave no listing. */
void fs_dcache_missed(struct fs *fs, const uint8_t *key, size_t key_len);

/* This mount made (or is making) the node `key`. */
void fs_dcache_note(struct fs_dcache *dc, const uint8_t *key, size_t key_len);

/* This mount made the directory `key`, empty, in an operation begun at since_ms
 * (fs_mono_ms): it has an empty listing from then. */
void fs_dcache_note_empty_dir(struct fs_dcache *dc, const uint8_t *key, size_t key_len,
                              int64_t since_ms);

/* Forgets the listings of the directory `key` and of every directory below it (a rename
 * moved a subtree there or away). */
void fs_dcache_forget(struct fs_dcache *dc, const uint8_t *key, size_t key_len);

/* A directory's attributes read less than FS_DCACHE_ATTR_MS ago into *m: 1, else 0. */
int fs_dcache_attrs(struct fs_dcache *dc, const uint8_t *key, size_t key_len, struct fs_meta *m);

/* The epoch to give fs_dcache_keep_attrs: read it before reading the attributes. */
uint64_t fs_dcache_attr_epoch(struct fs_dcache *dc);

/* Keeps a directory's attributes read at read_ms (fs_mono_ms before the read), unless a
 * change was made since `epoch` was read. */
void fs_dcache_keep_attrs(struct fs_dcache *dc, const uint8_t *key, size_t key_len,
                          const struct fs_meta *m, uint64_t epoch, int64_t read_ms);

/* This mount changed a directory's record (or may have): every copy goes (its copy in its
 * parent's children's listing is fs_dcache_child_changed's). */
void fs_dcache_attrs_changed(struct fs_dcache *dc);

/* The record of the node `key` from its directory's children's listing read less than
 * FS_DCACHE_ATTR_MS ago into *m: 1, else 0. */
int fs_dcache_child_attrs(struct fs_dcache *dc, const uint8_t *key, size_t key_len,
                          struct fs_meta *m);

/* A look-up of `key` is about to ask the cluster: counts it, and on the
 * FS_DCACHE_LIST_AFTER-th in a row reads up to FS_DCACHE_CHILD_SCAN records of children of
 * its directory from its name on (fresh timestamp; not while another such read of that
 * directory runs; at most FS_DCACHE_MAX_NAMES kept per directory). 1 if a listing was
 * kept (ask fs_dcache_child_attrs again), 0 otherwise (errors keep nothing). */
int fs_dcache_list_children(struct fs *fs, const uint8_t *key, size_t key_len);

/* This mount changed (or may have changed) the record of the node `key`: its copy goes. */
void fs_dcache_child_changed(struct fs_dcache *dc, const uint8_t *key, size_t key_len);
/* The same for the directory holding `key` (its subdirectory count changed). */
void fs_dcache_parent_changed(struct fs_dcache *dc, const uint8_t *key, size_t key_len);

#endif

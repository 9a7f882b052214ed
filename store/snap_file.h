/* snap_file.h — a region snapshot as one file on disk, written and read in bounded chunks
 * (internal to store/). */
#ifndef TINYKV_STORE_SNAP_FILE_H
#define TINYKV_STORE_SNAP_FILE_H

/*
 * What it owns: the file format of a snapshot and the files in a store's
 * snapshot directory. A file is the 8 bytes "TKVSNAP1", then records
 * [cf u8][key length u32 LE][value length u32 LE][key][value], in the order
 * written; its size and CRC-32 (IEEE, of every byte of the file) travel in the
 * snapshot's RaftSnapshotData.meta, so a reader knows what it must find.
 * Who calls it: the snapshot worker (writes a generated snapshot, reads one
 * to apply), the transport (reads chunks to send), the Snapshot service
 * (writes chunks as they arrive), the store at start (removes leftovers).
 * What it must never do: hold a whole snapshot in memory (writes go through a
 * 1 MiB buffer, reads through one that grows only to the largest record);
 * let a half-written file be taken for a complete one: a writer writes
 * NAME.tmp and renames it to NAME only after the data is synced, then syncs
 * the directory, so after a crash NAME is complete or absent.
 */

#include <stddef.h>
#include <stdint.h>

enum {
    SNAP_FILE_OK = 0,
    SNAP_FILE_ERR_IO = 1,      /* open/write/sync/rename failed: errno text in errmsg */
    SNAP_FILE_ERR_CORRUPT = 2, /* size, checksum, magic or a record does not match */
    SNAP_FILE_ERR_NOMEM = 3,
    SNAP_FILE_ERR_BUSY = 4, /* raw create: DIR/NAME.tmp is being written by another writer */
};

#define SNAP_FILE_PATH_MAX 1024

struct snap_file_writer {
    int fd;
    char tmp_path[SNAP_FILE_PATH_MAX], path[SNAP_FILE_PATH_MAX], dir[SNAP_FILE_PATH_MAX];
    uint8_t *buf; /* owned, 1 MiB */
    size_t buf_len;
    uint64_t size; /* bytes given so far */
    uint32_t crc;
    char errmsg[256];
};

/* snap_file_create opens DIR/NAME.tmp for writing (truncating one left over; DIR is created
 * when missing). raw: the caller appends the file's bytes as they are (a receiver; a .tmp
 * file already there is another receive of the same file: SNAP_FILE_ERR_BUSY); else the
 * magic is written first and records follow with snap_file_put. Returns SNAP_FILE_*; on error
 * nothing stays open. */
int snap_file_create(struct snap_file_writer *w, const char *dir, const char *name, int raw);
/* Appends bytes (borrowed for the call). */
int snap_file_append(struct snap_file_writer *w, const void *data, size_t len);
/* Appends one record. */
int snap_file_put(struct snap_file_writer *w, uint8_t cf, const void *key, uint32_t key_len,
                  const void *value, uint32_t value_len);
/* snap_file_finish syncs the file, renames it to DIR/NAME and syncs DIR; *size and *crc (may
 * be NULL) are what a reader must find. expect_size/expect_crc: when expect is set, a file
 * that does not match them is removed and SNAP_FILE_ERR_CORRUPT returned (a receiver checks
 * what came against the manifest before the name appears). The writer is closed either way. */
int snap_file_finish(struct snap_file_writer *w, int expect, uint64_t expect_size,
                     uint32_t expect_crc, uint64_t *size, uint32_t *crc);
/* Closes and removes the .tmp file (a transfer cut off, a generation that failed). */
void snap_file_abort(struct snap_file_writer *w);

struct snap_file_reader {
    int fd;
    uint8_t *buf; /* owned: grows to the largest record */
    size_t cap, len, pos;
    uint64_t size, offset;
    char errmsg[256];
};

/* snap_file_open opens DIR/NAME for reading after checking, in one streaming pass, that it
 * holds exactly `size` bytes with CRC-32 `crc` and starts with the magic. */
int snap_file_open(struct snap_file_reader *r, const char *dir, const char *name, uint64_t size,
                   uint32_t crc);
/* snap_file_read copies the file's next raw bytes (at most cap) into out; *n = 0 at the end. */
int snap_file_read(struct snap_file_reader *r, void *out, size_t cap, size_t *n);
/* snap_file_next gives the next record (after the magic): 1 and the fields, borrowed until the
 * next call; 0 at the end; SNAP_FILE_ERR_* for a record cut short. Do not mix with
 * snap_file_read on one reader. */
int snap_file_next(struct snap_file_reader *r, uint8_t *cf, const uint8_t **key, uint32_t *key_len,
                   const uint8_t **value, uint32_t *value_len);
void snap_file_close(struct snap_file_reader *r);

/* Removes DIR/NAME (missing is fine). */
void snap_file_remove(const char *dir, const char *name);
/* snap_file_clean_dir removes every snapshot file (*.snap, *.snap.tmp) in DIR, as at start:
 * none is referenced by Raft state that survived a restart. Returns how many it removed. */
size_t snap_file_clean_dir(const char *dir);

/* CRC-32 (IEEE 802.3) of data, continuing from crc (0 to start). */
uint32_t snap_file_crc32(uint32_t crc, const void *data, size_t len);

#endif

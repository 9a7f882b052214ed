/* ops_attr.c — getattr, statfs, utimens and the user.tinykv.* extended attributes. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "fs/fs_internal.h"

static void fill_stat(struct fs *fs, struct stat *st, int is_dir, size_t size)
{
    memset(st, 0, sizeof *st);
    st->st_mode = is_dir ? (S_IFDIR | 0755) : (S_IFREG | 0644);
    st->st_nlink = is_dir ? 2 : 1;
    st->st_size = (off_t)size;
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((size + 511) / 512);
    st->st_uid = fs->uid;
    st->st_gid = fs->gid;
    st->st_atim = fs->mount_time;
    st->st_mtim = fs->mount_time;
    st->st_ctim = fs->mount_time;
}

int fs_op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    struct fs *fs = fs_current();
    struct fs_path p;
    struct client_txn *txn = NULL;
    void *value = NULL;
    size_t len = 0;
    int rc, is_dir = 0;

    if (fi && fi->fh) {
        struct fs_handle *h = (struct fs_handle *)(uintptr_t)fi->fh;
        pthread_mutex_lock(&h->lock);
        fill_stat(fs, st, 0, h->len);
        pthread_mutex_unlock(&h->lock);
        return 0;
    }
    rc = fs_path_parse(path, &p);
    if (rc != FS_OK)
        return rc == FS_ERR_INVALID ? -ENOENT : fs_neg_errno(rc);
    if (p.kind != FS_PATH_NODE) {
        rc = p.snapshot_ts ? fs_snapshot_check(fs, p.snapshot_ts) : CLIENT_OK;
        if (rc == CLIENT_OK)
            fill_stat(fs, st, 1, 0);
        return fs_neg_errno(rc);
    }
    rc = fs_txn_for_read(fs, &p, &txn);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    rc = fs_node_stat(txn, &p, &is_dir, &value, &len);
    client_txn_rollback(txn);
    client_txn_free(txn);
    if (rc == 0)
        fill_stat(fs, st, is_dir, is_dir ? 0 : len);
    free(value);
    return rc;
}

int fs_op_statfs(const char *path, struct statvfs *st)
{
    (void)path;
    memset(st, 0, sizeof *st);
    /* The cluster has no fixed size; report a large, constant one. */
    st->f_bsize = 4096;
    st->f_frsize = 4096;
    st->f_blocks = 1ULL << 28;
    st->f_bfree = 1ULL << 28;
    st->f_bavail = 1ULL << 28;
    st->f_files = 1ULL << 32;
    st->f_ffree = 1ULL << 32;
    st->f_favail = 1ULL << 32;
    st->f_namemax = FS_NAME_MAX;
    if (fs_current()->opts.read_only)
        st->f_flag |= ST_RDONLY;
    return 0;
}

int fs_op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    struct stat st;
    struct fs_path p;
    int rc;

    (void)tv;
    /* Times are not stored: accept the call for an existing node (touch works). */
    rc = fs_path_parse(path, &p);
    if (rc == FS_OK && (p.snapshot_ts || p.kind == FS_PATH_SNAPSHOT_LIST))
        return -EROFS;
    if (fs_current()->opts.read_only)
        return -EROFS;
    return fs_op_getattr(path, &st, fi);
}

/* ---------------------------------------------------------------- xattrs */

static const char *const XATTRS[] = {
    "user.tinykv.key",     "user.tinykv.region_id", "user.tinykv.leader_store",
    "user.tinykv.read_ts", "user.tinykv.commit_ts",
};

/*
 * The commit ts of the newest put of `key` at or before `read_ts` (what a
 * read at read_ts sees); 0 if the key has no value there.
 */
static int latest_commit_ts(struct client *c, const uint8_t *key, size_t len, client_ts read_ts,
                            client_ts *out)
{
    struct client_txn *txn;
    void *value = NULL;
    size_t value_len;
    *out = 0;
    int rc = client_txn_begin_at(c, read_ts, &txn);
    if (rc != CLIENT_OK)
        return rc;
    rc = client_txn_get_version(txn, key, len, &value, &value_len, out);
    free(value);
    client_txn_rollback(txn);
    client_txn_free(txn);
    return rc == CLIENT_ERR_NOT_FOUND ? CLIENT_OK : rc;
}

/* Copies `s` as an attribute value (size 0: just its length). */
static int xattr_reply(const void *s, size_t len, char *value, size_t size)
{
    if (size == 0)
        return (int)len;
    if (size < len)
        return -ERANGE;
    memcpy(value, s, len);
    return (int)len;
}

int fs_op_getxattr(const char *path, const char *name, char *value, size_t size)
{
    struct fs *fs = fs_current();
    struct fs_path p;
    struct client_txn *txn = NULL;
    struct client_region_info info;
    uint8_t key[CLIENT_MAX_KEY_BYTES];
    size_t key_len;
    char text[64];
    client_ts read_ts, commit_ts;
    int rc, is_dir = 0, which = -1;

    for (size_t i = 0; i < sizeof XATTRS / sizeof XATTRS[0]; i++)
        if (strcmp(name, XATTRS[i]) == 0)
            which = (int)i;
    rc = fs_path_parse(path, &p);
    if (rc != FS_OK)
        return rc == FS_ERR_INVALID ? -ENOENT : fs_neg_errno(rc);
    if (p.kind != FS_PATH_NODE || which < 0)
        return -ENODATA;
    rc = fs_txn_for_read(fs, &p, &txn);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    read_ts = client_txn_start_ts(txn);
    rc = fs_node_stat(txn, &p, &is_dir, NULL, NULL);
    client_txn_rollback(txn);
    client_txn_free(txn);
    if (rc != 0)
        return rc;
    /* A directory's attributes are those of its marker key. */
    key_len = is_dir ? fs_dir_prefix(&p, key) : p.key_len;
    if (!is_dir)
        memcpy(key, p.key, key_len);

    switch (which) {
    case 0:
        return xattr_reply(key, key_len, value, size);
    case 1:
    case 2:
        memset(&info, 0, sizeof info);
        rc = client_region_of_key(fs->client, key, key_len, &info);
        if (rc != CLIENT_OK)
            return fs_neg_errno(rc);
        snprintf(text, sizeof text, "%" PRIu64, which == 1 ? info.region_id : info.leader_store_id);
        client_region_info_clear(&info);
        break;
    case 3:
        snprintf(text, sizeof text, "%" PRIu64, read_ts);
        break;
    default:
        rc = latest_commit_ts(fs->client, key, key_len, read_ts, &commit_ts);
        if (rc != CLIENT_OK)
            return fs_neg_errno(rc);
        if (commit_ts == 0)
            return -ENODATA; /* an implicit directory has no key of its own */
        snprintf(text, sizeof text, "%" PRIu64, commit_ts);
        break;
    }
    return xattr_reply(text, strlen(text), value, size);
}

int fs_op_listxattr(const char *path, char *list, size_t size)
{
    struct fs_path p;
    size_t total = 0;
    int rc;

    rc = fs_path_parse(path, &p);
    if (rc != FS_OK)
        return rc == FS_ERR_INVALID ? -ENOENT : fs_neg_errno(rc);
    if (p.kind != FS_PATH_NODE)
        return 0;
    for (size_t i = 0; i < sizeof XATTRS / sizeof XATTRS[0]; i++) {
        size_t n = strlen(XATTRS[i]) + 1;
        if (size) {
            if (total + n > size)
                return -ERANGE;
            memcpy(list + total, XATTRS[i], n);
        }
        total += n;
    }
    return (int)total;
}

int fs_op_setxattr(const char *path, const char *name, const char *value, size_t size, int flags)
{
    (void)path;
    (void)name;
    (void)value;
    (void)size;
    (void)flags;
    return -ENOTSUP;
}

int fs_op_removexattr(const char *path, const char *name)
{
    (void)path;
    (void)name;
    return -ENOTSUP;
}

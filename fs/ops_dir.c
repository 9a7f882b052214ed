/* ops_dir.c — readdir (immediate children, skipping whole subtrees), mkdir and rmdir. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_internal.h"

/* Keys fetched per scan while listing (keys only: values stay on the stores). */
#define READDIR_BATCH 256

int fs_op_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                  struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    struct fs *fs = fs_current();
    struct fs_path p;
    struct client_txn *txn = NULL;
    uint8_t prefix[CLIENT_MAX_KEY_BYTES], end[CLIENT_MAX_KEY_BYTES];
    uint8_t start[CLIENT_MAX_KEY_BYTES + 1];
    size_t plen, end_len, start_len;
    char last[FS_NAME_MAX + 1] = "", name[FS_NAME_MAX + 1];
    int rc;

    (void)off;
    (void)fi;
    (void)flags;
    rc = fs_path_parse(path, &p);
    if (rc != FS_OK)
        return rc == FS_ERR_INVALID ? -ENOENT : fs_neg_errno(rc);
    fill(buf, ".", NULL, 0, 0);
    fill(buf, "..", NULL, 0, 0);
    if (p.kind == FS_PATH_SNAPSHOT_LIST)
        return 0; /* any <ts> can be entered; none is listed */
    if (p.kind == FS_PATH_ROOT && p.snapshot_ts == 0)
        fill(buf, FS_SNAPSHOT_DIR, NULL, 0, 0);

    plen = fs_dir_prefix(&p, prefix);
    fs_prefix_end(prefix, plen, end, &end_len);
    memcpy(start, prefix, plen);
    start_len = plen;
    rc = fs_txn_for_read(fs, &p, &txn);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    for (;;) {
        struct client_kv *kvs = NULL;
        size_t n = 0;
        int jumped = 0;

        rc = client_txn_scan_keys(txn, start, start_len, end, end_len, READDIR_BATCH, &kvs, &n);
        if (rc != CLIENT_OK)
            break;
        for (size_t i = 0; i < n && !jumped; i++) {
            const uint8_t *rest = kvs[i].key + plen;
            size_t rlen = kvs[i].key_len - plen, clen, name_len;
            const uint8_t *slash;

            if (kvs[i].key_len <= plen)
                continue; /* this directory's own marker */
            slash = memchr(rest, '/', rlen);
            clen = slash ? (size_t)(slash - rest) : rlen;
            if (fs_name_encode(rest, clen, plen == 0, name, sizeof name, &name_len) == FS_OK &&
                strcmp(name, last) != 0) {
                fill(buf, name, NULL, 0, 0);
                memcpy(last, name, name_len + 1);
            }
            if (slash) {
                /* A subdirectory: seek past all of it, to prefix + child + ('/' + 1). */
                memcpy(start + plen, rest, clen);
                start[plen + clen] = '/' + 1;
                start_len = plen + clen + 1;
                jumped = 1;
            }
        }
        if (!jumped && n == READDIR_BATCH) {
            memcpy(start, kvs[n - 1].key, kvs[n - 1].key_len);
            start[kvs[n - 1].key_len] = 0; /* the smallest key after the last one */
            start_len = kvs[n - 1].key_len + 1;
        }
        client_kvs_free(kvs, n);
        if (!jumped && n < READDIR_BATCH)
            break;
    }
    client_txn_rollback(txn);
    client_txn_free(txn);
    return fs_neg_errno(rc);
}

static int mkdir_body(struct client_txn *txn, void *arg)
{
    const struct fs_path *p = arg;
    uint8_t marker[CLIENT_MAX_KEY_BYTES];
    size_t len = fs_dir_prefix(p, marker);

    return fs_neg_errno(client_txn_put(txn, marker, len, "", 0));
}

int fs_op_mkdir(const char *path, mode_t mode)
{
    struct fs *fs = fs_current();
    struct fs_path p;
    int rc;

    (void)mode;
    rc = fs_path_parse(path, &p);
    if (rc != FS_OK)
        return fs_neg_errno(rc);
    rc = fs_check_writable(fs, &p);
    if (rc != 0)
        return rc;
    if (p.kind != FS_PATH_NODE)
        return -EEXIST;
    return fs_run_txn(fs, mkdir_body, &p);
}

static int rmdir_body(struct client_txn *txn, void *arg)
{
    const struct fs_path *p = arg;
    uint8_t marker[CLIENT_MAX_KEY_BYTES];
    size_t len = fs_dir_prefix(p, marker);
    void *v = NULL;
    size_t vlen;
    int rc, found = 0;

    rc = fs_prefix_has_keys(txn, marker, len, 1, &found);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    if (found)
        return -ENOTEMPTY;
    rc = client_txn_get(txn, marker, len, &v, &vlen);
    free(v);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc); /* no marker and nothing below: ENOENT */
    return fs_neg_errno(client_txn_delete(txn, marker, len));
}

int fs_op_rmdir(const char *path)
{
    struct fs *fs = fs_current();
    struct fs_path p;
    int rc;

    rc = fs_path_parse(path, &p);
    if (rc != FS_OK)
        return rc == FS_ERR_INVALID ? -ENOENT : fs_neg_errno(rc);
    rc = fs_check_writable(fs, &p);
    if (rc != 0)
        return rc;
    if (p.kind != FS_PATH_NODE)
        return -EBUSY;
    return fs_run_txn(fs, rmdir_body, &p);
}

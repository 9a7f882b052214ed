/* ops_node.c — symlinks and metadata-only nodes (FIFOs, sockets, devices); hard links are refused.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_internal.h"

struct node_args {
    struct fs *fs;
    const struct fs_path *p;
    const char *content; /* the symlink target, "" for other nodes */
    size_t content_len;
    struct fs_meta m;
};

/* Makes the node: its content key and record, in one transaction; EEXIST if the name is taken. */
static int make_node_body(struct client_txn *txn, void *arg)
{
    struct node_args *a = arg;
    struct fs_meta old;
    int rc, has_record;

    rc = fs_node_lookup(a->fs, txn, a->p, &old, &has_record, NULL, NULL);
    if (rc == 0)
        return -EEXIST;
    if (rc != -ENOENT)
        return rc;
    rc = client_txn_put(txn, a->p->key, a->p->key_len, a->content, a->content_len);
    if (rc == CLIENT_OK)
        rc = fs_meta_put(txn, a->p->key, a->p->key_len, &a->m);
    return fs_neg_errno(rc);
}

static int make_node(const char *path, uint32_t mode, const char *content, uint64_t rdev)
{
    struct fs *fs = fs_current();
    struct fs_path p;
    struct node_args a;
    int rc;

    rc = fs_path_parse(path, &p);
    if (rc != FS_OK)
        return fs_neg_errno(rc);
    rc = fs_check_writable(fs, &p);
    if (rc != 0)
        return rc;
    if (p.kind != FS_PATH_NODE)
        return -EEXIST;
    if (p.last_empty || fs_path_is_hidden(&p))
        return -EINVAL;
    memset(&a, 0, sizeof a);
    a.fs = fs;
    a.p = &p;
    a.content = content;
    a.content_len = strlen(content);
    fs_meta_new(mode, &a.m);
    a.m.size = a.content_len;
    a.m.rdev = rdev;
    rc = fs_run_txn(fs, make_node_body, &a);
    fs_dcache_child_changed(fs->dcache, p.key, p.key_len);
    if (rc == 0)
        fs_dcache_note(fs->dcache, p.key, p.key_len);
    return rc;
}

int fs_op_symlink(const char *target, const char *path)
{
    if (strlen(target) >= PATH_MAX)
        return -ENAMETOOLONG;
    return make_node(path, S_IFLNK | 0777, target, 0);
}

int fs_op_readlink(const char *path, char *buf, size_t size)
{
    struct fs *fs = fs_current();
    struct fs_path p;
    struct client_txn *txn = NULL;
    struct fs_meta m;
    void *value = NULL;
    size_t len = 0;
    int rc, has_record;

    if (size == 0)
        return -EINVAL;
    rc = fs_path_parse(path, &p);
    if (rc != FS_OK)
        return rc == FS_ERR_INVALID ? -ENOENT : fs_neg_errno(rc);
    if (p.kind != FS_PATH_NODE)
        return -EINVAL;
    rc = fs_txn_for_read(fs, &p, &txn);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    rc = fs_node_lookup(fs, txn, &p, &m, &has_record, &value, &len);
    client_txn_rollback(txn);
    client_txn_free(txn);
    if (rc == 0 && !S_ISLNK(m.mode))
        rc = -EINVAL;
    if (rc == 0) {
        if (len > size - 1)
            len = size - 1; /* readlink(2) truncates */
        memcpy(buf, value, len);
        buf[len] = '\0';
    }
    free(value);
    return rc;
}

int fs_op_mknod(const char *path, mode_t mode, dev_t dev)
{
    switch (mode & S_IFMT) {
    case S_IFREG:
        return make_node(path, (mode & 07777) | S_IFREG, "", 0);
    case S_IFIFO:
    case S_IFSOCK:
    case S_IFCHR:
    case S_IFBLK:
        /* Metadata only: the kernel serves FIFOs and sockets within each mount,
         * device nodes open the local device. */
        return make_node(path, mode & (S_IFMT | 07777), "", (uint64_t)dev);
    default:
        return -EINVAL;
    }
}

int fs_op_link(const char *from, const char *to)
{
    (void)from;
    (void)to;
    /* A second name for one content would break "the key of a file is its path". */
    return -EPERM;
}

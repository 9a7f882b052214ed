/* ops_file.c — create, open, read, write, truncate, flush, fsync, release and unlink. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_internal.h"

static struct fs_handle *handle_of(struct fuse_file_info *fi)
{
    return (struct fs_handle *)(uintptr_t)fi->fh;
}

/*
 * SQLite's WAL index ("NAME-shm") is mapped shared, which direct I/O refuses;
 * such files use the page cache instead (dropped at every open). Their content
 * only matters within one mount, where the cache is coherent.
 */
static int wants_shared_mapping(const struct fs_path *p)
{
    return p->key_len > 4 && memcmp(p->key + p->key_len - 4, "-shm", 4) == 0;
}

/* Parses a path that must name a regular file's key. */
static int parse_file(const char *path, struct fs_path *p)
{
    int rc = fs_path_parse(path, p);

    if (rc != FS_OK)
        return rc == FS_ERR_INVALID ? -ENOENT : fs_neg_errno(rc);
    if (p->kind != FS_PATH_NODE || p->last_empty)
        return -EISDIR;
    return 0;
}

int fs_op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    struct fs *fs = fs_current();
    struct fs_path p;
    struct fs_handle *h = NULL;
    int rc;

    rc = fs_path_parse(path, &p);
    if (rc != FS_OK)
        return fs_neg_errno(rc); /* a non-canonical name cannot be created: EINVAL */
    rc = fs_check_writable(fs, &p);
    if (rc != 0)
        return rc;
    if (p.kind != FS_PATH_NODE)
        return -EEXIST;
    if (p.last_empty || fs_path_is_hidden(&p))
        return -EINVAL; /* "%" names only directories; hidden names are libfuse's */
    /* Nothing is committed here: the first flush writes the file and its record. */
    rc = fs_handle_new(fs, &p, fi->flags, (mode & 07777) | S_IFREG, &h);
    if (rc != 0)
        return rc;
    fs_dcache_note(fs->dcache, p.key, p.key_len);
    fi->fh = (uint64_t)(uintptr_t)h;
    /* Each open file is its own snapshot: the kernel's page cache, shared by
     * every open of the inode, would mix versions (and O_TRUNC elsewhere
     * would cut this reader short). */
    fi->direct_io = !wants_shared_mapping(&p);
    return 0;
}

int fs_op_open(const char *path, struct fuse_file_info *fi)
{
    struct fs *fs = fs_current();
    struct fs_path p;
    struct fs_handle *h = NULL;
    int rc;

    rc = parse_file(path, &p);
    if (rc != 0)
        return rc;
    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
        rc = fs_check_writable(fs, &p);
        if (rc != 0)
            return rc;
    }
    rc = fs_handle_new(fs, &p, fi->flags, 0, &h);
    if (rc != 0)
        return rc;
    fi->fh = (uint64_t)(uintptr_t)h;
    /* Each open file is its own snapshot: the kernel's page cache, shared by
     * every open of the inode, would mix versions (and O_TRUNC elsewhere
     * would cut this reader short). */
    fi->direct_io = !wants_shared_mapping(&p);
    return 0;
}

int fs_op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct fs_handle *h = handle_of(fi);
    size_t n = 0;

    (void)path;
    if (off < 0)
        return -EINVAL;
    pthread_mutex_lock(&h->lock);
    if ((size_t)off >= h->len)
        fs_handle_refresh_at_eof(fs_current(), h);
    if (h->chunked) {
        int rc = fs_handle_chunk_read(fs_current(), h, buf, size, (uint64_t)off);
        pthread_mutex_unlock(&h->lock);
        return rc;
    }
    if ((size_t)off < h->len) {
        n = h->len - (size_t)off < size ? h->len - (size_t)off : size;
        memcpy(buf, h->data + off, n);
    }
    pthread_mutex_unlock(&h->lock);
    return (int)n;
}

/* Sets the file's length to `len`, zero-filling growth (past the inline size the
 * file goes to chunks). Caller holds the lock. */
static int handle_resize(struct fs *fs, struct fs_handle *h, uint64_t len)
{
    if (len > FS_MAX_FILE_BYTES)
        return -EFBIG;
    if (!h->chunked && len > FS_INLINE_MAX_BYTES) {
        int rc = fs_handle_make_chunked(fs, h);
        if (rc != 0)
            return rc;
    }
    if (h->chunked)
        return fs_handle_chunk_truncate(fs, h, len);
    if (len > h->cap) {
        size_t cap = h->cap ? h->cap : 4096;
        uint8_t *grown;
        while (cap < len)
            cap *= 2;
        if (cap > FS_INLINE_MAX_BYTES)
            cap = FS_INLINE_MAX_BYTES;
        grown = realloc(h->data, cap);
        if (!grown)
            return -ENOMEM;
        h->data = grown;
        h->cap = cap;
    }
    if (len > h->len)
        memset(h->data + h->len, 0, len - h->len);
    h->len = len;
    h->dirty = 1;
    h->meta.mtime = h->meta.ctime = fs_now();
    return 0;
}

int fs_op_write(const char *path, const char *buf, size_t size, off_t off,
                struct fuse_file_info *fi)
{
    struct fs_handle *h = handle_of(fi);
    int rc = 0;

    (void)path;
    if (off < 0)
        return -EINVAL;
    pthread_mutex_lock(&h->lock);
    if (h->read_only) {
        rc = -EBADF;
        goto out;
    }
    if (fi->flags & O_APPEND)
        off = (off_t)h->len;
    if ((uint64_t)off > FS_MAX_FILE_BYTES || size > FS_MAX_FILE_BYTES - (uint64_t)off) {
        rc = -EFBIG;
        goto out;
    }
    if (!h->chunked && (uint64_t)off + size > FS_INLINE_MAX_BYTES) {
        rc = fs_handle_make_chunked(fs_current(), h);
        if (rc != 0)
            goto out;
    }
    if (h->chunked) {
        rc = fs_handle_chunk_write(fs_current(), h, buf, size, (uint64_t)off);
        goto out;
    }
    if ((size_t)off + size > h->len) {
        rc = handle_resize(fs_current(), h, (size_t)off + size);
        if (rc != 0)
            goto out;
    }
    memcpy(h->data + off, buf, size);
    h->dirty = 1;
    h->meta.mtime = h->meta.ctime = fs_now();
    rc = (int)size;
out:
    pthread_mutex_unlock(&h->lock);
    return rc;
}

struct truncate_args {
    struct fs *fs;
    const struct fs_path *p;
    size_t size;
    int chunked; /* out: the file is chunked (truncated through an open file instead) */
};

static int truncate_body(struct client_txn *txn, void *arg)
{
    struct truncate_args *a = arg;
    uint8_t *v = NULL, *grown;
    size_t vlen = 0;
    struct fs_meta m;
    int rc, has_record;

    rc = fs_node_lookup(a->fs, txn, a->p, &m, &has_record, (void **)&v, &vlen);
    if (rc != 0)
        return rc;
    if (!S_ISREG(m.mode)) {
        free(v);
        return S_ISDIR(m.mode) ? -EISDIR : -EINVAL;
    }
    if (m.flags & FS_META_CHUNKED) {
        free(v);
        a->chunked = 1;
        return -ECANCELED;
    }
    if (a->size > vlen) {
        grown = realloc(v, a->size);
        if (!grown) {
            free(v);
            return -ENOMEM;
        }
        v = grown;
        memset(v + vlen, 0, a->size - vlen);
    }
    rc = client_txn_put(txn, a->p->key, a->p->key_len, a->size ? (void *)v : "", a->size);
    free(v);
    m.size = a->size;
    m.mtime = m.ctime = fs_now();
    if (rc == CLIENT_OK)
        rc = fs_meta_put(txn, a->p->key, a->p->key_len, &m);
    return fs_neg_errno(rc);
}

/* Truncates a chunked file (or one growing into chunks) as an open, resize and close. */
static int truncate_by_handle(struct fs *fs, const struct fs_path *p, uint64_t size)
{
    int rc = -EAGAIN;

    for (int attempt = 0; attempt < FS_CONFLICT_RETRIES && rc == -EAGAIN; attempt++) {
        struct fs_handle *h = NULL;
        rc = fs_handle_new(fs, p, O_WRONLY, 0, &h);
        if (rc != 0)
            return rc;
        pthread_mutex_lock(&h->lock);
        rc = handle_resize(fs, h, size);
        if (rc == 0)
            rc = fs_handle_commit(fs, h);
        pthread_mutex_unlock(&h->lock);
        fs_handle_free(fs, h);
        if (rc == -EAGAIN)
            fs_conflict_backoff(attempt); /* changed since the open: again on the new version */
    }
    return rc;
}

int fs_op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    struct fs *fs = fs_current();
    struct fs_path p;
    struct truncate_args a;
    int rc;

    if (size < 0)
        return -EINVAL;
    if ((uint64_t)size > FS_MAX_FILE_BYTES)
        return -EFBIG;
    if (fi && fi->fh) {
        struct fs_handle *h = handle_of(fi);
        pthread_mutex_lock(&h->lock);
        rc = h->read_only ? -EBADF : handle_resize(fs, h, (uint64_t)size);
        if (rc == 0 && size == 0)
            h->blind = 1;
        pthread_mutex_unlock(&h->lock);
        return rc;
    }
    rc = parse_file(path, &p);
    if (rc != 0)
        return rc;
    rc = fs_check_writable(fs, &p);
    if (rc != 0)
        return rc;
    fs_handles_settle(fs, p.key, p.key_len);
    if ((uint64_t)size > FS_INLINE_MAX_BYTES)
        return truncate_by_handle(fs, &p, (uint64_t)size);
    a.fs = fs;
    a.p = &p;
    a.size = (size_t)size;
    a.chunked = 0;
    rc = fs_run_txn(fs, truncate_body, &a);
    fs_dcache_child_changed(fs->dcache, p.key, p.key_len);
    if (rc == -ECANCELED && a.chunked)
        rc = truncate_by_handle(fs, &p, (uint64_t)size);
    return rc;
}

int fs_op_flush(const char *path, struct fuse_file_info *fi)
{
    struct fs_handle *h = handle_of(fi);
    int rc;

    (void)path;
    pthread_mutex_lock(&h->lock);
    rc = fs_handle_commit(fs_current(), h);
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int fs_op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)datasync;
    return fs_op_flush(path, fi);
}

int fs_op_release(const char *path, struct fuse_file_info *fi)
{
    struct fs_handle *h = handle_of(fi);

    (void)path;
    /* flush already reported any failure to close(); this is the last chance to write. */
    pthread_mutex_lock(&h->lock);
    fs_handle_commit(fs_current(), h);
    pthread_mutex_unlock(&h->lock);
    fs_handle_free(fs_current(), h);
    return 0;
}

struct unlink_args {
    struct fs *fs;
    const struct fs_path *p;
    uint64_t chunk_id; /* out: the chunks to drop after the commit */
};

static int unlink_body(struct client_txn *txn, void *arg)
{
    struct unlink_args *a = arg;
    struct fs_meta m;
    int rc, has_record;

    rc = fs_node_lookup(a->fs, txn, a->p, &m, &has_record, NULL, NULL);
    if (rc != 0)
        return rc;
    if (S_ISDIR(m.mode))
        return -EISDIR;
    a->chunk_id = (m.flags & FS_META_CHUNKED) ? m.chunk_id : 0;
    rc = client_txn_delete(txn, a->p->key, a->p->key_len);
    if (rc == CLIENT_OK && has_record)
        rc = fs_meta_delete(txn, a->p->key, a->p->key_len);
    return fs_neg_errno(rc);
}

int fs_op_unlink(const char *path)
{
    struct fs *fs = fs_current();
    struct fs_path p;
    struct unlink_args a;
    int rc;

    rc = parse_file(path, &p);
    if (rc != 0)
        return rc;
    rc = fs_check_writable(fs, &p);
    if (rc != 0)
        return rc;
    fs_handles_settle(fs, p.key, p.key_len);
    a.fs = fs;
    a.p = &p;
    a.chunk_id = 0;
    rc = fs_run_txn(fs, unlink_body, &a);
    fs_dcache_child_changed(fs->dcache, p.key, p.key_len);
    if (rc == -ENOENT && fs_path_is_hidden(&p))
        rc = 0; /* libfuse's last close of an unlinked open file: already gone */
    if (rc == 0) {
        fs_handles_unlinked(fs, p.key, p.key_len);
        /* (Open files keep reading them: their views predate the deletes.) */
        fs_chunks_drop(fs, a.chunk_id);
    }
    return rc;
}

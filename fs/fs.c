/* fs.c — the struct fs lifecycle, errno translation, and the key look-ups operations share. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs_internal.h"

int fs_new(struct client *client, const struct fs_options *opts, struct fs **out)
{
    struct fs *fs = calloc(1, sizeof *fs);

    if (!fs)
        return FS_ERR_NOMEM;
    fs->client = client;
    if (opts)
        fs->opts = *opts;
    clock_gettime(CLOCK_REALTIME, &fs->mount_time);
    fs->uid = getuid();
    fs->gid = getgid();
    pthread_mutex_init(&fs->handles_lock, NULL);
    pthread_mutex_init(&fs->space_lock, NULL);
    pthread_mutex_init(&fs->commit_lock, NULL);
    fs->commit_tail = &fs->commit_queue;
    /* Without it every look-up asks the cluster (also when out of memory). */
    fs->dcache = fs->opts.exact_negative_lookups ? NULL : fs_dcache_new();
    *out = fs;
    return FS_OK;
}

void fs_free(struct fs *fs)
{
    if (!fs)
        return;
    pthread_mutex_destroy(&fs->handles_lock);
    pthread_mutex_destroy(&fs->space_lock);
    pthread_mutex_destroy(&fs->commit_lock);
    fs_dcache_free(fs->dcache);
    free(fs);
}

struct fs *fs_current(void)
{
    return fuse_get_context()->private_data;
}

int fs_errno_of(int code)
{
    switch (code) {
    case 0:
        return 0;
    case FS_ERR_INVALID:
        return EINVAL;
    case FS_ERR_NOT_FOUND:
    case CLIENT_ERR_NOT_FOUND:
        return ENOENT;
    case FS_ERR_NAME_TOO_LONG:
        return ENAMETOOLONG;
    case FS_ERR_NOMEM:
    case CLIENT_ERR_NOMEM:
        return ENOMEM;
    case CLIENT_ERR_CONFLICT:
        return EAGAIN;
    case CLIENT_ERR_TOO_LARGE:
        return EFBIG;
    case CLIENT_ERR_INVALID:
        return EINVAL;
    case CLIENT_ERR_NO_SPACE:
        return ENOSPC;
    default: /* timeout, unavailable, server error, undetermined commit */
        return EIO;
    }
}

int fs_neg_errno(int code)
{
    return -fs_errno_of(code);
}

int fs_snapshot_check(struct fs *fs, client_ts ts)
{
    client_ts now;
    int rc = client_tso(fs->client, &now);

    if (rc != CLIENT_OK)
        return rc;
    /* A view of the future would change under the reader as commits land. */
    return ts > now ? CLIENT_ERR_NOT_FOUND : CLIENT_OK;
}

int fs_txn_for_read(struct fs *fs, const struct fs_path *p, struct client_txn **txn)
{
    int rc;

    if (p->snapshot_ts) {
        rc = fs_snapshot_check(fs, p->snapshot_ts);
        if (rc != CLIENT_OK)
            return rc;
        return client_txn_begin_at(fs->client, p->snapshot_ts, txn);
    }
    return client_txn_begin(fs->client, txn);
}

void fs_prefix_end(const uint8_t *prefix, size_t len, uint8_t *end, size_t *end_len)
{
    while (len > 0 && prefix[len - 1] == 0xFF)
        len--;
    memcpy(end, prefix, len);
    if (len > 0)
        end[len - 1]++;
    *end_len = len;
}

size_t fs_dir_prefix(const struct fs_path *p, uint8_t *buf)
{
    if (p->kind != FS_PATH_NODE)
        return 0;
    memcpy(buf, p->key, p->key_len);
    buf[p->key_len] = '/';
    return p->key_len + 1;
}

int fs_prefix_has_keys(struct client_txn *txn, const uint8_t *prefix, size_t prefix_len,
                       int skip_marker, int *found)
{
    uint8_t end[CLIENT_MAX_KEY_BYTES];
    size_t end_len, n = 0;
    struct client_kv *kvs = NULL;
    int rc;

    fs_prefix_end(prefix, prefix_len, end, &end_len);
    rc = client_txn_scan_keys(txn, prefix, prefix_len, end, end_len, 2, &kvs, &n);
    if (rc != CLIENT_OK)
        return rc;
    *found = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip_marker && kvs[i].key_len == prefix_len)
            continue; /* the directory's own marker */
        *found = 1;
    }
    client_kvs_free(kvs, n);
    return CLIENT_OK;
}

int fs_node_stat(struct client_txn *txn, const struct fs_path *p, int *is_dir, void **value,
                 size_t *value_len)
{
    struct fs_meta m;
    int has_record, rc;

    rc = fs_node_lookup(fs_current(), txn, p, &m, &has_record, value, value_len);
    if (rc == 0)
        *is_dir = S_ISDIR(m.mode);
    return rc;
}

int fs_path_is_hidden(const struct fs_path *p)
{
    size_t n = strlen(FS_HIDDEN_PREFIX), start = p->key_len;

    if (p->kind != FS_PATH_NODE)
        return 0;
    while (start > 0 && p->key[start - 1] != '/')
        start--;
    return p->key_len - start >= n && memcmp(p->key + start, FS_HIDDEN_PREFIX, n) == 0;
}

static void *fs_op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    /* Every listing carries attributes (not only its first buffer, as "auto" does): ls -l
     * then needs no look-up per name. */
    conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
    /* Short caches: another mount's changes show within a second. An entry too may come from
     * a copy read up to FS_DCACHE_ATTR_MS before (dcache.h), so it lasts as long as attributes. */
    cfg->entry_timeout = FS_ATTR_TIMEOUT_S;
    cfg->attr_timeout = FS_ATTR_TIMEOUT_S; /* with dcache.c's copies, 1 s in all */
    cfg->negative_timeout = 0.0;
    /* An unlinked open file is renamed to a hidden name, which fs_op_rename turns into
     * the unlink (the key goes now) while fstat still finds the open file by that name. */
    cfg->hard_remove = 0;
    cfg->kernel_cache = 0;
    /* fuse_new's user data is the address of the struct fs pointer, which
     * main fills in (after daemonizing) before the loop starts. */
    return *(struct fs **)fuse_get_context()->private_data;
}

static const struct fuse_operations OPS = {
    .init = fs_op_init,
    .getattr = fs_op_getattr,
    .statfs = fs_op_statfs,
    .utimens = fs_op_utimens,
    .getxattr = fs_op_getxattr,
    .listxattr = fs_op_listxattr,
    .setxattr = fs_op_setxattr,
    .removexattr = fs_op_removexattr,
    .opendir = fs_op_opendir,
    .releasedir = fs_op_releasedir,
    .readdir = fs_op_readdir,
    .mkdir = fs_op_mkdir,
    .rmdir = fs_op_rmdir,
    .create = fs_op_create,
    .open = fs_op_open,
    .read = fs_op_read,
    .write = fs_op_write,
    .truncate = fs_op_truncate,
    .flush = fs_op_flush,
    .fsync = fs_op_fsync,
    .release = fs_op_release,
    .unlink = fs_op_unlink,
    .rename = fs_op_rename,
    .symlink = fs_op_symlink,
    .link = fs_op_link,
    .mknod = fs_op_mknod,
    .readlink = fs_op_readlink,
    .chown = fs_op_chown,
    .chmod = fs_op_chmod,
};

const struct fuse_operations *fs_fuse_operations(void)
{
    return &OPS;
}

void fs_conflict_backoff(int attempt)
{
    struct timespec now, pause;
    unsigned int seed, cap_ms = 1u << (attempt < 6 ? attempt : 6);

    /* Random, so that writers that collided once do not collide again in step. */
    clock_gettime(CLOCK_MONOTONIC, &now);
    seed = (unsigned int)now.tv_nsec ^ (unsigned int)(uintptr_t)&now;
    pause.tv_sec = 0;
    pause.tv_nsec = (long)(rand_r(&seed) % (cap_ms * 1000u) + 500u) * 1000L;
    nanosleep(&pause, NULL);
}

int64_t fs_mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int fs_op_expired(const struct fs *fs, int64_t start_ms)
{
    int limit = fs->opts.op_timeout_ms > 0 ? fs->opts.op_timeout_ms : 5000;
    return fs_mono_ms() - start_ms >= limit;
}

int fs_run_txn(struct fs *fs, int (*body)(struct client_txn *txn, void *arg), void *arg)
{
    int64_t start = fs_mono_ms();
    int rc = 0;

    for (int attempt = 0; attempt < FS_CONFLICT_RETRIES; attempt++) {
        struct client_txn *txn = NULL;

        rc = client_txn_begin(fs->client, &txn);
        if (rc != CLIENT_OK)
            return fs_neg_errno(rc);
        rc = body(txn, arg);
        if (rc != 0) {
            client_txn_rollback(txn);
            client_txn_free(txn);
            return rc;
        }
        rc = client_txn_commit(txn, NULL);
        client_txn_free(txn);
        if (rc != CLIENT_ERR_CONFLICT || fs_op_expired(fs, start))
            return fs_neg_errno(rc);
        /* Lost a write-write race: everything is re-read in the next attempt. */
        fs_conflict_backoff(attempt);
    }
    return fs_neg_errno(rc);
}

int fs_check_writable(struct fs *fs, const struct fs_path *p)
{
    if (fs->opts.read_only || p->snapshot_ts || p->kind == FS_PATH_SNAPSHOT_LIST)
        return -EROFS;
    return 0;
}

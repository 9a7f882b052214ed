/* ops_attr.c — getattr, statfs, utimens and the user.tinykv.* extended attributes. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "fs/fs_internal.h"

/* Parses a path for an attribute operation; a non-canonical name names nothing. */
static int parse_any(const char *path, struct fs_path *p)
{
    int rc = fs_path_parse(path, p);
    return rc == FS_OK ? 0 : rc == FS_ERR_INVALID ? -ENOENT : fs_neg_errno(rc);
}

int fs_op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    struct fs *fs = fs_current();
    struct fs_path p;
    struct client_txn *txn = NULL;
    struct fs_meta m;
    int rc, has_record, unlinked = 0, cacheable;
    uint64_t epoch;
    int64_t read_ms;

    if (fi && fi->fh) {
        struct fs_handle *h = (struct fs_handle *)(uintptr_t)fi->fh;
        pthread_mutex_lock(&h->lock);
        rc = fs_handle_meta(fs, h);
        if (rc != 0) {
            pthread_mutex_unlock(&h->lock);
            return rc;
        }
        m = h->meta;
        m.size = h->len;
        unlinked = h->detached;
        pthread_mutex_unlock(&h->lock);
        fs_meta_to_stat(&m, st);
        if (unlinked)
            st->st_nlink = 0;
        return 0;
    }
    rc = parse_any(path, &p);
    if (rc != 0)
        return rc;
    if (p.kind == FS_PATH_SNAPSHOT_LIST) {
        fs_meta_default(fs, S_IFDIR, 0, &m);
        m.mode = S_IFDIR | 0555;
        fs_meta_to_stat(&m, st);
        return 0;
    }
    /* An open file here knows its unflushed size (and an unlinked one its data). */
    if (p.kind == FS_PATH_NODE && !p.snapshot_ts &&
        fs_handles_stat(fs, p.key, p.key_len, &m, &unlinked)) {
        fs_meta_to_stat(&m, st);
        if (unlinked)
            st->st_nlink = 0;
        return 0;
    }
    /* A name its directory's fresh listing lacks is not there, and a directory's attributes
     * read a moment ago still hold (dcache.h). */
    cacheable =
        (p.kind == FS_PATH_NODE || p.kind == FS_PATH_ROOT) && !p.snapshot_ts && !p.last_empty;
    if (cacheable && p.kind == FS_PATH_NODE && fs_dcache_absent(fs->dcache, p.key, p.key_len))
        return -ENOENT;
    if (cacheable && fs_dcache_attrs(fs->dcache, p.key, p.key_len, &m)) {
        fs_meta_to_stat(&m, st);
        return 0;
    }
    /* Many names of one directory looked up in a row: one scan reads all their records. */
    if (cacheable && p.kind == FS_PATH_NODE &&
        (fs_dcache_child_attrs(fs->dcache, p.key, p.key_len, &m) ||
         (fs_dcache_list_children(fs, p.key, p.key_len) &&
          fs_dcache_child_attrs(fs->dcache, p.key, p.key_len, &m)))) {
        fs_meta_to_stat(&m, st);
        return 0;
    }
    epoch = fs_dcache_attr_epoch(fs->dcache);
    read_ms = fs_mono_ms();
    rc = fs_txn_for_read(fs, &p, &txn);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    rc = fs_node_lookup(fs, txn, &p, &m, &has_record, NULL, NULL);
    client_txn_rollback(txn);
    client_txn_free(txn);
    if (rc == -ENOENT && cacheable && p.kind == FS_PATH_NODE)
        fs_dcache_missed(fs, p.key, p.key_len);
    if (rc != 0)
        return rc;
    if (cacheable && S_ISDIR(m.mode))
        fs_dcache_keep_attrs(fs->dcache, p.key, p.key_len, &m, epoch, read_ms);
    if (p.snapshot_ts)
        m.mode &= ~(uint32_t)0222; /* the past is read-only */
    fs_meta_to_stat(&m, st);
    return 0;
}

int fs_op_statfs(const char *path, struct statvfs *st)
{
    struct fs *fs = fs_current();
    struct client_space space;
    struct timespec now;
    int rc;

    (void)path;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&fs->space_lock);
    if (fs->space_valid && (now.tv_sec - fs->space_time.tv_sec) * 1000 +
                                   (now.tv_nsec - fs->space_time.tv_nsec) / 1000000 <
                               FS_SPACE_CACHE_MS) {
        *st = fs->space;
        pthread_mutex_unlock(&fs->space_lock);
        return 0;
    }
    pthread_mutex_unlock(&fs->space_lock);

    rc = client_cluster_space(fs->client, &space);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    memset(st, 0, sizeof *st);
    st->f_bsize = 4096;
    st->f_frsize = 4096;
    if (space.n_reporting > 0) {
        /* Every byte is kept by each replica: the stores' sums over the
         * replica count (at most 3, the scheduler's default). */
        uint64_t replicas = space.n_stores >= 3 ? 3 : space.n_stores ? space.n_stores : 1;
        /* (sum / n_reporting) * n_stores estimates every store; / replicas is the cluster. */
        uint64_t cap = space.capacity_bytes / space.n_reporting * space.n_stores / replicas;
        uint64_t avail = space.available_bytes / space.n_reporting * space.n_stores / replicas;
        st->f_blocks = cap / st->f_frsize;
        st->f_bfree = avail / st->f_frsize;
        st->f_bavail = st->f_bfree;
    }
    /* Keys have no count limit. */
    st->f_files = 1ULL << 32;
    st->f_ffree = 1ULL << 32;
    st->f_favail = 1ULL << 32;
    st->f_namemax = FS_NAME_MAX;
    if (fs->opts.read_only)
        st->f_flag |= ST_RDONLY;
    pthread_mutex_lock(&fs->space_lock);
    fs->space = *st;
    fs->space_time = now;
    fs->space_valid = 1;
    pthread_mutex_unlock(&fs->space_lock);
    return 0;
}

/* ------------------------------------------------------- attribute changes */

enum { SET_MODE = 1, SET_OWNER = 2, SET_TIMES = 4 };

struct setattr_args {
    struct fs *fs;
    const struct fs_path *p;
    int what;
    mode_t mode;
    uid_t uid;
    gid_t gid;
    struct timespec tv[2];
    struct fs_meta result; /* out: the record written */
};

static int setattr_body(struct client_txn *txn, void *arg)
{
    struct setattr_args *a = arg;
    struct fs_meta m;
    struct timespec now = fs_now();
    int rc, has_record;

    rc = fs_node_lookup(a->fs, txn, a->p, &m, &has_record, NULL, NULL);
    if (rc != 0)
        return rc;
    if (a->what & SET_MODE)
        m.mode = (m.mode & S_IFMT) | (a->mode & 07777);
    if (a->what & SET_OWNER) {
        if (a->uid != (uid_t)-1)
            m.uid = (uint32_t)a->uid;
        if (a->gid != (gid_t)-1)
            m.gid = (uint32_t)a->gid;
    }
    if (a->what & SET_TIMES) {
        for (int i = 0; i < 2; i++) {
            struct timespec *t = i == 0 ? &m.atime : &m.mtime;
            if (a->tv[i].tv_nsec == UTIME_OMIT)
                continue;
            *t = a->tv[i].tv_nsec == UTIME_NOW ? now : a->tv[i];
        }
    }
    m.ctime = now;
    a->result = m;
    return fs_neg_errno(fs_meta_put(txn, a->p->key, a->p->key_len, &m));
}

/* Applies an attribute change to the node at `path` (and to its open files here). */
static int set_attr(struct setattr_args *a, const char *path)
{
    struct fs *fs = fs_current();
    struct fs_path p;
    int rc;

    rc = parse_any(path, &p);
    if (rc != 0)
        return rc;
    rc = fs_check_writable(fs, &p);
    if (rc != 0)
        return rc;
    if (p.kind != FS_PATH_NODE && p.kind != FS_PATH_ROOT)
        return -EROFS;
    /* A file created here and not yet written must reach the store first. */
    if (p.kind == FS_PATH_NODE)
        fs_handles_settle(fs, p.key, p.key_len);
    a->fs = fs;
    a->p = &p;
    rc = fs_run_txn(fs, setattr_body, a);
    fs_dcache_attrs_changed(fs->dcache); /* (also when the outcome is unknown) */
    fs_dcache_child_changed(fs->dcache, p.key, p.key_len);
    if (rc == 0)
        fs_handles_attr_changed(fs, p.key, p.key_len, &a->result);
    return rc;
}

int fs_op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    struct setattr_args a;

    (void)fi;
    memset(&a, 0, sizeof a);
    a.what = SET_TIMES;
    if (tv) {
        a.tv[0] = tv[0];
        a.tv[1] = tv[1];
    } else {
        a.tv[0].tv_nsec = a.tv[1].tv_nsec = UTIME_NOW;
    }
    return set_attr(&a, path);
}

int fs_op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    struct setattr_args a;

    (void)fi;
    memset(&a, 0, sizeof a);
    a.what = SET_MODE;
    a.mode = mode;
    return set_attr(&a, path);
}

int fs_op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    struct setattr_args a;

    (void)fi;
    memset(&a, 0, sizeof a);
    a.what = SET_OWNER;
    a.uid = uid;
    a.gid = gid;
    return set_attr(&a, path);
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
    /* The names the kernel and ls ask of every file (security.*, system.posix_acl_*) are
     * never ours: answered before the path is even decoded. */
    if (which < 0)
        return -ENODATA;
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

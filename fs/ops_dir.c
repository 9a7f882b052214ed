/* ops_dir.c — readdir (immediate children, skipping whole subtrees), mkdir and rmdir. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_internal.h"

/* Keys fetched per scan while listing (keys only: values stay on the stores). */
#define READDIR_BATCH 1024

/* After a key below a child, fs_scan_children seeks past the whole child
 * (prefix + child + ('/' + 1)), so a directory beside a million keys lists fast. */
int fs_scan_children(struct client_txn *txn, const uint8_t *prefix, size_t plen, int with_values,
                     fs_child_fn fn, void *arg)
{
    uint8_t end[CLIENT_MAX_KEY_BYTES + FS_META_PREFIX_LEN];
    uint8_t start[CLIENT_MAX_KEY_BYTES + FS_META_PREFIX_LEN + 1];
    size_t end_len, start_len = plen;
    int rc = 0;

    fs_prefix_end(prefix, plen, end, &end_len);
    memcpy(start, prefix, plen);
    for (;;) {
        struct client_kv *kvs = NULL;
        size_t n = 0;
        int jumped = 0;

        rc = with_values
                 ? client_txn_scan(txn, start, start_len, end, end_len, READDIR_BATCH, &kvs, &n)
                 : client_txn_scan_keys(txn, start, start_len, end, end_len, READDIR_BATCH, &kvs,
                                        &n);
        if (rc != CLIENT_OK)
            return fs_neg_errno(rc);
        for (size_t i = 0; i < n && !jumped && rc == 0; i++) {
            const uint8_t *rest = kvs[i].key + plen;
            size_t rlen = kvs[i].key_len - plen, clen;
            const uint8_t *slash;

            if (kvs[i].key_len <= plen)
                continue; /* this directory's own marker (or record) */
            slash = memchr(rest, '/', rlen);
            clen = slash ? (size_t)(slash - rest) : rlen;
            rc = fn(arg, rest, clen, slash != NULL, kvs[i].value, kvs[i].value_len);
            if (slash) {
                memcpy(start + plen, rest, clen);
                start[plen + clen] = '/' + 1;
                start_len = plen + clen + 1;
                jumped = 1;
            }
        }
        if (rc == 0 && !jumped && n == READDIR_BATCH) {
            memcpy(start, kvs[n - 1].key, kvs[n - 1].key_len);
            start[kvs[n - 1].key_len] = 0; /* the smallest key after the last one */
            start_len = kvs[n - 1].key_len + 1;
        }
        client_kvs_free(kvs, n);
        if (rc != 0 || (!jumped && n < READDIR_BATCH))
            return rc;
    }
}

/* One child's record, from the scan of the directory's metadata range. */
struct child_rec {
    uint8_t *comp;
    size_t clen;
    struct fs_meta m;
};

struct rec_list {
    struct child_rec *v;
    size_t n, cap;
};

static int comp_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

static int collect_rec(void *arg, const uint8_t *comp, size_t clen, int below, const uint8_t *value,
                       size_t vlen)
{
    struct rec_list *l = arg;
    struct child_rec r;

    if (below || fs_meta_decode(value, vlen, &r.m) != 0)
        return 0; /* records below a child belong to its subtree */
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct child_rec *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    r.comp = malloc(clen ? clen : 1);
    if (!r.comp)
        return -ENOMEM;
    memcpy(r.comp, comp, clen);
    r.clen = clen;
    l->v[l->n++] = r; /* in key order, which is comp_cmp order */
    return 0;
}

static const struct fs_meta *find_rec(const struct rec_list *l, const uint8_t *comp, size_t clen)
{
    size_t lo = 0, hi = l->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = comp_cmp(l->v[mid].comp, l->v[mid].clen, comp, clen);
        if (c == 0)
            return &l->v[mid].m;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* One entry of an open directory's listing. */
struct dir_entry {
    char *name;
    int has_stat; /* attributes known (readdirplus) */
    struct stat st;
};

/* An open directory (fi->fh): its listing, read whole at offset 0 and served by offset, so
 * entries carry their attributes to the kernel (libfuse drops them in its own list mode). */
struct fs_dir_list {
    struct dir_entry *v;
    size_t n, cap;
    int filled;
};

static void dir_list_clear(struct fs_dir_list *dl)
{
    for (size_t i = 0; i < dl->n; i++)
        free(dl->v[i].name);
    dl->n = 0;
    dl->filled = 0;
}

static int dir_list_add(struct fs_dir_list *dl, const char *name, const struct stat *st)
{
    if (dl->n == dl->cap) {
        size_t cap = dl->cap ? dl->cap * 2 : 64;
        struct dir_entry *v = realloc(dl->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        dl->v = v;
        dl->cap = cap;
    }
    dl->v[dl->n].name = strdup(name);
    if (!dl->v[dl->n].name)
        return -ENOMEM;
    dl->v[dl->n].has_stat = st != NULL;
    if (st)
        dl->v[dl->n].st = *st;
    dl->n++;
    return 0;
}

struct fill_ctx {
    struct fs *fs;
    struct fs_dir_list *dl;
    size_t plen; /* the directory's key prefix length (0: the root) */
    const uint8_t *prefix;
    const struct rec_list *recs; /* NULL: names only */
    char last[FS_NAME_MAX + 1];
};

static int fill_child(void *arg, const uint8_t *comp, size_t clen, int below, const uint8_t *value,
                      size_t vlen)
{
    struct fill_ctx *f = arg;
    char name[FS_NAME_MAX + 1];
    size_t name_len;
    const struct fs_meta *rec;
    struct fs_meta open_m;
    struct stat st;
    uint8_t key[CLIENT_MAX_KEY_BYTES];
    int unlinked;

    (void)value;
    (void)vlen;
    if (fs_name_encode(comp, clen, f->plen == 0, name, sizeof name, &name_len) != FS_OK ||
        strcmp(name, f->last) == 0)
        return 0; /* the reserved metadata keys, or the same child again */
    memcpy(f->last, name, name_len + 1);
    rec = f->recs ? find_rec(f->recs, comp, clen) : NULL;
    if (rec && !below && f->plen + clen <= sizeof key) {
        /* An open file here may hold more than the store (unflushed writes). */
        memcpy(key, f->prefix, f->plen);
        memcpy(key + f->plen, comp, clen);
        if (fs_handles_stat(f->fs, key, f->plen + clen, &open_m, &unlinked))
            rec = &open_m;
    }
    /* A record of the child's kind gives its attributes now (readdirplus: no
     * lookup per name); a child without one is looked up by the kernel. */
    if (rec && (S_ISDIR(rec->mode) != 0) == (below != 0)) {
        fs_meta_to_stat(rec, &st);
        return dir_list_add(f->dl, name, &st);
    }
    return dir_list_add(f->dl, name, NULL);
}

/* A file created here and not yet committed is listed (with its attributes) unless the
 * store already had its name. */
static int fill_created(void *arg, const uint8_t *comp, size_t clen, const struct fs_meta *m)
{
    struct fill_ctx *f = arg;
    char name[FS_NAME_MAX + 1];
    size_t name_len;
    struct stat st;

    if (fs_name_encode(comp, clen, f->plen == 0, name, sizeof name, &name_len) != FS_OK)
        return 0;
    for (size_t i = 0; i < f->dl->n; i++)
        if (strcmp(f->dl->v[i].name, name) == 0)
            return 0;
    fs_meta_to_stat(m, &st);
    return dir_list_add(f->dl, name, &st);
}

/* Reads the directory `p` whole into dl. */
static int dir_list_fill(struct fs *fs, const struct fs_path *p, int plus, struct fs_dir_list *dl)
{
    struct client_txn *txn = NULL;
    uint8_t prefix[CLIENT_MAX_KEY_BYTES], mprefix[CLIENT_MAX_KEY_BYTES + FS_META_PREFIX_LEN];
    struct rec_list recs = {NULL, 0, 0};
    struct fill_ctx f;
    size_t plen;
    int rc;

    dir_list_clear(dl);
    rc = dir_list_add(dl, ".", NULL);
    if (rc == 0)
        rc = dir_list_add(dl, "..", NULL);
    if (rc == 0 && p->kind == FS_PATH_ROOT && p->snapshot_ts == 0)
        rc = dir_list_add(dl, FS_SNAPSHOT_DIR, NULL);
    if (rc != 0 || p->kind == FS_PATH_SNAPSHOT_LIST)
        return rc; /* any <ts> can be entered; none is listed */

    plen = fs_dir_prefix(p, prefix);
    rc = fs_txn_for_read(fs, p, &txn);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    rc = 0;
    if (plus)
        rc = fs_scan_children(txn, mprefix, fs_meta_key(prefix, plen, mprefix), 1, collect_rec,
                              &recs);
    if (rc == 0) {
        memset(&f, 0, sizeof f);
        f.fs = fs;
        f.dl = dl;
        f.plen = plen;
        f.prefix = prefix;
        f.recs = plus ? &recs : NULL;
        rc = fs_scan_children(txn, prefix, plen, 0, fill_child, &f);
    }
    if (rc == 0 && !p->snapshot_ts)
        rc = fs_handles_list_created(fs, prefix, plen, fill_created, &f);
    client_txn_rollback(txn);
    client_txn_free(txn);
    for (size_t i = 0; i < recs.n; i++)
        free(recs.v[i].comp);
    free(recs.v);
    if (rc == 0)
        dl->filled = 1;
    return rc;
}

int fs_op_opendir(const char *path, struct fuse_file_info *fi)
{
    struct fs_dir_list *dl = calloc(1, sizeof *dl);

    (void)path;
    if (!dl)
        return -ENOMEM;
    fi->fh = (uint64_t)(uintptr_t)dl;
    return 0;
}

int fs_op_releasedir(const char *path, struct fuse_file_info *fi)
{
    struct fs_dir_list *dl = (struct fs_dir_list *)(uintptr_t)fi->fh;

    (void)path;
    if (dl) {
        dir_list_clear(dl);
        free(dl->v);
        free(dl);
    }
    return 0;
}

int fs_op_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                  struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    struct fs_dir_list *dl = (struct fs_dir_list *)(uintptr_t)fi->fh;
    struct fs_path p;
    int rc, plus = (flags & FUSE_READDIR_PLUS) != 0;

    if (off < 0)
        return -EINVAL;
    if (off == 0 || !dl->filled) {
        /* The listing is read at offset 0 (opendir, rewinddir) and served from memory after. */
        rc = fs_path_parse(path, &p);
        if (rc != FS_OK)
            return rc == FS_ERR_INVALID ? -ENOENT : fs_neg_errno(rc);
        rc = dir_list_fill(fs_current(), &p, 1, dl);
        if (rc != 0)
            return rc;
    }
    /* Offsets are entry numbers + 1; fill says when the kernel's buffer is full. */
    for (size_t i = (size_t)off; i < dl->n; i++) {
        const struct dir_entry *e = &dl->v[i];
        int with = plus && e->has_stat;
        if (fill(buf, e->name, with ? &e->st : NULL, (off_t)(i + 1), with ? FUSE_FILL_DIR_PLUS : 0))
            break;
    }
    return 0;
}

struct dir_args {
    struct fs *fs;
    const struct fs_path *p;
    mode_t mode;
};

static int mkdir_body(struct client_txn *txn, void *arg)
{
    struct dir_args *a = arg;
    uint8_t marker[CLIENT_MAX_KEY_BYTES];
    size_t len = fs_dir_prefix(a->p, marker);
    struct fs_meta m;
    int rc, has_record;

    rc = fs_node_lookup(a->fs, txn, a->p, &m, &has_record, NULL, NULL);
    if (rc == 0)
        return -EEXIST;
    if (rc != -ENOENT)
        return rc;
    fs_meta_new(S_IFDIR | (a->mode & 07777), &m);
    rc = fs_neg_errno(client_txn_put(txn, marker, len, "", 0));
    if (rc == 0)
        rc = fs_neg_errno(fs_meta_put(txn, a->p->key, a->p->key_len, &m));
    if (rc == 0)
        rc = fs_meta_parent_adjust(a->fs, txn, a->p, +1);
    return rc;
}

int fs_op_mkdir(const char *path, mode_t mode)
{
    struct fs *fs = fs_current();
    struct fs_path p;
    struct dir_args a;
    int64_t start;
    int rc;

    rc = fs_path_parse(path, &p);
    if (rc != FS_OK)
        return fs_neg_errno(rc);
    rc = fs_check_writable(fs, &p);
    if (rc != 0)
        return rc;
    if (p.kind != FS_PATH_NODE)
        return -EEXIST;
    a.fs = fs;
    a.p = &p;
    a.mode = mode;
    start = fs_mono_ms();
    rc = fs_run_txn(fs, mkdir_body, &a);
    fs_dcache_attrs_changed(fs->dcache); /* the parent's subdirectory count */
    fs_dcache_child_changed(fs->dcache, p.key, p.key_len);
    fs_dcache_parent_changed(fs->dcache, p.key, p.key_len);
    if (rc == 0)
        fs_dcache_note_empty_dir(fs->dcache, p.key, p.key_len, start);
    return rc;
}

static int rmdir_body(struct client_txn *txn, void *arg)
{
    struct dir_args *a = arg;
    uint8_t marker[CLIENT_MAX_KEY_BYTES];
    size_t len = fs_dir_prefix(a->p, marker);
    struct fs_meta m;
    void *v = NULL;
    size_t vlen;
    int rc, found = 0, has_record = 0;

    rc = fs_prefix_has_keys(txn, marker, len, 1, &found);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    if (found)
        return -ENOTEMPTY;
    rc = client_txn_get(txn, marker, len, &v, &vlen);
    free(v);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc); /* no marker and nothing below: ENOENT */
    rc = fs_meta_get(txn, a->p->key, a->p->key_len, &m, &has_record);
    if (rc == CLIENT_OK)
        rc = client_txn_delete(txn, marker, len);
    if (rc == CLIENT_OK && has_record)
        rc = fs_meta_delete(txn, a->p->key, a->p->key_len);
    rc = fs_neg_errno(rc);
    if (rc == 0)
        rc = fs_meta_parent_adjust(a->fs, txn, a->p, -1);
    return rc;
}

int fs_op_rmdir(const char *path)
{
    struct fs *fs = fs_current();
    struct fs_path p;
    struct dir_args a;
    int rc;

    rc = fs_path_parse(path, &p);
    if (rc != FS_OK)
        return rc == FS_ERR_INVALID ? -ENOENT : fs_neg_errno(rc);
    rc = fs_check_writable(fs, &p);
    if (rc != 0)
        return rc;
    if (p.kind != FS_PATH_NODE)
        return -EBUSY;
    a.fs = fs;
    a.p = &p;
    a.mode = 0;
    rc = fs_run_txn(fs, rmdir_body, &a);
    fs_dcache_attrs_changed(fs->dcache); /* the parent's subdirectory count */
    fs_dcache_child_changed(fs->dcache, p.key, p.key_len);
    fs_dcache_parent_changed(fs->dcache, p.key, p.key_len);
    return rc;
}

/* ops_rename.c — rename of a file or a whole directory as one transaction. */
#include <errno.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_internal.h"

/* Keys moved per scan while renaming a directory. */
#define RENAME_BATCH 128

struct rename_args {
    struct fs *fs;
    const struct fs_path *from;
    const struct fs_path *to;
    unsigned int flags;
    int hide;          /* libfuse hides an unlinked open file: an unlink of `from` */
    int from_dir;      /* out: what was moved */
    int to_file;       /* out: a file was replaced */
    uint64_t chunk_id; /* out: chunks of what went away, dropped after the commit */
};

/* Keys and bytes one directory rename has moved so far (the limits span both key ranges). */
struct move_count {
    size_t keys;
    size_t bytes;
};

/* Moves every key starting with `fprefix` to start with `tprefix` instead, in `txn`.
 * With count_keys the keys count toward FS_RENAME_MAX_KEYS (records count only their bytes). */
static int move_range(struct client_txn *txn, const uint8_t *fprefix, size_t flen,
                      const uint8_t *tprefix, size_t tlen, struct move_count *count, int count_keys)
{
    uint8_t end[CLIENT_MAX_KEY_BYTES + FS_META_PREFIX_LEN];
    uint8_t start[CLIENT_MAX_KEY_BYTES + FS_META_PREFIX_LEN + 1];
    uint8_t newkey[CLIENT_MAX_KEY_BYTES + FS_META_PREFIX_LEN];
    size_t end_len, start_len = flen;
    int rc = 0;

    fs_prefix_end(fprefix, flen, end, &end_len);
    memcpy(start, fprefix, flen);
    for (;;) {
        struct client_kv *kvs = NULL;
        size_t n = 0;

        rc = client_txn_scan(txn, start, start_len, end, end_len, RENAME_BATCH, &kvs, &n);
        if (rc != CLIENT_OK)
            return fs_neg_errno(rc);
        for (size_t i = 0; i < n && rc == 0; i++) {
            size_t rest = kvs[i].key_len - flen;
            count->keys += count_keys ? 1 : 0;
            count->bytes += kvs[i].value_len;
            if (count->keys > FS_RENAME_MAX_KEYS || count->bytes > FS_RENAME_MAX_BYTES) {
                rc = -EXDEV; /* too big for one transaction: mv falls back to copying */
                break;
            }
            if (tlen + rest > sizeof newkey) {
                rc = -ENAMETOOLONG;
                break;
            }
            memcpy(newkey, tprefix, tlen);
            memcpy(newkey + tlen, kvs[i].key + flen, rest);
            rc = fs_neg_errno(
                client_txn_put(txn, newkey, tlen + rest, kvs[i].value, kvs[i].value_len));
            if (rc == 0)
                rc = fs_neg_errno(client_txn_delete(txn, kvs[i].key, kvs[i].key_len));
        }
        if (rc == 0 && n == RENAME_BATCH) {
            memcpy(start, kvs[n - 1].key, kvs[n - 1].key_len);
            start[kvs[n - 1].key_len] = 0;
            start_len = kvs[n - 1].key_len + 1;
        }
        client_kvs_free(kvs, n);
        if (rc != 0 || n < RENAME_BATCH)
            return rc;
    }
}

/* Moves the directory `from`'s keys and records below it to below `to`. */
static int move_tree(struct client_txn *txn, const struct fs_path *from, const struct fs_path *to)
{
    uint8_t fprefix[CLIENT_MAX_KEY_BYTES], tprefix[CLIENT_MAX_KEY_BYTES];
    uint8_t fmeta[CLIENT_MAX_KEY_BYTES + FS_META_PREFIX_LEN];
    uint8_t tmeta[CLIENT_MAX_KEY_BYTES + FS_META_PREFIX_LEN];
    size_t flen = fs_dir_prefix(from, fprefix), tlen = fs_dir_prefix(to, tprefix);
    struct move_count count = {0, 0};
    int rc;

    if (tlen + FS_META_PREFIX_LEN > CLIENT_MAX_KEY_BYTES)
        return -ENAMETOOLONG;
    rc = move_range(txn, fprefix, flen, tprefix, tlen, &count, 1);
    if (rc != 0)
        return rc;
    return move_range(txn, fmeta, fs_meta_key(fprefix, flen, fmeta), tmeta,
                      fs_meta_key(tprefix, tlen, tmeta), &count, 0);
}

static int rename_body(struct client_txn *txn, void *arg)
{
    struct rename_args *a = arg;
    uint8_t prefix[CLIENT_MAX_KEY_BYTES];
    struct fs_meta fm, tm;
    void *value = NULL;
    size_t vlen = 0, plen;
    int rc, from_dir, to_dir = 0, to_exists, found = 0, from_rec = 0, to_rec = 0;

    rc = fs_node_lookup(a->fs, txn, a->from, &fm, &from_rec, a->hide ? NULL : &value, &vlen);
    if (rc != 0)
        return rc;
    from_dir = S_ISDIR(fm.mode);
    a->from_dir = from_dir;
    a->to_file = 0;
    a->chunk_id = 0;
    if (a->hide) {
        /* The open file's name goes away now; its data stays in the open file only. */
        if (from_dir)
            return -EISDIR;
        rc = client_txn_delete(txn, a->from->key, a->from->key_len);
        if (rc == CLIENT_OK && from_rec)
            rc = fs_meta_delete(txn, a->from->key, a->from->key_len);
        a->chunk_id = (fm.flags & FS_META_CHUNKED) ? fm.chunk_id : 0;
        return fs_neg_errno(rc);
    }
    rc = fs_node_lookup(a->fs, txn, a->to, &tm, &to_rec, NULL, NULL);
    if (rc != 0 && rc != -ENOENT)
        goto cleanup;
    to_exists = rc == 0;
    to_dir = to_exists && S_ISDIR(tm.mode);
    a->to_file = to_exists && !to_dir;
    if (a->to_file && (tm.flags & FS_META_CHUNKED) && tm.chunk_id != fm.chunk_id)
        a->chunk_id = tm.chunk_id;
    rc = 0;
    if (to_exists) {
        if (a->flags & RENAME_NOREPLACE) {
            rc = -EEXIST;
            goto cleanup;
        }
        if (to_dir && !from_dir) {
            rc = -EISDIR;
            goto cleanup;
        }
        if (!to_dir && from_dir) {
            rc = -ENOTDIR;
            goto cleanup;
        }
        if (to_dir) {
            plen = fs_dir_prefix(a->to, prefix);
            rc = fs_neg_errno(fs_prefix_has_keys(txn, prefix, plen, 1, &found));
            if (rc == 0 && found)
                rc = -ENOTEMPTY;
            if (rc == 0) /* replace the empty target: drop its marker and record */
                rc = fs_neg_errno(client_txn_delete(txn, prefix, plen));
            if (rc == 0 && to_rec)
                rc = fs_neg_errno(fs_meta_delete(txn, a->to->key, a->to->key_len));
            if (rc == 0)
                rc = fs_meta_parent_adjust(a->fs, txn, a->to, -1);
            if (rc != 0)
                goto cleanup;
        }
    }
    fm.ctime = fs_now();
    if (from_dir) {
        rc = move_tree(txn, a->from, a->to);
        if (rc == 0)
            rc = fs_meta_parent_adjust(a->fs, txn, a->from, -1);
        if (rc == 0)
            rc = fs_meta_parent_adjust(a->fs, txn, a->to, +1);
    } else {
        if (a->to->last_empty) {
            rc = -EINVAL; /* "%" names only directories */
            goto cleanup;
        }
        rc = fs_neg_errno(client_txn_put(txn, a->to->key, a->to->key_len, value, vlen));
        if (rc == 0)
            rc = fs_neg_errno(client_txn_delete(txn, a->from->key, a->from->key_len));
    }
    if (rc == 0 && from_rec)
        rc = fs_neg_errno(fs_meta_delete(txn, a->from->key, a->from->key_len));
    if (rc == 0)
        rc = fs_neg_errno(fs_meta_put(txn, a->to->key, a->to->key_len, &fm));
cleanup:
    free(value);
    return rc;
}

int fs_op_rename(const char *from, const char *to, unsigned int flags)
{
    struct fs *fs = fs_current();
    struct fs_path *pf = NULL, *pt = NULL;
    struct rename_args a;
    int rc;

    if (flags & ~(unsigned int)RENAME_NOREPLACE)
        return -EINVAL; /* RENAME_EXCHANGE and RENAME_WHITEOUT are not supported */
    pf = malloc(sizeof *pf);
    pt = malloc(sizeof *pt);
    if (!pf || !pt) {
        rc = -ENOMEM;
        goto cleanup;
    }
    rc = fs_path_parse(from, pf);
    if (rc == FS_OK)
        rc = fs_path_parse(to, pt);
    if (rc != FS_OK) {
        rc = fs_neg_errno(rc);
        goto cleanup;
    }
    rc = fs_check_writable(fs, pf);
    if (rc == 0)
        rc = fs_check_writable(fs, pt);
    if (rc != 0)
        goto cleanup;
    if (pf->kind != FS_PATH_NODE || pt->kind != FS_PATH_NODE) {
        rc = -EBUSY;
        goto cleanup;
    }
    if (pf->key_len == pt->key_len && memcmp(pf->key, pt->key, pf->key_len) == 0) {
        rc = 0;
        goto cleanup;
    }
    fs_handles_settle(fs, pf->key, pf->key_len);
    fs_handles_settle(fs, pt->key, pt->key_len);
    a.fs = fs;
    a.from = pf;
    a.to = pt;
    a.flags = flags;
    a.hide = fs_path_is_hidden(pt) && !fs_path_is_hidden(pf);
    rc = fs_run_txn(fs, rename_body, &a);
    fs_dcache_attrs_changed(fs->dcache); /* the moved node's ctime, the parents' counts */
    fs_dcache_child_changed(fs->dcache, pf->key, pf->key_len);
    fs_dcache_child_changed(fs->dcache, pt->key, pt->key_len);
    fs_dcache_parent_changed(fs->dcache, pf->key, pf->key_len);
    fs_dcache_parent_changed(fs->dcache, pt->key, pt->key_len);
    if (rc == 0) {
        /* The new name is there; listings of the subtree's old and new places are not. */
        fs_dcache_note(fs->dcache, pt->key, pt->key_len);
        fs_dcache_forget(fs->dcache, pf->key, pf->key_len);
        fs_dcache_forget(fs->dcache, pt->key, pt->key_len);
        fs_chunks_drop(fs, a.chunk_id);
    }
    if (rc == 0 && a.hide) {
        /* Still open here under the hidden name: fstat answers from the open file. */
        fs_handles_unlinked(fs, pf->key, pf->key_len);
        fs_handles_renamed(fs, pf, pt, 0);
    } else if (rc == 0) {
        if (a.to_file) /* the replaced file is gone, as if unlinked */
            fs_handles_unlinked(fs, pt->key, pt->key_len);
        fs_handles_renamed(fs, pf, pt, a.from_dir);
    }
cleanup:
    free(pf);
    free(pt);
    return rc;
}

/* handle.c — open files: value read at open, writes buffered, one commit of content and record per
 * flush. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_internal.h"
#include "proto/log.h"

static void txn_drop(struct client_txn **txn)
{
    if (*txn) {
        client_txn_rollback(*txn);
        client_txn_free(*txn);
        *txn = NULL;
    }
}

static int same_key(const struct fs_handle *h, const uint8_t *key, size_t key_len)
{
    return h->path.key_len == key_len && memcmp(h->path.key, key, key_len) == 0;
}

/*
 * A read-only open of a file whose content key holds a non-empty value (an inline
 * file: a chunked or special node's is empty) needs only that value: one read. The
 * record is read in the same view when asked (fs_handle_meta). Returns 1 when the
 * handle is filled, 0 when the full look-up must answer, or a negative errno.
 */
static int open_content_only(struct fs_handle *h, const struct fs_path *p)
{
    void *v = NULL;
    size_t vlen = 0;
    int rc;

    if (p->kind != FS_PATH_NODE || p->last_empty)
        return 0;
    rc = client_txn_get(h->txn, p->key, p->key_len, &v, &vlen);
    if (rc == CLIENT_ERR_NOT_FOUND)
        return 0; /* a directory, or nothing: the look-up says which */
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    if (vlen == 0) {
        free(v);
        return 0;
    }
    h->data = v;
    h->len = h->cap = vlen;
    memset(&h->meta, 0, sizeof h->meta);
    h->meta.mode = S_IFREG | 0644;
    h->meta.size = vlen;
    h->meta_pending = 1;
    return 1;
}

int fs_handle_meta(struct fs *fs, struct fs_handle *h)
{
    struct client_txn *txn = NULL;
    struct fs_meta m;
    int rc, found = 0;

    if (!h->meta_pending)
        return 0;
    rc = client_txn_begin_at(fs->client, h->read_ts, &txn);
    if (rc == CLIENT_OK)
        rc = fs_meta_get(txn, h->path.key, h->path.key_len, &m, &found);
    txn_drop(&txn);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    if (!found || !S_ISREG(m.mode))
        fs_meta_default(fs, S_IFREG, h->len, &m);
    m.size = h->len;
    m.flags = 0;
    m.chunk_id = 0;
    h->meta = m;
    h->meta_pending = 0;
    return 0;
}

int fs_handle_new(struct fs *fs, const struct fs_path *p, int flags, mode_t create_mode,
                  struct fs_handle **out)
{
    struct fs_handle *h = calloc(1, sizeof *h);
    void *value = NULL;
    size_t len = 0;
    int rc, has_record = 0, trunc, filled = 0, look;

    if (!h)
        return -ENOMEM;
    pthread_mutex_init(&h->lock, NULL);
    h->path = *p;
    h->read_only = (flags & O_ACCMODE) == O_RDONLY || p->snapshot_ts || fs->opts.read_only;
    trunc = (flags & O_TRUNC) && !h->read_only;
    if (!p->snapshot_ts && !create_mode)
        fs_handles_settle(fs, p->key, p->key_len);
    /* The kernel sends a create right after its own look-up found nothing, but that
     * look-up may have been answered by this mount's listing of the directory, up to
     * FS_DCACHE_TTL_MS old (dcache.h). A create with O_TRUNC writes the same file whether
     * or not one appeared since: a blind write that reads nothing, its transaction (and
     * timestamp) begun by the commit. Without O_TRUNC a file made since must be opened,
     * not replaced (O_EXCL: refused), so those look again at a fresh timestamp now. */
    look = !create_mode || !(flags & O_TRUNC) || (flags & O_EXCL);
    if (look) {
        rc = fs_txn_for_read(fs, p, &h->txn);
        if (rc != CLIENT_OK) {
            rc = fs_neg_errno(rc);
            goto fail;
        }
        h->read_ts = client_txn_start_ts(h->txn);
    }
    /* O_TRUNC needs no content: only whether the file is there and its record. A
     * read-only open of a small file reads its content only. */
    if (!look) {
        rc = -ENOENT;
    } else {
        rc = h->read_only ? open_content_only(h, p) : 0;
        filled = rc > 0;
        if (rc == 0)
            rc = fs_node_lookup(fs, h->txn, p, &h->meta, &has_record, trunc ? NULL : &value, &len);
    }
    if (filled) {
        rc = 0; /* the content is in; the record waits for fs_handle_meta */
    } else if (rc == -ENOENT && create_mode) {
        /* A new file: nothing is written before the first commit. With O_EXCL that
         * commit is in the transaction begun here, which thus conflicts with any
         * creator since now. */
        fs_meta_new(create_mode, &h->meta);
        h->created = 1;
        h->excl = (flags & O_EXCL) != 0;
        h->blind = 1;
        h->dirty = 1;
        rc = 0;
    } else if (rc == 0) {
        if (create_mode && (flags & O_EXCL)) {
            rc = -EEXIST;
            goto fail;
        }
        if (S_ISDIR(h->meta.mode)) {
            rc = -EISDIR;
            goto fail;
        }
        if (trunc) {
            /* The new content does not depend on the old: a blind write. */
            h->blind = 1;
            h->dirty = h->meta.size != 0 || (h->meta.flags & FS_META_CHUNKED);
            h->meta.size = 0;
            h->meta.mtime = h->meta.ctime = fs_now();
            if (h->meta.flags & FS_META_CHUNKED)
                h->old_chunk_id = h->meta.chunk_id; /* dropped once the new content commits */
            h->meta.flags &= ~(uint32_t)FS_META_CHUNKED;
            h->meta.chunk_id = 0;
        } else if (S_ISREG(h->meta.mode) && (h->meta.flags & FS_META_CHUNKED)) {
            /* Chunks are read as they are needed, in the view of the open. */
            free(value); /* the key's empty value */
            value = NULL;
            h->chunked = 1;
            h->chunk_id = h->meta.chunk_id;
            h->len = h->floor = h->base_len = h->meta.size;
            rc = client_txn_begin_at(fs->client, h->read_ts, &h->snap);
            if (rc != CLIENT_OK) {
                rc = fs_neg_errno(rc);
                goto fail;
            }
        } else {
            h->data = value;
            h->len = len;
            h->cap = len;
            value = NULL;
        }
    } else {
        goto fail;
    }
    clock_gettime(CLOCK_MONOTONIC, &h->fetched);
    if (h->read_only)
        txn_drop(&h->txn);
    pthread_mutex_lock(&fs->handles_lock);
    h->next = fs->handles;
    if (fs->handles)
        fs->handles->prev = h;
    fs->handles = h;
    h->listed = 1;
    pthread_mutex_unlock(&fs->handles_lock);
    *out = h;
    return 0;
fail:
    free(value);
    txn_drop(&h->txn);
    txn_drop(&h->snap);
    pthread_mutex_destroy(&h->lock);
    free(h);
    return rc;
}

/* After a commit attempt of h (CLIENT_* rc; on success the record m was written at
 * commit_ts): 0 if it committed, a negative errno for a failure other than a write conflict
 * (h stays dirty: a later flush or the release tries again), 1 for a conflict. */
static int commit_outcome(struct fs *fs, struct fs_handle *h, const struct fs_meta *m, int rc,
                          client_ts commit_ts)
{
    fs_dcache_child_changed(fs->dcache, h->path.key, h->path.key_len); /* (any outcome) */
    if (rc == CLIENT_OK) {
        if (h->created)
            fs_dcache_note(fs->dcache, h->path.key, h->path.key_len);
        h->meta = *m;
        h->dirty = 0;
        h->created = 0;
        fs_handle_chunk_committed(fs, h, commit_ts);
        /* Later writes of this handle build on what it just wrote. */
        h->blind = 1;
        return 0;
    }
    if (rc != CLIENT_ERR_CONFLICT) {
        LOG(LOG_WARN, "commit of %zu bytes failed: %s (%s)", h->len, client_strerror(rc),
            client_last_error(fs->client));
        return fs_neg_errno(rc);
    }
    return 1;
}

int fs_handle_commit(struct fs *fs, struct fs_handle *h)
{
    int rc = CLIENT_OK;

    if (h->sticky_err)
        return h->sticky_err;
    if (h->detached)
        h->dirty = 0; /* unlinked meanwhile: like a local file, its data goes with it */
    if (!h->dirty)
        return 0;
    if (h->chunked) {
        rc = fs_handle_chunk_flush(fs, h); /* the data keys first, in their own transactions */
        if (rc != 0)
            return rc;
    }
    int64_t start = fs_mono_ms();

    if (fs_commit_group_eligible(h)) {
        struct fs_meta m = h->meta;
        client_ts commit_ts = 0;

        m.size = h->len;
        m.flags = 0;
        m.chunk_id = 0;
        rc = fs_commit_group(fs, h, &m, &commit_ts);
        if (rc != FS_COMMIT_ALONE) {
            int e = commit_outcome(fs, h, &m, rc, commit_ts);
            if (e <= 0)
                return e;
            /* (a conflict when it was alone: retried below, as a blind write) */
        }
    }
    for (int attempt = 0; attempt < FS_CONFLICT_RETRIES; attempt++) {
        struct fs_meta stored, m = h->meta;
        client_ts commit_ts = 0;
        int found = 0;

        if (!h->txn) {
            rc = client_txn_begin(fs->client, &h->txn);
            if (rc != CLIENT_OK) {
                LOG(LOG_WARN, "cannot begin a commit: %s (%s)", client_strerror(rc),
                    client_last_error(fs->client));
                return fs_neg_errno(rc); /* still dirty: a later flush tries again */
            }
        }
        rc = CLIENT_OK;
        if (!h->created) {
            /* Owner, mode and atime are the store's (a chmod elsewhere since the open
             * stays); size, mtime and ctime are this file's. */
            rc = fs_meta_get(h->txn, h->path.key, h->path.key_len, &stored, &found);
            if (rc == CLIENT_OK && found && S_ISREG(stored.mode)) {
                m.mode = stored.mode;
                m.uid = stored.uid;
                m.gid = stored.gid;
                m.atime = stored.atime;
            }
        }
        m.size = h->len;
        m.flags = h->chunked ? FS_META_CHUNKED : 0;
        m.chunk_id = h->chunked ? h->chunk_id : 0;
        /* A chunked file's key holds the empty value; its pointers switch with the record. */
        if (rc == CLIENT_OK)
            rc = client_txn_put(h->txn, h->path.key, h->path.key_len,
                                h->data && !h->chunked ? (void *)h->data : "",
                                h->chunked ? 0 : h->len);
        if (rc == CLIENT_OK && h->chunked) {
            int e = fs_handle_chunk_pointers(h, h->txn);
            rc = e == 0 ? CLIENT_OK : e == -ENOMEM ? CLIENT_ERR_NOMEM : CLIENT_ERR_UNAVAILABLE;
        }
        if (rc == CLIENT_OK)
            rc = fs_meta_put(h->txn, h->path.key, h->path.key_len, &m);
        if (rc == CLIENT_OK)
            rc = client_txn_commit(h->txn, &commit_ts);
        else
            client_txn_rollback(h->txn);
        client_txn_free(h->txn);
        h->txn = NULL;
        int e = commit_outcome(fs, h, &m, rc, commit_ts);
        if (e <= 0)
            return e;
        if (h->created && h->excl) {
            /* Another creator committed this name after our O_EXCL create looked. */
            h->sticky_err = -EEXIST;
            return h->sticky_err;
        }
        if (!h->blind) {
            /* Someone committed this file after our open: our content is based
             * on a stale read and can never be written. */
            h->sticky_err = -EAGAIN;
            return h->sticky_err;
        }
        if (fs_op_expired(fs, start))
            break; /* EAGAIN, still dirty: a later flush or the release tries again */
        fs_conflict_backoff(attempt);
    }
    return fs_neg_errno(rc);
}

void fs_handle_refresh_at_eof(struct fs *fs, struct fs_handle *h)
{
    struct timespec now;
    struct client_txn *txn = NULL;
    struct fs_meta m;
    void *value = NULL;
    size_t len = 0;
    int has_record;

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!h->read_only || h->path.snapshot_ts || h->detached ||
        (now.tv_sec - h->fetched.tv_sec) * 1000 + (now.tv_nsec - h->fetched.tv_nsec) / 1000000 <
            FS_EOF_REFRESH_MS)
        return;
    h->fetched = now;
    if (fs_txn_for_read(fs, &h->path, &txn) != CLIENT_OK)
        return;
    if (fs_node_lookup(fs, txn, &h->path, &m, &has_record, &value, &len) == 0 && S_ISREG(m.mode)) {
        fs_handle_chunk_release(fs, h);
        free(h->data);
        h->data = NULL;
        h->len = h->cap = 0;
        h->meta = m;
        h->meta_pending = 0;
        h->read_ts = client_txn_start_ts(txn);
        h->chunked = (m.flags & FS_META_CHUNKED) != 0;
        if (h->chunked) {
            h->chunk_id = m.chunk_id;
            h->len = h->floor = h->base_len = m.size;
            h->snap = txn; /* the view of the chunks */
            txn = NULL;
        } else {
            h->data = value;
            h->len = h->cap = len;
            value = NULL;
        }
    }
    free(value);
    txn_drop(&txn);
}

void fs_handle_free(struct fs *fs, struct fs_handle *h)
{
    if (!h)
        return;
    if (h->listed) {
        pthread_mutex_lock(&fs->handles_lock);
        if (h->prev)
            h->prev->next = h->next;
        else
            fs->handles = h->next;
        if (h->next)
            h->next->prev = h->prev;
        pthread_mutex_unlock(&fs->handles_lock);
    }
    txn_drop(&h->txn);
    fs_handle_chunk_release(fs, h);
    pthread_mutex_destroy(&h->lock);
    free(h->data);
    free(h);
}

void fs_handles_settle(struct fs *fs, const uint8_t *key, size_t key_len)
{
    pthread_mutex_lock(&fs->handles_lock);
    for (struct fs_handle *h = fs->handles; h; h = h->next) {
        if (!same_key(h, key, key_len))
            continue;
        pthread_mutex_lock(&h->lock);
        if (h->created && !h->detached)
            fs_handle_commit(fs, h); /* a failure stays for that file's own close to report */
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_unlock(&fs->handles_lock);
}

int fs_handles_list_created(struct fs *fs, const uint8_t *prefix, size_t plen,
                            int (*fn)(void *arg, const uint8_t *comp, size_t clen,
                                      const struct fs_meta *m),
                            void *arg)
{
    int rc = 0;

    pthread_mutex_lock(&fs->handles_lock);
    for (struct fs_handle *h = fs->handles; h && rc == 0; h = h->next) {
        /* (path changes only under handles_lock, which we hold) */
        if (h->path.snapshot_ts || h->path.key_len <= plen ||
            memcmp(h->path.key, prefix, plen) != 0 ||
            memchr(h->path.key + plen, '/', h->path.key_len - plen))
            continue;
        pthread_mutex_lock(&h->lock);
        if (h->created && !h->detached) {
            struct fs_meta m = h->meta;
            m.size = h->len;
            rc = fn(arg, h->path.key + plen, h->path.key_len - plen, &m);
        }
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_unlock(&fs->handles_lock);
    return rc;
}

int fs_handles_stat(struct fs *fs, const uint8_t *key, size_t key_len, struct fs_meta *m,
                    int *unlinked)
{
    int found = 0;

    *unlinked = 0;
    pthread_mutex_lock(&fs->handles_lock);
    for (struct fs_handle *h = fs->handles; h && !found; h = h->next) {
        if (!same_key(h, key, key_len) || h->path.snapshot_ts)
            continue;
        pthread_mutex_lock(&h->lock);
        if (h->dirty || h->created || h->detached) {
            fs_handle_meta(fs, h); /* (an unlinked read-only file; on failure the defaults) */
            *m = h->meta;
            m->size = h->len;
            *unlinked = h->detached;
            found = 1;
        }
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_unlock(&fs->handles_lock);
    return found;
}

void fs_handles_attr_changed(struct fs *fs, const uint8_t *key, size_t key_len,
                             const struct fs_meta *m)
{
    pthread_mutex_lock(&fs->handles_lock);
    for (struct fs_handle *h = fs->handles; h; h = h->next) {
        if (!same_key(h, key, key_len) || h->path.snapshot_ts)
            continue;
        pthread_mutex_lock(&h->lock);
        h->meta.mode = m->mode;
        h->meta.uid = m->uid;
        h->meta.gid = m->gid;
        h->meta.atime = m->atime;
        h->meta.mtime = m->mtime;
        h->meta.ctime = m->ctime;
        h->meta_pending = 0; /* what a record adds to an inline file's is now known */
        if (!h->read_only && !h->created) {
            /* Our own record change would make the open-time transaction conflict. */
            txn_drop(&h->txn);
            h->blind = 1;
        }
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_unlock(&fs->handles_lock);
}

void fs_handles_unlinked(struct fs *fs, const uint8_t *key, size_t key_len)
{
    pthread_mutex_lock(&fs->handles_lock);
    for (struct fs_handle *h = fs->handles; h; h = h->next) {
        /* (A handle's path changes only under handles_lock: compare before waiting for
         * h->lock, which a commit holds through its round trips.) */
        if (!same_key(h, key, key_len) || h->path.snapshot_ts)
            continue;
        pthread_mutex_lock(&h->lock);
        h->detached = 1;
        h->dirty = 0;
        h->created = 0;
        txn_drop(&h->txn);
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_unlock(&fs->handles_lock);
}

void fs_handles_renamed(struct fs *fs, const struct fs_path *from, const struct fs_path *to,
                        int is_dir)
{
    pthread_mutex_lock(&fs->handles_lock);
    for (struct fs_handle *h = fs->handles; h; h = h->next) {
        size_t fl = from->key_len, rest;
        if (h->path.snapshot_ts || h->path.key_len < fl || memcmp(h->path.key, from->key, fl) != 0)
            continue; /* not below `from`: no need to wait for its lock */
        pthread_mutex_lock(&h->lock);
        fs_handle_meta(fs, h); /* the record of the open's view is at the old key */
        if (!is_dir && h->path.key_len == fl && memcmp(h->path.key, from->key, fl) == 0) {
            memcpy(h->path.key, to->key, to->key_len);
            h->path.key_len = to->key_len;
        } else if (is_dir && h->path.key_len > fl && memcmp(h->path.key, from->key, fl) == 0 &&
                   h->path.key[fl] == '/') {
            rest = h->path.key_len - fl;
            if (to->key_len + rest <= CLIENT_MAX_KEY_BYTES) {
                memmove(h->path.key + to->key_len, h->path.key + fl, rest);
                memcpy(h->path.key, to->key, to->key_len);
                h->path.key_len = to->key_len + rest;
            } else {
                h->detached = 1; /* cannot happen: the rename itself would have failed */
            }
        } else {
            pthread_mutex_unlock(&h->lock);
            continue;
        }
        /* The rename moved what this open file read; its content now belongs at the new key,
         * which the rename's own commit would make the open-time transaction conflict on. */
        if (!h->read_only)
            txn_drop(&h->txn);
        h->blind = 1;
        h->meta.ctime = fs_now();
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_unlock(&fs->handles_lock);
}

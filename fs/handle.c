/* handle.c — per-open-file buffers: value read at open, writes buffered, one commit per flush. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_internal.h"
#include "proto/log.h"

int fs_handle_new(struct fs *fs, const struct fs_path *p, int flags, int created,
                  struct fs_handle **out)
{
    struct fs_handle *h = calloc(1, sizeof *h);
    void *value = NULL;
    size_t len = 0;
    int rc;

    if (!h)
        return -ENOMEM;
    pthread_mutex_init(&h->lock, NULL);
    h->path = *p;
    h->read_only = (flags & O_ACCMODE) == O_RDONLY || p->snapshot_ts || fs->opts.read_only;
    rc = fs_txn_for_read(fs, p, &h->txn);
    if (rc != CLIENT_OK) {
        rc = fs_neg_errno(rc);
        goto fail;
    }
    if ((flags & O_TRUNC) && !h->read_only) {
        /* The new content does not depend on the old: a blind write. */
        h->blind = 1;
        h->dirty = !created;
    } else if (created) {
        h->blind = 1;
    } else {
        rc = client_txn_get(h->txn, p->key, p->key_len, &value, &len);
        if (rc != CLIENT_OK) {
            rc = fs_neg_errno(rc);
            goto fail;
        }
        h->data = value;
        h->len = len;
        h->cap = len;
    }
    if (h->read_only) {
        client_txn_rollback(h->txn);
        client_txn_free(h->txn);
        h->txn = NULL;
    } else {
        pthread_mutex_lock(&fs->handles_lock);
        h->next = fs->handles;
        if (fs->handles)
            fs->handles->prev = h;
        fs->handles = h;
        h->listed = 1;
        pthread_mutex_unlock(&fs->handles_lock);
    }
    *out = h;
    return 0;
fail:
    if (h->txn) {
        client_txn_rollback(h->txn);
        client_txn_free(h->txn);
    }
    pthread_mutex_destroy(&h->lock);
    free(h);
    return rc;
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
    for (int attempt = 0; attempt < FS_CONFLICT_RETRIES; attempt++) {
        if (!h->txn) {
            rc = client_txn_begin(fs->client, &h->txn);
            if (rc != CLIENT_OK) {
                LOG(LOG_WARN, "cannot begin a commit: %s (%s)", client_strerror(rc),
                    client_last_error(fs->client));
                return fs_neg_errno(rc); /* still dirty: a later flush tries again */
            }
        }
        rc = client_txn_put(h->txn, h->path.key, h->path.key_len, h->data ? (void *)h->data : "",
                            h->len);
        if (rc == CLIENT_OK)
            rc = client_txn_commit(h->txn, NULL);
        else
            client_txn_rollback(h->txn);
        client_txn_free(h->txn);
        h->txn = NULL;
        if (rc == CLIENT_OK) {
            h->dirty = 0;
            /* Later writes of this handle build on what it just wrote. */
            h->blind = 1;
            return 0;
        }
        if (rc != CLIENT_ERR_CONFLICT) {
            LOG(LOG_WARN, "commit of %zu bytes failed: %s (%s)", h->len, client_strerror(rc),
                client_last_error(fs->client));
            return fs_neg_errno(rc); /* still dirty: a later flush or the release tries again */
        }
        if (!h->blind) {
            /* Someone committed this file after our open: our content is based
             * on a stale read and can never be written. */
            h->sticky_err = -EAGAIN;
            return h->sticky_err;
        }
        fs_conflict_backoff(attempt);
    }
    return fs_neg_errno(rc);
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
    if (h->txn) {
        client_txn_rollback(h->txn);
        client_txn_free(h->txn);
    }
    pthread_mutex_destroy(&h->lock);
    free(h->data);
    free(h);
}

/* Drops the transaction begun at open: the next commit starts a fresh one. Caller holds h->lock. */
static void handle_forget_txn(struct fs_handle *h)
{
    if (h->txn) {
        client_txn_rollback(h->txn);
        client_txn_free(h->txn);
        h->txn = NULL;
    }
}

void fs_handles_unlinked(struct fs *fs, const uint8_t *key, size_t key_len)
{
    pthread_mutex_lock(&fs->handles_lock);
    for (struct fs_handle *h = fs->handles; h; h = h->next) {
        pthread_mutex_lock(&h->lock);
        if (h->path.key_len == key_len && memcmp(h->path.key, key, key_len) == 0) {
            h->detached = 1;
            h->dirty = 0;
            handle_forget_txn(h);
        }
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
        pthread_mutex_lock(&h->lock);
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
        handle_forget_txn(h);
        h->blind = 1;
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_unlock(&fs->handles_lock);
}

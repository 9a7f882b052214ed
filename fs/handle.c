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

void fs_handle_free(struct fs_handle *h)
{
    if (!h)
        return;
    if (h->txn) {
        client_txn_rollback(h->txn);
        client_txn_free(h->txn);
    }
    pthread_mutex_destroy(&h->lock);
    free(h->data);
    free(h);
}

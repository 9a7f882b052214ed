/* commit_group.c — closes of new files committed together: one transaction for every close
 * waiting at the time (fs_internal.h, fs_commit_group). */
#include <stdlib.h>
#include <string.h>

#include "fs/fs_internal.h"

/* One close waiting in fs->commit_queue; lives on its caller's stack. */
struct fs_commit_wait {
    struct fs_handle *h; /* borrowed: its owner holds h->lock and waits here */
    struct fs_meta m;    /* the record to write */
    int done;            /* the outcome is in rc; guarded by fs->commit_lock */
    int rc;              /* CLIENT_* or FS_COMMIT_ALONE */
    client_ts commit_ts;
    pthread_cond_t cond; /* signalled when done, or when it heads the queue with no leader */
    struct fs_commit_wait *next;
};

int fs_commit_group_eligible(const struct fs_handle *h)
{
    /* A create's first commit writes without reading (no record to keep, no O_EXCL check,
     * no transaction begun at open): it can share a transaction with any other such close. */
    return h->created && !h->excl && !h->chunked && !h->txn && !h->detached &&
           h->len <= FS_COMMIT_GROUP_MAX_BYTES;
}

/* Commits the batch `first`..(n entries) in one transaction; CLIENT_* or FS_COMMIT_ALONE. */
static int commit_batch(struct fs *fs, struct fs_commit_wait *first, size_t n, client_ts *commit_ts)
{
    struct client_txn *txn = NULL;
    struct fs_commit_wait *w = first;
    int rc;

    rc = client_txn_begin(fs->client, &txn);
    if (rc != CLIENT_OK)
        return rc;
    for (size_t i = 0; i < n && rc == CLIENT_OK; i++, w = w->next) {
        struct fs_handle *h = w->h;
        rc = client_txn_put(txn, h->path.key, h->path.key_len, h->data ? (void *)h->data : "",
                            h->len);
        if (rc == CLIENT_OK)
            rc = fs_meta_put(txn, h->path.key, h->path.key_len, &w->m);
    }
    if (rc == CLIENT_OK)
        rc = client_txn_commit(txn, commit_ts);
    else
        client_txn_rollback(txn);
    client_txn_free(txn);
    /* One close's conflict (another mount wrote its name) must not fail the others': each
     * then commits alone, with its own retries. A batch of one already was alone. */
    if (n > 1 && rc != CLIENT_OK && rc != CLIENT_ERR_UNDETERMINED && rc != CLIENT_ERR_TIMEOUT &&
        rc != CLIENT_ERR_UNAVAILABLE && rc != CLIENT_ERR_NO_SPACE)
        rc = FS_COMMIT_ALONE;
    return rc;
}

int fs_commit_group(struct fs *fs, struct fs_handle *h, const struct fs_meta *m,
                    client_ts *commit_ts)
{
    struct fs_commit_wait self;

    memset(&self, 0, sizeof self);
    self.h = h;
    self.m = *m;
    pthread_cond_init(&self.cond, NULL);
    pthread_mutex_lock(&fs->commit_lock);
    *fs->commit_tail = &self;
    fs->commit_tail = &self.next;
    while (!self.done) {
        struct fs_commit_wait *first, *last;
        size_t n = 0, bytes = 0;
        client_ts ts = 0;
        int rc;

        /* An empty queue: this close is in a batch another leader took. */
        if (fs->committing >= FS_COMMIT_GROUP_INFLIGHT || !fs->commit_queue) {
            pthread_cond_wait(&self.cond, &fs->commit_lock);
            continue;
        }
        /* Lead: take what waits (this close among it unless the queue is over the caps). */
        fs->committing++;
        first = last = fs->commit_queue;
        for (struct fs_commit_wait *w = first; w && n < FS_COMMIT_GROUP_MAX; w = w->next) {
            if (n > 0 && bytes + w->h->len > FS_COMMIT_GROUP_MAX_BYTES)
                break;
            bytes += w->h->len;
            last = w;
            n++;
        }
        fs->commit_queue = last->next;
        if (!fs->commit_queue)
            fs->commit_tail = &fs->commit_queue;
        pthread_mutex_unlock(&fs->commit_lock);

        rc = commit_batch(fs, first, n, &ts);

        pthread_mutex_lock(&fs->commit_lock);
        for (size_t i = 0; i < n; i++) {
            struct fs_commit_wait *w = first, *next = first->next;
            w->rc = rc;
            w->commit_ts = ts;
            w->done = 1;
            if (w != &self)
                pthread_cond_signal(&w->cond);
            first = next;
        }
        fs->committing--;
        if (fs->commit_queue)
            pthread_cond_signal(&fs->commit_queue->cond); /* the next leader */
    }
    pthread_mutex_unlock(&fs->commit_lock);
    pthread_cond_destroy(&self.cond);
    *commit_ts = self.commit_ts;
    return self.rc;
}

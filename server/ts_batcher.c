/* ts_batcher.c — one thread asking the TSO for all the timestamps queued since its last trip. */
#include "server/ts_batcher.h"

#include <pthread.h>
#include <stdlib.h>

struct ts_request {
    mvcc_ts_cb cb;
    void *arg;
};

struct ts_batcher {
    struct client *client;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* a request was queued, or stop */
    struct ts_request *queue; /* guarded by mu */
    size_t n, cap;            /* guarded by mu */
    int stop;                 /* guarded by mu */
};

/* Most timestamps one round trip asks for (the client's default tso_max_batch). */
#define TS_BATCH_MAX 4096

static void answer_all(struct ts_request *reqs, size_t n, int rc, client_ts first)
{
    for (size_t i = 0; i < n; i++)
        reqs[i].cb(reqs[i].arg, rc, rc ? 0 : first + i);
}

static void *batcher_thread(void *arg)
{
    pthread_setname_np(pthread_self(), "ts-batcher");
    struct ts_batcher *b = arg;
    struct ts_request *mine = NULL;
    size_t mine_cap = 0;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (b->n == 0 && !b->stop)
            pthread_cond_wait(&b->cv, &b->mu);
        if (b->n == 0)
            break; /* stopping with nothing queued */
        /* Swap the queue for our own (empty) array: callers go on queueing meanwhile. */
        size_t n = b->n, reqs_cap = b->cap;
        struct ts_request *reqs = b->queue;
        b->queue = mine;
        b->cap = mine_cap;
        b->n = 0;
        int stopping = b->stop;
        pthread_mutex_unlock(&b->mu);

        for (size_t done = 0; done < n;) {
            size_t k = n - done < TS_BATCH_MAX ? n - done : TS_BATCH_MAX;
            client_ts first = 0;
            int rc = stopping ? 1 : client_tso_batch(b->client, (uint32_t)k, &first);
            answer_all(reqs + done, k, rc, first);
            done += k;
        }
        mine = reqs;
        mine_cap = reqs_cap;
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    free(mine);
    return NULL;
}

struct ts_batcher *ts_batcher_new(struct client *c)
{
    struct ts_batcher *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->client = c;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    if (pthread_create(&b->thread, NULL, batcher_thread, b) != 0) {
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        free(b);
        return NULL;
    }
    return b;
}

void ts_batcher_free(struct ts_batcher *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    free(b->queue);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

void ts_batcher_get(void *batcher, mvcc_ts_cb cb, void *arg)
{
    struct ts_batcher *b = batcher;
    pthread_mutex_lock(&b->mu);
    if (b->stop) {
        pthread_mutex_unlock(&b->mu);
        cb(arg, 1, 0);
        return;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct ts_request *q = realloc(b->queue, cap * sizeof *q);
        if (!q) {
            pthread_mutex_unlock(&b->mu);
            cb(arg, 1, 0); /* no timestamp: the prewrite locks its keys instead */
            return;
        }
        b->queue = q;
        b->cap = cap;
    }
    b->queue[b->n++] = (struct ts_request){cb, arg};
    if (b->n == 1)
        pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

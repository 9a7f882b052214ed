/* raft_kv.c — Storage over the raftstore: block a request thread until Raft answers or a deadline
 * passes. */
#include "store/raft_kv.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct raft_kv {
    struct storage base;
    struct raftstore *rs;
    int timeout_ms;
};

/* Shared by the waiting thread and the store loop's callback; the last one out frees it. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int refs;
    int done;
    struct raftstore_result res;
};

static void waiter_unref(struct waiter *w)
{
    int last = --w->refs == 0;
    pthread_mutex_unlock(&w->mu);
    if (!last)
        return;
    storage_reader_free(w->res.reader);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
    free(w);
}

static void on_result(void *arg, struct raftstore_result *res)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->res = *res;
    w->done = 1;
    pthread_cond_signal(&w->cond);
    waiter_unref(w);
}

static struct waiter *waiter_new(void)
{
    struct waiter *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->refs = 2;
    return w;
}

/* Waits for the answer; on success moves the result to *out (reader included). */
static int wait_result(struct waiter *w, int timeout_ms, struct raftstore_result *out)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    while (!w->done && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w->cond, &w->mu, &until);
    int done = w->done;
    if (done) {
        *out = w->res;
        w->res.reader = NULL; /* handed to the caller */
    }
    waiter_unref(w);
    return done ? 0 : -1;
}

/* A read that timed out had no effect: retryable. A write that timed out was
 * proposed and may still commit, so its answer is undetermined, never "not done". */
static int finish(const struct raftstore_result *res, int timed_out, int is_write,
                  struct storage_error *err)
{
    if (timed_out) {
        if (err) {
            memset(err, 0, sizeof *err);
            err->code = STORAGE_ERR_REGION;
            err->region_kind =
                is_write ? STORAGE_REGION_ERR_UNDETERMINED : STORAGE_REGION_ERR_STALE_COMMAND;
            snprintf(err->msg, sizeof err->msg, "%s",
                     is_write ? "timed out waiting for Raft; the write may still apply"
                              : "timed out waiting for Raft; retry");
        }
        return STORAGE_ERR_REGION;
    }
    if (res->code && err)
        *err = res->err;
    return res->code;
}

static int kv_write(struct storage *base, const struct storage_ctx *ctx,
                    const struct storage_modify *mods, size_t n, struct storage_error *err)
{
    struct raft_kv *kv = (struct raft_kv *)base;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned)mods[i].cf >= STORAGE_CF_COUNT || mods[i].key_len == 0) {
            if (err) {
                memset(err, 0, sizeof *err);
                err->code = STORAGE_ERR_INVALID;
                snprintf(err->msg, sizeof err->msg, "modification %zu: %s", i,
                         mods[i].key_len == 0 ? "empty key" : "unknown column family");
            }
            return STORAGE_ERR_INVALID;
        }
    }
    struct waiter *w = waiter_new();
    if (!w)
        return STORAGE_ERR_NOMEM;
    raftstore_write(kv->rs, ctx, mods, n, on_result, w);
    struct raftstore_result res;
    memset(&res, 0, sizeof res);
    int timed_out = wait_result(w, kv->timeout_ms, &res) != 0;
    return finish(&res, timed_out, 1, err);
}

static int kv_reader(struct storage *base, const struct storage_ctx *ctx,
                     struct storage_reader **out, struct storage_error *err)
{
    struct raft_kv *kv = (struct raft_kv *)base;
    struct waiter *w = waiter_new();
    if (!w)
        return STORAGE_ERR_NOMEM;
    raftstore_read(kv->rs, ctx, on_result, w);
    struct raftstore_result res;
    memset(&res, 0, sizeof res);
    int timed_out = wait_result(w, kv->timeout_ms, &res) != 0;
    int rc = finish(&res, timed_out, 0, err);
    if (rc == 0)
        *out = res.reader;
    else
        storage_reader_free(res.reader);
    return rc;
}

static void kv_free(struct storage *base)
{
    free(base);
}

static const struct storage_ops raft_kv_ops = {
    .write = kv_write,
    .reader = kv_reader,
    .free = kv_free,
};

struct storage *raft_kv_new(struct raftstore *rs, int timeout_ms)
{
    struct raft_kv *kv = calloc(1, sizeof *kv);
    if (!kv)
        return NULL;
    kv->base.ops = &raft_kv_ops;
    kv->rs = rs;
    kv->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    return &kv->base;
}

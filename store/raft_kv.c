/* raft_kv.c — Storage over the raftstore: requests answered by Raft's callbacks, or by a timer
 * when their deadline passes first. */
#include "store/raft_kv.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/log.h"
#include "proto/rpc.h"

/*
 * One request in flight. It sits in kv's pending list, ordered by deadline (most requests share
 * one timeout, so a new one almost always goes at the tail), until it is answered: by the
 * raftstore's callback or by the timer, whichever comes first, under kv->mu. The raftstore calls
 * back exactly once, even after the timer answered, and that call frees it.
 */
struct op {
    struct raft_kv *kv;
    struct op *prev, *next;
    uint64_t deadline_ms;
    int is_write;
    int answered;
    storage_write_cb write_cb;
    storage_reader_cb reader_cb;
    void *arg;
};

struct raft_kv {
    struct storage base;
    struct raftstore *rs;
    int timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* wakes the timer: a deadline before its wake-up, or stop */
    uint64_t wake_ms;    /* when the waiting timer wakes on its own (0: it is not waiting) */
    struct op *head, *tail;
    int stop;
    pthread_t timer;
};

/* Caller holds kv->mu. */
static void unlink_op(struct raft_kv *kv, struct op *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        kv->head = op->next;
    if (op->next)
        op->next->prev = op->prev;
    else
        kv->tail = op->prev;
    op->prev = op->next = NULL;
}

static void deliver(const struct op *op, int code, const struct storage_error *err,
                    struct storage_reader *reader)
{
    if (op->is_write)
        op->write_cb(op->arg, code, code ? err : NULL);
    else
        op->reader_cb(op->arg, code, code ? NULL : reader, code ? err : NULL);
}

/* A read that timed out had no effect: retryable. A write that timed out was proposed and may
 * still commit, so its answer is undetermined, never "not done". */
static void deliver_timeout(const struct op *op)
{
    struct storage_error err = {0};
    err.code = STORAGE_ERR_REGION;
    err.region_kind =
        op->is_write ? STORAGE_REGION_ERR_UNDETERMINED : STORAGE_REGION_ERR_STALE_COMMAND;
    snprintf(err.msg, sizeof err.msg, "%s",
             op->is_write ? "timed out waiting for Raft; the write may still apply"
                          : "timed out waiting for Raft; retry");
    deliver(op, STORAGE_ERR_REGION, &err, NULL);
}

static void deliver_result(const struct op *op, struct raftstore_result *res)
{
    int code = res->code;
    if (code == 0 && !op->is_write && !res->reader)
        code = STORAGE_ERR_NOMEM;
    deliver(op, code, &res->err, res->reader);
}

/* The raftstore's callback (store loop thread, or the caller's on an immediate failure). */
static void on_result(void *arg, struct raftstore_result *res)
{
    struct op *op = arg;
    struct raft_kv *kv = op->kv;
    pthread_mutex_lock(&kv->mu);
    int late = op->answered;
    if (!late) {
        op->answered = 1;
        unlink_op(kv, op);
    }
    pthread_mutex_unlock(&kv->mu);
    if (late)
        storage_reader_free(res->reader);
    else
        deliver_result(op, res);
    free(op);
}

/* A read the leader lease answered at once (on this thread): it never was in the list. */
static void on_local_result(void *arg, struct raftstore_result *res)
{
    deliver_result(arg, res);
}

static void *timer_thread(void *arg)
{
    pthread_setname_np(pthread_self(), "kv-timer");
    struct raft_kv *kv = arg;
    pthread_mutex_lock(&kv->mu);
    while (!kv->stop) {
        uint64_t now = rpc_now_ms();
        struct op *op = kv->head;
        if (op && op->deadline_ms <= now) {
            op->answered = 1;
            unlink_op(kv, op);
            struct op copy = *op; /* the raftstore's callback frees op, maybe right now */
            pthread_mutex_unlock(&kv->mu);
            deliver_timeout(&copy);
            pthread_mutex_lock(&kv->mu);
            continue;
        }
        uint64_t wait_ms = op ? op->deadline_ms - now : 1000;
        kv->wake_ms = now + wait_ms;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(wait_ms / 1000);
        until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&kv->cond, &kv->mu, &until);
        kv->wake_ms = 0;
    }
    pthread_mutex_unlock(&kv->mu);
    return NULL;
}

/* A new pending request, in the list by deadline (timeout_ms 0: kv's own); NULL on OOM. */
static struct op *op_new(struct raft_kv *kv, int is_write, int timeout_ms)
{
    struct op *op = calloc(1, sizeof *op);
    if (!op)
        return NULL;
    op->kv = kv;
    op->is_write = is_write;
    pthread_mutex_lock(&kv->mu);
    op->deadline_ms = rpc_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : kv->timeout_ms);
    struct op *after = kv->tail;
    while (after && after->deadline_ms > op->deadline_ms)
        after = after->prev;
    op->prev = after;
    op->next = after ? after->next : kv->head;
    if (op->next)
        op->next->prev = op;
    else
        kv->tail = op;
    if (after)
        after->next = op;
    else
        kv->head = op;
    /* The timer looks at the head whenever it wakes: it needs waking only for a deadline before
     * the time it wakes anyway (rare: most requests share one timeout, and an idle timer wakes
     * every second), not once per request. */
    if (kv->head == op && kv->wake_ms && op->deadline_ms < kv->wake_ms)
        pthread_cond_signal(&kv->cond);
    pthread_mutex_unlock(&kv->mu);
    return op;
}

static int check_mods(const struct storage_modify *mods, size_t n, struct storage_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned)mods[i].cf >= STORAGE_CF_COUNT || mods[i].key_len == 0) {
            memset(err, 0, sizeof *err);
            err->code = STORAGE_ERR_INVALID;
            snprintf(err->msg, sizeof err->msg, "modification %zu: %s", i,
                     mods[i].key_len == 0 ? "empty key" : "unknown column family");
            return STORAGE_ERR_INVALID;
        }
    }
    return 0;
}

static void kv_write_async(struct storage *base, const struct storage_ctx *ctx,
                           const struct storage_modify *mods, size_t n, storage_write_cb cb,
                           void *arg)
{
    struct raft_kv *kv = (struct raft_kv *)base;
    struct storage_error err;
    if (check_mods(mods, n, &err) != 0) {
        cb(arg, STORAGE_ERR_INVALID, &err);
        return;
    }
    struct op *op = op_new(kv, 1, ctx ? ctx->timeout_ms : 0);
    if (!op) {
        memset(&err, 0, sizeof err);
        cb(arg, STORAGE_ERR_NOMEM, &err);
        return;
    }
    op->write_cb = cb;
    op->arg = arg;
    raftstore_write(kv->rs, ctx, mods, n, on_result, op);
}

static void kv_reader_async(struct storage *base, const struct storage_ctx *ctx,
                            storage_reader_cb cb, void *arg)
{
    struct raft_kv *kv = (struct raft_kv *)base;
    struct op local = {.kv = kv, .reader_cb = cb, .arg = arg};
    if (ctx && raftstore_read_local(kv->rs, ctx, on_local_result, &local))
        return;
    struct op *op = op_new(kv, 0, ctx ? ctx->timeout_ms : 0);
    if (!op) {
        struct storage_error err = {0};
        cb(arg, STORAGE_ERR_NOMEM, NULL, &err);
        return;
    }
    op->reader_cb = cb;
    op->arg = arg;
    raftstore_read(kv->rs, ctx, on_result, op);
}

/* The blocking forms wait on the caller's stack for the async answer, which always comes (by
 * the deadline at the latest). */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done;
    int rc;
    struct storage_error err;
    struct storage_reader *reader;
};

static void waiter_init(struct waiter *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
}

static void waiter_done(struct waiter *w, int rc, struct storage_reader *reader,
                        const struct storage_error *err)
{
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->reader = reader;
    if (err)
        w->err = *err;
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static void on_write_done(void *arg, int rc, const struct storage_error *err)
{
    waiter_done(arg, rc, NULL, err);
}

static void on_reader_done(void *arg, int rc, struct storage_reader *reader,
                           const struct storage_error *err)
{
    waiter_done(arg, rc, reader, err);
}

/* Waits for the answer; returns its code with *err filled (err may be NULL). */
static int waiter_wait(struct waiter *w, struct storage_error *err)
{
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cond, &w->mu);
    pthread_mutex_unlock(&w->mu);
    if (w->rc && err)
        *err = w->err;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
    return w->rc;
}

static int kv_write(struct storage *base, const struct storage_ctx *ctx,
                    const struct storage_modify *mods, size_t n, struct storage_error *err)
{
    struct waiter w;
    waiter_init(&w);
    kv_write_async(base, ctx, mods, n, on_write_done, &w);
    return waiter_wait(&w, err);
}

static int kv_reader(struct storage *base, const struct storage_ctx *ctx,
                     struct storage_reader **out, struct storage_error *err)
{
    struct waiter w;
    waiter_init(&w);
    kv_reader_async(base, ctx, on_reader_done, &w);
    int rc = waiter_wait(&w, err);
    if (rc == 0)
        *out = w.reader;
    return rc;
}

static void kv_free(struct storage *base)
{
    struct raft_kv *kv = (struct raft_kv *)base;
    pthread_mutex_lock(&kv->mu);
    kv->stop = 1;
    pthread_cond_signal(&kv->cond);
    int pending = kv->head != NULL;
    pthread_mutex_unlock(&kv->mu);
    pthread_join(kv->timer, NULL);
    if (pending) /* the raftstore was not freed first: its callbacks would find kv gone */
        LOG(LOG_ERROR, "raft_kv freed with requests still pending in the raftstore");
    pthread_mutex_destroy(&kv->mu);
    pthread_cond_destroy(&kv->cond);
    free(kv);
}

static const struct storage_ops raft_kv_ops = {
    .write = kv_write,
    .reader = kv_reader,
    .free = kv_free,
    .write_async = kv_write_async,
    .reader_async = kv_reader_async,
};

struct storage *raft_kv_new(struct raftstore *rs, int timeout_ms)
{
    struct raft_kv *kv = calloc(1, sizeof *kv);
    if (!kv)
        return NULL;
    kv->base.ops = &raft_kv_ops;
    kv->rs = rs;
    kv->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    pthread_mutex_init(&kv->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&kv->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&kv->timer, NULL, timer_thread, kv) != 0) {
        pthread_mutex_destroy(&kv->mu);
        pthread_cond_destroy(&kv->cond);
        free(kv);
        return NULL;
    }
    return &kv->base;
}

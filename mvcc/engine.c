/* engine.c — the MVCC engine, error texts, key errors, result release, shared helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mvcc/mvcc_internal.h"

#define DEFAULT_LATCH_SLOTS 2048

int mvcc_engine_new(struct storage *storage, size_t latch_slots, struct mvcc_engine **out)
{
    struct mvcc_engine *e;
    int rc;

    if (!storage || !out)
        return MVCC_ERR_ARG;
    *out = NULL;
    e = calloc(1, sizeof(*e));
    if (!e)
        return MVCC_ERR_NOMEM;
    e->storage = storage;
    e->mem_lock_wait_ms = MVCC_MEM_LOCK_WAIT_MS;
    rc = mvcc_latches_init(&e->latches, latch_slots ? latch_slots : DEFAULT_LATCH_SLOTS);
    if (rc != MVCC_OK) {
        free(e);
        return rc;
    }
    rc = mvcc_mem_locks_init(&e->mem_locks);
    if (rc != MVCC_OK) {
        mvcc_latches_close(&e->latches);
        free(e);
        return rc;
    }
    *out = e;
    return MVCC_OK;
}

void mvcc_engine_free(struct mvcc_engine *e)
{
    if (!e)
        return;
    mvcc_mem_locks_close(&e->mem_locks);
    mvcc_latches_close(&e->latches);
    free(e);
}

void mvcc_engine_set_ts_source(struct mvcc_engine *e, mvcc_ts_fn fn, void *arg)
{
    e->ts_source = fn;
    e->ts_source_arg = arg;
}

void mvcc_engine_set_ts_source_async(struct mvcc_engine *e, mvcc_ts_async_fn fn, void *arg)
{
    e->ts_source_async = fn;
    e->ts_source_async_arg = arg;
}

void mvcc_sync_init(struct mvcc_sync *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

void mvcc_sync_done(void *arg, int rc)
{
    struct mvcc_sync *w = arg;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int mvcc_sync_wait(struct mvcc_sync *w)
{
    /* No deadline of its own: every step of the command is answered within the storage's, the
     * ts source's or a latch holder's. */
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    return w->rc;
}

int mvcc_wait_mem_locks(struct mvcc_engine *e, const void *start, size_t start_len, const void *end,
                        size_t end_len, uint64_t read_ts, struct storage_error *serr)
{
    int w = mvcc_mem_locks_wait(&e->mem_locks, start, start_len, end, end_len, read_ts,
                                e->mem_lock_wait_ms);
    if (w == 0)
        return MVCC_OK;
    if (w == 2)
        return MVCC_ERR_TS_AHEAD;
    memset(serr, 0, sizeof(*serr));
    serr->code = STORAGE_ERR_REGION;
    serr->region_kind = STORAGE_REGION_ERR_SERVER_IS_BUSY;
    snprintf(serr->msg, sizeof serr->msg,
             "a one-phase commit on a key read at %llu has been in flight for %d ms",
             (unsigned long long)read_ts, e->mem_lock_wait_ms);
    return MVCC_ERR_REGION;
}

const char *mvcc_strerror(int code)
{
    switch (code) {
    case MVCC_OK:
        return "ok";
    case MVCC_ERR_NOMEM:
        return "out of memory";
    case MVCC_ERR_STORAGE:
        return "storage failure";
    case MVCC_ERR_REGION:
        return "region error";
    case MVCC_ERR_CORRUPT:
        return "corrupt MVCC record";
    case MVCC_ERR_ARG:
        return "invalid argument";
    case MVCC_ERR_TS_AHEAD:
        return "read timestamp lies more than 10 minutes past this store's clock and the newest "
               "timestamp it has seen the TSO issue";
    default:
        return "unknown mvcc error";
    }
}

int mvcc_from_storage(int storage_code)
{
    switch (storage_code) {
    case STORAGE_OK:
        return MVCC_OK;
    case STORAGE_ERR_NOMEM:
        return MVCC_ERR_NOMEM;
    case STORAGE_ERR_REGION:
        return MVCC_ERR_REGION;
    default:
        return MVCC_ERR_STORAGE;
    }
}

void *mvcc_memdup(const void *p, size_t len)
{
    void *q = malloc(len ? len : 1);
    if (q && len)
        memcpy(q, p, len);
    return q;
}

void mvcc_errmsg_default(char *errmsg, int code, const struct storage_error *serr)
{
    if (code == MVCC_OK || errmsg[0])
        return;
    if ((code == MVCC_ERR_STORAGE || code == MVCC_ERR_REGION) && serr && serr->msg[0])
        snprintf(errmsg, 256, "%s: %.200s", mvcc_strerror(code), serr->msg);
    else
        snprintf(errmsg, 256, "%s", mvcc_strerror(code));
}

void mvcc_key_error_clear(struct mvcc_key_error *e)
{
    if (!e)
        return;
    free(e->locked.primary);
    free(e->locked.key);
    free(e->conflict.key);
    free(e->conflict.primary);
    memset(e, 0, sizeof(*e));
}

void mvcc_key_error_set(struct mvcc_key_error *e, enum mvcc_key_error_kind kind, const char *fmt,
                        ...)
{
    va_list ap;
    e->kind = kind;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
}

int mvcc_key_error_locked(struct mvcc_key_error *e, const void *key, size_t key_len,
                          const struct mvcc_lock *lock)
{
    e->locked.key = mvcc_memdup(key, key_len);
    e->locked.primary = mvcc_memdup(lock->primary, lock->primary_len);
    if (!e->locked.key || !e->locked.primary) {
        mvcc_key_error_clear(e);
        return MVCC_ERR_NOMEM;
    }
    e->locked.key_len = key_len;
    e->locked.primary_len = lock->primary_len;
    e->locked.lock_version = lock->start_ts;
    e->locked.lock_ttl = lock->ttl_ms;
    mvcc_key_error_set(e, MVCC_KEY_ERR_LOCKED, "key is locked by transaction %llu (ttl %llu ms)",
                       (unsigned long long)lock->start_ts, (unsigned long long)lock->ttl_ms);
    return MVCC_OK;
}

int mvcc_check_key(struct mvcc_key_error *e, const char *what, const void *key, size_t key_len)
{
    if (key_len == 0 || !key) {
        mvcc_key_error_set(e, MVCC_KEY_ERR_INVALID, "%s is empty", what);
        return 1;
    }
    if (key_len > MVCC_MAX_KEY_BYTES) {
        mvcc_key_error_set(e, MVCC_KEY_ERR_INVALID, "%s is %zu bytes, more than the %d allowed",
                           what, key_len, MVCC_MAX_KEY_BYTES);
        return 1;
    }
    return 0;
}

int mvcc_open_reader(struct mvcc_engine *e, const struct storage_ctx *ctx,
                     struct storage_reader **out, struct storage_error *serr, char *errmsg)
{
    int rc;

    memset(serr, 0, sizeof(*serr));
    rc = storage_reader(e->storage, ctx, out, serr);
    if (rc == STORAGE_OK)
        return MVCC_OK;
    *out = NULL;
    if (serr->code == 0)
        serr->code = rc;
    rc = mvcc_from_storage(rc);
    mvcc_errmsg_default(errmsg, rc, serr);
    return rc;
}

int mvcc_reader_outcome(int rc, const struct storage_error *err, struct storage_error *serr,
                        char *errmsg)
{
    memset(serr, 0, sizeof(*serr));
    if (rc == STORAGE_OK)
        return MVCC_OK;
    if (err)
        *serr = *err;
    if (serr->code == 0)
        serr->code = rc;
    rc = mvcc_from_storage(rc);
    mvcc_errmsg_default(errmsg, rc, serr);
    return rc;
}

int mvcc_write_outcome(int rc, const struct storage_error *err, struct storage_error *serr)
{
    if (rc == STORAGE_OK)
        return MVCC_OK;
    if (err)
        *serr = *err;
    if (serr->code == 0)
        serr->code = rc;
    return mvcc_from_storage(rc);
}

void mvcc_get_result_free(struct mvcc_get_result *r)
{
    if (!r)
        return;
    mvcc_key_error_clear(&r->error);
    free(r->value);
    memset(r, 0, sizeof(*r));
}

void mvcc_scan_result_free(struct mvcc_scan_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_pairs; i++) {
        free(r->pairs[i].key);
        free(r->pairs[i].value);
        mvcc_key_error_clear(&r->pairs[i].error);
    }
    free(r->pairs);
    mvcc_key_error_clear(&r->error);
    memset(r, 0, sizeof(*r));
}

void mvcc_prewrite_result_free(struct mvcc_prewrite_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_errors; i++)
        mvcc_key_error_clear(&r->errors[i]);
    free(r->errors);
    memset(r, 0, sizeof(*r));
}

void mvcc_write_result_free(struct mvcc_write_result *r)
{
    if (!r)
        return;
    mvcc_key_error_clear(&r->error);
    memset(r, 0, sizeof(*r));
}

void mvcc_check_txn_status_result_free(struct mvcc_check_txn_status_result *r)
{
    if (!r)
        return;
    mvcc_key_error_clear(&r->error);
    memset(r, 0, sizeof(*r));
}

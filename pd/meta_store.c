/* meta_store.c — RocksDB persistence (a no-op store when there is no directory). */
#include "pd/pd_internal.h"

#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pd_meta_store {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_writeoptions_t *wsync;
    rocksdb_writeoptions_t *wnosync;
    rocksdb_readoptions_t *ropts;
};

struct pd_meta_batch {
    rocksdb_writebatch_t *wb;
};

static int io_err(char *rerr, const char *what, char *errmsg, size_t errmsg_len)
{
    if (errmsg && errmsg_len)
        snprintf(errmsg, errmsg_len, "%s: %s", what, rerr ? rerr : "unknown error");
    rocksdb_free(rerr);
    return PD_ERR_IO;
}

int pd_meta_store_open(const char *dir, struct pd_meta_store **out, char *errmsg, size_t errmsg_len)
{
    *out = NULL;
    if (dir == NULL)
        return PD_OK; /* in-memory cluster: every write succeeds and nothing is read back */
    struct pd_meta_store *m = calloc(1, sizeof *m);
    if (m == NULL)
        return PD_ERR_NOMEM;
    char *rerr = NULL;
    m->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(m->opts, 1);
    m->db = rocksdb_open(m->opts, dir, &rerr);
    if (rerr != NULL) {
        int err = io_err(rerr, "open meta store", errmsg, errmsg_len);
        rocksdb_options_destroy(m->opts);
        free(m);
        return err;
    }
    m->wsync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(m->wsync, 1);
    m->wnosync = rocksdb_writeoptions_create();
    m->ropts = rocksdb_readoptions_create();
    *out = m;
    return PD_OK;
}

void pd_meta_store_close(struct pd_meta_store *m)
{
    if (m == NULL)
        return;
    rocksdb_close(m->db);
    rocksdb_writeoptions_destroy(m->wsync);
    rocksdb_writeoptions_destroy(m->wnosync);
    rocksdb_readoptions_destroy(m->ropts);
    rocksdb_options_destroy(m->opts);
    free(m);
}

int pd_meta_store_get(struct pd_meta_store *m, const char *key, char **val, size_t *len,
                      char *errmsg, size_t errmsg_len)
{
    *val = NULL;
    *len = 0;
    if (m == NULL)
        return PD_ERR_NOT_FOUND;
    char *rerr = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get(m->db, m->ropts, key, strlen(key), &vlen, &rerr);
    if (rerr != NULL)
        return io_err(rerr, "meta get", errmsg, errmsg_len);
    if (v == NULL)
        return PD_ERR_NOT_FOUND;
    /* Hand back a malloc'ed copy so callers free with free(). */
    char *copy = malloc(vlen ? vlen : 1);
    if (copy == NULL) {
        rocksdb_free(v);
        return PD_ERR_NOMEM;
    }
    memcpy(copy, v, vlen);
    rocksdb_free(v);
    *val = copy;
    *len = vlen;
    return PD_OK;
}

int pd_meta_store_put(struct pd_meta_store *m, const char *key, const void *val, size_t len,
                      bool sync, char *errmsg, size_t errmsg_len)
{
    if (m == NULL)
        return PD_OK;
    char *rerr = NULL;
    rocksdb_put(m->db, sync ? m->wsync : m->wnosync, key, strlen(key), val, len, &rerr);
    if (rerr != NULL)
        return io_err(rerr, "meta put", errmsg, errmsg_len);
    return PD_OK;
}

int pd_meta_store_scan(struct pd_meta_store *m, const char *prefix,
                       int (*fn)(void *ctx, const char *key, size_t klen, const char *val,
                                 size_t vlen),
                       void *ctx, char *errmsg, size_t errmsg_len)
{
    if (m == NULL)
        return PD_OK;
    size_t plen = strlen(prefix);
    int rc = PD_OK;
    rocksdb_iterator_t *it = rocksdb_create_iterator(m->db, m->ropts);
    for (rocksdb_iter_seek(it, prefix, plen); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < plen || memcmp(k, prefix, plen) != 0)
            break;
        const char *v = rocksdb_iter_value(it, &vlen);
        rc = fn(ctx, k, klen, v, vlen);
        if (rc != 0)
            goto cleanup;
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    if (rerr != NULL)
        rc = io_err(rerr, "meta scan", errmsg, errmsg_len);
cleanup:
    rocksdb_iter_destroy(it);
    return rc;
}

struct pd_meta_batch *pd_meta_batch_new(struct pd_meta_store *m)
{
    struct pd_meta_batch *b = malloc(sizeof *b);
    if (b == NULL)
        return NULL;
    /* Without a store the batch stays empty: no RocksDB object (whose allocations would throw
     * instead of failing cleanly) is made at all. */
    b->wb = m ? rocksdb_writebatch_create() : NULL;
    return b;
}

void pd_meta_batch_free(struct pd_meta_batch *b)
{
    if (b == NULL)
        return;
    if (b->wb)
        rocksdb_writebatch_destroy(b->wb);
    free(b);
}

void pd_meta_batch_put(struct pd_meta_batch *b, const char *key, const void *val, size_t len)
{
    if (b->wb)
        rocksdb_writebatch_put(b->wb, key, strlen(key), val, len);
}

void pd_meta_batch_delete(struct pd_meta_batch *b, const char *key)
{
    if (b->wb)
        rocksdb_writebatch_delete(b->wb, key, strlen(key));
}

int pd_meta_batch_write(struct pd_meta_store *m, struct pd_meta_batch *b, bool sync, char *errmsg,
                        size_t errmsg_len)
{
    if (m == NULL)
        return PD_OK;
    char *rerr = NULL;
    rocksdb_write(m->db, sync ? m->wsync : m->wnosync, b->wb, &rerr);
    if (rerr != NULL)
        return io_err(rerr, "meta write batch", errmsg, errmsg_len);
    return PD_OK;
}

void pd_meta_key_store(char *out, uint64_t id)
{
    snprintf(out, PD_META_KEY_BYTES, PD_META_PREFIX_STORE "%016llx", (unsigned long long)id);
}

void pd_meta_key_region(char *out, uint64_t id)
{
    snprintf(out, PD_META_KEY_BYTES, PD_META_PREFIX_REGION "%016llx", (unsigned long long)id);
}

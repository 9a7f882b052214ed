/* mem_storage.c — copy-on-write sorted arrays per CF behind the Storage interface, for tests. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/mem_storage.h"

/* An immutable key/value pair; refs guarded by the storage mutex. */
struct mem_entry {
    size_t refs;
    size_t key_len;
    size_t value_len;
    unsigned char data[]; /* key, then value */
};

/* An immutable sorted array of entries; refs guarded by the storage mutex. */
struct mem_table {
    size_t refs;
    size_t n;
    size_t cap;
    struct mem_entry **items;
};

struct mem_storage {
    struct storage base;
    pthread_mutex_t mu;
    struct mem_table *cf[STORAGE_CF_COUNT]; /* guarded by mu */
    size_t writes;                          /* guarded by mu */
    int fault_count[2];                     /* guarded by mu */
    int fault_code[2];
    enum storage_region_error_kind fault_region[2];
};

struct mem_reader {
    struct storage_reader base;
    struct mem_storage *s;
    struct mem_table *cf[STORAGE_CF_COUNT]; /* one reference each */
};

struct mem_iter {
    struct storage_iter base;
    const struct mem_table *t; /* borrowed from the reader */
    size_t pos;                /* == t->n when invalid */
};

static const unsigned char *entry_key(const struct mem_entry *e)
{
    return e->data;
}

static int cmp_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* First index whose key is >= key. */
static size_t lower_bound(const struct mem_table *t, const void *key, size_t len)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct mem_entry *e = t->items[mid];
        if (cmp_bytes(entry_key(e), e->key_len, key, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Drops a table reference (mutex held). */
static void table_unref(struct mem_table *t)
{
    if (!t || --t->refs > 0)
        return;
    for (size_t i = 0; i < t->n; i++)
        if (--t->items[i]->refs == 0)
            free(t->items[i]);
    free(t->items);
    free(t);
}

static struct mem_table *table_new(size_t cap)
{
    struct mem_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->cap = cap ? cap : 16;
    t->items = malloc(t->cap * sizeof(*t->items));
    if (!t->items) {
        free(t);
        return NULL;
    }
    t->refs = 1;
    return t;
}

/* A private copy of t sharing its entries (mutex held). */
static struct mem_table *table_copy(const struct mem_table *t, size_t extra)
{
    struct mem_table *c = table_new(t->n + extra);
    if (!c)
        return NULL;
    memcpy(c->items, t->items, t->n * sizeof(*t->items));
    c->n = t->n;
    for (size_t i = 0; i < c->n; i++)
        c->items[i]->refs++;
    return c;
}

static void fill_error(struct storage_error *err, int code,
                       enum storage_region_error_kind region_kind, const char *msg)
{
    if (!err)
        return;
    memset(err, 0, sizeof(*err));
    err->code = code;
    if (code == STORAGE_ERR_REGION) {
        err->region_kind = region_kind;
        err->region_id = 1;
    }
    snprintf(err->msg, sizeof(err->msg), "%s", msg);
}

/* Consumes one injected fault for op, if any (mutex held). */
static int take_fault(struct mem_storage *s, int op, struct storage_error *err)
{
    if (s->fault_count[op] <= 0)
        return 0;
    s->fault_count[op]--;
    fill_error(err, s->fault_code[op], s->fault_region[op], "mem_storage: injected fault");
    return s->fault_code[op];
}

static int mem_write(struct storage *base, const struct storage_ctx *ctx,
                     const struct storage_modify *mods, size_t n, struct storage_error *err)
{
    struct mem_storage *s = (struct mem_storage *)base;
    struct mem_table *next[STORAGE_CF_COUNT] = {0};
    int rc = STORAGE_OK;

    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned)mods[i].cf >= STORAGE_CF_COUNT || mods[i].key_len == 0 ||
            (mods[i].kind != STORAGE_MODIFY_PUT && mods[i].kind != STORAGE_MODIFY_DELETE)) {
            fill_error(err, STORAGE_ERR_INVALID, 0, "mem_storage: bad modification");
            return STORAGE_ERR_INVALID;
        }
    }

    pthread_mutex_lock(&s->mu);
    rc = take_fault(s, MEM_STORAGE_FAULT_WRITE, err);
    if (rc)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const struct storage_modify *m = &mods[i];
        struct mem_table *t = next[m->cf];
        if (!t) {
            t = next[m->cf] = table_copy(s->cf[m->cf], n);
            if (!t)
                goto nomem;
        }
        size_t pos = lower_bound(t, m->key, m->key_len);
        int exists = pos < t->n && cmp_bytes(entry_key(t->items[pos]), t->items[pos]->key_len,
                                             m->key, m->key_len) == 0;
        if (m->kind == STORAGE_MODIFY_DELETE) {
            if (!exists)
                continue;
            if (--t->items[pos]->refs == 0)
                free(t->items[pos]);
            memmove(&t->items[pos], &t->items[pos + 1], (t->n - pos - 1) * sizeof(*t->items));
            t->n--;
            continue;
        }
        struct mem_entry *e = malloc(sizeof(*e) + m->key_len + m->value_len);
        if (!e)
            goto nomem;
        e->refs = 1;
        e->key_len = m->key_len;
        e->value_len = m->value_len;
        memcpy(e->data, m->key, m->key_len);
        if (m->value_len)
            memcpy(e->data + m->key_len, m->value, m->value_len);
        if (exists) {
            if (--t->items[pos]->refs == 0)
                free(t->items[pos]);
            t->items[pos] = e;
            continue;
        }
        if (t->n == t->cap) {
            size_t cap = t->cap * 2;
            struct mem_entry **items = realloc(t->items, cap * sizeof(*items));
            if (!items) {
                free(e);
                goto nomem;
            }
            t->items = items;
            t->cap = cap;
        }
        memmove(&t->items[pos + 1], &t->items[pos], (t->n - pos) * sizeof(*t->items));
        t->items[pos] = e;
        t->n++;
    }
    for (int cf = 0; cf < STORAGE_CF_COUNT; cf++) {
        if (!next[cf])
            continue;
        table_unref(s->cf[cf]);
        s->cf[cf] = next[cf];
        next[cf] = NULL;
    }
    s->writes++;
    goto out;
nomem:
    rc = STORAGE_ERR_NOMEM;
    fill_error(err, rc, 0, "mem_storage: out of memory");
out:
    for (int cf = 0; cf < STORAGE_CF_COUNT; cf++)
        table_unref(next[cf]);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static const struct storage_reader_ops mem_reader_ops;

static int mem_reader_open(struct storage *base, const struct storage_ctx *ctx,
                           struct storage_reader **out, struct storage_error *err)
{
    struct mem_storage *s = (struct mem_storage *)base;
    struct mem_reader *r;
    int rc;

    (void)ctx;
    *out = NULL;
    r = calloc(1, sizeof(*r));
    if (!r) {
        fill_error(err, STORAGE_ERR_NOMEM, 0, "mem_storage: out of memory");
        return STORAGE_ERR_NOMEM;
    }
    pthread_mutex_lock(&s->mu);
    rc = take_fault(s, MEM_STORAGE_FAULT_READER, err);
    if (rc == 0) {
        for (int cf = 0; cf < STORAGE_CF_COUNT; cf++) {
            r->cf[cf] = s->cf[cf];
            r->cf[cf]->refs++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        free(r);
        return rc;
    }
    r->base.ops = &mem_reader_ops;
    r->s = s;
    *out = &r->base;
    return STORAGE_OK;
}

static int mem_reader_get(struct storage_reader *base, enum storage_cf cf, const void *key,
                          size_t key_len, void **value, size_t *value_len)
{
    struct mem_reader *r = (struct mem_reader *)base;
    *value = NULL;
    *value_len = 0;
    if ((unsigned)cf >= STORAGE_CF_COUNT || key_len == 0)
        return STORAGE_ERR_INVALID;
    const struct mem_table *t = r->cf[cf];
    size_t pos = lower_bound(t, key, key_len);
    if (pos == t->n ||
        cmp_bytes(entry_key(t->items[pos]), t->items[pos]->key_len, key, key_len) != 0)
        return STORAGE_ERR_NOT_FOUND;
    const struct mem_entry *e = t->items[pos];
    void *v = malloc(e->value_len ? e->value_len : 1);
    if (!v)
        return STORAGE_ERR_NOMEM;
    memcpy(v, e->data + e->key_len, e->value_len);
    *value = v;
    *value_len = e->value_len;
    return STORAGE_OK;
}

static const struct storage_iter_ops mem_iter_ops;

static int mem_reader_iter(struct storage_reader *base, enum storage_cf cf,
                           struct storage_iter **out)
{
    struct mem_reader *r = (struct mem_reader *)base;
    struct mem_iter *it;
    *out = NULL;
    if ((unsigned)cf >= STORAGE_CF_COUNT)
        return STORAGE_ERR_INVALID;
    it = calloc(1, sizeof(*it));
    if (!it)
        return STORAGE_ERR_NOMEM;
    it->base.ops = &mem_iter_ops;
    it->t = r->cf[cf];
    it->pos = it->t->n;
    *out = &it->base;
    return STORAGE_OK;
}

static void mem_reader_free(struct storage_reader *base)
{
    struct mem_reader *r = (struct mem_reader *)base;
    pthread_mutex_lock(&r->s->mu);
    for (int cf = 0; cf < STORAGE_CF_COUNT; cf++)
        table_unref(r->cf[cf]);
    pthread_mutex_unlock(&r->s->mu);
    free(r);
}

static void mem_iter_seek(struct storage_iter *base, const void *key, size_t key_len)
{
    struct mem_iter *it = (struct mem_iter *)base;
    it->pos = lower_bound(it->t, key, key_len);
}

static int mem_iter_valid(const struct storage_iter *base)
{
    const struct mem_iter *it = (const struct mem_iter *)base;
    return it->pos < it->t->n;
}

static void mem_iter_next(struct storage_iter *base)
{
    struct mem_iter *it = (struct mem_iter *)base;
    if (it->pos < it->t->n)
        it->pos++;
}

static const void *mem_iter_key(const struct storage_iter *base, size_t *len)
{
    const struct mem_iter *it = (const struct mem_iter *)base;
    const struct mem_entry *e = it->t->items[it->pos];
    *len = e->key_len;
    return e->data;
}

static const void *mem_iter_value(const struct storage_iter *base, size_t *len)
{
    const struct mem_iter *it = (const struct mem_iter *)base;
    const struct mem_entry *e = it->t->items[it->pos];
    *len = e->value_len;
    return e->data + e->key_len;
}

static void mem_iter_free(struct storage_iter *base)
{
    free(base);
}

static void mem_free(struct storage *base)
{
    struct mem_storage *s = (struct mem_storage *)base;
    for (int cf = 0; cf < STORAGE_CF_COUNT; cf++)
        table_unref(s->cf[cf]);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const struct storage_ops mem_ops = {
    .write = mem_write,
    .reader = mem_reader_open,
    .free = mem_free,
};

static const struct storage_reader_ops mem_reader_ops = {
    .get = mem_reader_get,
    .iter = mem_reader_iter,
    .free = mem_reader_free,
};

static const struct storage_iter_ops mem_iter_ops = {
    .seek = mem_iter_seek,
    .valid = mem_iter_valid,
    .next = mem_iter_next,
    .key = mem_iter_key,
    .value = mem_iter_value,
    .free = mem_iter_free,
};

int mem_storage_new(struct storage **out)
{
    struct mem_storage *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (!s)
        return STORAGE_ERR_NOMEM;
    for (int cf = 0; cf < STORAGE_CF_COUNT; cf++) {
        s->cf[cf] = table_new(0);
        if (!s->cf[cf]) {
            for (int j = 0; j < cf; j++)
                table_unref(s->cf[j]);
            free(s);
            return STORAGE_ERR_NOMEM;
        }
    }
    pthread_mutex_init(&s->mu, NULL);
    s->base.ops = &mem_ops;
    *out = &s->base;
    return STORAGE_OK;
}

void mem_storage_inject_error(struct storage *base, enum mem_storage_fault_op op, int count,
                              int code, enum storage_region_error_kind region_kind)
{
    struct mem_storage *s = (struct mem_storage *)base;
    pthread_mutex_lock(&s->mu);
    s->fault_count[op] = count;
    s->fault_code[op] = code;
    s->fault_region[op] = region_kind;
    pthread_mutex_unlock(&s->mu);
}

size_t mem_storage_count(struct storage *base, enum storage_cf cf)
{
    struct mem_storage *s = (struct mem_storage *)base;
    pthread_mutex_lock(&s->mu);
    size_t n = s->cf[cf]->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t mem_storage_write_count(struct storage *base)
{
    struct mem_storage *s = (struct mem_storage *)base;
    pthread_mutex_lock(&s->mu);
    size_t n = s->writes;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* txn.c — Percolator transactions: lock-resolving reads, a sorted write buffer, 2PC by region. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"

/* Pairs asked per KvScan request. */
#define TXN_SCAN_BATCH 1024
/* Most mutations and bytes of keys and values in one prewrite, commit or rollback request. */
#define TXN_BATCH_KEYS 4096
#define TXN_BATCH_BYTES (4u * 1024 * 1024)
/* See raw.c: a short answer under this many bytes means the store ran out of keys. */
#define TXN_SCAN_SHORT_BYTES (8u * 1024 * 1024)

struct txn_mutation {
    uint8_t *key;
    size_t key_len;
    uint8_t *value; /* Put only */
    size_t value_len;
    Kvrpcpb__Op op;
};

struct client_txn {
    struct client *c; /* borrowed; outlives the transaction */
    client_ts start_ts;
    uint64_t begin_ms; /* rpc_now_ms() when start_ts arrived */
    int read_only;
    int finished;              /* commit or rollback ran */
    struct txn_mutation *muts; /* sorted by key, one per key */
    size_t n, cap;
};

static int bytes_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int r = n ? memcmp(a, b, n) : 0;
    if (r)
        return r;
    return alen < blen ? -1 : alen > blen;
}

/* Index of the first mutation with key >= `key`; *found says whether it is equal. */
static size_t buffer_lower_bound(const struct client_txn *t, const void *key, size_t key_len,
                                 int *found)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (bytes_cmp(t->muts[mid].key, t->muts[mid].key_len, key, key_len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (found)
        *found = lo < t->n && bytes_cmp(t->muts[lo].key, t->muts[lo].key_len, key, key_len) == 0;
    return lo;
}

static int txn_new(struct client *c, client_ts ts, int read_only, struct client_txn **out)
{
    struct client_txn *t = calloc(1, sizeof *t);
    if (!t)
        return client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
    t->c = c;
    t->start_ts = ts;
    t->begin_ms = rpc_now_ms();
    t->read_only = read_only;
    *out = t;
    return 0;
}

int client_txn_begin(struct client *c, struct client_txn **txn)
{
    *txn = NULL;
    client_ts ts;
    int rc = client_tso(c, &ts);
    if (rc)
        return rc;
    return txn_new(c, ts, 0, txn);
}

int client_txn_begin_at(struct client *c, client_ts ts, struct client_txn **txn)
{
    *txn = NULL;
    if (ts == 0)
        return client_seterr(c, CLIENT_ERR_INVALID, "snapshot timestamp 0");
    return txn_new(c, ts, 1, txn);
}

client_ts client_txn_start_ts(const struct client_txn *txn)
{
    return txn->start_ts;
}

void client_txn_free(struct client_txn *txn)
{
    if (!txn)
        return;
    for (size_t i = 0; i < txn->n; i++) {
        free(txn->muts[i].key);
        free(txn->muts[i].value);
    }
    free(txn->muts);
    free(txn);
}

static int check_active(struct client_txn *t, int writing)
{
    if (t->finished)
        return client_seterr(t->c, CLIENT_ERR_INVALID,
                             "transaction already committed or rolled back");
    if (writing && t->read_only)
        return client_seterr(t->c, CLIENT_ERR_INVALID, "read-only snapshot");
    return 0;
}

/* ------------------------------------------------------------- the buffer */

static int buffer_set(struct client_txn *t, Kvrpcpb__Op op, const void *key, size_t key_len,
                      const void *value, size_t value_len)
{
    struct client *c = t->c;
    int rc = check_active(t, 1);
    if (!rc)
        rc = client_check_key(c, key_len);
    if (!rc && op == KVRPCPB__OP__Put)
        rc = client_check_value(c, value_len);
    if (rc)
        return rc;
    uint8_t *v = NULL;
    if (op == KVRPCPB__OP__Put) {
        v = malloc(value_len ? value_len : 1);
        if (!v)
            return client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
        if (value_len)
            memcpy(v, value, value_len);
    }
    int found;
    size_t i = buffer_lower_bound(t, key, key_len, &found);
    if (found) {
        free(t->muts[i].value);
    } else {
        if (t->n == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 8;
            struct txn_mutation *grown = realloc(t->muts, cap * sizeof *grown);
            if (!grown) {
                free(v);
                return client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
            }
            t->muts = grown;
            t->cap = cap;
        }
        uint8_t *k = malloc(key_len);
        if (!k) {
            free(v);
            return client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
        }
        memcpy(k, key, key_len);
        memmove(&t->muts[i + 1], &t->muts[i], (t->n - i) * sizeof *t->muts);
        t->n++;
        t->muts[i].key = k;
        t->muts[i].key_len = key_len;
    }
    t->muts[i].op = op;
    t->muts[i].value = v;
    t->muts[i].value_len = v ? value_len : 0;
    return 0;
}

int client_txn_put(struct client_txn *txn, const void *key, size_t key_len, const void *value,
                   size_t value_len)
{
    return buffer_set(txn, KVRPCPB__OP__Put, key, key_len, value, value_len);
}

int client_txn_delete(struct client_txn *txn, const void *key, size_t key_len)
{
    return buffer_set(txn, KVRPCPB__OP__Del, key, key_len, NULL, 0);
}

/* ------------------------------------------------------------------ reads */

/* Text of a key error that is not a lock. */
static const char *key_error_text(const Kvrpcpb__KeyError *e)
{
    if (e->conflict)
        return "write conflict";
    if (e->abort && e->abort[0])
        return e->abort;
    if (e->retryable && e->retryable[0])
        return e->retryable;
    return "key error";
}

int client_txn_get(struct client_txn *txn, const void *key, size_t key_len, void **value,
                   size_t *value_len)
{
    client_ts commit_ts;
    return client_txn_get_version(txn, key, key_len, value, value_len, &commit_ts);
}

int client_txn_get_version(struct client_txn *txn, const void *key, size_t key_len, void **value,
                           size_t *value_len, client_ts *commit_ts)
{
    struct client *c = txn->c;
    *value = NULL;
    *value_len = 0;
    *commit_ts = 0;
    int rc = check_active(txn, 0);
    if (!rc)
        rc = client_check_key(c, key_len);
    if (rc)
        return rc;
    int found;
    size_t i = buffer_lower_bound(txn, key, key_len, &found);
    if (found) {
        const struct txn_mutation *m = &txn->muts[i];
        if (m->op == KVRPCPB__OP__Del)
            return client_seterr(c, CLIENT_ERR_NOT_FOUND, "deleted in this transaction");
        *value = malloc(m->value_len ? m->value_len : 1);
        if (!*value)
            return client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
        if (m->value_len)
            memcpy(*value, m->value, m->value_len);
        *value_len = m->value_len;
        return 0;
    }
    struct backoff b;
    client_backoff_init(&b, c);
    for (;;) {
        Kvrpcpb__GetRequest req = KVRPCPB__GET_REQUEST__INIT;
        req.key.data = (uint8_t *)key;
        req.key.len = key_len;
        req.version = txn->start_ts;
        ProtobufCMessage *msg;
        rc = client_store_call_key(c, key, key_len, "/tinykvpb.TinyKv/KvGet", &req.base,
                                   &kvrpcpb__get_response__descriptor, &msg, &b, NULL);
        if (rc)
            return rc;
        Kvrpcpb__GetResponse *resp = (Kvrpcpb__GetResponse *)msg;
        if (resp->error && resp->error->locked) {
            rc = client_lock_resolve(c, resp->error->locked, &b);
            protobuf_c_message_free_unpacked(msg, NULL);
            if (rc && rc != CLIENT_RETRY_REGION)
                return rc;
            continue;
        }
        if (resp->error) {
            rc = client_seterr(c, CLIENT_ERR_SERVER, "get: %s", key_error_text(resp->error));
        } else if (resp->not_found) {
            rc = client_seterr(c, CLIENT_ERR_NOT_FOUND, "key not found");
        } else {
            *value = malloc(resp->value.len ? resp->value.len : 1);
            if (!*value) {
                rc = client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
            } else {
                if (resp->value.len)
                    memcpy(*value, resp->value.data, resp->value.len);
                *value_len = resp->value.len;
                *commit_ts = resp->commit_ts;
            }
        }
        protobuf_c_message_free_unpacked(msg, NULL);
        return rc;
    }
}

/*
 * Committed pairs at the start ts with cursor <= key < end, up to `limit`,
 * across regions; locks met are resolved and the scan resumes at the locked
 * key. Appends to *out.
 */
static int snapshot_scan(struct client_txn *txn, const void *start, size_t start_len,
                         const void *end, size_t end_len, size_t limit, int key_only,
                         struct kv_array *out, struct backoff *b)
{
    struct client *c = txn->c;
    struct scan_cursor cur = {0};
    size_t got = 0;
    int rc = 0;
    if (client_scan_cursor_set(&cur, start, start_len, 0))
        return client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
    while (got < limit && client_key_before_end(cur.key, cur.len, end, end_len)) {
        size_t want = limit - got < TXN_SCAN_BATCH ? limit - got : TXN_SCAN_BATCH;
        Kvrpcpb__ScanRequest req = KVRPCPB__SCAN_REQUEST__INIT;
        req.start_key.data = cur.key;
        req.start_key.len = cur.len;
        req.limit = (uint32_t)want;
        req.version = txn->start_ts;
        req.key_only = key_only;
        req.end_key.data = (uint8_t *)end;
        req.end_key.len = end ? end_len : 0;
        ProtobufCMessage *msg;
        struct region_loc loc;
        rc = client_store_call_key(c, cur.key, cur.len, "/tinykvpb.TinyKv/KvScan", &req.base,
                                   &kvrpcpb__scan_response__descriptor, &msg, b, &loc);
        if (rc)
            break;
        Kvrpcpb__ScanResponse *resp = (Kvrpcpb__ScanResponse *)msg;
        int next_region = 0, done = 0, resume_here = 0;
        size_t bytes = 0;
        for (size_t i = 0; i < resp->n_pairs && !rc; i++) {
            const Kvrpcpb__KvPair *p = resp->pairs[i];
            bytes += p->key.len + p->value.len;
            if (p->error && !p->error->locked) {
                rc = client_seterr(c, CLIENT_ERR_SERVER, "scan: %s", key_error_text(p->error));
                break;
            }
            if (!client_key_before_end(p->key.data, p->key.len, end, end_len)) {
                done = 1;
                break;
            }
            if (!client_region_contains(&loc.r, p->key.data, p->key.len)) {
                next_region = 1;
                break;
            }
            if (p->error) {
                /* Resolve, then read again from this very key. */
                int lr = client_lock_resolve(c, p->error->locked, b);
                if (lr && lr != CLIENT_RETRY_REGION)
                    rc = lr;
                else if (client_scan_cursor_set(&cur, p->key.data, p->key.len, 0))
                    rc = client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
                resume_here = 1;
                break;
            }
            if (client_kv_array_push(out, p->key.data, p->key.len, p->value.data, p->value.len))
                rc = client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
            else if (++got == limit)
                done = 1;
        }
        if (!rc && !done && !next_region && !resume_here) {
            if (resp->n_pairs == 0 || (resp->n_pairs < want && bytes < TXN_SCAN_SHORT_BYTES))
                next_region = 1;
            else if (client_scan_cursor_set(&cur, resp->pairs[resp->n_pairs - 1]->key.data,
                                            resp->pairs[resp->n_pairs - 1]->key.len, 1))
                rc = client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
        }
        if (!rc && next_region) {
            if (loc.r.end_len == 0)
                done = 1;
            else if (client_scan_cursor_set(&cur, loc.r.end_key, loc.r.end_len, 0))
                rc = client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
        }
        protobuf_c_message_free_unpacked(msg, NULL);
        client_region_loc_clear(&loc);
        if (rc || done)
            break;
    }
    free(cur.key);
    return rc;
}

static int txn_scan(struct client_txn *txn, const void *start, size_t start_len, const void *end,
                    size_t end_len, size_t limit, int key_only, struct client_kv **kvs, size_t *n)
{
    struct client *c = txn->c;
    *kvs = NULL;
    *n = 0;
    int rc = check_active(txn, 0);
    if (rc)
        return rc;
    if (start_len > CLIENT_MAX_KEY_BYTES || end_len > CLIENT_MAX_KEY_BYTES)
        return client_seterr(c, CLIENT_ERR_TOO_LARGE, "scan bound over the key size limit");
    if (!end)
        end_len = 0;
    struct backoff b;
    client_backoff_init(&b, c);
    struct kv_array out = {0};
    struct scan_cursor cur = {0};
    if (client_scan_cursor_set(&cur, start, start_len, 0)) {
        rc = client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    /* Merge committed pairs with the buffer, a batch at a time: the buffer's
     * deletes can hide committed keys, so a batch may yield fewer results. */
    while (out.n < limit) {
        size_t want = limit - out.n;
        struct kv_array batch = {0};
        rc = snapshot_scan(txn, cur.key, cur.len, end, end_len, want, key_only, &batch, &b);
        if (rc) {
            client_kvs_free(batch.kvs, batch.n);
            break;
        }
        int exhausted = batch.n < want;
        size_t i = 0, j = buffer_lower_bound(txn, cur.key, cur.len, NULL);
        for (;;) {
            const struct client_kv *s = i < batch.n ? &batch.kvs[i] : NULL;
            const struct txn_mutation *m = NULL;
            if (j < txn->n) {
                m = &txn->muts[j];
                /* Buffer keys past the batch wait for the next batch, unless the store is done. */
                int in_range = exhausted ? client_key_before_end(m->key, m->key_len, end, end_len)
                                         : bytes_cmp(m->key, m->key_len, batch.kvs[batch.n - 1].key,
                                                     batch.kvs[batch.n - 1].key_len) <= 0;
                if (!in_range)
                    m = NULL;
            }
            if ((!s && !m) || out.n >= limit)
                break;
            int cmp = !s ? 1 : !m ? -1 : bytes_cmp(s->key, s->key_len, m->key, m->key_len);
            if (cmp < 0) {
                rc = client_kv_array_push(&out, s->key, s->key_len, s->value, s->value_len);
                i++;
            } else {
                if (m->op == KVRPCPB__OP__Put)
                    rc = client_kv_array_push(&out, m->key, m->key_len, m->value, m->value_len);
                j++;
                if (cmp == 0)
                    i++;
            }
            if (rc) {
                rc = client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
                break;
            }
        }
        if (!rc && !exhausted &&
            client_scan_cursor_set(&cur, batch.kvs[batch.n - 1].key, batch.kvs[batch.n - 1].key_len,
                                   1))
            rc = client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
        client_kvs_free(batch.kvs, batch.n);
        if (rc || exhausted)
            break;
    }
cleanup:
    free(cur.key);
    if (rc) {
        client_kvs_free(out.kvs, out.n);
        return rc;
    }
    *kvs = out.kvs;
    *n = out.n;
    return 0;
}

int client_txn_scan(struct client_txn *txn, const void *start, size_t start_len, const void *end,
                    size_t end_len, size_t limit, struct client_kv **kvs, size_t *n)
{
    return txn_scan(txn, start, start_len, end, end_len, limit, 0, kvs, n);
}

int client_txn_scan_keys(struct client_txn *txn, const void *start, size_t start_len,
                         const void *end, size_t end_len, size_t limit, struct client_kv **kvs,
                         size_t *n)
{
    return txn_scan(txn, start, start_len, end, end_len, limit, 1, kvs, n);
}

/* ---------------------------------------------------------- two-phase commit */

/* Sends one request for mutations [lo, hi), all in loc's region. Returns 0,
 * CLIENT_RETRY_REGION (resend the range after relocating) or an error. */
typedef int (*group_fn)(struct client_txn *t, const struct region_loc *loc, size_t lo, size_t hi,
                        void *arg, struct backoff *b);

/* Runs `fn` over mutations [lo, hi) grouped by region in bounded batches, in key order,
 * regrouping after region errors. */
/* Calls fn on each region group of mutations [lo, hi); with first_hi, on the first group only,
 * and *first_hi gets where it ended. */
static int for_each_region_group(struct client_txn *t, size_t lo, size_t hi, group_fn fn, void *arg,
                                 struct backoff *b, size_t *first_hi)
{
    size_t i = lo;
    while (i < hi) {
        struct region_loc loc;
        int rc = client_region_locate(t->c, t->muts[i].key, t->muts[i].key_len, b, &loc);
        if (rc)
            return rc;
        /* One request per region, split further so each stays well under the
         * message cap (a single mutation is at most 8 MiB + 8 KiB). */
        size_t j = i + 1, bytes = t->muts[i].key_len + t->muts[i].value_len;
        while (j < hi && j - i < TXN_BATCH_KEYS &&
               bytes + t->muts[j].key_len + t->muts[j].value_len <= TXN_BATCH_BYTES &&
               client_region_contains(&loc.r, t->muts[j].key, t->muts[j].key_len)) {
            bytes += t->muts[j].key_len + t->muts[j].value_len;
            j++;
        }
        rc = fn(t, &loc, i, j, arg, b);
        client_region_loc_clear(&loc);
        if (rc == CLIENT_RETRY_REGION)
            continue;
        if (rc)
            return rc;
        if (first_hi) {
            *first_hi = j;
            return 0;
        }
        i = j;
    }
    return 0;
}

struct prewrite_arg {
    client_ts one_pc_commit_ts; /* nonzero: the store committed the whole transaction at it */
    int one_pc_sent;            /* a one-phase request went out: a failure may hide a commit */
};

static int prewrite_group(struct client_txn *t, const struct region_loc *loc, size_t lo, size_t hi,
                          void *arg, struct backoff *b)
{
    struct prewrite_arg *pa = arg;
    struct client *c = t->c;
    size_t n = hi - lo;
    Kvrpcpb__Mutation *ms = calloc(n, sizeof *ms);
    Kvrpcpb__Mutation **ptrs = calloc(n, sizeof *ptrs);
    if (!ms || !ptrs) {
        free(ms);
        free(ptrs);
        return client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        const struct txn_mutation *m = &t->muts[lo + k];
        kvrpcpb__mutation__init(&ms[k]);
        ms[k].op = m->op;
        ms[k].key.data = m->key;
        ms[k].key.len = m->key_len;
        ms[k].value.data = m->value;
        ms[k].value.len = m->value_len;
        ptrs[k] = &ms[k];
    }
    Kvrpcpb__PrewriteRequest req = KVRPCPB__PREWRITE_REQUEST__INIT;
    req.n_mutations = n;
    req.mutations = ptrs;
    req.primary_lock.data = t->muts[0].key;
    req.primary_lock.len = t->muts[0].key_len;
    req.start_version = t->start_ts;
    /* A lock expires lock_ttl after its start ts (not after it was written):
     * add the time the transaction has lived so far, so a transaction kept
     * open long (a file being written) is not rolled back as it commits. */
    req.lock_ttl = c->opts.lock_ttl_ms + (rpc_now_ms() - t->begin_ms);
    /* The whole transaction in this one request: the store may commit it right away. */
    req.try_one_pc = lo == 0 && hi == t->n && !c->opts.two_phase_only;
    int sent_before = pa->one_pc_sent;
    pa->one_pc_sent |= req.try_one_pc;
    ProtobufCMessage *msg;
    int rc = client_store_call(c, loc, "/tinykvpb.TinyKv/KvPrewrite", &req.base,
                               &kvrpcpb__prewrite_response__descriptor, &msg, b);
    free(ms);
    free(ptrs);
    if (rc == CLIENT_ERR_NO_SPACE)
        pa->one_pc_sent = sent_before; /* refused unproposed: this attempt did not commit */
    if (rc)
        return rc;
    Kvrpcpb__PrewriteResponse *resp = (Kvrpcpb__PrewriteResponse *)msg;
    const Kvrpcpb__LockInfo *lock = NULL;
    for (size_t k = 0; k < resp->n_errors && !rc; k++) {
        const Kvrpcpb__KeyError *e = resp->errors[k];
        if (e->locked) {
            lock = e->locked;
        } else if (e->conflict || (e->abort && e->abort[0])) {
            rc = client_seterr(c, CLIENT_ERR_CONFLICT, "prewrite at %llu: %s",
                               (unsigned long long)t->start_ts, key_error_text(e));
        } else {
            /* Retryable: wait and send the group again. */
            client_seterr(c, CLIENT_ERR_TIMEOUT, "prewrite: %s", key_error_text(e));
            rc = client_backoff_sleep(b) < 0 ? CLIENT_ERR_TIMEOUT : CLIENT_RETRY_REGION;
        }
    }
    if (!rc && lock) {
        /* Another transaction holds a key: settle its fate, then try again. */
        rc = client_lock_resolve(c, lock, b);
        if (!rc)
            rc = CLIENT_RETRY_REGION;
    }
    if (!rc && resp->n_errors == 0 && req.try_one_pc)
        pa->one_pc_commit_ts = resp->one_pc_commit_ts;
    protobuf_c_message_free_unpacked(msg, NULL);
    return rc;
}

struct commit_arg {
    client_ts commit_ts;
};

static int commit_group(struct client_txn *t, const struct region_loc *loc, size_t lo, size_t hi,
                        void *arg, struct backoff *b)
{
    struct client *c = t->c;
    const struct commit_arg *ca = arg;
    size_t n = hi - lo;
    ProtobufCBinaryData *keys = calloc(n, sizeof *keys);
    if (!keys)
        return client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < n; k++) {
        keys[k].data = t->muts[lo + k].key;
        keys[k].len = t->muts[lo + k].key_len;
    }
    Kvrpcpb__CommitRequest req = KVRPCPB__COMMIT_REQUEST__INIT;
    req.start_version = t->start_ts;
    req.commit_version = ca->commit_ts;
    req.n_keys = n;
    req.keys = keys;
    ProtobufCMessage *msg;
    int rc = client_store_call(c, loc, "/tinykvpb.TinyKv/KvCommit", &req.base,
                               &kvrpcpb__commit_response__descriptor, &msg, b);
    free(keys);
    if (rc)
        return rc;
    Kvrpcpb__CommitResponse *resp = (Kvrpcpb__CommitResponse *)msg;
    if (resp->error)
        /* Our lock is gone: someone resolved (rolled back) this transaction. */
        rc = client_seterr(c, CLIENT_ERR_CONFLICT, "commit at %llu: %s",
                           (unsigned long long)ca->commit_ts, key_error_text(resp->error));
    protobuf_c_message_free_unpacked(msg, NULL);
    return rc;
}

static int rollback_group(struct client_txn *t, const struct region_loc *loc, size_t lo, size_t hi,
                          void *arg, struct backoff *b)
{
    (void)arg;
    size_t n = hi - lo;
    ProtobufCBinaryData *keys = calloc(n, sizeof *keys);
    if (!keys)
        return CLIENT_ERR_NOMEM;
    for (size_t k = 0; k < n; k++) {
        keys[k].data = t->muts[lo + k].key;
        keys[k].len = t->muts[lo + k].key_len;
    }
    Kvrpcpb__BatchRollbackRequest req = KVRPCPB__BATCH_ROLLBACK_REQUEST__INIT;
    req.start_version = t->start_ts;
    req.n_keys = n;
    req.keys = keys;
    ProtobufCMessage *msg;
    int rc = client_store_call(t->c, loc, "/tinykvpb.TinyKv/KvBatchRollback", &req.base,
                               &kvrpcpb__batch_rollback_response__descriptor, &msg, b);
    free(keys);
    if (!rc)
        protobuf_c_message_free_unpacked(msg, NULL);
    return rc;
}

/* Best effort, within what is left of the commit's deadline but at least one
 * RPC timeout: locks left behind are resolved by readers once their TTL runs out. */
static void rollback_all(struct client_txn *t, const struct backoff *commit_b)
{
    struct backoff b;
    client_backoff_init(&b, t->c);
    uint64_t floor = rpc_now_ms() + (uint64_t)t->c->opts.rpc_timeout_ms;
    b.deadline_ms = commit_b->deadline_ms > floor ? commit_b->deadline_ms : floor;
    for_each_region_group(t, 0, t->n, rollback_group, NULL, &b, NULL);
}

int client_txn_commit(struct client_txn *txn, client_ts *commit_ts)
{
    struct client *c = txn->c;
    int rc = check_active(txn, 1);
    if (rc)
        return rc;
    txn->finished = 1;
    if (txn->n == 0) {
        if (commit_ts)
            *commit_ts = txn->start_ts;
        return 0;
    }
    struct backoff b;
    client_backoff_init(&b, c);
    /* The primary (smallest key) is in the first group, so its lock exists
     * before any secondary's: a reader finding a secondary can always check it. */
    struct prewrite_arg pa = {0};
    rc = for_each_region_group(txn, 0, txn->n, prewrite_group, &pa, &b, NULL);
    if (rc) {
        char why[CLIENT_ERRMSG_BYTES];
        snprintf(why, sizeof why, "%s", client_last_error(c));
        rollback_all(txn, &b);
        /* Only a key error (a conflict) proves that no one-phase attempt committed: a retry
         * after a commit finds its own commit record and answers it. */
        if (pa.one_pc_sent && rc != CLIENT_ERR_CONFLICT)
            return client_seterr(c, CLIENT_ERR_UNDETERMINED, "one-phase commit unacknowledged: %s",
                                 why);
        return client_seterr(c, rc, "%s", why);
    }
    if (pa.one_pc_commit_ts) {
        atomic_fetch_add(&c->stat_one_pc_commits, 1);
        if (commit_ts)
            *commit_ts = pa.one_pc_commit_ts;
        return 0;
    }
    struct commit_arg ca;
    rc = client_tso(c, &ca.commit_ts);
    if (rc) {
        rollback_all(txn, &b);
        return rc;
    }
    /* The primary's commit is the transaction's: the secondaries of its region go in the same
     * request, which commits all its keys or none (mvcc_commit). */
    size_t primary_hi = 1;
    rc = for_each_region_group(txn, 0, txn->n, commit_group, &ca, &b, &primary_hi);
    if (rc == CLIENT_ERR_CONFLICT) {
        char why[CLIENT_ERRMSG_BYTES];
        snprintf(why, sizeof why, "%s", client_last_error(c));
        rollback_all(txn, &b);
        return client_seterr(c, rc, "%s", why);
    }
    if (rc)
        return client_seterr(c, CLIENT_ERR_UNDETERMINED, "primary commit unacknowledged: %s",
                             client_strerror(rc));
    /* Committed. Secondaries left locked (the deadline passed, a store is down)
     * are committed by readers, who find the primary's commit record. */
    if (primary_hi < txn->n)
        for_each_region_group(txn, primary_hi, txn->n, commit_group, &ca, &b, NULL);
    if (commit_ts)
        *commit_ts = ca.commit_ts;
    return 0;
}

int client_txn_rollback(struct client_txn *txn)
{
    int rc = check_active(txn, 0);
    if (rc)
        return rc;
    txn->finished = 1;
    return 0;
}

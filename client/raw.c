/* raw.c — RawGet, RawPut, RawDelete and RawScan routed by region, scans crossing regions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"

/* A store stops filling a scan response after 12 MiB (kv_service.h). A
 * response shorter than asked and well under that size means the store had
 * nothing more from the cursor on; otherwise we ask again from the last key. */
#define SCAN_SHORT_BYTES (8u * 1024 * 1024)
/* Pairs asked per scan request. */
#define SCAN_BATCH 4096

static int server_error(struct client *c, const char *what, const char *error)
{
    return client_seterr(c, CLIENT_ERR_SERVER, "%s: %s", what, error);
}

static int check_cf(struct client *c, const char *cf)
{
    if (cf && cf[0] && strcmp(cf, "default") && strcmp(cf, "lock") && strcmp(cf, "write"))
        return client_seterr(c, CLIENT_ERR_INVALID, "unknown column family \"%s\"", cf);
    return 0;
}

int client_raw_get(struct client *c, const char *cf, const void *key, size_t key_len, void **value,
                   size_t *value_len)
{
    *value = NULL;
    *value_len = 0;
    int rc = client_check_key(c, key_len);
    if (!rc)
        rc = check_cf(c, cf);
    if (rc)
        return rc;
    Kvrpcpb__RawGetRequest req = KVRPCPB__RAW_GET_REQUEST__INIT;
    req.key.data = (uint8_t *)key;
    req.key.len = key_len;
    req.cf = (char *)(cf ? cf : "");
    struct backoff b;
    client_backoff_init(&b, c);
    ProtobufCMessage *m;
    rc = client_store_call_key(c, key, key_len, "/tinykvpb.TinyKv/RawGet", &req.base,
                               &kvrpcpb__raw_get_response__descriptor, &m, &b, NULL);
    if (rc)
        return rc;
    Kvrpcpb__RawGetResponse *resp = (Kvrpcpb__RawGetResponse *)m;
    if (resp->error && resp->error[0]) {
        rc = server_error(c, "raw get", resp->error);
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
        }
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

int client_raw_put(struct client *c, const char *cf, const void *key, size_t key_len,
                   const void *value, size_t value_len)
{
    int rc = client_check_key(c, key_len);
    if (!rc)
        rc = client_check_value(c, value_len);
    if (!rc)
        rc = check_cf(c, cf);
    if (rc)
        return rc;
    Kvrpcpb__RawPutRequest req = KVRPCPB__RAW_PUT_REQUEST__INIT;
    req.key.data = (uint8_t *)key;
    req.key.len = key_len;
    req.value.data = (uint8_t *)value;
    req.value.len = value_len;
    req.cf = (char *)(cf ? cf : "");
    struct backoff b;
    client_backoff_init(&b, c);
    ProtobufCMessage *m;
    rc = client_store_call_key(c, key, key_len, "/tinykvpb.TinyKv/RawPut", &req.base,
                               &kvrpcpb__raw_put_response__descriptor, &m, &b, NULL);
    if (rc)
        return rc;
    Kvrpcpb__RawPutResponse *resp = (Kvrpcpb__RawPutResponse *)m;
    if (resp->error && resp->error[0])
        rc = server_error(c, "raw put", resp->error);
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

int client_raw_delete(struct client *c, const char *cf, const void *key, size_t key_len)
{
    int rc = client_check_key(c, key_len);
    if (!rc)
        rc = check_cf(c, cf);
    if (rc)
        return rc;
    Kvrpcpb__RawDeleteRequest req = KVRPCPB__RAW_DELETE_REQUEST__INIT;
    req.key.data = (uint8_t *)key;
    req.key.len = key_len;
    req.cf = (char *)(cf ? cf : "");
    struct backoff b;
    client_backoff_init(&b, c);
    ProtobufCMessage *m;
    rc = client_store_call_key(c, key, key_len, "/tinykvpb.TinyKv/RawDelete", &req.base,
                               &kvrpcpb__raw_delete_response__descriptor, &m, &b, NULL);
    if (rc)
        return rc;
    Kvrpcpb__RawDeleteResponse *resp = (Kvrpcpb__RawDeleteResponse *)m;
    if (resp->error && resp->error[0])
        rc = server_error(c, "raw delete", resp->error);
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

void client_kvs_free(struct client_kv *kvs, size_t n)
{
    if (!kvs)
        return;
    for (size_t i = 0; i < n; i++) {
        free(kvs[i].key);
        free(kvs[i].value);
    }
    free(kvs);
}

int client_kv_array_push(struct kv_array *a, const void *key, size_t key_len, const void *value,
                         size_t value_len)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        struct client_kv *grown = realloc(a->kvs, cap * sizeof *grown);
        if (!grown)
            return CLIENT_ERR_NOMEM;
        a->kvs = grown;
        a->cap = cap;
    }
    struct client_kv *kv = &a->kvs[a->n];
    kv->key = malloc(key_len ? key_len : 1);
    kv->value = malloc(value_len ? value_len : 1);
    if (!kv->key || !kv->value) {
        free(kv->key);
        free(kv->value);
        return CLIENT_ERR_NOMEM;
    }
    if (key_len)
        memcpy(kv->key, key, key_len);
    if (value_len)
        memcpy(kv->value, value, value_len);
    kv->key_len = key_len;
    kv->value_len = value_len;
    a->n++;
    return 0;
}

int client_key_before_end(const void *key, size_t key_len, const void *end, size_t end_len)
{
    if (end_len == 0)
        return 1;
    size_t n = key_len < end_len ? key_len : end_len;
    int r = n ? memcmp(key, end, n) : 0;
    return r < 0 || (r == 0 && key_len < end_len);
}

int client_scan_cursor_set(struct scan_cursor *cur, const void *key, size_t key_len, int successor)
{
    size_t need = key_len + (successor ? 1 : 0);
    if (need > cur->cap) {
        uint8_t *grown = realloc(cur->key, need);
        if (!grown)
            return CLIENT_ERR_NOMEM;
        cur->key = grown;
        cur->cap = need;
    }
    if (key_len)
        memmove(cur->key, key, key_len);
    if (successor)
        cur->key[key_len] = 0;
    cur->len = need;
    return 0;
}

int client_raw_scan(struct client *c, const char *cf, const void *start, size_t start_len,
                    const void *end, size_t end_len, size_t limit, struct client_kv **kvs,
                    size_t *n)
{
    *kvs = NULL;
    *n = 0;
    int rc = check_cf(c, cf);
    if (rc)
        return rc;
    if (start_len > CLIENT_MAX_KEY_BYTES || end_len > CLIENT_MAX_KEY_BYTES)
        return client_seterr(c, CLIENT_ERR_TOO_LARGE, "scan bound over the key size limit");
    if (!end)
        end_len = 0;
    struct kv_array out = {0};
    struct scan_cursor cur = {0};
    struct backoff b;
    client_backoff_init(&b, c);
    if (client_scan_cursor_set(&cur, start, start_len, 0)) {
        rc = client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    while (out.n < limit && client_key_before_end(cur.key, cur.len, end, end_len)) {
        size_t want = limit - out.n < SCAN_BATCH ? limit - out.n : SCAN_BATCH;
        Kvrpcpb__RawScanRequest req = KVRPCPB__RAW_SCAN_REQUEST__INIT;
        req.start_key.data = cur.key;
        req.start_key.len = cur.len;
        req.limit = (uint32_t)want;
        req.cf = (char *)(cf ? cf : "");
        ProtobufCMessage *m;
        struct region_loc loc;
        /* An empty start key is the first region's; RawGet's routing handles it the same. */
        rc = client_store_call_key(c, cur.key, cur.len, "/tinykvpb.TinyKv/RawScan", &req.base,
                                   &kvrpcpb__raw_scan_response__descriptor, &m, &b, &loc);
        if (rc)
            goto cleanup;
        Kvrpcpb__RawScanResponse *resp = (Kvrpcpb__RawScanResponse *)m;
        int next_region = 0, done = 0;
        size_t bytes = 0;
        if (resp->error && resp->error[0]) {
            rc = server_error(c, "raw scan", resp->error);
        } else {
            for (size_t i = 0; i < resp->n_kvs && !rc; i++) {
                const Kvrpcpb__KvPair *p = resp->kvs[i];
                bytes += p->key.len + p->value.len;
                if (!client_key_before_end(p->key.data, p->key.len, end, end_len)) {
                    done = 1;
                    break;
                }
                /* A store may answer past its region; those keys belong to the next one. */
                if (!client_region_contains(&loc.r, p->key.data, p->key.len)) {
                    next_region = 1;
                    break;
                }
                if (client_kv_array_push(&out, p->key.data, p->key.len, p->value.data,
                                         p->value.len))
                    rc = client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
                if (out.n == limit)
                    done = 1;
            }
            if (!rc && !done && !next_region) {
                if (resp->n_kvs == 0 || (resp->n_kvs < want && bytes < SCAN_SHORT_BYTES))
                    next_region = 1;
                else if (client_scan_cursor_set(&cur, out.kvs[out.n - 1].key,
                                                out.kvs[out.n - 1].key_len, 1))
                    rc = client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
            }
            if (!rc && next_region) {
                if (loc.r.end_len == 0)
                    done = 1;
                else if (client_scan_cursor_set(&cur, loc.r.end_key, loc.r.end_len, 0))
                    rc = client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
            }
        }
        protobuf_c_message_free_unpacked(m, NULL);
        client_region_loc_clear(&loc);
        if (rc || done)
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

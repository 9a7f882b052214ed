/* raw_service.c — RawGet, RawPut, RawDelete and RawScan over the Storage interface. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "errorpb.pb-c.h"
#include "server/kv_service.h"

/* Raw keys are stored as enc(key) in every CF, like transactional ones (codec/codec.h). */
static uint8_t *encode_key(const ProtobufCBinaryData *key, size_t *len)
{
    *len = codec_key_len(key->len);
    uint8_t *out = malloc(*len);
    if (out)
        codec_key_encode(key->data, key->len, out);
    return out;
}

/* Sets *cf from a request's CF name; returns NULL or the reason it is bad. */
static const char *parse_cf(const char *name, enum storage_cf *cf)
{
    int c = storage_cf_parse(name ? name : "", name ? strlen(name) : 0);
    if (c < 0)
        return "unknown column family";
    *cf = (enum storage_cf)c;
    return NULL;
}

/* Fills a response's region_error / error from a failed storage call. The
 * returned string (if any) is owned by the caller. */
static char *storage_failure(const struct kv_service *svc, const struct storage_ctx *ctx,
                             const struct storage_error *err, int rc, Errorpb__Error **region_error)
{
    if (!err)
        return strdup(storage_strerror(rc));
    if (rc == STORAGE_ERR_REGION) {
        *region_error = kv_region_error_new(svc, ctx, err);
        return NULL;
    }
    return strdup(err->msg[0] ? err->msg : storage_strerror(rc));
}

/*
 * RawGet, RawPut and RawDelete answer from their storage completion: with a Raft storage the
 * handler returns at once and the answer comes from the store loop (or the storage's deadline
 * timer), so no thread is parked per request. A pending request owns a copy of its key, which
 * the completion needs for the read itself and for a KeyNotInRegion answer.
 */
struct raw_pending {
    struct rpc_call *call; /* answered exactly once, by the completion */
    struct kv_service *svc;
    struct storage_ctx ctx;
    struct storage_key touched;
    enum storage_cf cf;
    int is_delete;
    size_t enc_len;
    uint8_t *enc;  /* enc(key) */
    uint8_t key[]; /* the user key, touched.len bytes */
};

/* A pending request for `key`, or NULL on OOM. */
static struct raw_pending *pending_new(struct rpc_call *call, struct kv_service *svc,
                                       const Kvrpcpb__Context *context, enum storage_cf cf,
                                       const ProtobufCBinaryData *key)
{
    struct raw_pending *p = malloc(sizeof *p + (key->len ? key->len : 1));
    if (!p)
        return NULL;
    p->enc = encode_key(key, &p->enc_len);
    if (!p->enc) {
        free(p);
        return NULL;
    }
    p->call = call;
    p->svc = svc;
    p->cf = cf;
    p->is_delete = 0;
    memcpy(p->key, key->data, key->len);
    p->touched = (struct storage_key){p->key, key->len};
    kv_ctx_from_proto(context, &p->ctx);
    p->ctx.keys = &p->touched; /* names the key in a KeyNotInRegion answer */
    p->ctx.n_keys = 1;
    return p;
}

static void pending_free(struct raw_pending *p)
{
    free(p->enc);
    free(p);
}

/* Checks a request's CF and key; returns NULL or the reason it is bad. */
static const char *check_request(const char *cf_name, const ProtobufCBinaryData *key,
                                 enum storage_cf *cf)
{
    const char *bad = parse_cf(cf_name, cf);
    return bad ? bad : kv_check_key(key->len);
}

/* Answers a Raw{Get,Put,Delete}Response `resp` whose error fields were set from rc/err. */
static void reply_and_free(struct rpc_call *call, ProtobufCMessage *resp,
                           Errorpb__Error *region_error, char *owned_error)
{
    rpc_call_reply(call, resp);
    if (region_error)
        protobuf_c_message_free_unpacked(&region_error->base, NULL);
    free(owned_error);
}

static void get_done(void *arg, int rc, struct storage_reader *r, const struct storage_error *err)
{
    struct raw_pending *p = arg;
    Kvrpcpb__RawGetResponse resp = KVRPCPB__RAW_GET_RESPONSE__INIT;
    char *owned = NULL;
    void *value = NULL;
    size_t value_len = 0;
    if (rc) {
        owned = storage_failure(p->svc, &p->ctx, err, rc, &resp.region_error);
        resp.error = owned;
    } else {
        rc = storage_reader_get(r, p->cf, p->enc, p->enc_len, &value, &value_len);
        storage_reader_free(r);
        if (rc == STORAGE_ERR_NOT_FOUND) {
            resp.not_found = 1;
        } else if (rc) {
            resp.error = (char *)storage_strerror(rc);
        } else {
            resp.value.data = value;
            resp.value.len = value_len;
        }
    }
    reply_and_free(p->call, &resp.base, resp.region_error, owned);
    free(value);
    pending_free(p);
}

static void raw_get(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    const Kvrpcpb__RawGetRequest *req = (const Kvrpcpb__RawGetRequest *)msg;
    Kvrpcpb__RawGetResponse resp = KVRPCPB__RAW_GET_RESPONSE__INIT;
    enum storage_cf cf;
    const char *bad = check_request(req->cf, &req->key, &cf);
    struct raw_pending *p = bad ? NULL : pending_new(call, arg, req->context, cf, &req->key);
    if (!p) {
        resp.error = (char *)(bad ? bad : storage_strerror(STORAGE_ERR_NOMEM));
        rpc_call_reply(call, &resp.base);
        return;
    }
    storage_reader_async(p->svc->storage, &p->ctx, get_done, p);
}

static void modify_done(void *arg, int rc, const struct storage_error *err)
{
    struct raw_pending *p = arg;
    Kvrpcpb__RawPutResponse put = KVRPCPB__RAW_PUT_RESPONSE__INIT;
    Kvrpcpb__RawDeleteResponse del = KVRPCPB__RAW_DELETE_RESPONSE__INIT;
    Errorpb__Error *region_error = NULL;
    char *owned = rc ? storage_failure(p->svc, &p->ctx, err, rc, &region_error) : NULL;
    if (p->is_delete) {
        del.region_error = region_error;
        del.error = owned;
        reply_and_free(p->call, &del.base, region_error, owned);
    } else {
        put.region_error = region_error;
        put.error = owned;
        reply_and_free(p->call, &put.base, region_error, owned);
    }
    pending_free(p);
}

/* Starts one put or delete from a raw request; answers bad requests at once. */
static void raw_modify(struct rpc_call *call, struct kv_service *svc,
                       const Kvrpcpb__Context *context, enum storage_modify_kind kind,
                       const char *cf_name, const ProtobufCBinaryData *key,
                       const ProtobufCBinaryData *value)
{
    enum storage_cf cf;
    const char *bad = check_request(cf_name, key, &cf);
    if (!bad && value && value->len > KV_MAX_VALUE_BYTES)
        bad = "value is larger than 8 MiB";
    Errorpb__Error *full =
        bad || kind == STORAGE_MODIFY_DELETE ? NULL : kv_disk_refusal(svc, context);
    if (full) {
        Kvrpcpb__RawPutResponse put = KVRPCPB__RAW_PUT_RESPONSE__INIT;
        put.region_error = full;
        reply_and_free(call, &put.base, full, NULL);
        return;
    }
    struct raw_pending *p = bad ? NULL : pending_new(call, svc, context, cf, key);
    if (!p) {
        bad = bad ? bad : storage_strerror(STORAGE_ERR_NOMEM);
        Kvrpcpb__RawPutResponse put = KVRPCPB__RAW_PUT_RESPONSE__INIT;
        Kvrpcpb__RawDeleteResponse del = KVRPCPB__RAW_DELETE_RESPONSE__INIT;
        put.error = del.error = (char *)bad;
        rpc_call_reply(call, kind == STORAGE_MODIFY_DELETE ? &del.base : &put.base);
        return;
    }
    p->is_delete = kind == STORAGE_MODIFY_DELETE;
    struct storage_modify m = {
        .kind = kind,
        .cf = cf,
        .key = p->enc,
        .key_len = p->enc_len,
        .value = value ? value->data : NULL,
        .value_len = value ? value->len : 0,
    };
    /* The modification is copied before this returns; the request may go with the handler. */
    storage_write_async(svc->storage, &p->ctx, &m, 1, modify_done, p);
}

static void raw_put(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    const Kvrpcpb__RawPutRequest *req = (const Kvrpcpb__RawPutRequest *)msg;
    raw_modify(call, arg, req->context, STORAGE_MODIFY_PUT, req->cf, &req->key, &req->value);
}

static void raw_delete(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    const Kvrpcpb__RawDeleteRequest *req = (const Kvrpcpb__RawDeleteRequest *)msg;
    raw_modify(call, arg, req->context, STORAGE_MODIFY_DELETE, req->cf, &req->key, NULL);
}

static void free_pairs(Kvrpcpb__KvPair **pairs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(pairs[i]->key.data);
        free(pairs[i]->value.data);
        free(pairs[i]);
    }
    free(pairs);
}

/* Collects up to `limit` pairs from the request's start key on, before its
 * end key (if any); keys only when asked. The reader is bounded to the
 * region, so the scan also stops at the region's end. Returns 0 or a
 * STORAGE_ERR_*. */
static int scan_pairs(struct storage_reader *r, enum storage_cf cf,
                      const Kvrpcpb__RawScanRequest *req, Kvrpcpb__KvPair ***out, size_t *n_out)
{
    uint32_t limit = req->limit;
    struct storage_iter *it;
    size_t seek_len;
    uint8_t *seek = encode_key(&req->start_key, &seek_len);
    if (!seek)
        return STORAGE_ERR_NOMEM;
    int rc = storage_reader_iter(r, cf, &it);
    if (rc) {
        free(seek);
        return rc;
    }
    size_t cap = limit < 64 ? limit : 64, n = 0, bytes = 0;
    Kvrpcpb__KvPair **pairs = malloc(cap * sizeof *pairs);
    uint8_t *user = malloc(KV_MAX_KEY_BYTES + 16);
    if (!pairs || !user) {
        free(pairs);
        pairs = NULL;
        goto nomem;
    }
    for (storage_iter_seek(it, seek, seek_len); storage_iter_valid(it) && n < limit;
         storage_iter_next(it)) {
        size_t enc_len, klen, vlen;
        const uint8_t *enc = storage_iter_key(it, &enc_len);
        /* Transactional versions share the CFs as enc(key) ++ ts: their
         * length is never a whole number of groups, so they never decode
         * exactly and a raw scan passes them by. */
        if (enc_len > codec_key_len(KV_MAX_KEY_BYTES) ||
            codec_key_decode_exact(enc, enc_len, user, &klen) != CODEC_OK)
            continue;
        const uint8_t *k = user;
        if (req->end_key.len && codec_bytes_cmp(k, klen, req->end_key.data, req->end_key.len) >= 0)
            break;
        const void *v = storage_iter_value(it, &vlen);
        if (req->key_only)
            vlen = 0;
        if (n > 0 && bytes + klen + vlen > KV_MAX_SCAN_RESPONSE_BYTES)
            break;
        if (n == cap) {
            cap *= 2;
            Kvrpcpb__KvPair **grown = realloc(pairs, cap * sizeof *pairs);
            if (!grown)
                goto nomem;
            pairs = grown;
        }
        Kvrpcpb__KvPair *p = malloc(sizeof *p);
        if (!p)
            goto nomem;
        kvrpcpb__kv_pair__init(p);
        p->key.data = malloc(klen ? klen : 1);
        p->value.data = malloc(vlen ? vlen : 1);
        pairs[n++] = p;
        if (!p->key.data || !p->value.data)
            goto nomem;
        memcpy(p->key.data, k, klen);
        if (vlen)
            memcpy(p->value.data, v, vlen);
        p->key.len = klen;
        p->value.len = vlen;
        bytes += klen + vlen;
    }
    storage_iter_free(it);
    free(seek);
    free(user);
    *out = pairs;
    *n_out = n;
    return 0;
nomem:
    storage_iter_free(it);
    free(seek);
    free(user);
    if (pairs)
        free_pairs(pairs, n);
    return STORAGE_ERR_NOMEM;
}

static void raw_scan(struct rpc_call *call, const ProtobufCMessage *msg, void *arg)
{
    struct kv_service *svc = arg;
    const Kvrpcpb__RawScanRequest *req = (const Kvrpcpb__RawScanRequest *)msg;
    Kvrpcpb__RawScanResponse resp = KVRPCPB__RAW_SCAN_RESPONSE__INIT;
    char *owned = NULL;
    Kvrpcpb__KvPair **pairs = NULL;
    size_t n = 0;
    enum storage_cf cf;
    const char *bad = parse_cf(req->cf, &cf);
    if (!bad && req->start_key.len > KV_MAX_KEY_BYTES)
        bad = "start key is longer than 8 KiB";
    if (bad) {
        resp.error = (char *)bad;
        goto reply;
    }
    if (req->limit == 0)
        goto reply;
    struct storage_ctx ctx;
    struct storage_error err = {0};
    struct storage_reader *r;
    struct storage_key touched = {req->start_key.data, req->start_key.len};
    kv_ctx_from_proto(req->context, &ctx);
    ctx.keys = &touched;
    ctx.n_keys = 1;
    int rc = storage_reader(svc->storage, &ctx, &r, &err);
    if (rc) {
        owned = storage_failure(svc, &ctx, &err, rc, &resp.region_error);
        resp.error = owned;
        goto reply;
    }
    rc = scan_pairs(r, cf, req, &pairs, &n);
    storage_reader_free(r);
    if (rc)
        resp.error = (char *)storage_strerror(rc);
    resp.kvs = pairs;
    resp.n_kvs = n;
reply:
    rpc_call_reply(call, &resp.base);
    if (resp.region_error)
        protobuf_c_message_free_unpacked(&resp.region_error->base, NULL);
    if (pairs)
        free_pairs(pairs, n);
    free(owned);
}

size_t kv_raw_methods(struct kv_service *svc, struct rpc_method *out)
{
    /* Get, put and delete answer from their storage's completion: they need no thread of their
     * own when the storage answers later (Raft), and block a worker when it answers at once
     * (the standalone engine, on the disk). A scan runs its whole iteration: always a worker. */
    int parked = !storage_is_async(svc->storage);
    const struct rpc_method methods[] = {
        {.name = "/tinykvpb.TinyKv/RawGet",
         .request = &kvrpcpb__raw_get_request__descriptor,
         .on_message = raw_get},
        {.name = "/tinykvpb.TinyKv/RawPut",
         .request = &kvrpcpb__raw_put_request__descriptor,
         .on_message = raw_put},
        {.name = "/tinykvpb.TinyKv/RawDelete",
         .request = &kvrpcpb__raw_delete_request__descriptor,
         .on_message = raw_delete},
        {.name = "/tinykvpb.TinyKv/RawScan",
         .request = &kvrpcpb__raw_scan_request__descriptor,
         .on_message = raw_scan},
    };
    size_t n = sizeof methods / sizeof methods[0];
    for (size_t i = 0; i < n; i++) {
        out[i] = methods[i];
        out[i].kind = RPC_UNARY;
        out[i].arg = svc;
        out[i].blocking = strcmp(out[i].name, "/tinykvpb.TinyKv/RawScan") == 0 || parked;
    }
    return n;
}

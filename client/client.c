/* client.c — the client object: construction, options, per-thread error detail, counters. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"

const char *client_strerror(int code)
{
    switch (code) {
    case CLIENT_OK:
        return "ok";
    case CLIENT_ERR_NOT_FOUND:
        return "not found";
    case CLIENT_ERR_CONFLICT:
        return "transaction conflict";
    case CLIENT_ERR_TIMEOUT:
        return "deadline passed";
    case CLIENT_ERR_UNAVAILABLE:
        return "cluster unavailable";
    case CLIENT_ERR_TOO_LARGE:
        return "key or value too large";
    case CLIENT_ERR_INVALID:
        return "invalid argument";
    case CLIENT_ERR_NOMEM:
        return "out of memory";
    case CLIENT_ERR_SERVER:
        return "server error";
    case CLIENT_ERR_UNDETERMINED:
        return "commit outcome undetermined";
    case CLIENT_ERR_NO_SPACE:
        return "no space left on a store";
    default:
        return "unknown client error";
    }
}

static void errbuf_free(void *p)
{
    free(p);
}

/* The calling thread's error buffer, created on first use; NULL if out of memory. */
static char *thread_errbuf(struct client *c)
{
    char *buf = pthread_getspecific(c->errkey);
    if (!buf) {
        buf = calloc(1, CLIENT_ERRMSG_BYTES);
        if (!buf || pthread_setspecific(c->errkey, buf) != 0) {
            free(buf);
            return NULL;
        }
    }
    return buf;
}

int client_seterr(struct client *c, int code, const char *fmt, ...)
{
    char *buf = thread_errbuf(c);
    if (buf) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, CLIENT_ERRMSG_BYTES, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *client_last_error(struct client *c)
{
    char *buf = thread_errbuf(c);
    return buf ? buf : "out of memory";
}

int client_rpc_error(int rc, const struct rpc_error *err)
{
    if (rc == RPC_ERR_NOMEM)
        return CLIENT_ERR_NOMEM;
    if (rc == RPC_ERR_DECODE)
        return CLIENT_ERR_SERVER;
    if (rc == RPC_ERR_STATUS && err) {
        switch (err->status) {
        case RPC_DEADLINE_EXCEEDED:
            return CLIENT_ERR_TIMEOUT;
        case RPC_UNAVAILABLE:
        case RPC_CANCELLED:
            return CLIENT_ERR_UNAVAILABLE;
        default:
            return CLIENT_ERR_SERVER;
        }
    }
    if (rc == RPC_ERR_TIMEOUT)
        return CLIENT_ERR_TIMEOUT;
    return CLIENT_ERR_UNAVAILABLE;
}

void **client_message_field(ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    return (void **)((char *)m + f->offset);
}

int client_check_key(struct client *c, size_t key_len)
{
    if (key_len == 0)
        return client_seterr(c, CLIENT_ERR_INVALID, "key is empty");
    if (key_len > CLIENT_MAX_KEY_BYTES)
        return client_seterr(c, CLIENT_ERR_TOO_LARGE, "key of %zu bytes is over %d", key_len,
                             CLIENT_MAX_KEY_BYTES);
    return 0;
}

int client_check_value(struct client *c, size_t value_len)
{
    if (value_len > CLIENT_MAX_VALUE_BYTES)
        return client_seterr(c, CLIENT_ERR_TOO_LARGE, "value of %zu bytes is over %d", value_len,
                             CLIENT_MAX_VALUE_BYTES);
    return 0;
}

/* Splits "a,b,c" into c->pd_addrs; returns 0 or CLIENT_ERR_*. */
static int parse_pd_addrs(struct client *c, const char *pd_addrs)
{
    char *copy = strdup(pd_addrs);
    if (!copy)
        return CLIENT_ERR_NOMEM;
    int rc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (strncmp(tok, "http://", 7) == 0)
            tok += 7;
        if (!*tok)
            continue;
        if (strlen(tok) >= CLIENT_ADDR_BYTES) {
            rc = CLIENT_ERR_INVALID;
            break;
        }
        char **grown = realloc(c->pd_addrs, (c->n_pd_addrs + 1) * sizeof *grown);
        char *dup = strdup(tok);
        if (grown)
            c->pd_addrs = grown;
        if (!grown || !dup) {
            free(dup);
            rc = CLIENT_ERR_NOMEM;
            break;
        }
        c->pd_addrs[c->n_pd_addrs++] = dup;
    }
    free(copy);
    if (!rc && c->n_pd_addrs == 0)
        rc = CLIENT_ERR_INVALID;
    return rc;
}

static void set_defaults(struct client_options *o)
{
    if (o->timeout_ms <= 0)
        o->timeout_ms = 10000;
    if (o->rpc_timeout_ms <= 0)
        o->rpc_timeout_ms = 3000;
    if (o->backoff_base_ms <= 0)
        o->backoff_base_ms = 2;
    if (o->backoff_max_ms <= 0)
        o->backoff_max_ms = 500;
    if (o->lock_ttl_ms == 0)
        o->lock_ttl_ms = 3000;
    /* Far below the 2^18 logical values one physical millisecond holds. */
    if (o->tso_max_batch <= 0)
        o->tso_max_batch = 4096;
    if (o->tso_max_batch > 65536)
        o->tso_max_batch = 65536;
}

int client_new(const char *pd_addrs, const struct client_options *opts, struct client **out,
               char *err, size_t err_len)
{
    *out = NULL;
    if (!pd_addrs) {
        if (err)
            snprintf(err, err_len, "no scheduler address");
        return CLIENT_ERR_INVALID;
    }
    struct client *c = calloc(1, sizeof *c);
    if (!c) {
        if (err)
            snprintf(err, err_len, "out of memory");
        return CLIENT_ERR_NOMEM;
    }
    if (opts)
        c->opts = *opts;
    set_defaults(&c->opts);
    if (pthread_key_create(&c->errkey, errbuf_free) != 0) {
        free(c);
        if (err)
            snprintf(err, err_len, "out of thread keys");
        return CLIENT_ERR_NOMEM;
    }
    pthread_mutex_init(&c->pd_mu, NULL);
    pthread_mutex_init(&c->tso_mu, NULL);
    c->tso_pending_tail = &c->tso_pending;
    pthread_mutex_init(&c->store_mu, NULL);
    client_region_cache_init(&c->regions);

    int rc = parse_pd_addrs(c, pd_addrs);
    if (rc) {
        if (err)
            snprintf(err, err_len, "bad scheduler address list \"%s\"", pd_addrs);
        goto fail;
    }
    c->rpc = rpc_client_new();
    if (!c->rpc) {
        rc = CLIENT_ERR_NOMEM;
        if (err)
            snprintf(err, err_len, "out of memory");
        goto fail;
    }
    struct backoff b;
    client_backoff_init(&b, c);
    rc = client_pd_connect(c, &b);
    if (rc) {
        if (err)
            snprintf(err, err_len, "%s", client_last_error(c));
        goto fail;
    }
    *out = c;
    return 0;
fail:
    client_free(c);
    return rc;
}

void client_free(struct client *c)
{
    if (!c)
        return;
    client_pd_tso_close(c);
    client_region_cache_close(&c->regions);
    if (c->rpc)
        rpc_client_free(c->rpc);
    for (size_t i = 0; i < c->n_pd_addrs; i++)
        free(c->pd_addrs[i]);
    free(c->pd_addrs);
    free(c->stores);
    /* The calling thread's buffer; other threads' are freed as they exit. */
    free(pthread_getspecific(c->errkey));
    pthread_setspecific(c->errkey, NULL);
    pthread_key_delete(c->errkey);
    pthread_mutex_destroy(&c->store_mu);
    pthread_mutex_destroy(&c->tso_mu);
    pthread_mutex_destroy(&c->pd_mu);
    free(c);
}

void client_stats_get(struct client *c, struct client_stats *out)
{
    out->tso_round_trips = atomic_load(&c->stat_tso_round_trips);
    out->tso_timestamps = atomic_load(&c->stat_tso_timestamps);
    out->pd_region_lookups = atomic_load(&c->stat_pd_region_lookups);
    out->region_errors = atomic_load(&c->stat_region_errors);
    out->lock_resolves = atomic_load(&c->stat_lock_resolves);
    out->one_pc_commits = atomic_load(&c->stat_one_pc_commits);
}

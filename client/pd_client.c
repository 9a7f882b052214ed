/* pd_client.c — scheduler connection: leader discovery, header-stamped calls, batched TSO. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client_internal.h"

#define TSO_METHOD "/schedulerpb.Scheduler/Tso"

/* Strips a URL scheme and copies an address into `out`. */
static void copy_addr(char *out, const char *url)
{
    if (strncmp(url, "http://", 7) == 0)
        url += 7;
    snprintf(out, CLIENT_ADDR_BYTES, "%s", url);
    size_t n = strlen(out);
    if (n && out[n - 1] == '/')
        out[n - 1] = 0;
}

/* The leader's address from its URL; a wildcard host (a server listening on
 * every interface) is replaced by the host of `answered`, which we reached. */
static void leader_addr(char *out, const char *url, const char *answered)
{
    copy_addr(out, url);
    const char *port = strrchr(out, ':');
    if (!port || !(strncmp(out, "0.0.0.0:", 8) == 0 || strncmp(out, "[::]:", 5) == 0))
        return;
    char host[CLIENT_ADDR_BYTES];
    snprintf(host, sizeof host, "%s", answered);
    char *colon = strrchr(host, ':');
    if (!colon)
        return;
    *colon = 0;
    char tmp[CLIENT_ADDR_BYTES];
    snprintf(tmp, sizeof tmp, "%s%s", host, port);
    memcpy(out, tmp, CLIENT_ADDR_BYTES);
}

static int header_error(struct client *c, const Schedulerpb__ResponseHeader *h)
{
    if (!h || !h->error || h->error->type == SCHEDULERPB__ERROR_TYPE__OK)
        return 0;
    /* A cluster still starting up: worth asking again. */
    int code = h->error->type == SCHEDULERPB__ERROR_TYPE__NOT_BOOTSTRAPPED ||
                       h->error->type == SCHEDULERPB__ERROR_TYPE__REGION_NOT_FOUND
                   ? CLIENT_PD_NOT_READY
                   : CLIENT_ERR_SERVER;
    return client_seterr(c, code, "scheduler error %d: %s", (int)h->error->type,
                         h->error->message ? h->error->message : "");
}

/* One GetMembers round against `addr`; on success records leader and cluster id. */
static int members_from(struct client *c, const char *addr, struct backoff *b)
{
    Schedulerpb__GetMembersRequest req = SCHEDULERPB__GET_MEMBERS_REQUEST__INIT;
    Schedulerpb__RequestHeader hdr = SCHEDULERPB__REQUEST_HEADER__INIT;
    req.header = &hdr;
    ProtobufCMessage *m = NULL;
    struct rpc_error err = {0};
    int rc = rpc_client_unary(c->rpc, addr, "/schedulerpb.Scheduler/GetMembers", &req.base,
                              &schedulerpb__get_members_response__descriptor, &m,
                              client_backoff_rpc_timeout_ms(b, c), &err);
    if (rc)
        return client_seterr(c, client_rpc_error(rc, &err), "scheduler %s: %s", addr, err.msg);
    Schedulerpb__GetMembersResponse *resp = (Schedulerpb__GetMembersResponse *)m;
    rc = header_error(c, resp->header);
    if (rc == CLIENT_PD_NOT_READY)
        rc = CLIENT_ERR_UNAVAILABLE;
    if (!rc) {
        pthread_mutex_lock(&c->pd_mu);
        c->cluster_id = resp->header ? resp->header->cluster_id : 0;
        if (resp->leader && resp->leader->n_client_urls > 0 && resp->leader->client_urls[0][0])
            leader_addr(c->pd_leader, resp->leader->client_urls[0], addr);
        else
            copy_addr(c->pd_leader, addr);
        pthread_mutex_unlock(&c->pd_mu);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

int client_pd_connect(struct client *c, struct backoff *b)
{
    int rc = CLIENT_ERR_UNAVAILABLE;
    for (;;) {
        for (size_t i = 0; i < c->n_pd_addrs; i++) {
            rc = members_from(c, c->pd_addrs[i], b);
            if (rc == 0)
                return 0;
        }
        if (client_backoff_sleep(b) < 0)
            break;
        /* Our backoff, not the channel's, decides when to try again: a
         * scheduler that came back is reached at the next attempt. */
        for (size_t i = 0; i < c->n_pd_addrs; i++)
            rpc_client_reconnect(c->rpc, c->pd_addrs[i]);
    }
    /* Nobody answered before the deadline: the scheduler is unreachable. */
    if (rc == CLIENT_ERR_TIMEOUT)
        rc = CLIENT_ERR_UNAVAILABLE;
    return rc;
}

int client_pd_call(struct client *c, const char *method, ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                   struct backoff *b)
{
    *resp = NULL;
    Schedulerpb__RequestHeader hdr = SCHEDULERPB__REQUEST_HEADER__INIT;
    void **hslot = client_message_field(req, "header");
    if (hslot)
        *hslot = &hdr;
    int rc;
    for (;;) {
        char addr[CLIENT_ADDR_BYTES];
        pthread_mutex_lock(&c->pd_mu);
        hdr.cluster_id = c->cluster_id;
        memcpy(addr, c->pd_leader, sizeof addr);
        pthread_mutex_unlock(&c->pd_mu);
        struct rpc_error err = {0};
        rc = rpc_client_unary(c->rpc, addr, method, req, resp_desc, resp,
                              client_backoff_rpc_timeout_ms(b, c), &err);
        if (rc == 0) {
            void **rslot = client_message_field(*resp, "header");
            rc = header_error(c, rslot ? *rslot : NULL);
            if (rc) {
                protobuf_c_message_free_unpacked(*resp, NULL);
                *resp = NULL;
            }
            break;
        }
        rc = client_seterr(c, client_rpc_error(rc, &err), "scheduler %s %s: %s", addr, method,
                           err.msg);
        if (rc != CLIENT_ERR_UNAVAILABLE && rc != CLIENT_ERR_TIMEOUT)
            break;
        /* The leader may have moved: ask the members again, then retry. */
        if (client_backoff_sleep(b) < 0)
            break;
        rpc_client_reconnect(c->rpc, addr);
        if (client_pd_connect(c, b) != 0)
            break;
    }
    if (hslot)
        *hslot = NULL;
    if (rc == CLIENT_ERR_TIMEOUT && client_backoff_remaining_ms(b) == 0)
        rc = CLIENT_ERR_UNAVAILABLE;
    return rc;
}

/* ------------------------------------------------------------------- TSO */

/* One request for `count` timestamps on the shared stream; *last is the last
 * one granted. Run only by the thread that set tso_in_flight. */
static int tso_round_trip(struct client *c, uint32_t count, client_ts *last, struct backoff *b)
{
    int rc;
    for (;;) {
        char addr[CLIENT_ADDR_BYTES];
        Schedulerpb__RequestHeader hdr = SCHEDULERPB__REQUEST_HEADER__INIT;
        pthread_mutex_lock(&c->pd_mu);
        hdr.cluster_id = c->cluster_id;
        memcpy(addr, c->pd_leader, sizeof addr);
        pthread_mutex_unlock(&c->pd_mu);
        struct rpc_error err = {0};
        if (!c->tso_stream) {
            c->tso_stream = rpc_stream_open(c->rpc, addr, TSO_METHOD,
                                            &schedulerpb__tso_response__descriptor, 0, &err);
            if (!c->tso_stream) {
                rc =
                    client_seterr(c, CLIENT_ERR_UNAVAILABLE, "tso stream to %s: %s", addr, err.msg);
                goto retry;
            }
        }
        Schedulerpb__TsoRequest req = SCHEDULERPB__TSO_REQUEST__INIT;
        req.header = &hdr;
        req.count = count;
        ProtobufCMessage *m = NULL;
        int t = client_backoff_rpc_timeout_ms(b, c);
        rc = rpc_stream_send(c->tso_stream, &req.base, t, &err);
        if (!rc)
            rc = rpc_stream_recv(c->tso_stream, &m, client_backoff_rpc_timeout_ms(b, c), &err);
        atomic_fetch_add(&c->stat_tso_round_trips, 1);
        if (rc) {
            rc = client_seterr(c,
                               rc == RPC_ERR_TIMEOUT ? CLIENT_ERR_TIMEOUT : CLIENT_ERR_UNAVAILABLE,
                               "tso on %s: %s", addr, err.msg);
            rpc_stream_free(c->tso_stream);
            c->tso_stream = NULL;
            goto retry;
        }
        Schedulerpb__TsoResponse *resp = (Schedulerpb__TsoResponse *)m;
        rc = header_error(c, resp->header);
        if (rc == CLIENT_PD_NOT_READY)
            rc = CLIENT_ERR_UNAVAILABLE;
        if (!rc && (!resp->timestamp || resp->count != count || resp->timestamp->physical < 0 ||
                    resp->timestamp->logical < 0 ||
                    resp->timestamp->logical >= (1 << CLIENT_TS_LOGICAL_BITS) ||
                    (uint64_t)resp->timestamp->logical + 1 < count))
            rc = client_seterr(c, CLIENT_ERR_SERVER, "tso answered %u timestamps, asked %u",
                               resp->count, count);
        if (!rc)
            *last = ((client_ts)resp->timestamp->physical << CLIENT_TS_LOGICAL_BITS) |
                    (client_ts)resp->timestamp->logical;
        protobuf_c_message_free_unpacked(m, NULL);
        if (rc) {
            /* The stream's position is in doubt after a bad answer: start over. */
            rpc_stream_free(c->tso_stream);
            c->tso_stream = NULL;
        }
        return rc;
    retry:
        if (client_backoff_sleep(b) < 0)
            return rc == CLIENT_ERR_TIMEOUT ? rc : CLIENT_ERR_UNAVAILABLE;
        rpc_client_reconnect(c->rpc, addr);
        if (client_pd_connect(c, b) == 0)
            client_backoff_reset(b); /* the scheduler answers again: retry the stream at once */
    }
}

static struct timespec abs_deadline(const struct backoff *b)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int left = client_backoff_remaining_ms(b);
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (long)(left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* A waiter asking for count timestamps; NULL on OOM. Each has its own condition variable, so
 * a finished round trip wakes the callers it served and the next sender only, not every caller
 * waiting (with a hundred threads asking, a broadcast woke them all per trip). */
static struct tso_waiter *waiter_new(uint32_t count)
{
    struct tso_waiter *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        free(w);
        return NULL;
    }
    w->count = count;
    return w;
}

static void waiter_free(struct tso_waiter *w)
{
    pthread_cond_destroy(&w->cv);
    free(w);
}

/* Wakes the first queued waiter, which sends the next round trip. Caller holds tso_mu. */
static void wake_next_sender(struct client *c)
{
    if (c->tso_pending && !c->tso_in_flight)
        pthread_cond_signal(&c->tso_pending->cv);
}

/* Runs one round trip for every pending waiter; called and returns with tso_mu held. */
static void tso_send_batch(struct client *c, struct backoff *b)
{
    /* Take up to tso_max_batch waiters from the front; the rest wait for the next trip. */
    struct tso_waiter *batch = c->tso_pending, *w = batch, *last_taken = NULL;
    uint32_t count = 0;
    for (; w && (count == 0 || count + w->count <= (uint32_t)c->opts.tso_max_batch); w = w->next) {
        w->state = 1;
        last_taken = w;
        count += w->count;
    }
    c->tso_pending = w;
    if (!w)
        c->tso_pending_tail = &c->tso_pending;
    last_taken->next = NULL;
    c->tso_in_flight = 1;
    pthread_mutex_unlock(&c->tso_mu);

    client_ts last = 0;
    int rc = tso_round_trip(c, count, &last, b);

    pthread_mutex_lock(&c->tso_mu);
    if (!rc && last - (count - 1) <= c->tso_last)
        rc = client_seterr(c, CLIENT_ERR_SERVER, "tso went backwards");
    if (!rc)
        c->tso_last = last;
    client_ts next = last - (count - 1);
    for (struct tso_waiter *nx; batch; batch = nx) {
        w = batch;
        nx = w->next;
        w->rc = rc;
        w->ts = next;
        next += w->count;
        w->state = 2;
        if (w->abandoned)
            waiter_free(w);
        else
            pthread_cond_signal(&w->cv); /* it frees itself once it has the mutex */
    }
    if (!rc)
        atomic_fetch_add(&c->stat_tso_timestamps, count);
    c->tso_in_flight = 0;
    wake_next_sender(c);
}

int client_tso(struct client *c, client_ts *ts)
{
    return client_tso_batch(c, 1, ts);
}

int client_tso_batch(struct client *c, uint32_t count, client_ts *ts)
{
    if (count == 0 || count > (uint32_t)c->opts.tso_max_batch)
        return client_seterr(c, CLIENT_ERR_INVALID, "asked %u timestamps, allowed 1 to %d", count,
                             c->opts.tso_max_batch);
    struct backoff b;
    client_backoff_init(&b, c);
    struct tso_waiter *w = waiter_new(count);
    if (!w)
        return client_seterr(c, CLIENT_ERR_NOMEM, "out of memory");
    struct timespec until = abs_deadline(&b);
    pthread_mutex_lock(&c->tso_mu);
    *c->tso_pending_tail = w;
    c->tso_pending_tail = &w->next;
    int rc;
    int sent = 0;
    for (;;) {
        if (w->state == 2) {
            rc = w->rc;
            if (rc && !sent && client_backoff_remaining_ms(&b) > 0) {
                /* Another caller's round trip failed within its deadline; ours has time left. */
                w->state = 0;
                w->rc = 0;
                w->next = NULL;
                *c->tso_pending_tail = w;
                c->tso_pending_tail = &w->next;
                continue;
            }
            *ts = w->ts;
            waiter_free(w);
            if (rc && !sent)
                client_seterr(c, rc, "tso failed in a shared round trip: %s", client_strerror(rc));
            break;
        }
        if (!c->tso_in_flight && w->state == 0) {
            tso_send_batch(c, &b);
            sent = 1;
            continue;
        }
        if (pthread_cond_timedwait(&w->cv, &c->tso_mu, &until) == ETIMEDOUT && w->state != 2) {
            if (w->state == 0) {
                /* Still queued: unlink it. */
                struct tso_waiter **pp = &c->tso_pending;
                while (*pp != w)
                    pp = &(*pp)->next;
                *pp = w->next;
                if (c->tso_pending_tail == &w->next)
                    c->tso_pending_tail = pp;
                waiter_free(w);
                wake_next_sender(c); /* in case it was the one woken to send */
            } else {
                w->abandoned = 1; /* the sender frees it */
            }
            rc = client_seterr(c, CLIENT_ERR_TIMEOUT, "no timestamp before the deadline");
            break;
        }
    }
    pthread_mutex_unlock(&c->tso_mu);
    return rc;
}

void client_pd_tso_close(struct client *c)
{
    if (c->tso_stream) {
        rpc_stream_free(c->tso_stream);
        c->tso_stream = NULL;
    }
}

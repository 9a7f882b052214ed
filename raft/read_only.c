/* read_only.c — the leader's queue of ReadIndex requests awaiting a heartbeat quorum. */
#include "raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

static bool ctx_eq(const struct raft_read_request *q, const uint8_t *ctx, size_t len)
{
    return q->ctx_len == len && (len == 0 || memcmp(q->ctx, ctx, len) == 0);
}

void raft_read_only_free_requests(struct raft_read_request *reqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(reqs[i].ctx);
        free(reqs[i].acks);
    }
    free(reqs);
}

void raft_read_only_reset(struct raft_read_only *ro)
{
    raft_read_only_free_requests(ro->reqs, ro->n);
    memset(ro, 0, sizeof *ro);
}

static struct raft_read_request *find(const struct raft_read_only *ro, const uint8_t *ctx,
                                      size_t len, size_t *pos)
{
    for (size_t i = 0; i < ro->n; i++) {
        if (ctx_eq(&ro->reqs[i], ctx, len)) {
            if (pos)
                *pos = i;
            return &ro->reqs[i];
        }
    }
    return NULL;
}

int raft_read_only_add(struct raft_read_only *ro, uint64_t index, uint64_t from, const uint8_t *ctx,
                       size_t ctx_len, uint64_t self)
{
    if (find(ro, ctx, ctx_len, NULL) != NULL)
        return RAFT_OK; /* a duplicate request is answered with the first */
    if (ro->n == ro->cap) {
        size_t cap = ro->cap ? ro->cap * 2 : 8;
        struct raft_read_request *p = realloc(ro->reqs, cap * sizeof *p);
        if (p == NULL)
            return RAFT_ERR_NOMEM;
        ro->reqs = p;
        ro->cap = cap;
    }
    struct raft_read_request q = {.index = index, .from = from, .ctx_len = ctx_len};
    q.ctx = malloc(ctx_len ? ctx_len : 1);
    q.acks = malloc(sizeof *q.acks);
    if (q.ctx == NULL || q.acks == NULL) {
        free(q.ctx);
        free(q.acks);
        return RAFT_ERR_NOMEM;
    }
    if (ctx_len)
        memcpy(q.ctx, ctx, ctx_len);
    q.acks[0] = self; /* the leader acknowledges its own request */
    q.n_acks = 1;
    ro->reqs[ro->n++] = q;
    return RAFT_OK;
}

size_t raft_read_only_recv_ack(struct raft_read_only *ro, uint64_t id, const uint8_t *ctx,
                               size_t ctx_len)
{
    struct raft_read_request *q = find(ro, ctx, ctx_len, NULL);
    if (q == NULL)
        return 0;
    for (size_t i = 0; i < q->n_acks; i++)
        if (q->acks[i] == id)
            return q->n_acks;
    uint64_t *p = realloc(q->acks, (q->n_acks + 1) * sizeof *p);
    if (p == NULL)
        return q->n_acks; /* an ack lost to OOM is like a lost message */
    q->acks = p;
    q->acks[q->n_acks++] = id;
    return q->n_acks;
}

void raft_read_only_advance(struct raft_read_only *ro, const uint8_t *ctx, size_t ctx_len,
                            struct raft_read_request **out, size_t *n)
{
    size_t pos;
    *out = NULL;
    *n = 0;
    if (find(ro, ctx, ctx_len, &pos) == NULL)
        return;
    size_t k = pos + 1;
    struct raft_read_request *res = malloc(k * sizeof *res);
    if (res == NULL)
        return; /* the requests stay queued; a later heartbeat round releases them */
    memcpy(res, ro->reqs, k * sizeof *res);
    memmove(ro->reqs, ro->reqs + k, (ro->n - k) * sizeof *ro->reqs);
    ro->n -= k;
    *out = res;
    *n = k;
}

const struct raft_read_request *raft_read_only_last(const struct raft_read_only *ro)
{
    return ro->n ? &ro->reqs[ro->n - 1] : NULL;
}

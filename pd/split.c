/* split.c — split requests: checking the keys, one split operator per region, their keys. */
#include "pd/pd_internal.h"

#include <stdlib.h>
#include <string.h>

#include "proto/log.h"

int pd_keys_copy(const struct pd_key *keys, size_t count, struct pd_key **out)
{
    *out = NULL;
    struct pd_key *k = calloc(count ? count : 1, sizeof *k);
    if (k == NULL)
        return PD_ERR_NOMEM;
    for (size_t i = 0; i < count; i++) {
        k[i].data = malloc(keys[i].len ? keys[i].len : 1);
        if (k[i].data == NULL) {
            pd_keys_free(k, i);
            return PD_ERR_NOMEM;
        }
        memcpy(k[i].data, keys[i].data, keys[i].len);
        k[i].len = keys[i].len;
    }
    *out = k;
    return PD_OK;
}

static int key_order(const void *a, const void *b)
{
    const struct pd_key *x = a, *y = b;
    return pd_key_cmp(x->data, x->len, y->data, y->len);
}

/* key_hex: the key as uppercase hex for a message, cut after 32 bytes. */
static const char *key_hex(const struct pd_key *k, char *buf)
{
    size_t n = k->len > 32 ? 32 : k->len;
    pd_hex_encode(k->data, n, buf);
    if (n < k->len)
        strcat(buf, "...");
    return buf;
}

#define KEY_HEX_BYTES (2 * 32 + 4)

/* One region's share of a request: its keys are sorted[first, first + count). */
struct split_group {
    const struct pd_region *region;
    size_t first, count;
};

/* check_keys finds the region of every key in sorted (ascending, duplicates removed: n keys) and
 * groups them by region; any bad key fails the whole request. */
static int check_keys(struct pd_cluster *c, const struct pd_key *sorted, size_t n,
                      struct split_group *groups, size_t *group_count)
{
    size_t g = 0;
    char hex[KEY_HEX_BYTES];
    for (size_t i = 0; i < n; i++) {
        const struct pd_key *k = &sorted[i];
        const struct pd_region *r = pd_region_tree_find_by_key(&c->tree, k->data, k->len);
        if (r == NULL)
            return pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "no region holds split key %s",
                                      key_hex(k, hex));
        if (pd_key_cmp(k->data, k->len, r->start_key, r->start_key_len) == 0)
            return pd_cluster_set_err(c, PD_ERR_INVALID,
                                      "split key %s is the start key of region %llu",
                                      key_hex(k, hex), (unsigned long long)r->id);
        const struct pd_operator *op = pd_operator_find(c, r->id);
        if (op)
            return pd_cluster_set_err(c, PD_ERR_EXISTS, "region %llu already has an operator (%s)",
                                      (unsigned long long)r->id, op->name);
        if (g > 0 && groups[g - 1].region == r) {
            groups[g - 1].count++;
            continue;
        }
        groups[g++] = (struct split_group){r, i, 1};
    }
    *group_count = g;
    return PD_OK;
}

static int split_locked(struct pd_cluster *c, struct pd_key *sorted, size_t n, uint64_t *region_ids,
                        size_t *region_count)
{
    struct split_group groups[PD_MAX_SPLIT_KEYS];
    struct pd_key *copies[PD_MAX_SPLIT_KEYS] = {NULL};
    size_t g = 0;
    int err = check_keys(c, sorted, n, groups, &g);
    if (err != PD_OK)
        return err;
    /* Take every resource first, so that nothing below fails half-way. */
    if ((err = pd_operator_reserve(c, g)) != PD_OK)
        return err;
    for (size_t i = 0; i < g; i++) {
        if ((err = pd_keys_copy(&sorted[groups[i].first], groups[i].count, &copies[i])) != PD_OK) {
            for (size_t j = 0; j < i; j++)
                pd_keys_free(copies[j], groups[j].count);
            return err;
        }
    }
    for (size_t i = 0; i < g; i++) {
        struct pd_operator op;
        pd_operator_build_split(&op, groups[i].region, groups[i].count);
        /* Room is reserved and no operator exists: neither call can fail. */
        err = pd_operator_add(c, &op);
        if (err == PD_OK)
            err = pd_split_job_add(c, op.region_id, copies[i], groups[i].count);
        if (err != PD_OK) {
            pd_keys_free(copies[i], groups[i].count);
            continue;
        }
        region_ids[(*region_count)++] = op.region_id;
    }
    return PD_OK;
}

int pd_cluster_split_regions(struct pd_cluster *c, const struct pd_key *keys, size_t count,
                             uint64_t *region_ids, size_t *region_count)
{
    struct pd_key *sorted = NULL;
    int err = PD_OK;
    *region_count = 0;
    pthread_mutex_lock(&c->mu);
    if (!c->bootstrapped) {
        err = pd_cluster_set_err(c, PD_ERR_NOT_BOOTSTRAPPED, "not bootstrapped");
        goto cleanup;
    }
    if (count == 0 || count > PD_MAX_SPLIT_KEYS) {
        err = pd_cluster_set_err(c, PD_ERR_INVALID, "need 1 to %d split keys, not %zu",
                                 PD_MAX_SPLIT_KEYS, count);
        goto cleanup;
    }
    for (size_t i = 0; i < count; i++) {
        if (keys[i].len == 0 || keys[i].len > PD_MAX_KEY_BYTES) {
            err = pd_cluster_set_err(c, PD_ERR_INVALID, "split key %zu is %s", i + 1,
                                     keys[i].len ? "too long" : "empty");
            goto cleanup;
        }
    }
    /* A shallow copy to sort: the key bytes stay the caller's. */
    sorted = malloc(count * sizeof *sorted);
    if (sorted == NULL) {
        err = PD_ERR_NOMEM;
        goto cleanup;
    }
    memcpy(sorted, keys, count * sizeof *sorted);
    qsort(sorted, count, sizeof *sorted, key_order);
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        if (n == 0 || key_order(&sorted[n - 1], &sorted[i]) != 0)
            sorted[n++] = sorted[i];
    err = split_locked(c, sorted, n, region_ids, region_count);
    if (err == PD_OK)
        LOG(LOG_INFO, "split asked at %zu keys in %zu regions", n, *region_count);
cleanup:
    pthread_mutex_unlock(&c->mu);
    free(sorted);
    return err;
}

int pd_cluster_get_split_keys(struct pd_cluster *c, uint64_t region_id, struct pd_key **keys,
                              size_t *count)
{
    *keys = NULL;
    *count = 0;
    pthread_mutex_lock(&c->mu);
    const struct pd_split_job *j = pd_split_job_find(c, region_id);
    int err = j ? pd_keys_copy(j->keys, j->count, keys)
                : pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "region %llu has no split operator",
                                     (unsigned long long)region_id);
    if (err == PD_OK)
        *count = j->count;
    pthread_mutex_unlock(&c->mu);
    return err;
}

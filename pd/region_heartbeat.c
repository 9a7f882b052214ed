/* region_heartbeat.c — region heartbeats (staleness rules, tree updates) and region look-ups. */
#include "pd/pd_internal.h"

#include <stdlib.h>
#include <string.h>

/* epoch_stale: the reported epoch is older than what PD holds (version first, then conf_ver). */
static bool epoch_stale(const struct pd_region_epoch *reported, const struct pd_region_epoch *held)
{
    return reported->version < held->version || reported->conf_ver < held->conf_ver;
}

/* persist_update writes r and deletes the regions it replaced, in one batch. Region records are
 * rebuilt by heartbeats anyway, so the write is not synced (RocksDB's WAL still survives a
 * process kill). */
static int persist_update(struct pd_cluster *c, const struct pd_region *r, size_t first,
                          size_t last)
{
    char key[PD_META_KEY_BYTES], *buf = NULL;
    size_t len;
    struct pd_meta_batch *b = pd_meta_batch_new(c->meta);
    int err = b ? pd_codec_encode_region(r, &buf, &len) : PD_ERR_NOMEM;
    if (err != PD_OK)
        goto cleanup;
    for (size_t i = first; i < last; i++) {
        if (c->tree.by_key[i]->id == r->id)
            continue;
        pd_meta_key_region(key, c->tree.by_key[i]->id);
        pd_meta_batch_delete(b, key);
    }
    pd_meta_key_region(key, r->id);
    pd_meta_batch_put(b, key, buf, len);
    err = pd_meta_batch_write(c->meta, b, false, c->errmsg, sizeof c->errmsg);
cleanup:
    free(buf);
    pd_meta_batch_free(b);
    return err;
}

static int heartbeat_locked(struct pd_cluster *c, const struct pd_region *region,
                            struct pd_step *step, bool *has_step)
{
    int err = pd_cluster_check_region(c, region);
    if (err != PD_OK)
        return err;
    if (region->leader.id == 0 || pd_region_store_peer(region, region->leader.store_id) == NULL ||
        pd_region_store_peer(region, region->leader.store_id)->id != region->leader.id)
        return pd_cluster_set_err(c, PD_ERR_INVALID, "region %llu: leader is not one of its peers",
                                  (unsigned long long)region->id);
    c->metrics.region_heartbeats++;
    struct pd_region *origin = pd_region_tree_find_by_id(&c->tree, region->id);
    if (origin && epoch_stale(&region->epoch, &origin->epoch)) {
        c->metrics.stale_region_heartbeats++;
        return pd_cluster_set_err(c, PD_ERR_STALE, "region %llu: epoch older than PD's",
                                  (unsigned long long)region->id);
    }
    size_t first = pd_region_tree_first_overlap(&c->tree, region), last = first;
    for (; last < c->tree.count && pd_regions_overlap(c->tree.by_key[last], region); last++) {
        const struct pd_region *o = c->tree.by_key[last];
        if (o != origin && epoch_stale(&region->epoch, &o->epoch)) {
            c->metrics.stale_region_heartbeats++;
            return pd_cluster_set_err(c, PD_ERR_STALE,
                                      "region %llu: epoch older than overlapping region %llu",
                                      (unsigned long long)region->id, (unsigned long long)o->id);
        }
    }
    struct pd_region *copy = pd_region_new_copy(region);
    if (copy == NULL || pd_region_tree_reserve(&c->tree) != PD_OK) {
        pd_region_free(copy);
        return PD_ERR_NOMEM;
    }
    if (origin == NULL || !pd_region_meta_equal(origin, region) || last - first > 1 ||
        (last - first == 1 && c->tree.by_key[first] != origin)) {
        err = persist_update(c, region, first, last);
        if (err != PD_OK) {
            pd_region_free(copy);
            return err;
        }
    }
    /* The common case, a region reporting again over its own range only: swap it in place. */
    if (origin && last - first == 1 && c->tree.by_key[first] == origin &&
        pd_key_cmp(origin->start_key, origin->start_key_len, copy->start_key,
                   copy->start_key_len) == 0) {
        pd_region_tree_replace(&c->tree, origin, copy);
        pd_region_free(origin);
        pd_operator_on_heartbeat(c, copy, step, has_step);
        return PD_OK;
    }
    /* Replace the overlapped regions (older splits or merges) and the old record of this one. */
    while (first < last) {
        struct pd_region *o = c->tree.by_key[first];
        if (o->id != region->id)
            pd_operator_on_replaced(c, o, region);
        if (o == origin)
            origin = NULL;
        pd_region_tree_remove(&c->tree, o);
        pd_region_free(o);
        last--;
    }
    if (origin) {
        pd_region_tree_remove(&c->tree, origin);
        pd_region_free(origin);
    }
    /* Room was reserved above and removals only shrink the tree: this cannot fail. */
    err = pd_region_tree_insert(&c->tree, copy);
    if (err != PD_OK) {
        pd_region_free(copy);
        return err;
    }
    pd_operator_on_heartbeat(c, copy, step, has_step);
    return PD_OK;
}

/* reply_split_keys copies the keys of a split step into out (no step when memory runs out: the
 * next heartbeat asks again). */
static void reply_split_keys(struct pd_cluster *c, uint64_t region_id,
                             struct pd_heartbeat_reply *out)
{
    const struct pd_split_job *j = pd_split_job_find(c, region_id);
    if (j == NULL || pd_keys_copy(j->keys, j->count, &out->split_keys) != PD_OK) {
        out->has_step = false;
        return;
    }
    out->step.split_key_count = j->count;
}

int pd_cluster_region_heartbeat_reply(struct pd_cluster *c, const struct pd_region *region,
                                      struct pd_heartbeat_reply *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&c->mu);
    int err = c->bootstrapped ? heartbeat_locked(c, region, &out->step, &out->has_step)
                              : pd_cluster_set_err(c, PD_ERR_NOT_BOOTSTRAPPED, "not bootstrapped");
    if (err == PD_OK && out->has_step && out->step.kind == PD_STEP_SPLIT)
        reply_split_keys(c, region->id, out);
    pthread_mutex_unlock(&c->mu);
    if (err != PD_OK || !out->has_step)
        memset(&out->step, 0, sizeof out->step);
    return err;
}

void pd_heartbeat_reply_clear(struct pd_heartbeat_reply *r)
{
    pd_keys_free(r->split_keys, r->step.split_key_count);
    memset(r, 0, sizeof *r);
}

int pd_cluster_region_heartbeat(struct pd_cluster *c, const struct pd_region *region,
                                struct pd_step *step, bool *has_step)
{
    struct pd_heartbeat_reply reply;
    int err = pd_cluster_region_heartbeat_reply(c, region, &reply);
    if (step && reply.has_step)
        *step = reply.step;
    if (has_step)
        *has_step = reply.has_step;
    pd_heartbeat_reply_clear(&reply);
    return err;
}

static int copy_out(struct pd_cluster *c, const struct pd_region *r, struct pd_region *out,
                    const char *what)
{
    if (r == NULL)
        return pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "no region %s", what);
    return pd_region_copy(out, r);
}

int pd_cluster_get_region(struct pd_cluster *c, const void *key, size_t key_len,
                          struct pd_region *out)
{
    pthread_mutex_lock(&c->mu);
    int err = copy_out(c, pd_region_tree_find_by_key(&c->tree, key, key_len), out, "for the key");
    pthread_mutex_unlock(&c->mu);
    return err;
}

int pd_cluster_get_prev_region(struct pd_cluster *c, const void *key, size_t key_len,
                               struct pd_region *out)
{
    pthread_mutex_lock(&c->mu);
    /* The region before the one holding key, or the last one before key when key falls in a
     * hole between regions. */
    const struct pd_region *prev = NULL;
    size_t i = pd_region_tree_index_at_or_before(&c->tree, key, key_len);
    if (i < c->tree.count) {
        if (!pd_region_contains_key(c->tree.by_key[i], key, key_len))
            prev = c->tree.by_key[i];
        else if (i > 0)
            prev = c->tree.by_key[i - 1];
    }
    int err = copy_out(c, prev, out, "before the key");
    pthread_mutex_unlock(&c->mu);
    return err;
}

int pd_cluster_get_region_by_id(struct pd_cluster *c, uint64_t region_id, struct pd_region *out)
{
    pthread_mutex_lock(&c->mu);
    int err = copy_out(c, pd_region_tree_find_by_id(&c->tree, region_id), out, "with that id");
    pthread_mutex_unlock(&c->mu);
    return err;
}

int pd_cluster_scan_regions(struct pd_cluster *c, const void *start_key, size_t start_len,
                            const void *end_key, size_t end_len, size_t limit,
                            struct pd_region **out, size_t *count)
{
    int err = PD_OK;
    *out = NULL;
    *count = 0;
    pthread_mutex_lock(&c->mu);
    size_t i = pd_region_tree_index_at_or_before(&c->tree, start_key, start_len);
    if (i == c->tree.count)
        i = 0;
    else if (!pd_region_contains_key(c->tree.by_key[i], start_key, start_len))
        i++;
    size_t n = 0;
    for (size_t j = i; j < c->tree.count && (limit == 0 || n < limit); j++, n++) {
        const struct pd_region *r = c->tree.by_key[j];
        if (end_len && pd_key_cmp(r->start_key, r->start_key_len, end_key, end_len) >= 0)
            break;
    }
    struct pd_region *arr = calloc(n ? n : 1, sizeof *arr);
    if (arr == NULL) {
        err = PD_ERR_NOMEM;
        goto cleanup;
    }
    for (size_t k = 0; k < n; k++) {
        err = pd_region_copy(&arr[k], c->tree.by_key[i + k]);
        if (err != PD_OK) {
            pd_regions_free(arr, k);
            goto cleanup;
        }
    }
    *out = arr;
    *count = n;
cleanup:
    pthread_mutex_unlock(&c->mu);
    return err;
}

int pd_cluster_store_regions(struct pd_cluster *c, uint64_t store_id, struct pd_region **out,
                             size_t *count)
{
    int err = PD_OK;
    *out = NULL;
    *count = 0;
    pthread_mutex_lock(&c->mu);
    size_t n = 0, k = 0;
    struct pd_region *arr = NULL;
    if (pd_cluster_find_store(c, store_id) == NULL) {
        err = pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "store %llu not found",
                                 (unsigned long long)store_id);
        goto cleanup;
    }
    for (size_t j = 0; j < c->tree.count; j++)
        n += pd_region_store_peer(c->tree.by_key[j], store_id) != NULL;
    if ((arr = calloc(n ? n : 1, sizeof *arr)) == NULL) {
        err = PD_ERR_NOMEM;
        goto cleanup;
    }
    for (size_t j = 0; j < c->tree.count && err == PD_OK; j++) {
        if (pd_region_store_peer(c->tree.by_key[j], store_id) == NULL)
            continue;
        if ((err = pd_region_copy(&arr[k], c->tree.by_key[j])) == PD_OK)
            k++;
    }
    if (err != PD_OK) {
        pd_regions_free(arr, k);
        goto cleanup;
    }
    *out = arr;
    *count = n;
cleanup:
    pthread_mutex_unlock(&c->mu);
    return err;
}

size_t pd_cluster_region_count(struct pd_cluster *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->tree.count;
    pthread_mutex_unlock(&c->mu);
    return n;
}

int pd_cluster_ask_split(struct pd_cluster *c, uint64_t region_id, uint64_t *new_region_id,
                         uint64_t *peer_ids, size_t *peer_count)
{
    int err = PD_OK;
    pthread_mutex_lock(&c->mu);
    const struct pd_region *r = pd_region_tree_find_by_id(&c->tree, region_id);
    if (r == NULL) {
        err = pd_cluster_set_err(c, PD_ERR_NOT_FOUND, "region %llu not found",
                                 (unsigned long long)region_id);
        goto cleanup;
    }
    if ((err = pd_cluster_alloc_id_locked(c, new_region_id)) != PD_OK)
        goto cleanup;
    for (size_t i = 0; i < r->peer_count; i++)
        if ((err = pd_cluster_alloc_id_locked(c, &peer_ids[i])) != PD_OK)
            goto cleanup;
    *peer_count = r->peer_count;
cleanup:
    pthread_mutex_unlock(&c->mu);
    return err;
}

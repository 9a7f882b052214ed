/* peer_storage.c — a peer's Raft state on RocksDB and the raft_storage the Raft library reads. */
#include "store/peer_storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft_serverpb.pb-c.h"
#include "store/keys.h"
#include "store/raft_codec.h"

/* Reads key from cf of e; *val is rocksdb-malloc'd (rocksdb_free), NULL if missing. */
static int db_get(struct engine *e, int cf, const void *key, size_t klen, char **val, size_t *vlen)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *err = NULL;
    *val = rocksdb_get_cf(engine_db(e), ro, engine_cf(e, cf), key, klen, vlen, &err);
    rocksdb_readoptions_destroy(ro);
    if (err) {
        rocksdb_free(err);
        return STORAGE_ERR_IO;
    }
    return 0;
}

static void put_msg(rocksdb_writebatch_t *wb, struct engine *e, int cf, const void *key,
                    size_t klen, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t stackbuf[512];
    uint8_t *buf = len <= sizeof stackbuf ? stackbuf : malloc(len);
    if (!buf)
        abort(); /* losing Raft state silently would corrupt the replica */
    protobuf_c_message_pack(m, buf);
    rocksdb_writebatch_put_cf(wb, engine_cf(e, cf), key, klen, (const char *)buf, len);
    if (buf != stackbuf)
        free(buf);
}

/* Reads and decodes the message stored at key; *msg NULL when absent. */
static int load_msg(struct engine *e, int cf, const uint8_t *key, size_t klen,
                    const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg)
{
    char *v;
    size_t vlen;
    *msg = NULL;
    int rc = db_get(e, cf, key, klen, &v, &vlen);
    if (rc || !v)
        return rc;
    *msg = protobuf_c_message_unpack(desc, NULL, vlen, (const uint8_t *)v);
    rocksdb_free(v);
    return *msg ? 0 : STORAGE_ERR_IO;
}

static int load_raft_state(struct peer_storage *ps, int *found)
{
    uint8_t key[KEYS_REGION_KEY_LEN];
    keys_raft_state(ps->region_id, key);
    ProtobufCMessage *m;
    int rc = load_msg(ps->raft, STORAGE_CF_DEFAULT, key, sizeof key,
                      &raft_serverpb__raft_local_state__descriptor, &m);
    *found = m != NULL;
    if (rc || !m)
        return rc;
    RaftServerpb__RaftLocalState *st = (RaftServerpb__RaftLocalState *)m;
    if (st->hard_state)
        raft_codec_hard_state_from_proto(st->hard_state, &ps->hs);
    ps->last_index = st->last_index;
    ps->last_term = st->last_term;
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

static int load_apply_state(struct peer_storage *ps, int *found)
{
    uint8_t key[KEYS_REGION_KEY_LEN];
    keys_apply_state(ps->region_id, key);
    ProtobufCMessage *m;
    int rc = load_msg(ps->kv, ENGINE_CF_META, key, sizeof key,
                      &raft_serverpb__raft_apply_state__descriptor, &m);
    *found = m != NULL;
    if (rc || !m)
        return rc;
    RaftServerpb__RaftApplyState *st = (RaftServerpb__RaftApplyState *)m;
    ps->applied_index = st->applied_index;
    if (st->truncated_state) {
        ps->truncated_index = st->truncated_state->index;
        ps->truncated_term = st->truncated_state->term;
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

static int load_region_state(struct peer_storage *ps, int *found)
{
    uint8_t key[KEYS_REGION_KEY_LEN];
    keys_region_state(ps->region_id, key);
    ProtobufCMessage *m;
    int rc = load_msg(ps->kv, ENGINE_CF_META, key, sizeof key,
                      &raft_serverpb__region_local_state__descriptor, &m);
    *found = m != NULL;
    if (rc || !m)
        return rc;
    RaftServerpb__RegionLocalState *st = (RaftServerpb__RegionLocalState *)m;
    if (!st->region)
        rc = STORAGE_ERR_IO;
    else if (store_region_from_proto(&ps->region, st->region))
        rc = STORAGE_ERR_NOMEM;
    ps->tombstone = st->state == RAFT_SERVERPB__PEER_STATE__Tombstone;
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

/* The term of entry idx read from the raft DB; 0 with RAFT_ERR_UNAVAILABLE if missing. */
static int read_entry(struct peer_storage *ps, uint64_t idx, struct raft_entry *out)
{
    uint8_t key[KEYS_RAFT_LOG_KEY_LEN];
    keys_raft_log(ps->region_id, idx, key);
    char *v;
    size_t vlen;
    if (db_get(ps->raft, STORAGE_CF_DEFAULT, key, sizeof key, &v, &vlen))
        return RAFT_ERR_STORAGE;
    if (!v)
        return RAFT_ERR_UNAVAILABLE;
    int rc = raft_codec_entry_decode(v, vlen, out) ? RAFT_ERR_STORAGE : 0;
    rocksdb_free(v);
    return rc;
}

int peer_storage_load(struct peer_storage *ps, struct engine *kv, struct engine *raft,
                      uint64_t store_id, uint64_t region_id)
{
    memset(ps, 0, sizeof *ps);
    ps->region_id = region_id;
    ps->store_id = store_id;
    ps->kv = kv;
    ps->raft = raft;
    int found_region = 0, found_apply = 0, found_raft = 0;
    int rc = load_region_state(ps, &found_region);
    if (!rc)
        rc = load_apply_state(ps, &found_apply);
    if (!rc)
        rc = load_raft_state(ps, &found_raft);
    if (rc)
        return rc;
    if (!found_region) {
        snprintf(ps->errmsg, sizeof ps->errmsg, "region %llu has no state",
                 (unsigned long long)region_id);
        return STORAGE_ERR_NOT_FOUND;
    }
    /* A region split off another starts with its apply state only: its log
     * position is the initial one (store/split.c). */
    if (!ps->tombstone && found_apply && !found_raft && ps->region.n_peers &&
        ps->applied_index == STORE_INIT_LOG_INDEX && ps->truncated_index == STORE_INIT_LOG_INDEX) {
        ps->hs.term = STORE_INIT_LOG_TERM;
        ps->hs.commit = STORE_INIT_LOG_INDEX;
        ps->last_index = STORE_INIT_LOG_INDEX;
        ps->last_term = STORE_INIT_LOG_TERM;
        found_raft = 1;
    }
    if (!ps->tombstone && (!found_apply || !found_raft)) {
        snprintf(ps->errmsg, sizeof ps->errmsg, "region %llu: state incomplete",
                 (unsigned long long)region_id);
        return STORAGE_ERR_IO;
    }
    /* Only entries, term and vote are synced when they change; a commit index alone is not
     * (store/raftstore.c), so after a power loss the apply state may be ahead of it. What was
     * applied was committed: the commit index is at least the applied one. */
    if (!ps->tombstone && ps->hs.commit < ps->applied_index)
        ps->hs.commit = ps->applied_index;
    /* The log may be shorter than the applied index after a snapshot. */
    if (ps->last_index < ps->truncated_index) {
        ps->last_index = ps->truncated_index;
        ps->last_term = ps->truncated_term;
    }
    if (ps->applied_index == ps->truncated_index) {
        ps->applied_term = ps->truncated_term;
    } else {
        struct raft_entry e;
        if (read_entry(ps, ps->applied_index, &e) == 0) {
            ps->applied_term = e.term;
            raft_entry_free(&e);
        }
    }
    return 0;
}

int peer_storage_init_new(struct peer_storage *ps, struct engine *kv, struct engine *raft,
                          uint64_t store_id, const struct region *region)
{
    memset(ps, 0, sizeof *ps);
    ps->region_id = region->id;
    ps->store_id = store_id;
    ps->kv = kv;
    ps->raft = raft;
    if (store_region_copy(&ps->region, region))
        return STORAGE_ERR_NOMEM;
    int found = 0;
    int rc = load_raft_state(ps, &found); /* keeps a vote cast before a restart */
    if (rc)
        return rc;
    if (region->n_peers == 0) {
        ps->last_index = ps->last_term = 0;
        return 0;
    }
    /* An initialized region starts with its log truncated at the initial index. */
    ps->hs.term = ps->hs.term > STORE_INIT_LOG_TERM ? ps->hs.term : STORE_INIT_LOG_TERM;
    ps->hs.commit = STORE_INIT_LOG_INDEX;
    ps->last_index = ps->applied_index = ps->truncated_index = STORE_INIT_LOG_INDEX;
    ps->last_term = ps->applied_term = ps->truncated_term = STORE_INIT_LOG_TERM;
    rocksdb_writebatch_t *kv_wb = rocksdb_writebatch_create();
    rocksdb_writebatch_t *raft_wb = rocksdb_writebatch_create();
    peer_storage_apply_state_to_batch(ps, kv_wb);
    peer_storage_region_state_to_batch(ps, NULL, 0, kv_wb);
    peer_storage_raft_state_to_batch(ps, raft_wb);
    char err[256];
    rc = engine_write_batch(raft, raft_wb, 1, err, sizeof err);
    if (!rc)
        rc = engine_write_batch(kv, kv_wb, 1, err, sizeof err);
    rocksdb_writebatch_destroy(kv_wb);
    rocksdb_writebatch_destroy(raft_wb);
    if (rc)
        snprintf(ps->errmsg, sizeof ps->errmsg, "%s", err);
    return rc;
}

void peer_storage_close(struct peer_storage *ps)
{
    store_region_free(&ps->region);
    raft_snapshot_free(&ps->snap);
}

int peer_storage_initialized(const struct peer_storage *ps)
{
    return ps->region.n_peers > 0;
}

/* ---- raft_storage ops ---- */

static int op_initial_state(void *ctx, struct raft_hard_state *hs, struct raft_conf_state *cs)
{
    struct peer_storage *ps = ctx;
    *hs = ps->hs;
    cs->n_nodes = ps->region.n_peers;
    cs->nodes = malloc((cs->n_nodes ? cs->n_nodes : 1) * sizeof *cs->nodes);
    if (!cs->nodes)
        return RAFT_ERR_NOMEM;
    for (size_t i = 0; i < cs->n_nodes; i++)
        cs->nodes[i] = ps->region.peers[i].id;
    return 0;
}

static int op_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                      struct raft_entry **out, size_t *n_out)
{
    struct peer_storage *ps = ctx;
    *out = NULL;
    *n_out = 0;
    if (lo <= ps->truncated_index)
        return RAFT_ERR_COMPACTED;
    if (hi > ps->last_index + 1)
        return RAFT_ERR_UNAVAILABLE;
    if (lo >= hi)
        return 0;
    size_t cap = hi - lo < 64 ? hi - lo : 64, n = 0;
    struct raft_entry *ents = malloc(cap * sizeof *ents);
    if (!ents)
        return RAFT_ERR_NOMEM;
    uint8_t start[KEYS_RAFT_LOG_KEY_LEN];
    keys_raft_log(ps->region_id, lo, start);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(engine_db(ps->raft), ro,
                                                        engine_cf(ps->raft, STORAGE_CF_DEFAULT));
    uint64_t bytes = 0, want = lo;
    int rc = 0;
    for (rocksdb_iter_seek(it, (const char *)start, sizeof start);
         rocksdb_iter_valid(it) && want < hi; rocksdb_iter_next(it), want++) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (keys_raft_log_index(ps->region_id, k, klen) != want)
            break; /* a hole: the log is not contiguous */
        const char *v = rocksdb_iter_value(it, &vlen);
        if (n == cap) {
            cap *= 2;
            struct raft_entry *grown = realloc(ents, cap * sizeof *ents);
            if (!grown) {
                rc = RAFT_ERR_NOMEM;
                break;
            }
            ents = grown;
        }
        if (raft_codec_entry_decode(v, vlen, &ents[n]) != 0) {
            rc = RAFT_ERR_STORAGE;
            break;
        }
        bytes += ents[n].data_len;
        n++;
        if (max_bytes && bytes > max_bytes)
            break;
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (!rc && n == 0)
        rc = RAFT_ERR_UNAVAILABLE;
    if (rc) {
        raft_entries_free(ents, n);
        return rc;
    }
    *out = ents;
    *n_out = n;
    return 0;
}

static int op_term(void *ctx, uint64_t i, uint64_t *term)
{
    struct peer_storage *ps = ctx;
    *term = 0;
    if (i == ps->truncated_index) {
        *term = ps->truncated_term;
        return 0;
    }
    if (i < ps->truncated_index)
        return RAFT_ERR_COMPACTED;
    if (i > ps->last_index)
        return RAFT_ERR_UNAVAILABLE;
    if (i == ps->last_index) {
        *term = ps->last_term;
        return 0;
    }
    struct raft_entry e;
    int rc = read_entry(ps, i, &e);
    if (rc)
        return rc;
    *term = e.term;
    raft_entry_free(&e);
    return 0;
}

static int op_first_index(void *ctx, uint64_t *index)
{
    *index = ((struct peer_storage *)ctx)->truncated_index + 1;
    return 0;
}

static int op_last_index(void *ctx, uint64_t *index)
{
    *index = ((struct peer_storage *)ctx)->last_index;
    return 0;
}

static int op_snapshot(void *ctx, struct raft_snapshot *out)
{
    struct peer_storage *ps = ctx;
    memset(out, 0, sizeof *out);
    /* A snapshot taken under another epoch describes another range or other peers: sent to a
     * new peer it would overlap the regions split off since (the receiver drops it, again and
     * again) or leave out the peer itself. */
    if (ps->snap_state == PEER_SNAP_READY && ps->snap.metadata.index >= ps->truncated_index &&
        ps->snap_version == ps->region.version && ps->snap_conf_ver == ps->region.conf_ver)
        return raft_snapshot_copy(out, &ps->snap) ? RAFT_ERR_NOMEM : 0;
    if (ps->snap_state != PEER_SNAP_GENERATING)
        ps->snap_requested = 1;
    return RAFT_ERR_SNAP_TEMP_UNAVAILABLE;
}

static const struct raft_storage_ops peer_storage_ops = {
    .initial_state = op_initial_state,
    .entries = op_entries,
    .term = op_term,
    .first_index = op_first_index,
    .last_index = op_last_index,
    .snapshot = op_snapshot,
};

struct raft_storage peer_storage_raft_storage(struct peer_storage *ps)
{
    return (struct raft_storage){&peer_storage_ops, ps};
}

/* ---- persistence ---- */

int peer_storage_append_to_batch(struct peer_storage *ps, const struct raft_entry *ents, size_t n,
                                 rocksdb_writebatch_t *raft_wb)
{
    if (n == 0)
        return 0;
    rocksdb_column_family_handle_t *cf = engine_cf(ps->raft, STORAGE_CF_DEFAULT);
    for (size_t i = 0; i < n; i++) {
        if (ents[i].index <= ps->truncated_index)
            continue;
        uint8_t key[KEYS_RAFT_LOG_KEY_LEN];
        keys_raft_log(ps->region_id, ents[i].index, key);
        uint8_t *buf;
        size_t len;
        if (raft_codec_entry_encode(&ents[i], &buf, &len))
            return STORAGE_ERR_NOMEM;
        rocksdb_writebatch_put_cf(raft_wb, cf, (const char *)key, sizeof key, (const char *)buf,
                                  len);
        free(buf);
    }
    uint64_t new_last = ents[n - 1].index;
    /* Entries past the new end belong to an overwritten, conflicting tail. */
    for (uint64_t i = new_last + 1; i <= ps->last_index; i++) {
        uint8_t key[KEYS_RAFT_LOG_KEY_LEN];
        keys_raft_log(ps->region_id, i, key);
        rocksdb_writebatch_delete_cf(raft_wb, cf, (const char *)key, sizeof key);
    }
    if (new_last > ps->truncated_index) {
        ps->last_index = new_last;
        ps->last_term = ents[n - 1].term;
    }
    return 0;
}

void peer_storage_raft_state_to_batch(struct peer_storage *ps, rocksdb_writebatch_t *raft_wb)
{
    Eraftpb__HardState hs;
    raft_codec_hard_state_to_proto(&ps->hs, &hs);
    RaftServerpb__RaftLocalState st = RAFT_SERVERPB__RAFT_LOCAL_STATE__INIT;
    st.hard_state = &hs;
    st.last_index = ps->last_index;
    st.last_term = ps->last_term;
    uint8_t key[KEYS_REGION_KEY_LEN];
    keys_raft_state(ps->region_id, key);
    put_msg(raft_wb, ps->raft, STORAGE_CF_DEFAULT, key, sizeof key, &st.base);
}

void peer_storage_apply_state_to_batch(struct peer_storage *ps, rocksdb_writebatch_t *kv_wb)
{
    RaftServerpb__RaftTruncatedState ts = RAFT_SERVERPB__RAFT_TRUNCATED_STATE__INIT;
    ts.index = ps->truncated_index;
    ts.term = ps->truncated_term;
    RaftServerpb__RaftApplyState st = RAFT_SERVERPB__RAFT_APPLY_STATE__INIT;
    st.applied_index = ps->applied_index;
    st.truncated_state = &ts;
    uint8_t key[KEYS_REGION_KEY_LEN];
    keys_apply_state(ps->region_id, key);
    put_msg(kv_wb, ps->kv, ENGINE_CF_META, key, sizeof key, &st.base);
}

void peer_storage_region_state_to_batch(struct peer_storage *ps, const struct region *region,
                                        int tombstone, rocksdb_writebatch_t *kv_wb)
{
    Metapb__Region *r = store_region_to_proto(region ? region : &ps->region);
    if (!r)
        abort(); /* out of memory while persisting region state */
    RaftServerpb__RegionLocalState st = RAFT_SERVERPB__REGION_LOCAL_STATE__INIT;
    st.state = tombstone ? RAFT_SERVERPB__PEER_STATE__Tombstone : RAFT_SERVERPB__PEER_STATE__Normal;
    st.region = r;
    uint8_t key[KEYS_REGION_KEY_LEN];
    keys_region_state(region ? region->id : ps->region_id, key);
    put_msg(kv_wb, ps->kv, ENGINE_CF_META, key, sizeof key, &st.base);
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void delete_log_range(struct peer_storage *ps, uint64_t from, uint64_t to,
                             rocksdb_writebatch_t *raft_wb)
{
    uint8_t start[KEYS_RAFT_LOG_KEY_LEN], end[KEYS_RAFT_LOG_KEY_LEN];
    keys_raft_log(ps->region_id, from, start);
    keys_raft_log(ps->region_id, to, end);
    rocksdb_writebatch_delete_range_cf(raft_wb, engine_cf(ps->raft, STORAGE_CF_DEFAULT),
                                       (const char *)start, sizeof start, (const char *)end,
                                       sizeof end);
}

int peer_storage_apply_snapshot_meta(struct peer_storage *ps, const struct raft_snapshot *snap,
                                     const struct region *region, rocksdb_writebatch_t *kv_wb,
                                     rocksdb_writebatch_t *raft_wb)
{
    struct region copy;
    if (store_region_copy(&copy, region))
        return STORAGE_ERR_NOMEM;
    delete_log_range(ps, 0, ps->last_index + 1, raft_wb);
    store_region_free(&ps->region);
    ps->region = copy;
    ps->last_index = ps->applied_index = ps->truncated_index = snap->metadata.index;
    ps->last_term = ps->applied_term = ps->truncated_term = snap->metadata.term;
    if (ps->hs.commit < snap->metadata.index)
        ps->hs.commit = snap->metadata.index;
    if (ps->hs.term < snap->metadata.term)
        ps->hs.term = snap->metadata.term;
    peer_storage_raft_state_to_batch(ps, raft_wb);
    peer_storage_apply_state_to_batch(ps, kv_wb);
    peer_storage_region_state_to_batch(ps, NULL, 0, kv_wb);
    return 0;
}

void peer_storage_clear_raft(struct peer_storage *ps, rocksdb_writebatch_t *raft_wb)
{
    delete_log_range(ps, 0, ps->last_index + 1, raft_wb);
    uint8_t key[KEYS_REGION_KEY_LEN];
    keys_raft_state(ps->region_id, key);
    rocksdb_writebatch_delete_cf(raft_wb, engine_cf(ps->raft, STORAGE_CF_DEFAULT),
                                 (const char *)key, sizeof key);
}

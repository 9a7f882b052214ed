/* raft_codec.c — Raft structs to and from eraftpb protobuf messages. */
#include "store/raft_codec.h"

#include <stdlib.h>
#include <string.h>

static void entry_to_proto(const struct raft_entry *e, Eraftpb__Entry *p)
{
    eraftpb__entry__init(p);
    p->entry_type = (Eraftpb__EntryType)e->entry_type;
    p->term = e->term;
    p->index = e->index;
    p->data.data = e->data;
    p->data.len = e->data_len;
}

static int entry_from_proto(const Eraftpb__Entry *p, struct raft_entry *out)
{
    memset(out, 0, sizeof *out);
    out->entry_type = (enum raft_entry_type)p->entry_type;
    out->term = p->term;
    out->index = p->index;
    if (p->data.len) {
        out->data = malloc(p->data.len);
        if (!out->data)
            return -1;
        memcpy(out->data, p->data.data, p->data.len);
        out->data_len = p->data.len;
    }
    return 0;
}

int raft_codec_entry_encode(const struct raft_entry *e, uint8_t **buf, size_t *len)
{
    Eraftpb__Entry p;
    entry_to_proto(e, &p);
    *len = eraftpb__entry__get_packed_size(&p);
    *buf = malloc(*len ? *len : 1);
    if (!*buf)
        return -1;
    eraftpb__entry__pack(&p, *buf);
    return 0;
}

int raft_codec_entry_decode(const void *buf, size_t len, struct raft_entry *out)
{
    Eraftpb__Entry *p = eraftpb__entry__unpack(NULL, len, buf);
    if (!p)
        return -1;
    int rc = entry_from_proto(p, out);
    eraftpb__entry__free_unpacked(p, NULL);
    return rc;
}

/* Everything a proto message built from a raft_message allocates, in one block. */
struct proto_message_block {
    Eraftpb__Message msg;
    Eraftpb__Snapshot snap;
    Eraftpb__SnapshotMetadata meta;
    Eraftpb__ConfState cs;
    Eraftpb__Entry **entry_ptrs;
    Eraftpb__Entry *entries;
};

Eraftpb__Message *raft_codec_message_to_proto(const struct raft_message *m)
{
    struct proto_message_block *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    Eraftpb__Message *p = &b->msg;
    eraftpb__message__init(p);
    p->msg_type = (Eraftpb__MessageType)m->msg_type;
    p->to = m->to;
    p->from = m->from;
    p->term = m->term;
    p->log_term = m->log_term;
    p->index = m->index;
    p->commit = m->commit;
    p->reject = m->reject;
    p->reject_hint = m->reject_hint;
    p->context.data = m->context;
    p->context.len = m->context_len;
    if (m->n_entries) {
        b->entry_ptrs = malloc(m->n_entries * sizeof *b->entry_ptrs);
        b->entries = malloc(m->n_entries * sizeof *b->entries);
        if (!b->entry_ptrs || !b->entries) {
            raft_codec_message_proto_free(p);
            return NULL;
        }
        for (size_t i = 0; i < m->n_entries; i++) {
            entry_to_proto(&m->entries[i], &b->entries[i]);
            b->entry_ptrs[i] = &b->entries[i];
        }
        p->entries = b->entry_ptrs;
        p->n_entries = m->n_entries;
    }
    if (m->snapshot.metadata.index || m->msg_type == RAFT_MSG_SNAPSHOT) {
        eraftpb__snapshot__init(&b->snap);
        eraftpb__snapshot_metadata__init(&b->meta);
        eraftpb__conf_state__init(&b->cs);
        b->snap.data.data = m->snapshot.data;
        b->snap.data.len = m->snapshot.data_len;
        b->meta.index = m->snapshot.metadata.index;
        b->meta.term = m->snapshot.metadata.term;
        b->cs.nodes = m->snapshot.metadata.conf_state.nodes;
        b->cs.n_nodes = m->snapshot.metadata.conf_state.n_nodes;
        b->meta.conf_state = &b->cs;
        b->snap.metadata = &b->meta;
        p->snapshot = &b->snap;
    }
    return p;
}

void raft_codec_message_proto_free(Eraftpb__Message *pm)
{
    if (!pm)
        return;
    struct proto_message_block *b = (struct proto_message_block *)pm;
    free(b->entry_ptrs);
    free(b->entries);
    free(b);
}

static uint8_t *dup_bytes(const void *p, size_t len)
{
    if (!len)
        return NULL;
    uint8_t *d = malloc(len);
    if (d)
        memcpy(d, p, len);
    return d;
}

int raft_codec_message_from_proto(const Eraftpb__Message *pm, struct raft_message *out)
{
    memset(out, 0, sizeof *out);
    out->msg_type = (enum raft_msg_type)pm->msg_type;
    out->to = pm->to;
    out->from = pm->from;
    out->term = pm->term;
    out->log_term = pm->log_term;
    out->index = pm->index;
    out->commit = pm->commit;
    out->reject = pm->reject;
    out->reject_hint = pm->reject_hint;
    if (pm->context.len) {
        out->context = dup_bytes(pm->context.data, pm->context.len);
        if (!out->context)
            goto fail;
        out->context_len = pm->context.len;
    }
    if (pm->n_entries) {
        out->entries = calloc(pm->n_entries, sizeof *out->entries);
        if (!out->entries)
            goto fail;
        out->n_entries = pm->n_entries;
        for (size_t i = 0; i < pm->n_entries; i++)
            if (entry_from_proto(pm->entries[i], &out->entries[i]) != 0)
                goto fail;
    }
    if (pm->snapshot) {
        const Eraftpb__Snapshot *s = pm->snapshot;
        if (s->data.len) {
            out->snapshot.data = dup_bytes(s->data.data, s->data.len);
            if (!out->snapshot.data)
                goto fail;
            out->snapshot.data_len = s->data.len;
        }
        if (s->metadata) {
            out->snapshot.metadata.index = s->metadata->index;
            out->snapshot.metadata.term = s->metadata->term;
            const Eraftpb__ConfState *cs = s->metadata->conf_state;
            if (cs && cs->n_nodes) {
                out->snapshot.metadata.conf_state.nodes = malloc(cs->n_nodes * sizeof(uint64_t));
                if (!out->snapshot.metadata.conf_state.nodes)
                    goto fail;
                memcpy(out->snapshot.metadata.conf_state.nodes, cs->nodes,
                       cs->n_nodes * sizeof(uint64_t));
                out->snapshot.metadata.conf_state.n_nodes = cs->n_nodes;
            }
        }
    }
    return 0;
fail:
    raft_message_free(out);
    return -1;
}

void raft_codec_hard_state_to_proto(const struct raft_hard_state *hs, Eraftpb__HardState *out)
{
    eraftpb__hard_state__init(out);
    out->term = hs->term;
    out->vote = hs->vote;
    out->commit = hs->commit;
}

void raft_codec_hard_state_from_proto(const Eraftpb__HardState *p, struct raft_hard_state *out)
{
    out->term = p->term;
    out->vote = p->vote;
    out->commit = p->commit;
}

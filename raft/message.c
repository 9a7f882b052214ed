/* message.c — error strings and deep copy/free of the eraftpb mirror structs. */
#include "raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

const char *raft_strerror(int code)
{
    switch (code) {
    case RAFT_OK:
        return "ok";
    case RAFT_ERR_NOMEM:
        return "out of memory";
    case RAFT_ERR_COMPACTED:
        return "requested index is unavailable due to compaction";
    case RAFT_ERR_UNAVAILABLE:
        return "requested entry at index is unavailable";
    case RAFT_ERR_SNAP_OUT_OF_DATE:
        return "requested index is older than the existing snapshot";
    case RAFT_ERR_SNAP_TEMP_UNAVAILABLE:
        return "snapshot is temporarily unavailable";
    case RAFT_ERR_PROPOSAL_DROPPED:
        return "raft proposal dropped";
    case RAFT_ERR_INVALID:
        return "invalid argument";
    case RAFT_ERR_STEP_LOCAL_MSG:
        return "raft: cannot step raft local message";
    case RAFT_ERR_STEP_PEER_NOT_FOUND:
        return "raft: cannot step as peer not found";
    case RAFT_ERR_STORAGE:
        return "raft storage failure";
    default:
        return "unknown raft error";
    }
}

static int bytes_dup(uint8_t **dst, const uint8_t *src, size_t len)
{
    *dst = NULL;
    if (len == 0)
        return RAFT_OK;
    *dst = malloc(len);
    if (*dst == NULL)
        return RAFT_ERR_NOMEM;
    memcpy(*dst, src, len);
    return RAFT_OK;
}

int raft_entry_copy(struct raft_entry *dst, const struct raft_entry *src)
{
    *dst = *src;
    if (bytes_dup(&dst->data, src->data, src->data_len) != RAFT_OK) {
        memset(dst, 0, sizeof *dst);
        return RAFT_ERR_NOMEM;
    }
    return RAFT_OK;
}

void raft_entry_free(struct raft_entry *e)
{
    free(e->data);
    memset(e, 0, sizeof *e);
}

void raft_entries_free(struct raft_entry *ents, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ents[i].data);
    free(ents);
}

int raft_conf_state_copy(struct raft_conf_state *dst, const struct raft_conf_state *src)
{
    dst->nodes = NULL;
    dst->n_nodes = 0;
    if (src->n_nodes == 0)
        return RAFT_OK;
    dst->nodes = malloc(src->n_nodes * sizeof *dst->nodes);
    if (dst->nodes == NULL)
        return RAFT_ERR_NOMEM;
    memcpy(dst->nodes, src->nodes, src->n_nodes * sizeof *dst->nodes);
    dst->n_nodes = src->n_nodes;
    return RAFT_OK;
}

void raft_conf_state_free(struct raft_conf_state *cs)
{
    free(cs->nodes);
    cs->nodes = NULL;
    cs->n_nodes = 0;
}

int raft_snapshot_copy(struct raft_snapshot *dst, const struct raft_snapshot *src)
{
    *dst = *src;
    dst->data = NULL;
    dst->metadata.conf_state.nodes = NULL;
    if (bytes_dup(&dst->data, src->data, src->data_len) != RAFT_OK)
        goto fail;
    if (raft_conf_state_copy(&dst->metadata.conf_state, &src->metadata.conf_state) != RAFT_OK)
        goto fail_data;
    return RAFT_OK;
fail_data:
    free(dst->data);
fail:
    memset(dst, 0, sizeof *dst);
    return RAFT_ERR_NOMEM;
}

void raft_snapshot_free(struct raft_snapshot *s)
{
    free(s->data);
    raft_conf_state_free(&s->metadata.conf_state);
    memset(s, 0, sizeof *s);
}

int raft_message_copy(struct raft_message *dst, const struct raft_message *src)
{
    *dst = *src;
    dst->entries = NULL;
    dst->n_entries = 0;
    dst->context = NULL;
    memset(&dst->snapshot, 0, sizeof dst->snapshot);
    if (src->n_entries > 0) {
        dst->entries = calloc(src->n_entries, sizeof *dst->entries);
        if (dst->entries == NULL)
            goto fail;
        for (size_t i = 0; i < src->n_entries; i++) {
            if (raft_entry_copy(&dst->entries[i], &src->entries[i]) != RAFT_OK)
                goto fail;
            dst->n_entries = i + 1;
        }
    }
    if (raft_snapshot_copy(&dst->snapshot, &src->snapshot) != RAFT_OK)
        goto fail;
    if (bytes_dup(&dst->context, src->context, src->context_len) != RAFT_OK)
        goto fail;
    return RAFT_OK;
fail:
    raft_message_free(dst);
    return RAFT_ERR_NOMEM;
}

void raft_message_free(struct raft_message *m)
{
    raft_entries_free(m->entries, m->n_entries);
    raft_snapshot_free(&m->snapshot);
    free(m->context);
    memset(m, 0, sizeof *m);
}

void raft_status_free(struct raft_status *st)
{
    free(st->peers);
    st->peers = NULL;
    st->n_peers = 0;
}

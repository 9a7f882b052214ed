/* raft_codec.h — conversion between the Raft library's plain structs and eraftpb messages (internal
 * to store/). */
#ifndef TINYKV_STORE_RAFT_CODEC_H
#define TINYKV_STORE_RAFT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "eraftpb.pb-c.h"
#include "raft/raft.h"

/* Encodes e as an eraftpb.Entry into a malloc'd buffer (*buf owned by the caller). */
int raft_codec_entry_encode(const struct raft_entry *e, uint8_t **buf, size_t *len);
/* Decodes an eraftpb.Entry into *out (owned; raft_entry_free). -1 if it does not decode. */
int raft_codec_entry_decode(const void *buf, size_t len, struct raft_entry *out);

/*
 * raft_codec_message_to_proto builds an Eraftpb__Message that borrows m's
 * arrays and bytes (valid while m lives); release it with
 * raft_codec_message_proto_free, which frees only what it allocated.
 */
Eraftpb__Message *raft_codec_message_to_proto(const struct raft_message *m);
void raft_codec_message_proto_free(Eraftpb__Message *pm);

/* raft_codec_message_from_proto deep-copies pm into *out (owned; raft_message_free). */
int raft_codec_message_from_proto(const Eraftpb__Message *pm, struct raft_message *out);

/* Hard state and conf change. */
void raft_codec_hard_state_to_proto(const struct raft_hard_state *hs, Eraftpb__HardState *out);
void raft_codec_hard_state_from_proto(const Eraftpb__HardState *p, struct raft_hard_state *out);

#endif

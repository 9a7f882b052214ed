/* raft_harness.h — an in-process Raft cluster over a simulated network, with safety checkers. */
#ifndef TINYKV_TESTS_LIB_RAFT_HARNESS_H
#define TINYKV_TESTS_LIB_RAFT_HARNESS_H

/*
 * What it owns: a set of raft_rawnodes (ids 1..RH_MAX_NODES-1) each with a
 * raft_memory_storage that survives crashes, a message queue between them
 * with filters (cuts, drop rates, ignored types), the Ready handling loop
 * (persist, send, apply, advance) and the Raft safety checkers: election
 * safety, log matching, leader completeness and state-machine safety. A
 * checker failure is recorded in net->violation (first one wins) and every
 * test asserts it stays empty.
 *
 * Who calls it: the raft unit tests and the randomized simulation.
 * What it must never do: reach into raft internals; it uses raft.h only.
 */

#include "raft/raft.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RH_MAX_NODES 10 /* ids 1..9 */

struct rh_config {
    int n; /* initial members 1..n */
    int election_ticks;
    int heartbeat_ticks;
    int pre_vote;
    int check_quorum;
    uint64_t max_size_per_msg;
    uint64_t max_entries_per_msg;
    int max_inflight_msgs;
    uint64_t seed;
    /* Bootstrap members with a snapshot at index 5 / term 5 (as TinyKV does)
     * so that nodes added later must be caught up by snapshot. */
    bool bootstrap_snapshot;
    bool verbose; /* print the nodes' raft log lines to stderr */
};

/* One applied entry as the state machine saw it. */
struct rh_applied {
    uint64_t index;
    uint64_t term;
    enum raft_entry_type type;
    uint8_t *data;
    size_t data_len;
};

struct rh_node {
    uint64_t id;
    bool exists; /* has storage (created) */
    bool up;     /* has a running rawnode */
    struct raft_memory_storage *ms;
    struct raft_rawnode *rn;
    uint64_t applied;       /* the persistent state machine's applied index */
    struct rh_applied *log; /* what this node applied (for tests), owned */
    size_t n_log;
    struct raft_read_state *reads; /* read states received, owned */
    size_t n_reads;
    int last_role;
    uint64_t last_lead;
};

struct rh_msg {
    struct raft_message m; /* owned deep copy */
};

struct rh_net {
    struct rh_config cfg;
    struct rh_node nodes[RH_MAX_NODES];
    struct rh_msg *q; /* in flight */
    size_t n_q;
    size_t cap_q;
    bool cut[RH_MAX_NODES][RH_MAX_NODES]; /* cut[from][to]: drop */
    double drop[RH_MAX_NODES][RH_MAX_NODES];
    bool ignore_type[32];
    /* optional test filter: return true to drop m (borrowed for the call) */
    bool (*filter)(void *ctx, const struct raft_message *m);
    void *filter_ctx;
    uint64_t rng;
    /* random-delivery mode: messages stay queued until rh_net_deliver_one */
    bool async;
    double dup_rate;
    double crash_after_persist; /* chance a node crashes after persisting a Ready, before sending */
    /* checker state */
    uint64_t *leader_of_term; /* indexed by term */
    size_t n_leader_of_term;
    struct rh_committed *committed; /* indexed by log index */
    size_t n_committed;
    uint64_t max_committed;
    struct rh_entry_slot *seen; /* hash table (index, term) -> entry digest */
    size_t seen_cap;
    size_t seen_n;
    uint64_t sent[RH_MAX_NODES][32]; /* messages produced, by sender and type */
    uint64_t rejects[RH_MAX_NODES];  /* rejected append responses, by sender */
    size_t max_append_entries;       /* largest MsgAppend produced, in entries */
    size_t max_append_bytes;         /* and in data bytes */
    uint64_t *read_floor; /* per read request: highest index committed when it was issued */
    size_t n_read_floor;
    uint64_t reads_done;
    char violation[512];
    uint64_t msgs_delivered;
};

struct rh_committed {
    bool set;
    uint64_t term;
    uint64_t digest;
};

struct rh_entry_slot {
    uint64_t index; /* 0: empty slot */
    uint64_t term;
    uint64_t digest;
    uint64_t prev_term;
};

/* Fills cfg with defaults: 3 nodes, election 10, heartbeat 1, no limits. */
void rh_config_default(struct rh_config *cfg);
/* Creates the members 1..cfg->n (storage and rawnode). Aborts on OOM. */
void rh_net_init(struct rh_net *net, const struct rh_config *cfg);
void rh_net_close(struct rh_net *net);

/* Creates node id with empty storage and no members (a peer to be added). */
void rh_node_create(struct rh_net *net, uint64_t id);
/* Drops the rawnode (its volatile state and unsent messages); storage stays. */
void rh_node_crash(struct rh_net *net, uint64_t id);
/* (Re)builds the rawnode from storage and the persisted applied index. */
void rh_node_restart(struct rh_net *net, uint64_t id);
struct rh_node *rh_node(struct rh_net *net, uint64_t id);
/* Crashes id and rewrites its storage: members 1..net->cfg.n, entries 1..n
 * with the given terms (data "t<term>i<index>"), hard state {term, vote,
 * commit}; then restarts it with applied = commit. */
void rh_node_set_log(struct rh_net *net, uint64_t id, const uint64_t *terms, size_t n,
                     uint64_t term, uint64_t vote, uint64_t commit);

/* Handles node id's Ready if it has one; returns whether it had one. */
bool rh_node_handle_ready(struct rh_net *net, uint64_t id);
/* Handles every node's Ready until none is left (no delivery). */
void rh_net_flush(struct rh_net *net);
/* Delivers (synchronous mode) every queued message, handling Readies, until quiet. */
void rh_net_drain(struct rh_net *net);
/* Steps m (borrowed) into node m->to, then drains. */
void rh_net_send(struct rh_net *net, const struct raft_message *m);
/* Delivers one random queued message (async mode), applying drop/dup; false if none. */
bool rh_net_deliver_one(struct rh_net *net);
/* Drops every queued message. */
void rh_net_clear_queue(struct rh_net *net);

void rh_net_cut(struct rh_net *net, uint64_t a, uint64_t b); /* both directions */
void rh_net_isolate(struct rh_net *net, uint64_t id);
void rh_net_recover(struct rh_net *net); /* clears cuts, drops and ignores */
void rh_net_set_drop(struct rh_net *net, uint64_t from, uint64_t to, double rate);
void rh_net_ignore(struct rh_net *net, enum raft_msg_type t);

/* Ticks node id once (then handles its Ready). */
void rh_tick(struct rh_net *net, uint64_t id);
/* Ticks every up node n times, draining after each round. */
void rh_tick_all(struct rh_net *net, int n);
/* Campaigns at id and drains. */
void rh_campaign(struct rh_net *net, uint64_t id);
/* Proposes data at id and drains; returns the propose result. */
int rh_propose(struct rh_net *net, uint64_t id, const char *data);
/* Proposes a conf change (harness encoding) at id and drains. */
int rh_propose_conf(struct rh_net *net, uint64_t id, enum raft_conf_change_type t, uint64_t node);
/* The harness's ConfChange encoding: 1 type byte + 8-byte little-endian id. */
void rh_conf_encode(enum raft_conf_change_type t, uint64_t node, uint8_t out[9]);

struct raft_status rh_status(struct rh_net *net, uint64_t id); /* peers freed */
/* The leader among up nodes with the highest term, or 0. */
uint64_t rh_leader(struct rh_net *net);
/* Whether node id applied an entry with exactly this data. */
bool rh_applied_data(struct rh_net *net, uint64_t id, const char *data);
/* Term of entry i in id's stable storage (0 if unavailable). */
uint64_t rh_storage_term(struct rh_net *net, uint64_t id, uint64_t i);

uint64_t rh_rand(struct rh_net *net);
/* Issues a ReadIndex at id with a fresh context; when its read state comes
 * back the checker verifies its index covers everything committed before
 * the request (linearizability). Returns the read_index result. */
int rh_read_index(struct rh_net *net, uint64_t id);

#endif

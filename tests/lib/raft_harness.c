/* raft_harness.c — the simulated Raft cluster: Ready handling, message delivery and safety
 * checkers. */
#include "tests/lib/raft_harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        fprintf(stderr, "raft_harness: out of memory\n");
        abort();
    }
    return q;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *q = calloc(n ? n : 1, sz);
    if (q == NULL) {
        fprintf(stderr, "raft_harness: out of memory\n");
        abort();
    }
    return q;
}

uint64_t rh_rand(struct rh_net *net)
{
    uint64_t x = net->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    net->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static double rand01(struct rh_net *net)
{
    return (double)(rh_rand(net) >> 11) / (double)(1ULL << 53);
}

static void violation(struct rh_net *net, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void violation(struct rh_net *net, const char *fmt, ...)
{
    if (net->violation[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(net->violation, sizeof net->violation, fmt, ap);
    va_end(ap);
}

void rh_config_default(struct rh_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->n = 3;
    cfg->election_ticks = 10;
    cfg->heartbeat_ticks = 1;
    cfg->max_size_per_msg = UINT64_MAX;
    cfg->max_entries_per_msg = 0;
    cfg->max_inflight_msgs = 256;
    cfg->seed = 1;
}

struct rh_node *rh_node(struct rh_net *net, uint64_t id)
{
    if (id == 0 || id >= RH_MAX_NODES)
        return NULL;
    return &net->nodes[id];
}

static uint64_t digest(enum raft_entry_type t, const uint8_t *data, size_t len)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)t;
    for (size_t i = 0; i < len; i++) {
        h ^= data[i];
        h *= 1099511628211ULL;
    }
    return h;
}

void rh_net_init(struct rh_net *net, const struct rh_config *cfg)
{
    memset(net, 0, sizeof *net);
    net->cfg = *cfg;
    net->rng = cfg->seed * 0x9E3779B97F4A7C15ULL + 7;
    if (net->rng == 0)
        net->rng = 1;
    uint64_t ids[RH_MAX_NODES];
    for (int i = 0; i < cfg->n; i++)
        ids[i] = (uint64_t)i + 1;
    struct raft_conf_state cs = {.nodes = ids, .n_nodes = (size_t)cfg->n};
    for (int i = 1; i <= cfg->n; i++) {
        rh_node_create(net, (uint64_t)i);
        struct rh_node *nd = rh_node(net, (uint64_t)i);
        if (cfg->bootstrap_snapshot) {
            struct raft_snapshot s = {.metadata = {.conf_state = cs, .index = 5, .term = 5}};
            raft_memory_storage_apply_snapshot(nd->ms, &s);
            struct raft_hard_state hs = {.term = 5, .commit = 5};
            raft_memory_storage_set_hard_state(nd->ms, &hs);
            nd->applied = 5;
        } else {
            raft_memory_storage_set_conf_state(nd->ms, &cs);
        }
        rh_node_restart(net, (uint64_t)i);
    }
}

void rh_node_create(struct rh_net *net, uint64_t id)
{
    struct rh_node *nd = rh_node(net, id);
    if (nd == NULL || nd->exists)
        return;
    memset(nd, 0, sizeof *nd);
    nd->id = id;
    nd->exists = true;
    if (raft_memory_storage_new(&nd->ms) != RAFT_OK)
        abort();
}

void rh_node_crash(struct rh_net *net, uint64_t id)
{
    struct rh_node *nd = rh_node(net, id);
    if (nd == NULL || !nd->up)
        return;
    raft_rawnode_free(nd->rn);
    nd->rn = NULL;
    nd->up = false;
}

static void log_to_stderr(void *ctx, int level, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "[%d] %s\n", level, msg);
}

void rh_node_restart(struct rh_net *net, uint64_t id)
{
    struct rh_node *nd = rh_node(net, id);
    if (nd == NULL || !nd->exists)
        return;
    rh_node_crash(net, id);
    struct raft_config c = {
        .id = id,
        .election_ticks = net->cfg.election_ticks,
        .heartbeat_ticks = net->cfg.heartbeat_ticks,
        .storage = raft_memory_storage_storage(nd->ms),
        .applied = nd->applied,
        .max_size_per_msg = net->cfg.max_size_per_msg,
        .max_entries_per_msg = net->cfg.max_entries_per_msg,
        .max_inflight_msgs = net->cfg.max_inflight_msgs,
        .check_quorum = net->cfg.check_quorum,
        .pre_vote = net->cfg.pre_vote,
        .seed = rh_rand(net),
        .log_fn = net->cfg.verbose ? log_to_stderr : NULL,
        .log_level = RAFT_LOG_DEBUG,
    };
    char err[256] = "";
    int rc = raft_rawnode_new(&c, &nd->rn, err, sizeof err);
    if (rc != RAFT_OK) {
        violation(net, "node %llu failed to restart: %s (%s)", (unsigned long long)id,
                  raft_strerror(rc), err);
        return;
    }
    nd->up = true;
    nd->last_role = RAFT_ROLE_FOLLOWER;
    nd->last_lead = 0;
}

void rh_node_set_log(struct rh_net *net, uint64_t id, const uint64_t *terms, size_t n,
                     uint64_t term, uint64_t vote, uint64_t commit)
{
    struct rh_node *nd = rh_node(net, id);
    rh_node_crash(net, id);
    raft_memory_storage_free(nd->ms);
    if (raft_memory_storage_new(&nd->ms) != RAFT_OK)
        abort();
    uint64_t ids[RH_MAX_NODES];
    for (int i = 0; i < net->cfg.n; i++)
        ids[i] = (uint64_t)i + 1;
    struct raft_conf_state cs = {.nodes = ids, .n_nodes = (size_t)net->cfg.n};
    raft_memory_storage_set_conf_state(nd->ms, &cs);
    for (size_t i = 0; i < n; i++) {
        char buf[48];
        int len = snprintf(buf, sizeof buf, "t%llui%zu", (unsigned long long)terms[i], i + 1);
        struct raft_entry e = {
            .term = terms[i], .index = i + 1, .data = (uint8_t *)buf, .data_len = (size_t)len};
        if (raft_memory_storage_append(nd->ms, &e, 1) != RAFT_OK)
            abort();
    }
    struct raft_hard_state hs = {.term = term, .vote = vote, .commit = commit};
    raft_memory_storage_set_hard_state(nd->ms, &hs);
    nd->applied = commit;
    rh_node_restart(net, id);
}

static void free_node(struct rh_node *nd)
{
    if (nd->rn)
        raft_rawnode_free(nd->rn);
    raft_memory_storage_free(nd->ms);
    for (size_t i = 0; i < nd->n_log; i++)
        free(nd->log[i].data);
    free(nd->log);
    for (size_t i = 0; i < nd->n_reads; i++)
        free(nd->reads[i].context);
    free(nd->reads);
    memset(nd, 0, sizeof *nd);
}

void rh_net_clear_queue(struct rh_net *net)
{
    for (size_t i = 0; i < net->n_q; i++)
        raft_message_free(&net->q[i].m);
    net->n_q = 0;
}

void rh_net_close(struct rh_net *net)
{
    for (int i = 0; i < RH_MAX_NODES; i++)
        if (net->nodes[i].exists)
            free_node(&net->nodes[i]);
    rh_net_clear_queue(net);
    free(net->q);
    free(net->leader_of_term);
    free(net->committed);
    free(net->seen);
    free(net->read_floor);
    memset(net, 0, sizeof *net);
}

/* ---- checkers ---- */

static void check_leader(struct rh_net *net, uint64_t id, uint64_t term)
{
    if (term >= net->n_leader_of_term) {
        size_t n = (size_t)term * 2 + 8;
        net->leader_of_term = xrealloc(net->leader_of_term, n * sizeof(uint64_t));
        memset(net->leader_of_term + net->n_leader_of_term, 0,
               (n - net->n_leader_of_term) * sizeof(uint64_t));
        net->n_leader_of_term = n;
    }
    uint64_t prev = net->leader_of_term[term];
    if (prev != 0 && prev != id)
        violation(net, "election safety: nodes %llu and %llu both led term %llu",
                  (unsigned long long)prev, (unsigned long long)id, (unsigned long long)term);
    net->leader_of_term[term] = id;
}

uint64_t rh_storage_term(struct rh_net *net, uint64_t id, uint64_t i)
{
    struct rh_node *nd = rh_node(net, id);
    struct raft_storage st = raft_memory_storage_storage(nd->ms);
    uint64_t t = 0;
    if (st.ops->term(st.ctx, i, &t) != RAFT_OK)
        return 0;
    return t;
}

/* Leader completeness: every entry committed in an earlier term is in the new leader's log. */
static void check_leader_completeness(struct rh_net *net, uint64_t id, uint64_t term)
{
    struct rh_node *nd = rh_node(net, id);
    uint64_t first = raft_memory_storage_first_index(nd->ms);
    uint64_t last = raft_memory_storage_last_index(nd->ms);
    for (uint64_t i = first; i <= net->max_committed && i < net->n_committed; i++) {
        const struct rh_committed *c = &net->committed[i];
        if (!c->set || c->term >= term)
            continue;
        if (i > last || rh_storage_term(net, id, i) != c->term) {
            violation(net,
                      "leader completeness: leader %llu of term %llu lacks committed entry "
                      "%llu/%llu",
                      (unsigned long long)id, (unsigned long long)term, (unsigned long long)i,
                      (unsigned long long)c->term);
            return;
        }
    }
}

static struct rh_entry_slot *seen_slot(struct rh_net *net, uint64_t index, uint64_t term)
{
    uint64_t h = (index * 0x9E3779B97F4A7C15ULL) ^ (term * 0xC2B2AE3D27D4EB4FULL);
    size_t mask = net->seen_cap - 1;
    for (size_t k = (size_t)h & mask;; k = (k + 1) & mask) {
        struct rh_entry_slot *s = &net->seen[k];
        if (s->index == 0 || (s->index == index && s->term == term))
            return s;
    }
}

/* Log matching: an (index, term) pair always names the same entry with the same predecessor term.
 */
static void check_entry(struct rh_net *net, uint64_t id, const struct raft_entry *e)
{
    if (net->seen_n * 2 >= net->seen_cap) {
        size_t old_cap = net->seen_cap;
        struct rh_entry_slot *old = net->seen;
        net->seen_cap = old_cap ? old_cap * 2 : 1024;
        net->seen = xcalloc(net->seen_cap, sizeof *net->seen);
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].index != 0)
                *seen_slot(net, old[i].index, old[i].term) = old[i];
        free(old);
    }
    uint64_t d = digest(e->entry_type, e->data, e->data_len);
    uint64_t prev = rh_storage_term(net, id, e->index - 1);
    struct rh_entry_slot *s = seen_slot(net, e->index, e->term);
    if (s->index == 0) {
        *s = (struct rh_entry_slot){
            .index = e->index, .term = e->term, .digest = d, .prev_term = prev};
        net->seen_n++;
        return;
    }
    if (s->digest != d || s->prev_term != prev)
        violation(net,
                  "log matching: node %llu holds a different entry %llu/%llu (prev term %llu vs "
                  "%llu)",
                  (unsigned long long)id, (unsigned long long)e->index, (unsigned long long)e->term,
                  (unsigned long long)prev, (unsigned long long)s->prev_term);
}

/* State-machine safety: no two nodes apply different entries at one index. */
static void check_apply(struct rh_net *net, uint64_t id, const struct raft_entry *e)
{
    if (e->index >= net->n_committed) {
        size_t n = (size_t)e->index * 2 + 64;
        net->committed = xrealloc(net->committed, n * sizeof *net->committed);
        memset(net->committed + net->n_committed, 0,
               (n - net->n_committed) * sizeof *net->committed);
        net->n_committed = n;
    }
    struct rh_committed *c = &net->committed[e->index];
    uint64_t d = digest(e->entry_type, e->data, e->data_len);
    if (c->set && (c->term != e->term || c->digest != d)) {
        violation(net, "state machine safety: node %llu applied %llu/%llu, others %llu/%llu",
                  (unsigned long long)id, (unsigned long long)e->index, (unsigned long long)e->term,
                  (unsigned long long)e->index, (unsigned long long)c->term);
        return;
    }
    c->set = true;
    c->term = e->term;
    c->digest = d;
    if (e->index > net->max_committed)
        net->max_committed = e->index;
}

/* ---- Ready handling ---- */

void rh_conf_encode(enum raft_conf_change_type t, uint64_t node, uint8_t out[9])
{
    out[0] = (uint8_t)t;
    for (int i = 0; i < 8; i++)
        out[1 + i] = (uint8_t)(node >> (8 * i));
}

static bool conf_decode(const uint8_t *data, size_t len, struct raft_conf_change *cc)
{
    if (len != 9)
        return false;
    memset(cc, 0, sizeof *cc);
    cc->change_type = (enum raft_conf_change_type)data[0];
    for (int i = 0; i < 8; i++)
        cc->node_id |= (uint64_t)data[1 + i] << (8 * i);
    return true;
}

static void enqueue(struct rh_net *net, const struct raft_message *m)
{
    if (net->n_q == net->cap_q) {
        net->cap_q = net->cap_q ? net->cap_q * 2 : 64;
        net->q = xrealloc(net->q, net->cap_q * sizeof *net->q);
    }
    if (raft_message_copy(&net->q[net->n_q].m, m) != RAFT_OK)
        abort();
    if (m->from < RH_MAX_NODES && (unsigned)m->msg_type < 32) {
        net->sent[m->from][m->msg_type]++;
        if (m->msg_type == RAFT_MSG_APPEND_RESPONSE && m->reject)
            net->rejects[m->from]++;
        if (m->msg_type == RAFT_MSG_APPEND) {
            size_t bytes = 0;
            for (size_t i = 0; i < m->n_entries; i++)
                bytes += m->entries[i].data_len;
            if (m->n_entries > net->max_append_entries)
                net->max_append_entries = m->n_entries;
            if (bytes > net->max_append_bytes)
                net->max_append_bytes = bytes;
        }
    }
    net->n_q++;
}

static void apply_entry(struct rh_net *net, struct rh_node *nd, const struct raft_entry *e)
{
    if (e->index != nd->applied + 1) {
        violation(net, "node %llu applied index %llu after %llu", (unsigned long long)nd->id,
                  (unsigned long long)e->index, (unsigned long long)nd->applied);
        return;
    }
    check_apply(net, nd->id, e);
    nd->log = xrealloc(nd->log, (nd->n_log + 1) * sizeof *nd->log);
    struct rh_applied *a = &nd->log[nd->n_log++];
    *a = (struct rh_applied){.index = e->index, .term = e->term, .type = e->entry_type};
    if (e->data_len > 0) {
        a->data = xcalloc(1, e->data_len);
        memcpy(a->data, e->data, e->data_len);
        a->data_len = e->data_len;
    }
    struct raft_conf_change cc;
    if (e->entry_type == RAFT_ENTRY_CONF_CHANGE && conf_decode(e->data, e->data_len, &cc)) {
        struct raft_conf_state cs;
        if (raft_rawnode_apply_conf_change(nd->rn, &cc, &cs) != RAFT_OK)
            abort();
        if (net->cfg.verbose)
            fprintf(stderr, "node %llu applied conf change %s %llu at %llu -> %zu members\n",
                    (unsigned long long)nd->id,
                    cc.change_type == RAFT_CONF_ADD_NODE ? "add" : "remove",
                    (unsigned long long)cc.node_id, (unsigned long long)e->index, cs.n_nodes);
        /* the conf state is persisted with the applied index */
        raft_memory_storage_set_conf_state(nd->ms, &cs);
        raft_conf_state_free(&cs);
    }
    nd->applied = e->index;
}

/* ReadIndex linearizability: a read's index covers every entry committed before it was issued. */
static void check_read(struct rh_net *net, uint64_t id, const struct raft_read_state *rs)
{
    char buf[32];
    if (rs->context_len < 3 || rs->context_len >= sizeof buf)
        return;
    memcpy(buf, rs->context, rs->context_len);
    buf[rs->context_len] = '\0';
    if (strncmp(buf, "rd", 2) != 0)
        return;
    size_t k = (size_t)strtoull(buf + 2, NULL, 10);
    if (k >= net->n_read_floor)
        return;
    net->reads_done++;
    if (rs->index < net->read_floor[k])
        violation(net,
                  "read index: node %llu read %zu at index %llu, but %llu was committed before",
                  (unsigned long long)id, k, (unsigned long long)rs->index,
                  (unsigned long long)net->read_floor[k]);
}

int rh_read_index(struct rh_net *net, uint64_t id)
{
    struct rh_node *nd = rh_node(net, id);
    if (nd == NULL || !nd->up)
        return RAFT_ERR_INVALID;
    size_t k = net->n_read_floor;
    net->read_floor = xrealloc(net->read_floor, (k + 1) * sizeof *net->read_floor);
    net->read_floor[k] = net->max_committed;
    net->n_read_floor = k + 1;
    char ctx[32];
    int len = snprintf(ctx, sizeof ctx, "rd%zu", k);
    return raft_rawnode_read_index(nd->rn, ctx, (size_t)len);
}

bool rh_node_handle_ready(struct rh_net *net, uint64_t id)
{
    struct rh_node *nd = rh_node(net, id);
    if (nd == NULL || !nd->up || !raft_rawnode_has_ready(nd->rn))
        return false;
    struct raft_ready rd;
    if (raft_rawnode_ready(nd->rn, &rd) != RAFT_OK)
        abort();
    if (rd.has_snapshot) {
        uint64_t si = rd.snapshot.metadata.index;
        if (si < net->n_committed && net->committed[si].set &&
            net->committed[si].term != rd.snapshot.metadata.term)
            violation(net, "node %llu got a snapshot %llu/%llu disagreeing with committed term",
                      (unsigned long long)id, (unsigned long long)si,
                      (unsigned long long)rd.snapshot.metadata.term);
        int rc = raft_memory_storage_apply_snapshot(nd->ms, &rd.snapshot);
        if (rc != RAFT_OK)
            violation(net, "node %llu could not store snapshot %llu: %s", (unsigned long long)id,
                      (unsigned long long)si, raft_strerror(rc));
        /* the snapshot's data is the state machine: installed atomically with it */
        if (si > nd->applied)
            nd->applied = si;
    }
    if (rd.n_entries > 0) {
        int rc = raft_memory_storage_append(nd->ms, rd.entries, rd.n_entries);
        if (rc != RAFT_OK)
            violation(net, "node %llu could not append: %s", (unsigned long long)id,
                      raft_strerror(rc));
        for (size_t i = 0; i < rd.n_entries; i++)
            check_entry(net, id, &rd.entries[i]);
    }
    if (rd.has_hard_state)
        raft_memory_storage_set_hard_state(nd->ms, &rd.hard_state);
    if (rd.has_soft_state) {
        nd->last_role = rd.soft_state.role;
        nd->last_lead = rd.soft_state.lead;
        if (rd.soft_state.role == RAFT_ROLE_LEADER) {
            struct raft_hard_state hs;
            raft_memory_storage_hard_state(nd->ms, &hs);
            check_leader(net, id, hs.term);
            check_leader_completeness(net, id, hs.term);
        }
    }
    if (net->crash_after_persist > 0 && rand01(net) < net->crash_after_persist) {
        /* persisted, but nothing sent or applied: the Ready dies with the node */
        rh_node_crash(net, id);
        return true;
    }
    for (size_t i = 0; i < rd.n_messages; i++)
        enqueue(net, &rd.messages[i]);
    for (size_t i = 0; i < rd.n_committed_entries; i++)
        apply_entry(net, nd, &rd.committed_entries[i]);
    for (size_t i = 0; i < rd.n_read_states; i++)
        check_read(net, id, &rd.read_states[i]);
    for (size_t i = 0; i < rd.n_read_states; i++) {
        nd->reads = xrealloc(nd->reads, (nd->n_reads + 1) * sizeof *nd->reads);
        struct raft_read_state *rs = &nd->reads[nd->n_reads++];
        rs->index = rd.read_states[i].index;
        rs->context_len = rd.read_states[i].context_len;
        rs->context = xcalloc(1, rs->context_len + 1);
        memcpy(rs->context, rd.read_states[i].context, rs->context_len);
    }
    raft_rawnode_advance(nd->rn, &rd);
    return true;
}

void rh_net_flush(struct rh_net *net)
{
    bool any = true;
    while (any) {
        any = false;
        for (uint64_t id = 1; id < RH_MAX_NODES; id++)
            if (rh_node_handle_ready(net, id))
                any = true;
    }
}

static bool filtered(struct rh_net *net, const struct raft_message *m)
{
    struct rh_node *to = rh_node(net, m->to);
    if (to == NULL || !to->up)
        return true;
    if (m->from < RH_MAX_NODES && net->cut[m->from][m->to])
        return true;
    if ((unsigned)m->msg_type < 32 && net->ignore_type[m->msg_type])
        return true;
    if (net->filter != NULL && net->filter(net->filter_ctx, m))
        return true;
    double d = m->from < RH_MAX_NODES ? net->drop[m->from][m->to] : 0;
    if (d > 0 && rand01(net) < d)
        return true;
    return false;
}

static void deliver(struct rh_net *net, struct raft_message *m)
{
    bool lost = filtered(net, m);
    if (!lost) {
        net->msgs_delivered++;
        raft_rawnode_step(rh_node(net, m->to)->rn, m);
        rh_node_handle_ready(net, m->to);
    }
    /* Like a snapshot sender, the transport reports how the transfer ended. */
    struct rh_node *from = rh_node(net, m->from);
    if (m->msg_type == RAFT_MSG_SNAPSHOT && from != NULL && from->up) {
        raft_rawnode_report_snapshot(from->rn, m->to, lost);
        rh_node_handle_ready(net, m->from);
    }
}

void rh_net_drain(struct rh_net *net)
{
    for (int guard = 0; guard < 1000000; guard++) {
        rh_net_flush(net);
        if (net->n_q == 0)
            return;
        struct raft_message m = net->q[0].m;
        memmove(net->q, net->q + 1, (net->n_q - 1) * sizeof *net->q);
        net->n_q--;
        deliver(net, &m);
        raft_message_free(&m);
    }
    violation(net, "drain did not quiesce");
}

bool rh_net_deliver_one(struct rh_net *net)
{
    if (net->n_q == 0)
        return false;
    size_t k = (size_t)(rh_rand(net) % net->n_q);
    struct raft_message m = net->q[k].m;
    if (net->dup_rate > 0 && rand01(net) < net->dup_rate) {
        struct raft_message copy;
        if (raft_message_copy(&copy, &m) != RAFT_OK)
            abort();
        deliver(net, &copy); /* the original stays queued: a duplicate */
        raft_message_free(&copy);
        return true;
    }
    net->q[k] = net->q[net->n_q - 1];
    net->n_q--;
    deliver(net, &m);
    raft_message_free(&m);
    return true;
}

void rh_net_send(struct rh_net *net, const struct raft_message *m)
{
    struct rh_node *to = rh_node(net, m->to);
    if (to != NULL && to->up) {
        raft_rawnode_step(to->rn, m);
    }
    rh_net_drain(net);
}

void rh_net_cut(struct rh_net *net, uint64_t a, uint64_t b)
{
    net->cut[a][b] = true;
    net->cut[b][a] = true;
}

void rh_net_isolate(struct rh_net *net, uint64_t id)
{
    for (uint64_t i = 1; i < RH_MAX_NODES; i++)
        if (i != id)
            rh_net_cut(net, id, i);
}

void rh_net_recover(struct rh_net *net)
{
    memset(net->cut, 0, sizeof net->cut);
    memset(net->drop, 0, sizeof net->drop);
    memset(net->ignore_type, 0, sizeof net->ignore_type);
}

void rh_net_set_drop(struct rh_net *net, uint64_t from, uint64_t to, double rate)
{
    net->drop[from][to] = rate;
}

void rh_net_ignore(struct rh_net *net, enum raft_msg_type t)
{
    if ((unsigned)t < 32)
        net->ignore_type[t] = true;
}

void rh_tick(struct rh_net *net, uint64_t id)
{
    struct rh_node *nd = rh_node(net, id);
    if (nd == NULL || !nd->up)
        return;
    raft_rawnode_tick(nd->rn);
    rh_node_handle_ready(net, id);
}

void rh_tick_all(struct rh_net *net, int n)
{
    for (int k = 0; k < n; k++) {
        for (uint64_t id = 1; id < RH_MAX_NODES; id++)
            rh_tick(net, id);
        rh_net_drain(net);
    }
}

void rh_campaign(struct rh_net *net, uint64_t id)
{
    struct rh_node *nd = rh_node(net, id);
    if (nd == NULL || !nd->up)
        return;
    raft_rawnode_campaign(nd->rn);
    rh_net_drain(net);
}

int rh_propose(struct rh_net *net, uint64_t id, const char *data)
{
    struct rh_node *nd = rh_node(net, id);
    if (nd == NULL || !nd->up)
        return RAFT_ERR_INVALID;
    int rc = raft_rawnode_propose(nd->rn, data, strlen(data));
    rh_net_drain(net);
    return rc;
}

int rh_propose_conf(struct rh_net *net, uint64_t id, enum raft_conf_change_type t, uint64_t node)
{
    struct rh_node *nd = rh_node(net, id);
    if (nd == NULL || !nd->up)
        return RAFT_ERR_INVALID;
    uint8_t buf[9];
    rh_conf_encode(t, node, buf);
    int rc = raft_rawnode_propose_conf_change(nd->rn, buf, sizeof buf);
    rh_net_drain(net);
    return rc;
}

struct raft_status rh_status(struct rh_net *net, uint64_t id)
{
    struct raft_status st;
    memset(&st, 0, sizeof st);
    struct rh_node *nd = rh_node(net, id);
    if (nd == NULL || !nd->up)
        return st;
    if (raft_rawnode_status(nd->rn, &st) != RAFT_OK)
        abort();
    raft_status_free(&st);
    return st;
}

uint64_t rh_leader(struct rh_net *net)
{
    uint64_t best = 0, best_term = 0;
    for (uint64_t id = 1; id < RH_MAX_NODES; id++) {
        struct rh_node *nd = rh_node(net, id);
        if (!nd->up)
            continue;
        struct raft_status st = rh_status(net, id);
        if (st.role == RAFT_ROLE_LEADER && st.hard_state.term >= best_term) {
            best = id;
            best_term = st.hard_state.term;
        }
    }
    return best;
}

bool rh_applied_data(struct rh_net *net, uint64_t id, const char *data)
{
    struct rh_node *nd = rh_node(net, id);
    size_t len = strlen(data);
    for (size_t i = 0; i < nd->n_log; i++)
        if (nd->log[i].data_len == len && memcmp(nd->log[i].data, data, len) == 0)
            return true;
    return false;
}

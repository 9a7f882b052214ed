/* hibernate.c — idle regions stop ticking (TiKV's hibernate regions): who sleeps, what wakes
 * them, and the store-to-store liveness that wakes them when a store they share dies. */
#include <stdlib.h>
#include <string.h>

#include "proto/log.h"
#include "proto/rpc.h"
#include "store/raftstore_internal.h"
#include "store/raftstore_metrics.h"

/*
 * The rules. A leader sleeps when its region has had nothing to do for hibernate_ticks ticks
 * in a row (raft_rawnode_leader_idle: every member matched up to the last index, everything
 * committed and applied, no conf change, transfer or ReadIndex pending, every member heard from
 * lately) and nothing waits here (proposals, reads, snapshots, a split check). It sends
 * HIBERNATE_SLEEP with its term and last index to each follower and stops ticking. A follower
 * sleeps on that message if it agrees (raft_rawnode_follower_idle); if it cannot, it answers
 * HIBERNATE_WAKE and the leader goes on ticking. Asleep peers are in no list the loop walks.
 *
 * What wakes a peer: any mail for its region (a request, an operator, a worker's result), any
 * Raft message but an asleep leader's heartbeat or append answers that leave Raft nothing to
 * do, and the silence of a store it shares the region with. Raft's own safety does not depend
 * on any of this: a peer that stays awake alone campaigns, and pre-vote with check-quorum
 * keeps that from deposing a live leader (its vote requests wake the leader, which is in
 * lease and ignores them, and whose heartbeats then calm it).
 *
 * Dead leaders. An asleep follower hears nothing from its leader by design, so each store
 * tells every store it shares an asleep region with that it is alive (HIBERNATE_STORE_ALIVE,
 * region 0, every heartbeat_ticks): one message per store pair, not per region. Any message
 * from a store counts. A store silent for an election timeout wakes every asleep peer here
 * with a replica there: followers then elect a new leader as Raft always would (their election
 * clock resumes where it stopped, so their leader lease promise holds), leaders go on ticking
 * (the silent member keeps them awake, since it is not heard from) and report to the scheduler.
 *
 * The leader lease (peer.c) is wall-clock and tick-free: a lease read on an asleep leader is
 * still bounded by the ReadIndex that started the lease, and the followers that acknowledged
 * it count their election timeout only while awake, so they refuse votes at least as long.
 */

static uint64_t now_ms(void)
{
    return rpc_now_ms();
}

static int enabled(const struct raftstore *rs)
{
    return rs->cfg.hibernate_ticks > 0;
}

static int awake_push(struct raftstore *rs, struct peer *p)
{
    if (rs->n_awake == rs->cap_awake) {
        size_t cap = rs->cap_awake ? rs->cap_awake * 2 : 64;
        struct peer **grown = realloc(rs->awake, cap * sizeof *grown);
        if (!grown)
            return -1;
        rs->awake = grown;
        rs->cap_awake = cap;
    }
    p->awake_slot = rs->n_awake;
    rs->awake[rs->n_awake++] = p;
    return 0;
}

static void awake_remove(struct raftstore *rs, struct peer *p)
{
    size_t i = p->awake_slot;
    if (i >= rs->n_awake || rs->awake[i] != p)
        return;
    rs->awake[i] = rs->awake[--rs->n_awake];
    rs->awake[i]->awake_slot = i;
}

static struct hibernate_store *store_entry(struct raftstore *rs, uint64_t store_id, int create)
{
    for (size_t i = 0; i < rs->n_hib_stores; i++)
        if (rs->hib_stores[i].store_id == store_id)
            return &rs->hib_stores[i];
    if (!create)
        return NULL;
    if (rs->n_hib_stores == rs->cap_hib_stores) {
        size_t cap = rs->cap_hib_stores ? rs->cap_hib_stores * 2 : 8;
        struct hibernate_store *grown = realloc(rs->hib_stores, cap * sizeof *grown);
        if (!grown)
            return NULL;
        rs->hib_stores = grown;
        rs->cap_hib_stores = cap;
    }
    struct hibernate_store *s = &rs->hib_stores[rs->n_hib_stores++];
    *s = (struct hibernate_store){store_id, now_ms(), 0};
    return s;
}

int hibernate_track(struct raftstore *rs, struct peer *p)
{
    p->asleep = 0;
    p->idle_ticks = 0;
    return awake_push(rs, p);
}

/* p stops counting on the stores it slept with. */
static void forget_stores(struct raftstore *rs, struct peer *p)
{
    for (size_t i = 0; i < p->n_sleep_stores; i++) {
        struct hibernate_store *s = store_entry(rs, p->sleep_stores[i], 0);
        if (s && s->n_asleep)
            s->n_asleep--;
    }
    p->n_sleep_stores = 0;
}

void hibernate_untrack(struct raftstore *rs, struct peer *p)
{
    if (p->asleep)
        forget_stores(rs, p);
    else
        awake_remove(rs, p);
    p->asleep = 0;
}

void hibernate_wake(struct raftstore *rs, struct peer *p)
{
    if (!p->asleep)
        return;
    if (awake_push(rs, p) != 0)
        return; /* stays asleep: the next mail tries again */
    forget_stores(rs, p);
    p->asleep = 0;
    raftstore_touch(rs, p);
    metrics_counter_inc(RAFTSTORE_METRIC(rs, hibernate_wakes));
    LOG(LOG_DEBUG, "region=%llu peer=%llu: woke", (unsigned long long)p->region_id,
        (unsigned long long)p->peer_id);
}

/* p falls asleep: out of the awake list, counting on the region's other stores. */
static int fall_asleep(struct raftstore *rs, struct peer *p)
{
    const struct region *r = &p->ps.region;
    if (r->n_peers > HIBERNATE_MAX_PEERS + 1)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < r->n_peers; i++) {
        if (r->peers[i].store_id == rs->cfg.store_id)
            continue;
        struct hibernate_store *s = store_entry(rs, r->peers[i].store_id, 1);
        if (!s)
            break;
        if (s->n_asleep++ == 0)
            s->last_heard_ms = now_ms(); /* silence counts from now */
        p->sleep_stores[n++] = r->peers[i].store_id;
    }
    p->n_sleep_stores = n;
    awake_remove(rs, p);
    p->asleep = 1;
    p->idle_ticks = 0;
    raftstore_touch(rs, p); /* its introspection entry says so this round */
    metrics_counter_inc(RAFTSTORE_METRIC(rs, hibernate_sleeps));
    return 0;
}

/* A hibernation message from p to region peer `to` (kind, and the leader's term and index). */
static void send_extra(struct peer *p, const struct region_peer *to,
                       RaftServerpb__HibernateMsg kind, uint64_t term, uint64_t index)
{
    struct raftstore *rs = p->rs;
    const struct region *r = &p->ps.region;
    Metapb__Peer from_peer = METAPB__PEER__INIT, to_peer = METAPB__PEER__INIT;
    from_peer.id = p->peer_id;
    from_peer.store_id = rs->cfg.store_id;
    to_peer.id = to->id;
    to_peer.store_id = to->store_id;
    Metapb__RegionEpoch epoch = METAPB__REGION_EPOCH__INIT;
    epoch.conf_ver = r->conf_ver;
    epoch.version = r->version;
    RaftServerpb__RaftMessage msg = RAFT_SERVERPB__RAFT_MESSAGE__INIT;
    msg.region_id = p->region_id;
    msg.from_peer = &from_peer;
    msg.to_peer = &to_peer;
    msg.region_epoch = &epoch;
    msg.hibernate = kind;
    msg.hibernate_term = term;
    msg.hibernate_index = index;
    rs->cfg.transport.send(rs->cfg.transport_ctx, to->store_id, &msg);
}

/* Nothing of the store's own waits on p (Raft's side is raft_rawnode_*_idle). */
static int nothing_pending(const struct peer *p)
{
    return !p->proposals && !p->reads && !p->applying_snapshot && !p->pending_remove &&
           !p->split_checking && p->ps.snap_state != PEER_SNAP_GENERATING &&
           !p->ps.snap_requested && peer_storage_initialized(&p->ps) &&
           !raft_rawnode_has_ready(p->rn);
}

int hibernate_maybe_sleep(struct peer *p)
{
    struct raftstore *rs = p->rs;
    if (!enabled(rs) || !p->is_leader || !nothing_pending(p) ||
        !raft_rawnode_leader_idle(p->rn, 2 * rs->cfg.heartbeat_ticks)) {
        p->idle_ticks = 0;
        return 0;
    }
    if (++p->idle_ticks < rs->cfg.hibernate_ticks)
        return 0;
    uint64_t last, term;
    raft_rawnode_last(p->rn, &last, &term);
    if (fall_asleep(rs, p) != 0)
        return 0;
    const struct region *r = &p->ps.region;
    for (size_t i = 0; i < r->n_peers; i++)
        if (r->peers[i].id != p->peer_id)
            send_extra(p, &r->peers[i], RAFT_SERVERPB__HIBERNATE_MSG__HIBERNATE_SLEEP, term, last);
    LOG(LOG_DEBUG, "region=%llu peer=%llu: leader hibernates at index %llu term %llu",
        (unsigned long long)p->region_id, (unsigned long long)p->peer_id, (unsigned long long)last,
        (unsigned long long)term);
    return 1;
}

int hibernate_on_message(struct raftstore *rs, struct peer *p, const RaftServerpb__RaftMessage *msg)
{
    switch (msg->hibernate) {
    case RAFT_SERVERPB__HIBERNATE_MSG__HIBERNATE_SLEEP: {
        if (p->asleep || p->is_leader)
            return 1;
        if (enabled(rs) && p->leader_id == msg->from_peer->id && nothing_pending(p) &&
            raft_rawnode_follower_idle(p->rn, msg->from_peer->id, msg->hibernate_term,
                                       msg->hibernate_index)) {
            fall_asleep(rs, p);
            return 1;
        }
        /* Not in step with the leader: it must go on sending heartbeats. */
        struct region_peer leader = {msg->from_peer->id, msg->from_peer->store_id};
        send_extra(p, &leader, RAFT_SERVERPB__HIBERNATE_MSG__HIBERNATE_WAKE, 0, 0);
        return 1;
    }
    case RAFT_SERVERPB__HIBERNATE_MSG__HIBERNATE_WAKE:
        hibernate_wake(rs, p);
        p->idle_ticks = 0; /* a follower is not in step: give it heartbeats for a while */
        return 1;
    case RAFT_SERVERPB__HIBERNATE_MSG__HIBERNATE_NONE:
        break;
    default:
        return 1; /* a kind this store does not know: not Raft either */
    }
    /* An asleep leader steps the answers to its last heartbeats and appends without waking:
     * they arrive after it fell asleep. If they leave Raft work (a lagging member), it wakes
     * in hibernate_after_step. */
    const Eraftpb__Message *m = msg->message;
    int answer = m && (m->msg_type == ERAFTPB__MESSAGE_TYPE__MsgHeartbeatResponse ||
                       m->msg_type == ERAFTPB__MESSAGE_TYPE__MsgAppendResponse);
    if (!(p->asleep && p->is_leader && answer && !m->reject && m->term == p->ps.hs.term))
        hibernate_wake(rs, p);
    return 0;
}

void hibernate_after_step(struct raftstore *rs, struct peer *p)
{
    if (p->asleep && raft_rawnode_has_ready(p->rn))
        hibernate_wake(rs, p);
}

int hibernate_heard_from(struct raftstore *rs, const RaftServerpb__RaftMessage *msg)
{
    if (msg->from_peer) {
        struct hibernate_store *s = store_entry(rs, msg->from_peer->store_id, 0);
        if (s)
            s->last_heard_ms = now_ms();
    }
    return msg->hibernate == RAFT_SERVERPB__HIBERNATE_MSG__HIBERNATE_STORE_ALIVE;
}

static void send_alive(struct raftstore *rs, uint64_t to_store)
{
    Metapb__Peer from_peer = METAPB__PEER__INIT, to_peer = METAPB__PEER__INIT;
    from_peer.store_id = rs->cfg.store_id;
    to_peer.store_id = to_store;
    RaftServerpb__RaftMessage msg = RAFT_SERVERPB__RAFT_MESSAGE__INIT;
    msg.from_peer = &from_peer;
    msg.to_peer = &to_peer;
    msg.hibernate = RAFT_SERVERPB__HIBERNATE_MSG__HIBERNATE_STORE_ALIVE;
    rs->cfg.transport.send(rs->cfg.transport_ctx, to_store, &msg);
}

/* Store `store_id` has been silent for an election timeout: wake every asleep peer that
 * shares a region with it. Walks all peers, but only when a store goes quiet. */
static void wake_sharing(struct raftstore *rs, uint64_t store_id)
{
    size_t woken = 0;
    for (struct peer *p = rs->peers; p; p = p->next) {
        if (!p->asleep)
            continue;
        for (size_t i = 0; i < p->n_sleep_stores; i++) {
            if (p->sleep_stores[i] == store_id) {
                hibernate_wake(rs, p);
                woken++;
                break;
            }
        }
    }
    LOG(LOG_INFO, "store %llu silent for an election timeout: woke %zu hibernating peers",
        (unsigned long long)store_id, woken);
}

void hibernate_store_tick(struct raftstore *rs)
{
    uint64_t now = now_ms();
    uint64_t silent_ms = (uint64_t)rs->cfg.election_ticks * (uint64_t)rs->cfg.tick_ms;
    int ping = ++rs->ticks_since_alive >= rs->cfg.heartbeat_ticks;
    if (ping)
        rs->ticks_since_alive = 0;
    for (size_t i = 0; i < rs->n_hib_stores; i++) {
        struct hibernate_store *s = &rs->hib_stores[i];
        if (!s->n_asleep)
            continue;
        if (ping)
            send_alive(rs, s->store_id);
        if (now - s->last_heard_ms > silent_ms) {
            wake_sharing(rs, s->store_id);
            s->last_heard_ms = now;
        }
    }
    /* Asleep leaders still report, each once per idle_region_heartbeat_ticks, a slice of the
     * store's regions per tick so the reports spread out. */
    size_t n = rs->n_by_id, per = 0;
    if (n && rs->cfg.idle_region_heartbeat_ticks > 0)
        per = (n + (size_t)rs->cfg.idle_region_heartbeat_ticks - 1) /
              (size_t)rs->cfg.idle_region_heartbeat_ticks;
    for (size_t k = 0; k < per; k++) {
        if (rs->idle_report_next >= n)
            rs->idle_report_next = 0;
        struct peer *p = rs->by_id[rs->idle_report_next++];
        if (p->asleep && p->is_leader)
            peer_region_heartbeat(p);
    }
}

void hibernate_close(struct raftstore *rs)
{
    free(rs->awake);
    free(rs->hib_stores);
    rs->awake = NULL;
    rs->hib_stores = NULL;
    rs->n_awake = rs->n_hib_stores = 0;
}

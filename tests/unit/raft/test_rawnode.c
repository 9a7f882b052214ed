/* test_rawnode.c — the RawNode/Ready contract, configuration checks and status, driven by hand. */
#include "raft/raft.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

struct fixture {
    struct raft_memory_storage *ms;
    struct raft_rawnode *rn;
};

enum { NODE_BATCH_APPENDS = 1, NODE_BOOT_LEASE = 2 };

static void setup_node(struct fixture *f, const uint64_t *peers, size_t n, uint64_t max_apply,
                       int flags)
{
    assert_int_equal(raft_memory_storage_new(&f->ms), RAFT_OK);
    struct raft_conf_state cs = {.nodes = (uint64_t *)peers, .n_nodes = n};
    assert_int_equal(raft_memory_storage_set_conf_state(f->ms, &cs), RAFT_OK);
    struct raft_config c = {.id = 1,
                            .election_ticks = 10,
                            .heartbeat_ticks = 1,
                            .storage = raft_memory_storage_storage(f->ms),
                            .max_size_per_msg = UINT64_MAX,
                            .max_inflight_msgs = 16,
                            .max_committed_size_per_ready = max_apply,
                            .batch_appends = (flags & NODE_BATCH_APPENDS) != 0,
                            .check_quorum = (flags & NODE_BOOT_LEASE) != 0,
                            .boot_lease = (flags & NODE_BOOT_LEASE) != 0,
                            .seed = 42};
    assert_int_equal(raft_rawnode_new(&c, &f->rn, NULL, 0), RAFT_OK);
}

static void teardown_node(struct fixture *f)
{
    raft_rawnode_free(f->rn);
    raft_memory_storage_free(f->ms);
}

/* Persists what a Ready asks for, as an embedder would. */
static void persist(struct fixture *f, const struct raft_ready *rd)
{
    if (rd->has_snapshot)
        assert_int_equal(raft_memory_storage_apply_snapshot(f->ms, &rd->snapshot), RAFT_OK);
    assert_int_equal(raft_memory_storage_append(f->ms, rd->entries, rd->n_entries), RAFT_OK);
    if (rd->has_hard_state)
        raft_memory_storage_set_hard_state(f->ms, &rd->hard_state);
}

/* Node 1 campaigns (its Ready persisted) and is granted a vote by node 2, which makes it leader
 * of a group of two or three at term 1. The Ready holding its no-op entry is left to the caller.
 * Returns the vote message, from 2 to 1 at term 1, for the caller to reuse. */
static struct raft_message win_election(struct fixture *f)
{
    raft_rawnode_campaign(f->rn);
    struct raft_ready rd;
    raft_rawnode_ready(f->rn, &rd);
    persist(f, &rd);
    raft_rawnode_advance(f->rn, &rd);
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.msg_type = RAFT_MSG_REQUEST_VOTE_RESPONSE;
    m.from = 2;
    m.to = 1;
    m.term = 1;
    raft_rawnode_step(f->rn, &m);
    return m;
}

/* A single node campaigns, and its Readies carry role, hard state, entries to persist and entries
 * to apply, each exactly once. */
static void test_ready_contract_single_node(void **state)
{
    (void)state;
    struct fixture f;
    const uint64_t peers[] = {1};
    setup_node(&f, peers, 1, 0, 0);
    assert_false(raft_rawnode_has_ready(f.rn));
    assert_int_equal(raft_rawnode_campaign(f.rn), RAFT_OK);
    assert_true(raft_rawnode_has_ready(f.rn));
    struct raft_ready rd;
    assert_int_equal(raft_rawnode_ready(f.rn, &rd), RAFT_OK);
    assert_true(rd.has_soft_state);
    assert_int_equal(rd.soft_state.role, RAFT_ROLE_LEADER);
    assert_int_equal(rd.soft_state.lead, 1);
    assert_true(rd.has_hard_state);
    assert_int_equal(rd.hard_state.term, 1);
    assert_int_equal(rd.hard_state.vote, 1);
    assert_int_equal(rd.hard_state.commit, 1);
    assert_int_equal(rd.n_entries, 1);
    assert_int_equal(rd.entries[0].index, 1);
    assert_int_equal(rd.n_committed_entries, 1);
    assert_true(rd.must_sync);
    assert_int_equal(rd.n_messages, 0);
    /* a second Ready before advance is refused */
    struct raft_ready again;
    assert_int_equal(raft_rawnode_ready(f.rn, &again), RAFT_ERR_INVALID);
    persist(&f, &rd);
    raft_rawnode_advance(f.rn, &rd);
    assert_false(raft_rawnode_has_ready(f.rn));

    assert_int_equal(raft_rawnode_propose(f.rn, "foo", 3), RAFT_OK);
    assert_int_equal(raft_rawnode_ready(f.rn, &rd), RAFT_OK);
    assert_false(rd.has_soft_state);
    assert_int_equal(rd.n_entries, 1);
    assert_int_equal(rd.entries[0].data_len, 3);
    assert_memory_equal(rd.entries[0].data, "foo", 3);
    assert_int_equal(rd.n_committed_entries, 1);
    assert_int_equal(rd.committed_entries[0].index, 2);
    persist(&f, &rd);
    raft_rawnode_advance(f.rn, &rd);
    assert_false(raft_rawnode_has_ready(f.rn));
    struct raft_status st;
    assert_int_equal(raft_rawnode_status(f.rn, &st), RAFT_OK);
    assert_int_equal(st.applied, 2);
    assert_int_equal(st.hard_state.commit, 2);
    raft_status_free(&st);
    teardown_node(&f);
}

/* Proposed data is copied: the caller may reuse its buffer right after propose returns. */
static void test_propose_copies_data(void **state)
{
    (void)state;
    struct fixture f;
    const uint64_t peers[] = {1};
    setup_node(&f, peers, 1, 0, 0);
    raft_rawnode_campaign(f.rn);
    struct raft_ready rd;
    raft_rawnode_ready(f.rn, &rd);
    persist(&f, &rd);
    raft_rawnode_advance(f.rn, &rd);
    char buf[4] = "abc";
    raft_rawnode_propose(f.rn, buf, 3);
    memcpy(buf, "zzz", 3);
    raft_rawnode_ready(f.rn, &rd);
    assert_memory_equal(rd.entries[0].data, "abc", 3);
    raft_rawnode_advance(f.rn, &rd);
    teardown_node(&f);
}

/* A Ready's contents stay valid while the embedder applies a conf change and asks for status before
 * advance. */
static void test_ready_valid_until_advance(void **state)
{
    (void)state;
    struct fixture f;
    const uint64_t peers[] = {1, 2};
    setup_node(&f, peers, 2, 0, 0);
    raft_rawnode_campaign(f.rn);
    struct raft_ready rd;
    raft_rawnode_ready(f.rn, &rd);
    assert_int_equal(rd.n_messages, 1);
    assert_int_equal(rd.messages[0].msg_type, RAFT_MSG_REQUEST_VOTE);
    struct raft_conf_change cc = {.change_type = RAFT_CONF_ADD_NODE, .node_id = 3};
    struct raft_conf_state cs;
    assert_int_equal(raft_rawnode_apply_conf_change(f.rn, &cc, &cs), RAFT_OK);
    assert_int_equal(cs.n_nodes, 3);
    raft_conf_state_free(&cs);
    struct raft_status st;
    raft_rawnode_status(f.rn, &st);
    raft_status_free(&st);
    assert_int_equal(rd.messages[0].to, 2);
    assert_int_equal(rd.messages[0].term, 1);
    persist(&f, &rd);
    raft_rawnode_advance(f.rn, &rd);
    teardown_node(&f);
}

/* Local-only message types and responses from unknown peers are refused by step. */
static void test_step_refuses_local_and_unknown(void **state)
{
    (void)state;
    struct fixture f;
    const uint64_t peers[] = {1, 2};
    setup_node(&f, peers, 2, 0, 0);
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.msg_type = RAFT_MSG_HUP;
    m.from = 2;
    m.to = 1;
    assert_int_equal(raft_rawnode_step(f.rn, &m), RAFT_ERR_STEP_LOCAL_MSG);
    m.msg_type = RAFT_MSG_CHECK_QUORUM;
    assert_int_equal(raft_rawnode_step(f.rn, &m), RAFT_ERR_STEP_LOCAL_MSG);
    m.msg_type = RAFT_MSG_APPEND_RESPONSE;
    m.from = 9;
    m.term = 1;
    assert_int_equal(raft_rawnode_step(f.rn, &m), RAFT_ERR_STEP_PEER_NOT_FOUND);
    assert_string_equal(raft_strerror(RAFT_ERR_STEP_PEER_NOT_FOUND),
                        "raft: cannot step as peer not found");
    assert_non_null(strstr(raft_rawnode_errmsg(f.rn), "peer not found"));
    teardown_node(&f);
}

/* Bad configurations are refused with a reason. */
static void test_invalid_config(void **state)
{
    (void)state;
    struct raft_memory_storage *ms;
    raft_memory_storage_new(&ms);
    struct raft_rawnode *rn = NULL;
    char err[128];
    struct raft_config c = {.id = 0,
                            .election_ticks = 10,
                            .heartbeat_ticks = 1,
                            .storage = raft_memory_storage_storage(ms),
                            .max_inflight_msgs = 1};
    assert_int_equal(raft_rawnode_new(&c, &rn, err, sizeof err), RAFT_ERR_INVALID);
    assert_non_null(strstr(err, "id"));
    c.id = 1;
    c.heartbeat_ticks = 10;
    assert_int_equal(raft_rawnode_new(&c, &rn, err, sizeof err), RAFT_ERR_INVALID);
    c.heartbeat_ticks = 1;
    const uint64_t peers[] = {1, 2};
    struct raft_conf_state cs = {.nodes = (uint64_t *)peers, .n_nodes = 2};
    raft_memory_storage_set_conf_state(ms, &cs);
    c.peers = peers;
    c.n_peers = 2;
    assert_int_equal(raft_rawnode_new(&c, &rn, err, sizeof err), RAFT_ERR_INVALID);
    assert_null(rn);
    c.peers = NULL;
    c.n_peers = 0;
    assert_int_equal(raft_rawnode_new(&c, &rn, err, sizeof err), RAFT_OK);
    raft_rawnode_free(rn);
    raft_memory_storage_free(ms);
}

/* Committed entries are handed out in Readies of bounded size when a limit is configured. */
static void test_committed_entries_paged(void **state)
{
    (void)state;
    struct fixture f;
    const uint64_t peers[] = {1};
    setup_node(&f, peers, 1, 10, 0);
    raft_rawnode_campaign(f.rn);
    struct raft_ready rd;
    raft_rawnode_ready(f.rn, &rd);
    persist(&f, &rd);
    raft_rawnode_advance(f.rn, &rd);
    for (int i = 0; i < 6; i++)
        raft_rawnode_propose(f.rn, "12345678", 8);
    int readies = 0;
    uint64_t applied = 1;
    while (raft_rawnode_has_ready(f.rn)) {
        raft_rawnode_ready(f.rn, &rd);
        persist(&f, &rd);
        size_t bytes = 0;
        for (size_t i = 0; i < rd.n_committed_entries; i++) {
            assert_int_equal(rd.committed_entries[i].index, applied + 1);
            applied++;
            bytes += rd.committed_entries[i].data_len;
        }
        assert_true(rd.n_committed_entries <= 1 || bytes <= 10);
        raft_rawnode_advance(f.rn, &rd);
        readies++;
    }
    assert_int_equal(applied, 7);
    assert_true(readies >= 6);
    teardown_node(&f);
}

/* A Ready that only advances the commit index does not demand a sync. */
static void test_must_sync_only_for_term_vote_entries(void **state)
{
    (void)state;
    struct fixture f;
    const uint64_t peers[] = {1, 2};
    setup_node(&f, peers, 2, 0, 0);
    struct raft_message m = win_election(&f); /* leader, with a no-op at index 1 */
    struct raft_ready rd;
    raft_rawnode_ready(f.rn, &rd);
    assert_true(rd.must_sync);
    persist(&f, &rd);
    raft_rawnode_advance(f.rn, &rd);
    m.msg_type = RAFT_MSG_APPEND_RESPONSE;
    m.index = 1;
    raft_rawnode_step(f.rn, &m);
    raft_rawnode_ready(f.rn, &rd);
    assert_true(rd.has_hard_state);
    assert_int_equal(rd.hard_state.commit, 1);
    assert_false(rd.must_sync);
    assert_int_equal(rd.n_committed_entries, 1);
    raft_rawnode_advance(f.rn, &rd);
    teardown_node(&f);
}

/* Counts the Ready's appends to `to`; *entries gets the entries they carry, *commit the last
 * commit index sent. */
static size_t appends_to(const struct raft_ready *rd, uint64_t to, size_t *entries,
                         uint64_t *commit)
{
    size_t n = 0;
    *entries = 0;
    for (size_t i = 0; i < rd->n_messages; i++) {
        const struct raft_message *m = &rd->messages[i];
        if (m->msg_type == RAFT_MSG_APPEND && m->to == to) {
            n++;
            *entries += m->n_entries;
            *commit = m->commit;
        }
    }
    return n;
}

/* With batch_appends, proposals and acknowledgements stepped between two Readies leave as one
 * append per follower at the next Ready, the commit index travels once, and a leader owed
 * nothing sends nothing (no append answers an append response). */
static void test_batch_appends_one_append_per_ready(void **state)
{
    (void)state;
    struct fixture f;
    const uint64_t peers[] = {1, 2, 3};
    setup_node(&f, peers, 3, 0, NODE_BATCH_APPENDS);
    struct raft_message m = win_election(&f); /* leader at term 1 with a no-op at index 1 */
    struct raft_ready rd;
    raft_rawnode_ready(f.rn, &rd);
    persist(&f, &rd);
    raft_rawnode_advance(f.rn, &rd);
    for (uint64_t from = 2; from <= 3; from++) {
        m.msg_type = RAFT_MSG_APPEND_RESPONSE;
        m.from = from;
        m.index = 1;
        raft_rawnode_step(f.rn, &m);
    }
    raft_rawnode_ready(f.rn, &rd);
    persist(&f, &rd);
    raft_rawnode_advance(f.rn, &rd);

    for (int i = 0; i < 5; i++)
        assert_int_equal(raft_rawnode_propose(f.rn, "abc", 3), RAFT_OK);
    assert_true(raft_rawnode_has_ready(f.rn));
    assert_int_equal(raft_rawnode_ready(f.rn, &rd), RAFT_OK);
    size_t entries;
    uint64_t commit = 0;
    for (uint64_t to = 2; to <= 3; to++) {
        assert_int_equal(appends_to(&rd, to, &entries, &commit), 1);
        assert_int_equal(entries, 5);
    }
    assert_int_equal(rd.n_entries, 5);
    persist(&f, &rd);
    raft_rawnode_advance(f.rn, &rd);

    /* Both followers acknowledge: one append each carries the new commit index. */
    for (uint64_t from = 2; from <= 3; from++) {
        m.msg_type = RAFT_MSG_APPEND_RESPONSE;
        m.from = from;
        m.index = 6;
        raft_rawnode_step(f.rn, &m);
    }
    assert_int_equal(raft_rawnode_ready(f.rn, &rd), RAFT_OK);
    assert_int_equal(rd.n_committed_entries, 5);
    for (uint64_t to = 2; to <= 3; to++) {
        assert_int_equal(appends_to(&rd, to, &entries, &commit), 1);
        assert_int_equal(entries, 0);
        assert_int_equal(commit, 6);
    }
    persist(&f, &rd);
    raft_rawnode_advance(f.rn, &rd);

    /* Their answers to those change nothing: the leader owes nothing and sends nothing. */
    for (uint64_t from = 2; from <= 3; from++) {
        m.msg_type = RAFT_MSG_APPEND_RESPONSE;
        m.from = from;
        m.index = 6;
        raft_rawnode_step(f.rn, &m);
    }
    if (raft_rawnode_has_ready(f.rn)) {
        assert_int_equal(raft_rawnode_ready(f.rn, &rd), RAFT_OK);
        assert_int_equal(rd.n_messages, 0);
        raft_rawnode_advance(f.rn, &rd);
    }
    assert_false(raft_rawnode_has_ready(f.rn));
    teardown_node(&f);
}

/* True if the Ready grants `to` its vote. */
static int grants_vote(const struct raft_ready *rd, uint64_t to)
{
    for (size_t i = 0; i < rd->n_messages; i++)
        if (rd->messages[i].msg_type == RAFT_MSG_REQUEST_VOTE_RESPONSE &&
            rd->messages[i].to == to && !rd->messages[i].reject)
            return 1;
    return 0;
}

/* With boot_lease, a node just started grants no vote until an election timeout has passed,
 * as if it had just heard from a leader; then it votes as usual. */
static void test_boot_lease_refuses_votes_for_one_election_timeout(void **state)
{
    (void)state;
    struct fixture f;
    const uint64_t peers[] = {1, 2, 3};
    setup_node(&f, peers, 3, 0, NODE_BOOT_LEASE);
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.msg_type = RAFT_MSG_REQUEST_VOTE;
    m.from = 2;
    m.to = 1;
    m.term = 5;
    assert_int_equal(raft_rawnode_step(f.rn, &m), RAFT_OK);
    struct raft_ready rd;
    if (raft_rawnode_has_ready(f.rn)) {
        assert_int_equal(raft_rawnode_ready(f.rn, &rd), RAFT_OK);
        assert_false(grants_vote(&rd, 2));
        persist(&f, &rd);
        raft_rawnode_advance(f.rn, &rd);
    }
    for (int i = 0; i < 10; i++)
        raft_rawnode_tick(f.rn);
    if (raft_rawnode_has_ready(f.rn)) { /* it may have started an election of its own */
        assert_int_equal(raft_rawnode_ready(f.rn, &rd), RAFT_OK);
        persist(&f, &rd);
        raft_rawnode_advance(f.rn, &rd);
    }
    m.term = 6;
    assert_int_equal(raft_rawnode_step(f.rn, &m), RAFT_OK);
    assert_int_equal(raft_rawnode_ready(f.rn, &rd), RAFT_OK);
    assert_true(grants_vote(&rd, 2));
    persist(&f, &rd);
    raft_rawnode_advance(f.rn, &rd);
    teardown_node(&f);
}

/* The leader's status lists each peer's match and next index. */
static void test_status_reports_progress(void **state)
{
    (void)state;
    struct fixture f;
    const uint64_t peers[] = {1, 2, 3};
    setup_node(&f, peers, 3, 0, 0);
    raft_rawnode_campaign(f.rn);
    struct raft_ready rd;
    raft_rawnode_ready(f.rn, &rd);
    persist(&f, &rd);
    raft_rawnode_advance(f.rn, &rd);
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.msg_type = RAFT_MSG_REQUEST_VOTE_RESPONSE;
    m.from = 2;
    m.to = 1;
    m.term = 1;
    raft_rawnode_step(f.rn, &m);
    m.msg_type = RAFT_MSG_APPEND_RESPONSE;
    m.index = 1;
    raft_rawnode_step(f.rn, &m);
    struct raft_status st;
    assert_int_equal(raft_rawnode_status(f.rn, &st), RAFT_OK);
    assert_int_equal(st.role, RAFT_ROLE_LEADER);
    assert_int_equal(st.lead, 1);
    assert_int_equal(st.n_peers, 3);
    assert_int_equal(st.peers[0].id, 1);
    assert_int_equal(st.peers[0].match, 1);
    assert_int_equal(st.peers[1].id, 2);
    assert_int_equal(st.peers[1].match, 1);
    assert_int_equal(st.peers[1].next, 2);
    assert_int_equal(st.peers[1].state, RAFT_PROGRESS_REPLICATE);
    assert_int_equal(st.peers[2].match, 0);
    assert_int_equal(st.peers[2].state, RAFT_PROGRESS_PROBE);
    raft_status_free(&st);
    raft_rawnode_ready(f.rn, &rd);
    raft_rawnode_advance(f.rn, &rd);
    teardown_node(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_contract_single_node),
        cmocka_unit_test(test_propose_copies_data),
        cmocka_unit_test(test_ready_valid_until_advance),
        cmocka_unit_test(test_step_refuses_local_and_unknown),
        cmocka_unit_test(test_invalid_config),
        cmocka_unit_test(test_committed_entries_paged),
        cmocka_unit_test(test_must_sync_only_for_term_vote_entries),
        cmocka_unit_test(test_status_reports_progress),
        cmocka_unit_test(test_batch_appends_one_append_per_ready),
        cmocka_unit_test(test_boot_lease_refuses_votes_for_one_election_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_log.c — the Raft log (stable + unstable parts) and its rules, tested through the internal
 * API. */
#include "raft/raft_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

struct fx {
    struct raft_memory_storage *ms;
    struct raft_log log;
};

static void fx_init(struct fx *f, const uint64_t *stable_terms, size_t n)
{
    assert_int_equal(raft_memory_storage_new(&f->ms), RAFT_OK);
    for (size_t i = 0; i < n; i++) {
        struct raft_entry e = {.term = stable_terms[i], .index = i + 1};
        assert_int_equal(raft_memory_storage_append(f->ms, &e, 1), RAFT_OK);
    }
    assert_int_equal(raft_log_init(&f->log, raft_memory_storage_storage(f->ms), 0), RAFT_OK);
}

static void fx_close(struct fx *f)
{
    raft_log_close(&f->log);
    raft_memory_storage_free(f->ms);
}

static void append_terms(struct raft_log *l, uint64_t first, const uint64_t *terms, size_t n)
{
    struct raft_entry ents[16];
    for (size_t i = 0; i < n; i++)
        ents[i] = (struct raft_entry){.term = terms[i], .index = first + i};
    assert_int_equal(raft_log_append(l, ents, n), RAFT_OK);
}

static uint64_t term_at(const struct raft_log *l, uint64_t i)
{
    uint64_t t = 0;
    raft_log_term(l, i, &t);
    return t;
}

/* The follower's append rule: match the previous entry, truncate at the first conflict, commit
 * min(leader commit, last new). */
static void test_maybe_append(void **state)
{
    (void)state;
    const uint64_t prev[] = {1, 2, 3};
    struct {
        uint64_t index, log_term, commit;
        uint64_t terms[3];
        size_t n;
        bool ok;
        uint64_t lastnew, want_commit, want_last, term_at4;
    } cases[] = {
        /* previous entry mismatches: rejected */
        {3, 2, 3, {4}, 1, false, 0, 1, 3, 0},
        {4, 4, 3, {4}, 1, false, 0, 1, 3, 0},
        /* heartbeat-like: no entries */
        {3, 3, 3, {0}, 0, true, 3, 3, 3, 0},
        {3, 3, 4, {0}, 0, true, 3, 3, 3, 0}, /* commit capped at last new */
        {3, 3, 2, {0}, 0, true, 3, 2, 3, 0},
        /* new entries appended */
        {3, 3, 4, {4}, 1, true, 4, 4, 4, 4},
        {3, 3, 5, {4, 4}, 2, true, 5, 5, 5, 4},
        /* conflict at index 3 truncates from there */
        {2, 2, 3, {4}, 1, true, 3, 3, 3, 0},
        /* all already present: nothing changes */
        {1, 1, 3, {2, 3}, 2, true, 3, 3, 3, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct fx f;
        fx_init(&f, prev, 3);
        f.log.committed = 1;
        struct raft_entry ents[3];
        for (size_t i = 0; i < cases[k].n; i++)
            ents[i] =
                (struct raft_entry){.term = cases[k].terms[i], .index = cases[k].index + 1 + i};
        bool ok;
        uint64_t lastnew = 0;
        assert_int_equal(raft_log_maybe_append(&f.log, cases[k].index, cases[k].log_term,
                                               cases[k].commit, ents, cases[k].n, &ok, &lastnew),
                         RAFT_OK);
        assert_int_equal(ok, cases[k].ok);
        if (ok)
            assert_int_equal(lastnew, cases[k].lastnew);
        assert_int_equal(f.log.committed, cases[k].want_commit);
        assert_int_equal(raft_log_last_index(&f.log), cases[k].want_last);
        if (cases[k].term_at4)
            assert_int_equal(term_at(&f.log, 4), cases[k].term_at4);
        fx_close(&f);
    }
}

/* A log is more up to date if its last term is higher, or equal with a last index at least as large
 * (§5.4.1). */
static void test_is_up_to_date(void **state)
{
    (void)state;
    const uint64_t terms[] = {1, 2, 3};
    struct fx f;
    fx_init(&f, terms, 3);
    assert_true(raft_log_is_up_to_date(&f.log, 3, 3));
    assert_true(raft_log_is_up_to_date(&f.log, 4, 3));
    assert_false(raft_log_is_up_to_date(&f.log, 2, 3));
    assert_true(raft_log_is_up_to_date(&f.log, 1, 4));
    assert_false(raft_log_is_up_to_date(&f.log, 9, 2));
    fx_close(&f);
}

/* maybe_commit moves the commit only to an index whose entry has the given term. */
static void test_maybe_commit_requires_term(void **state)
{
    (void)state;
    const uint64_t terms[] = {1, 2, 2, 3};
    struct fx f;
    fx_init(&f, terms, 4);
    assert_false(raft_log_maybe_commit(&f.log, 3, 3));
    assert_int_equal(f.log.committed, 0);
    assert_true(raft_log_maybe_commit(&f.log, 3, 2));
    assert_int_equal(f.log.committed, 3);
    assert_false(raft_log_maybe_commit(&f.log, 2, 2)); /* never backwards */
    assert_int_equal(f.log.committed, 3);
    fx_close(&f);
}

/* Unstable entries shadow storage, stable_to drops them only when the term matches, and truncation
 * replaces the suffix. */
static void test_unstable_and_stable_to(void **state)
{
    (void)state;
    const uint64_t stable[] = {1, 1};
    struct fx f;
    fx_init(&f, stable, 2);
    const uint64_t more[] = {2, 2, 2};
    append_terms(&f.log, 3, more, 3);
    assert_int_equal(raft_log_last_index(&f.log), 5);
    assert_int_equal(f.log.unstable.n_ents, 3);
    /* the embedder persists 3..4, then reports them stable */
    assert_int_equal(raft_memory_storage_append(f.ms, f.log.unstable.ents, 2), RAFT_OK);
    raft_log_stable_to(&f.log, 4, 1); /* wrong term: ignored */
    assert_int_equal(f.log.unstable.n_ents, 3);
    raft_log_stable_to(&f.log, 4, 2);
    assert_int_equal(f.log.unstable.n_ents, 1);
    assert_int_equal(f.log.unstable.offset, 5);
    /* a conflicting append before the unstable offset replaces the tail */
    const uint64_t conflict[] = {3};
    append_terms(&f.log, 4, conflict, 1);
    assert_int_equal(raft_log_last_index(&f.log), 4);
    assert_int_equal(term_at(&f.log, 4), 3);
    assert_int_equal(term_at(&f.log, 3), 2);
    fx_close(&f);
}

/* Slices span storage and unstable entries and honour byte and count limits (always at least one
 * entry). */
static void test_slice_limits(void **state)
{
    (void)state;
    struct fx f;
    assert_int_equal(raft_memory_storage_new(&f.ms), RAFT_OK);
    for (uint64_t i = 1; i <= 3; i++) {
        struct raft_entry e = {.term = 1, .index = i, .data = (uint8_t *)"abcd", .data_len = 4};
        raft_memory_storage_append(f.ms, &e, 1);
    }
    raft_log_init(&f.log, raft_memory_storage_storage(f.ms), 0);
    struct raft_entry u[2] = {{.term = 1, .index = 4, .data = (uint8_t *)"abcd", .data_len = 4},
                              {.term = 1, .index = 5, .data = (uint8_t *)"abcd", .data_len = 4}};
    raft_log_append(&f.log, u, 2);
    struct raft_entry *out;
    size_t n;
    assert_int_equal(raft_log_slice(&f.log, 2, 6, RAFT_NO_LIMIT, 0, &out, &n), RAFT_OK);
    assert_int_equal(n, 4);
    assert_int_equal(out[3].index, 5);
    raft_entries_free(out, n);
    assert_int_equal(raft_log_slice(&f.log, 2, 6, 9, 0, &out, &n), RAFT_OK);
    assert_int_equal(n, 2);
    raft_entries_free(out, n);
    assert_int_equal(raft_log_slice(&f.log, 2, 6, 1, 0, &out, &n), RAFT_OK);
    assert_int_equal(n, 1);
    raft_entries_free(out, n);
    assert_int_equal(raft_log_slice(&f.log, 3, 6, RAFT_NO_LIMIT, 2, &out, &n), RAFT_OK);
    assert_int_equal(n, 2);
    raft_entries_free(out, n);
    assert_int_equal(raft_log_slice(&f.log, 2, 7, RAFT_NO_LIMIT, 0, &out, &n),
                     RAFT_ERR_UNAVAILABLE);
    raft_memory_storage_compact(f.ms, 2);
    assert_int_equal(raft_log_slice(&f.log, 2, 4, RAFT_NO_LIMIT, 0, &out, &n), RAFT_ERR_COMPACTED);
    assert_int_equal(raft_log_term(&f.log, 1, &f.log.applied), RAFT_ERR_COMPACTED);
    f.log.applied = 0;
    fx_close(&f);
}

/* Restoring a snapshot resets the log to it: first/last index, term and commit follow the snapshot.
 */
static void test_restore_snapshot(void **state)
{
    (void)state;
    const uint64_t terms[] = {1, 1, 1};
    struct fx f;
    fx_init(&f, terms, 3);
    struct raft_snapshot s = {.metadata = {.index = 10, .term = 4}};
    assert_int_equal(raft_log_restore(&f.log, &s), RAFT_OK);
    assert_int_equal(raft_log_first_index(&f.log), 11);
    assert_int_equal(raft_log_last_index(&f.log), 10);
    assert_int_equal(term_at(&f.log, 10), 4);
    assert_int_equal(f.log.committed, 10);
    assert_false(raft_log_has_next_ents(&f.log)); /* nothing to apply before the snapshot */
    raft_log_stable_snap_to(&f.log, 10);
    assert_false(f.log.unstable.has_snapshot);
    fx_close(&f);
}

/* Entries to apply start after max(applied, snapshot) and stop at commit. */
static void test_next_ents(void **state)
{
    (void)state;
    const uint64_t terms[] = {1, 1, 1, 1};
    struct fx f;
    fx_init(&f, terms, 4);
    f.log.committed = 3;
    f.log.applied = 1;
    assert_true(raft_log_has_next_ents(&f.log));
    struct raft_entry *out;
    size_t n;
    assert_int_equal(raft_log_next_ents(&f.log, &out, &n), RAFT_OK);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].index, 2);
    raft_entries_free(out, n);
    raft_log_applied_to(&f.log, 3);
    assert_false(raft_log_has_next_ents(&f.log));
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maybe_append),
        cmocka_unit_test(test_is_up_to_date),
        cmocka_unit_test(test_maybe_commit_requires_term),
        cmocka_unit_test(test_unstable_and_stable_to),
        cmocka_unit_test(test_slice_limits),
        cmocka_unit_test(test_restore_snapshot),
        cmocka_unit_test(test_next_ents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* fuzz.h — what every fuzz target in tests/fuzz/ shares: the libFuzzer entry point and a check. */
#ifndef TINYKV_TESTS_FUZZ_FUZZ_H
#define TINYKV_TESTS_FUZZ_FUZZ_H

/*
 * Each tests/fuzz/fuzz_<target>.c defines LLVMFuzzerTestOneInput. `make fuzz`
 * links it with libFuzzer (clang); `make test` links it with replay_main.c
 * (gcc), which feeds it every file of tests/fuzz/corpus/<target>/. A target
 * must never keep state from one input to the next that changes what the
 * next one does: a replayed corpus file must behave as it did when found.
 *
 * FUZZ_CHECK is always on (it does not depend on NDEBUG): a property the code
 * under test promises (a round trip, an answer for every call) that does not
 * hold is a finding, reported like a crash.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif

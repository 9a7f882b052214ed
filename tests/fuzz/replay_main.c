/* replay_main.c — runs a fuzz target over every file of its checked-in corpus (for `make test`). */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"

/*
 * The Makefile compiles this with -DFUZZ_TARGET="name"; with no argument the
 * corpus is tests/fuzz/corpus/<name>/ relative to the working directory (the
 * repository root, where run_layer.sh runs). Arguments name files or folders
 * to replay instead. A crash or sanitizer report ends the process and names
 * the file being replayed (from a signal handler, or the sanitizers' death
 * callback); otherwise each file is one passed case. FUZZ_REPLAY_VERBOSE=1
 * names every file as it starts.
 */

#ifndef FUZZ_TARGET
#error "compile with -DFUZZ_TARGET=\"name\""
#endif

/* The file being replayed, for the crash report (written before each input, read by handlers). */
static char current[4096];
static int verbose;

static void say_current(void)
{
    static const char pre[] = "replay " FUZZ_TARGET ": the input that failed is ";
    ssize_t n = write(2, pre, sizeof pre - 1);
    n = write(2, current, strlen(current));
    n = write(2, "\n", 1);
    (void)n;
}

static void on_fatal_signal(int sig)
{
    say_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Present when a sanitizer runtime is linked (make SAN=1); NULL otherwise. */
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static void install_crash_report(void)
{
    /* FUZZ_CHECK aborts; the sanitizers leave SIGABRT alone. */
    signal(SIGABRT, on_fatal_signal);
    if (__sanitizer_set_death_callback) {
        __sanitizer_set_death_callback(say_current); /* their own SEGV handlers stay */
        return;
    }
    signal(SIGSEGV, on_fatal_signal);
    signal(SIGBUS, on_fatal_signal);
    signal(SIGFPE, on_fatal_signal);
    signal(SIGILL, on_fatal_signal);
}

static int replay_file(const char *path, size_t *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
        fclose(f);
        return -1;
    }
    size_t len = (size_t)st.st_size;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf || fread(buf, 1, len, f) != len) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    snprintf(current, sizeof current, "%s (%zu bytes)", path, len);
    if (verbose)
        fprintf(stderr, "replay %s: %s\n", FUZZ_TARGET, current);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    (*count)++;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays a folder's regular files in name order (so a run is repeatable). */
static int replay_dir(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: cannot open %s\n", dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) {
                rc = -1;
                break;
            }
            names = grown;
        }
        if ((names[n] = strdup(e->d_name)) == NULL) {
            rc = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (rc == 0 && replay_file(path, count) != 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    int rc = 0;
    verbose = getenv("FUZZ_REPLAY_VERBOSE") && strcmp(getenv("FUZZ_REPLAY_VERBOSE"), "1") == 0;
    install_crash_report();
    if (argc < 2) {
        rc = replay_dir("tests/fuzz/corpus/" FUZZ_TARGET, &count);
    } else {
        for (int i = 1; i < argc && rc == 0; i++) {
            struct stat st;
            if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
                rc = replay_dir(argv[i], &count);
            else
                rc = replay_file(argv[i], &count);
        }
    }
    if (rc == 0 && count == 0) {
        fprintf(stderr, "replay %s: the corpus is empty\n", FUZZ_TARGET);
        rc = -1;
    }
    printf("replay: %zu passed, %d failed (%s)\n", rc == 0 ? count : 0, rc == 0 ? 0 : 1,
           FUZZ_TARGET);
    return rc == 0 ? 0 : 1;
}

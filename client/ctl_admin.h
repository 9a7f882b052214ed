/* ctl_admin.h — tinykv-ctl's admin subcommands (store, region, operator, scheduler, config, tso).
 */
#ifndef TINYKV_CLIENT_CTL_ADMIN_H
#define TINYKV_CLIENT_CTL_ADMIN_H

/*
 * Owns: the admin side of tinykv-ctl: turning a subcommand into calls on the
 * scheduler's HTTP/JSON admin API (libcurl, jansson) and printing the answer
 * as an aligned table for people or, with --json, as the API's JSON. `region
 * check` then calls the region's stores over gRPC (client/ctl_check.c).
 *
 * Called by: tinykv-ctl's main (client/ctl_main.c) only, after it has parsed
 * the global options. Not part of the client library's API (client/client.h).
 *
 * Must never: wait on the scheduler without a deadline (every HTTP call has
 * the --timeout), print anything but the API's message on stderr for an API
 * error, or keep state between runs (no globals; libcurl is initialised and
 * cleaned up inside ctl_admin_run).
 *
 * Exit statuses (the same as tinykv-ctl's raw commands): CTL_ADMIN_OK,
 * CTL_ADMIN_EXIT_API (the API answered an error, e.g. not found),
 * CTL_ADMIN_EXIT_USAGE (bad command line), CTL_ADMIN_EXIT_UNREACHABLE (no
 * answer from the scheduler within the timeout).
 */

#include <stdbool.h>
#include <stdio.h>

enum {
    CTL_ADMIN_OK = 0,
    CTL_ADMIN_EXIT_API = 1,
    CTL_ADMIN_EXIT_USAGE = 2,
    CTL_ADMIN_EXIT_UNREACHABLE = 3,
};

/* The scheduler's default HTTP address, and the environment variable that overrides it. */
#define CTL_ADMIN_DEFAULT_PD_HTTP "127.0.0.1:2378"
#define CTL_ADMIN_ENV_PD_HTTP "TINYKV_PD_HTTP"

struct ctl_admin_options {
    const char *pd_http; /* HOST:PORT or a URL base ("http://..."); NULL = env, then default */
    const char *token;   /* bearer token for mutating calls; NULL = none */
    bool json;           /* print the API's JSON (pretty) instead of tables */
    bool hex;            /* region keys are given and printed as hex */
    int timeout_ms;      /* bound on each HTTP call (connect included); > 0 */
    unsigned long region_limit; /* region list: most regions a page shows (0 = all) */
    const char *start_key;      /* region list: the page starts at the region holding this key
                                   (raw, or hex with --hex); NULL = the first region */
};

/* ctl_admin_is_command says whether name is one of the admin subcommands. */
bool ctl_admin_is_command(const char *name);

/*
 * ctl_admin_run runs one admin subcommand: argv[0] is its name ("store",
 * "region", ...), the rest its arguments (argc counts argv[0]). Output goes to
 * stdout, errors to stderr. o and argv are borrowed for the call. Returns the
 * exit status (CTL_ADMIN_*).
 */
int ctl_admin_run(const struct ctl_admin_options *o, int argc, char **argv);

/* ctl_admin_usage prints the admin subcommands' usage lines to out. */
void ctl_admin_usage(FILE *out);

#endif

/* fuse_main.c — tinykv-fuse: command line, scheduler check, mount, daemonize, serve. */
/* 3.12: the loop's thread limit is ours to set (fuse_operations is the same as 3.1's). */
#define FUSE_USE_VERSION 312
#include <fuse.h>
#include <fuse_lowlevel.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/client.h"
#include "fs/fs.h"
#include "proto/log.h"

#define DEFAULT_SCHEDULER "127.0.0.1:2379"
#define DEFAULT_TIMEOUT_MS 5000
/* Requests served at once. Most wait on the cluster (a close's commit takes several round
 * trips), so libfuse's default of 10 would queue a 16-writer workload behind the commits. */
#define DEFAULT_MAX_THREADS 64

struct mount_conf {
    char *scheduler;
    int timeout_ms;
    int max_threads;
    int read_only;
    char *lookupcache; /* "all" (default) or "positive" */
    int help;
    int n_nonopts;
    char *nonopts[2]; /* [source] mountpoint */
};

enum { KEY_RO, KEY_HELP };

static const struct fuse_opt MOUNT_OPTS[] = {
    {"scheduler=%s", offsetof(struct mount_conf, scheduler), 0},
    {"timeout=%d", offsetof(struct mount_conf, timeout_ms), 0},
    {"max_threads=%d", offsetof(struct mount_conf, max_threads), 0},
    {"lookupcache=%s", offsetof(struct mount_conf, lookupcache), 0},
    FUSE_OPT_KEY("ro", KEY_RO),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_END,
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tinykv-fuse [-f] [-d] [-s] [-o OPTIONS] MOUNTPOINT\n"
            "       (OPTIONS: scheduler=HOST:PORT,timeout=MS,max_threads=N,\n"
            "                 lookupcache=all|positive,ro,...)\n"
            "       tinykv-fuse SOURCE MOUNTPOINT -o OPTIONS   (the /etc/fstab form, type "
            "fuse.tinykv;\n"
            "                   a SOURCE of the form HOST:PORT is the scheduler address)\n"
            "Mounts the TinyKV cluster whose scheduler is at HOST:PORT (default " DEFAULT_SCHEDULER
            ")\n"
            "as a filesystem: keys are files. -f stays in the foreground, -d also prints FUSE\n"
            "requests, -s serves one request at a time. timeout is the deadline of one\n"
            "operation against the cluster (default %d ms); past it the call fails with EIO.\n"
            "max_threads is the most requests served at once (default %d).\n"
            "lookupcache=all (the default) answers a look-up of a missing name from a\n"
            "listing of its directory read less than 1 s before, so a name another mount\n"
            "makes may stay unseen here for up to 1 s (as NFS's lookupcache=all);\n"
            "lookupcache=positive asks the cluster for every missing name.\n"
            "The kernel checks permissions (default_permissions); -o allow_other lets other\n"
            "users in (as root, or with user_allow_other in /etc/fuse.conf).\n"
            "Unmount with: fusermount3 -u MOUNTPOINT\n",
            DEFAULT_TIMEOUT_MS, DEFAULT_MAX_THREADS);
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    struct mount_conf *conf = data;

    (void)outargs;
    switch (key) {
    case KEY_RO:
        conf->read_only = 1;
        return 1; /* also a kernel mount option */
    case KEY_HELP:
        conf->help = 1;
        return 0;
    case FUSE_OPT_KEY_NONOPT:
        if (conf->n_nonopts < 2) {
            conf->nonopts[conf->n_nonopts] = strdup(arg);
            if (!conf->nonopts[conf->n_nonopts])
                return -1;
            conf->n_nonopts++;
            return 0;
        }
        fprintf(stderr, "tinykv-fuse: unexpected argument '%s'\n", arg);
        return -1;
    default:
        return 1;
    }
}

static struct client_options client_opts(const struct mount_conf *conf)
{
    struct client_options o;

    memset(&o, 0, sizeof o);
    o.timeout_ms = conf->timeout_ms;
    o.rpc_timeout_ms = conf->timeout_ms < 2000 ? conf->timeout_ms : 2000;
    return o;
}

/*
 * Checks in a child process that the scheduler answers (members and one
 * timestamp), so the parent never starts gRPC threads before it forks into
 * the background. Returns 0 when reachable.
 */
static int probe_scheduler(const struct mount_conf *conf)
{
    pid_t pid = fork();
    int status = 0;

    if (pid < 0) {
        perror("tinykv-fuse: fork");
        return -1;
    }
    if (pid == 0) {
        struct client_options o = client_opts(conf);
        struct client *c = NULL;
        char err[256] = "";
        client_ts ts;
        int rc;

        o.timeout_ms = o.timeout_ms < 3000 ? o.timeout_ms : 3000;
        rc = client_new(conf->scheduler, &o, &c, err, sizeof err);
        if (rc == CLIENT_OK) {
            rc = client_tso(c, &ts);
            if (rc != CLIENT_OK)
                snprintf(err, sizeof err, "%s", client_last_error(c));
            client_free(c);
        }
        if (rc != CLIENT_OK)
            fprintf(stderr, "tinykv-fuse: cannot reach the scheduler at %s: %s%s%s\n",
                    conf->scheduler, client_strerror(rc), err[0] ? ": " : "", err);
        _exit(rc == CLIENT_OK ? 0 : 1);
    }
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct fuse_cmdline_opts cmd;
    struct mount_conf conf;
    struct fuse *f = NULL;
    struct fs *fs = NULL;
    struct client *c = NULL;
    struct client_options copts;
    struct fs_options fopts;
    char err[256] = "";
    int rc, ret = 1, mounted = 0, handlers = 0;

    memset(&conf, 0, sizeof conf);
    memset(&cmd, 0, sizeof cmd);
    conf.timeout_ms = DEFAULT_TIMEOUT_MS;
    conf.max_threads = DEFAULT_MAX_THREADS;
    if (fuse_opt_parse(&args, &conf, MOUNT_OPTS, opt_proc) != 0) {
        usage(stderr);
        goto cleanup;
    }
    if (conf.help) {
        usage(stdout);
        printf("\nFUSE options:\n");
        fuse_cmdline_help();
        fuse_lib_help(&args);
        ret = 0;
        goto cleanup;
    }
    if (conf.n_nonopts == 0) {
        usage(stderr);
        goto cleanup;
    }
    if (conf.n_nonopts == 2 && !conf.scheduler && strchr(conf.nonopts[0], ':'))
        conf.scheduler = strdup(conf.nonopts[0]);
    if (!conf.scheduler)
        conf.scheduler = strdup(DEFAULT_SCHEDULER);
    if (!conf.scheduler || conf.timeout_ms <= 0 || conf.max_threads <= 0 ||
        conf.max_threads > 100000) {
        fprintf(stderr, "tinykv-fuse: bad options\n");
        goto cleanup;
    }
    if (conf.lookupcache && strcmp(conf.lookupcache, "all") != 0 &&
        strcmp(conf.lookupcache, "positive") != 0) {
        fprintf(stderr, "tinykv-fuse: lookupcache must be 'all' or 'positive', not '%s'\n",
                conf.lookupcache);
        goto cleanup;
    }
    /* The kernel checks every access against the stored modes and owners. */
    if (fuse_opt_add_arg(&args, "-odefault_permissions") != 0 ||
        fuse_opt_add_arg(&args, conf.nonopts[conf.n_nonopts - 1]) != 0 ||
        fuse_parse_cmdline(&args, &cmd) != 0 || !cmd.mountpoint) {
        usage(stderr);
        goto cleanup;
    }
    log_current_level = cmd.debug ? LOG_DEBUG : LOG_WARN;

    if (probe_scheduler(&conf) != 0)
        goto cleanup;

    /* The loop's init() returns *(&fs), filled in after the fork below. */
    f = fuse_new(&args, fs_fuse_operations(), sizeof(struct fuse_operations), &fs);
    if (!f)
        goto cleanup;
    if (fuse_mount(f, cmd.mountpoint) != 0)
        goto cleanup;
    mounted = 1;
    if (fuse_daemonize(cmd.foreground) != 0)
        goto cleanup;

    copts = client_opts(&conf);
    rc = client_new(conf.scheduler, &copts, &c, err, sizeof err);
    if (rc != CLIENT_OK) {
        LOG(LOG_ERROR, "cannot reach the scheduler at %s: %s: %s", conf.scheduler,
            client_strerror(rc), err);
        goto cleanup;
    }
    memset(&fopts, 0, sizeof fopts);
    fopts.read_only = conf.read_only;
    fopts.op_timeout_ms = conf.timeout_ms;
    fopts.exact_negative_lookups = conf.lookupcache && strcmp(conf.lookupcache, "positive") == 0;
    if (fs_new(c, &fopts, &fs) != FS_OK)
        goto cleanup;
    if (fuse_set_signal_handlers(fuse_get_session(f)) != 0)
        goto cleanup;
    handlers = 1;
    LOG(LOG_INFO, "mounted %s (scheduler %s)", cmd.mountpoint, conf.scheduler);
    if (cmd.singlethread)
        ret = fuse_loop(f) == 0 ? 0 : 1;
    else {
        struct fuse_loop_config *lc = fuse_loop_cfg_create();
        if (!lc)
            goto cleanup;
        fuse_loop_cfg_set_clone_fd(lc, (unsigned int)cmd.clone_fd);
        fuse_loop_cfg_set_max_threads(lc, (unsigned int)conf.max_threads);
        ret = fuse_loop_mt(f, lc) == 0 ? 0 : 1;
        fuse_loop_cfg_destroy(lc);
    }

cleanup:
    if (handlers)
        fuse_remove_signal_handlers(fuse_get_session(f));
    if (mounted)
        fuse_unmount(f);
    if (f)
        fuse_destroy(f);
    fs_free(fs);
    if (c)
        client_free(c);
    free(cmd.mountpoint);
    free(conf.scheduler);
    free(conf.lookupcache);
    for (int i = 0; i < conf.n_nonopts; i++)
        free(conf.nonopts[i]);
    fuse_opt_free_args(&args);
    return ret;
}

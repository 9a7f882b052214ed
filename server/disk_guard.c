/* disk_guard.c — refuses writes that add data while the data directory is short of space. */
#include "server/disk_guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "proto/rpc.h"

void disk_guard_init(struct disk_guard *g, const char *dir, uint64_t reserve_bytes,
                     uint64_t store_id)
{
    memset(g, 0, sizeof *g);
    snprintf(g->dir, sizeof g->dir, "%s", dir);
    g->reserve_bytes = reserve_bytes;
    g->store_id = store_id;
    pthread_mutex_init(&g->mu, NULL);
}

void disk_guard_destroy(struct disk_guard *g)
{
    pthread_mutex_destroy(&g->mu);
}

/* Bytes free now (read at most every DISK_GUARD_CHECK_MS); 0 with *known 0 if unreadable. */
static uint64_t free_bytes(struct disk_guard *g, int *known)
{
    uint64_t now = rpc_now_ms();
    pthread_mutex_lock(&g->mu);
    if (!g->checked_ms || now - g->checked_ms >= DISK_GUARD_CHECK_MS) {
        struct statvfs st;
        g->known = statvfs(g->dir, &st) == 0;
        g->avail = g->known ? (uint64_t)st.f_bavail * (uint64_t)st.f_frsize : 0;
        g->checked_ms = now;
    }
    uint64_t avail = g->avail;
    *known = g->known;
    pthread_mutex_unlock(&g->mu);
    return avail;
}

Errorpb__Error *disk_guard_refusal(struct disk_guard *g)
{
    if (!g || !g->reserve_bytes)
        return NULL;
    int known;
    uint64_t avail = free_bytes(g, &known);
    if (!known || avail > g->reserve_bytes)
        return NULL;
    Errorpb__Error *e = malloc(sizeof *e);
    Errorpb__DiskFull *df = malloc(sizeof *df);
    uint64_t *ids = malloc(sizeof *ids);
    char who[32] = "the store", reason[192];
    if (g->store_id)
        snprintf(who, sizeof who, "store %llu", (unsigned long long)g->store_id);
    snprintf(reason, sizeof reason,
             "%s is short of disk space: %llu MiB free, %llu MiB reserved; writes that add data "
             "are refused",
             who, (unsigned long long)(avail >> 20), (unsigned long long)(g->reserve_bytes >> 20));
    char *msg = strdup(reason), *why = strdup(reason);
    if (!e || !df || !ids || !msg || !why) {
        free(e);
        free(df);
        free(ids);
        free(msg);
        free(why);
        return NULL;
    }
    errorpb__error__init(e);
    errorpb__disk_full__init(df);
    ids[0] = g->store_id;
    df->store_id = ids;
    df->n_store_id = 1;
    df->reason = why;
    e->disk_full = df;
    e->message = msg;
    return e;
}

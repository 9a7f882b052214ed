/* cmd_resp.c — answering a proposed command or read: results and region errors for its callback. */
#include <stdio.h>
#include <string.h>

#include "store/raftstore_internal.h"

void raftstore_answer(raftstore_cb cb, void *arg, int code, const struct storage_error *err,
                      struct storage_reader *reader)
{
    struct raftstore_result res;
    memset(&res, 0, sizeof res);
    res.code = code;
    if (err)
        res.err = *err;
    res.err.code = code;
    if (code && !res.err.msg[0])
        snprintf(res.err.msg, sizeof res.err.msg, "%s", storage_strerror(code));
    res.reader = reader;
    cb(arg, &res);
}

void raftstore_answer_region_error(raftstore_cb cb, void *arg, enum storage_region_error_kind kind,
                                   uint64_t region_id, uint64_t leader_peer_id,
                                   uint64_t leader_store_id, const char *msg)
{
    struct storage_error err;
    memset(&err, 0, sizeof err);
    err.code = STORAGE_ERR_REGION;
    err.region_kind = kind;
    err.region_id = region_id;
    err.leader_peer_id = leader_peer_id;
    err.leader_store_id = leader_store_id;
    snprintf(err.msg, sizeof err.msg, "%s", msg);
    raftstore_answer(cb, arg, STORAGE_ERR_REGION, &err, NULL);
}

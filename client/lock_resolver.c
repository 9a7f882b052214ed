/* lock_resolver.c — settles a lock met by a read or prewrite via its primary's status. */
#include "client/client_internal.h"

int client_lock_resolve(struct client *c, const Kvrpcpb__LockInfo *lock, struct backoff *b)
{
    if (lock->primary_lock.len == 0 || lock->key.len == 0 || lock->lock_version == 0)
        return client_seterr(c, CLIENT_ERR_SERVER, "store reported a lock without primary or key");
    client_ts now;
    int rc = client_tso(c, &now);
    if (rc)
        return rc;

    Kvrpcpb__CheckTxnStatusRequest creq = KVRPCPB__CHECK_TXN_STATUS_REQUEST__INIT;
    creq.primary_key = lock->primary_lock;
    creq.lock_ts = lock->lock_version;
    creq.current_ts = now;
    ProtobufCMessage *m;
    rc = client_store_call_key(c, lock->primary_lock.data, lock->primary_lock.len,
                               "/tinykvpb.TinyKv/KvCheckTxnStatus", &creq.base,
                               &kvrpcpb__check_txn_status_response__descriptor, &m, b, NULL);
    if (rc)
        return rc;
    Kvrpcpb__CheckTxnStatusResponse *cresp = (Kvrpcpb__CheckTxnStatusResponse *)m;
    uint64_t ttl = cresp->lock_ttl, commit_ts = cresp->commit_version;
    protobuf_c_message_free_unpacked(m, NULL);
    if (ttl > 0 && commit_ts == 0) {
        /* The owner is alive: wait a little for it to finish or its TTL to run out. */
        client_seterr(c, CLIENT_ERR_TIMEOUT, "key locked by live transaction %llu",
                      (unsigned long long)lock->lock_version);
        if (client_backoff_sleep(b) < 0)
            return CLIENT_ERR_TIMEOUT;
        return CLIENT_RETRY_REGION;
    }

    Kvrpcpb__ResolveLockRequest rreq = KVRPCPB__RESOLVE_LOCK_REQUEST__INIT;
    rreq.start_version = lock->lock_version;
    rreq.commit_version = commit_ts; /* 0: rolled back */
    rc =
        client_store_call_key(c, lock->key.data, lock->key.len, "/tinykvpb.TinyKv/KvResolveLock",
                              &rreq.base, &kvrpcpb__resolve_lock_response__descriptor, &m, b, NULL);
    if (rc)
        return rc;
    Kvrpcpb__ResolveLockResponse *rresp = (Kvrpcpb__ResolveLockResponse *)m;
    if (rresp->error) {
        const Kvrpcpb__KeyError *e = rresp->error;
        rc = client_seterr(c, CLIENT_ERR_SERVER, "resolve lock of %llu: %s",
                           (unsigned long long)lock->lock_version,
                           e->abort && e->abort[0]           ? e->abort
                           : e->retryable && e->retryable[0] ? e->retryable
                                                             : "key error");
    } else {
        atomic_fetch_add(&c->stat_lock_resolves, 1);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

/* stores.c — the cluster's space figures, summed from the scheduler's per-store statistics. */
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"

int client_cluster_space(struct client *c, struct client_space *out)
{
    Schedulerpb__GetAllStoresRequest req = SCHEDULERPB__GET_ALL_STORES_REQUEST__INIT;
    Schedulerpb__GetAllStoresResponse *all;
    ProtobufCMessage *m = NULL;
    struct backoff b;
    int rc;

    memset(out, 0, sizeof *out);
    client_backoff_init(&b, c);
    req.exclude_tombstone_stores = 1;
    rc = client_pd_call(c, "/schedulerpb.Scheduler/GetAllStores", &req.base,
                        &schedulerpb__get_all_stores_response__descriptor, &m, &b);
    if (rc == CLIENT_PD_NOT_READY)
        return CLIENT_ERR_UNAVAILABLE;
    if (rc)
        return rc;
    all = (Schedulerpb__GetAllStoresResponse *)m;
    for (size_t i = 0; i < all->n_stores && rc == CLIENT_OK; i++) {
        Schedulerpb__GetStoreRequest sreq = SCHEDULERPB__GET_STORE_REQUEST__INIT;
        Schedulerpb__GetStoreResponse *one;
        ProtobufCMessage *sm = NULL;

        if (all->stores[i]->state == METAPB__STORE_STATE__Tombstone)
            continue;
        sreq.store_id = all->stores[i]->id;
        rc = client_pd_call(c, "/schedulerpb.Scheduler/GetStore", &sreq.base,
                            &schedulerpb__get_store_response__descriptor, &sm, &b);
        if (rc == CLIENT_PD_NOT_READY) {
            rc = CLIENT_OK; /* a store without a heartbeat yet: no figures to add */
            continue;
        }
        if (rc)
            break;
        one = (Schedulerpb__GetStoreResponse *)sm;
        out->n_stores++;
        if (one->stats && one->stats->capacity > 0) {
            out->capacity_bytes += one->stats->capacity;
            out->available_bytes += one->stats->available;
            out->n_reporting++;
        }
        protobuf_c_message_free_unpacked(sm, NULL);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

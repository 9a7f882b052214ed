/* pd_fixture.c — the bootstrapped in-memory cluster fuzz targets start each input from. */
#include "tests/fuzz/pd_fixture.h"

#include <stdio.h>

#include "pd/pd.h"
#include "tests/fuzz/fuzz.h"

struct pd_cluster *fuzz_pd_cluster_new(size_t stores)
{
    struct pd_options o = {.data_dir = NULL};
    struct pd_cluster *c;
    char err[256];
    FUZZ_CHECK(pd_cluster_open(&o, &c, err, sizeof err) == PD_OK);
    struct pd_region region;
    pd_region_init(&region);
    region.id = 2;
    region.peers[0] = (struct pd_peer){.id = 3, .store_id = 1};
    region.peer_count = 1;
    region.epoch.conf_ver = 1;
    region.epoch.version = 1;
    region.leader = region.peers[0];
    for (uint64_t id = 1; id <= stores; id++) {
        struct pd_store store = {.id = id, .state = PD_STORE_UP};
        snprintf(store.address, sizeof store.address, "127.0.0.1:%u", 20160u + (unsigned)id);
        if (id == 1)
            FUZZ_CHECK(pd_cluster_bootstrap(c, &store, &region) == PD_OK);
        else
            FUZZ_CHECK(pd_cluster_put_store(c, &store) == PD_OK);
    }
    return c;
}

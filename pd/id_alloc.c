/* id_alloc.c — unique ID allocation in persisted batches, never reusing an ID after a crash. */
#include "pd/pd_internal.h"

#include <stdlib.h>

/* The persisted value is the end of the reserved batch: every ID handed out is below it, so a
 * restart continues from it and at most one unused batch is skipped. IDs start at 1. */

static int save_end(struct pd_meta_store *m, uint64_t end, char *errmsg, size_t errmsg_len)
{
    char *buf;
    size_t len;
    int err = pd_codec_encode_u64(end, &buf, &len);
    if (err != PD_OK)
        return err;
    err = pd_meta_store_put(m, PD_META_KEY_ALLOC_ID, buf, len, true, errmsg, errmsg_len);
    free(buf);
    return err;
}

int pd_id_alloc_load(struct pd_id_alloc *a, struct pd_meta_store *m, uint64_t batch, char *errmsg,
                     size_t errmsg_len)
{
    char *buf;
    size_t len;
    uint64_t end = 0;
    int err = pd_meta_store_get(m, PD_META_KEY_ALLOC_ID, &buf, &len, errmsg, errmsg_len);
    if (err == PD_OK) {
        err = pd_codec_decode_u64(buf, len, &end);
        free(buf);
        if (err != PD_OK)
            return err;
    } else if (err != PD_ERR_NOT_FOUND) {
        return err;
    }
    a->end = end;
    a->next = end > 0 ? end : 1;
    a->batch = batch;
    return PD_OK;
}

int pd_id_alloc_next(struct pd_id_alloc *a, struct pd_meta_store *m, uint64_t *id, char *errmsg,
                     size_t errmsg_len)
{
    if (a->next >= a->end) {
        uint64_t end = a->next + a->batch;
        int err = save_end(m, end, errmsg, errmsg_len);
        if (err != PD_OK)
            return err;
        a->end = end;
    }
    *id = a->next++;
    return PD_OK;
}

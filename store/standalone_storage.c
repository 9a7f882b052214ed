/* standalone_storage.c — the Storage interface directly over one RocksDB engine, for --standalone.
 */
#include "store/engine.h"

#include <stdio.h>
#include <stdlib.h>

struct standalone_storage {
    struct storage base;
    struct engine *engine;
};

static int validate(const struct storage_modify *mods, size_t n, struct storage_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned)mods[i].cf >= STORAGE_CF_COUNT || mods[i].key_len == 0) {
            if (err) {
                err->code = STORAGE_ERR_INVALID;
                snprintf(err->msg, sizeof err->msg, "modification %zu: %s", i,
                         mods[i].key_len == 0 ? "empty key" : "unknown column family");
            }
            return STORAGE_ERR_INVALID;
        }
    }
    return 0;
}

static int standalone_write(struct storage *base, const struct storage_ctx *ctx,
                            const struct storage_modify *mods, size_t n, struct storage_error *err)
{
    (void)ctx;
    struct standalone_storage *s = (struct standalone_storage *)base;
    int rc = validate(mods, n, err);
    if (rc)
        return rc;
    char buf[256];
    rc = engine_write(s->engine, mods, n, buf, sizeof buf);
    if (rc && err) {
        err->code = rc;
        snprintf(err->msg, sizeof err->msg, "%s", buf);
    }
    return rc;
}

static int standalone_reader(struct storage *base, const struct storage_ctx *ctx,
                             struct storage_reader **out, struct storage_error *err)
{
    (void)ctx;
    struct standalone_storage *s = (struct standalone_storage *)base;
    int rc = engine_snapshot_reader(s->engine, out);
    if (rc && err) {
        err->code = rc;
        snprintf(err->msg, sizeof err->msg, "%s", storage_strerror(rc));
    }
    return rc;
}

static void standalone_free(struct storage *base)
{
    struct standalone_storage *s = (struct standalone_storage *)base;
    engine_close(s->engine);
    free(s);
}

static const struct storage_ops standalone_ops = {
    .write = standalone_write,
    .reader = standalone_reader,
    .free = standalone_free,
};

int standalone_storage_open(const char *dir, struct storage **out, char *errbuf, size_t errbuf_len)
{
    struct standalone_storage *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(errbuf, errbuf_len, "out of memory");
        return STORAGE_ERR_NOMEM;
    }
    int rc = engine_open(dir, 1, &s->engine, errbuf, errbuf_len);
    if (!rc && (rc = engine_format_check(s->engine, errbuf, errbuf_len)) != 0)
        engine_close(s->engine);
    if (rc) {
        free(s);
        return rc;
    }
    s->base.ops = &standalone_ops;
    *out = &s->base;
    return 0;
}

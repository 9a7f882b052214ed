/* dcache.c — directory listings remembered for FS_DCACHE_TTL_MS (see dcache.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fs/dcache.h"
#include "fs/fs_internal.h"
#include "fs/meta.h"

/* How long a directory found too large is not listed again. */
#define TOO_BIG_PAUSE_MS (10 * FS_DCACHE_TTL_MS)

/* A set of names (open addressing, at most half full), each with optional attributes. */
struct name_slot {
    uint64_t hash;
    uint8_t *name; /* NULL: free */
    size_t len;
    struct fs_meta *meta; /* malloc'd; NULL: a name only (or attributes no longer good) */
    int64_t meta_ms;      /* children's records: when the scan that read it began */
};

struct name_set {
    struct name_slot *v;
    size_t cap, n;
};

/* One remembered directory. */
struct dc_dir {
    uint8_t *key; /* the directory's key ("" for the root); NULL: slot unused */
    size_t key_len;
    struct name_set names;   /* the last listing's names and every one noted since */
    struct name_set pending; /* names noted while a listing is taken */
    int64_t listed_ms;       /* the listing answers until listed_ms + TTL; 0: none */
    int64_t too_big_until;
    int64_t last_use;
    uint64_t fill_id; /* nonzero while a listing is being taken */
    struct fs_meta attrs;
    int64_t attrs_ms; /* when attrs were read; 0: none */
    /* The children's records (fs_dcache_list_children): */
    struct name_set kids;         /* name -> attributes, each with the ms its scan began */
    struct name_set kids_changed; /* names this mount changed while kids_fill runs */
    int64_t kids_ms;              /* when the newest scan began; 0: none */
    uint64_t kids_fill;           /* nonzero while a scan of the children's records runs */
    int64_t kids_miss_ms;         /* the last look-up that went to the cluster */
    int kids_misses;              /* such look-ups since the last scan */
};

struct fs_dcache {
    pthread_mutex_t lock;
    struct dc_dir dirs[FS_DCACHE_DIRS];
    uint64_t next_fill_id;
    uint64_t attr_epoch; /* bumped by every change of a directory's record */
};

static uint64_t name_hash(const uint8_t *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

static struct name_slot *set_find(const struct name_set *set, uint64_t h, const uint8_t *s,
                                  size_t len)
{
    if (!set->cap)
        return NULL;
    for (size_t i = h & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
        struct name_slot *e = &set->v[i];
        if (!e->name)
            return e;
        if (e->hash == h && e->len == len && memcmp(e->name, s, len) == 0)
            return e;
    }
}

static int set_has(const struct name_set *set, const uint8_t *s, size_t len)
{
    struct name_slot *e = set_find(set, name_hash(s, len), s, len);
    return e && e->name;
}

static int set_grow(struct name_set *set)
{
    size_t cap = set->cap ? set->cap * 2 : 64;
    struct name_slot *v = calloc(cap, sizeof *v);

    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < set->cap; i++) {
        struct name_slot *e = &set->v[i];
        if (!e->name)
            continue;
        size_t j = e->hash & (cap - 1);
        while (v[j].name)
            j = (j + 1) & (cap - 1);
        v[j] = *e;
    }
    free(set->v);
    set->v = v;
    set->cap = cap;
    return 0;
}

static int set_add(struct name_set *set, const uint8_t *s, size_t len)
{
    uint64_t h = name_hash(s, len);
    struct name_slot *e;

    if ((set->n + 1) * 2 > set->cap && set_grow(set) != 0)
        return -ENOMEM;
    e = set_find(set, h, s, len);
    if (e->name)
        return 0;
    e->name = malloc(len ? len : 1);
    if (!e->name)
        return -ENOMEM;
    memcpy(e->name, s, len);
    e->len = len;
    e->hash = h;
    set->n++;
    return 0;
}

static void set_clear(struct name_set *set)
{
    for (size_t i = 0; i < set->cap; i++) {
        free(set->v[i].name);
        free(set->v[i].meta);
    }
    free(set->v);
    memset(set, 0, sizeof *set);
}

static void dir_clear(struct dc_dir *d)
{
    free(d->key);
    set_clear(&d->names);
    set_clear(&d->pending);
    set_clear(&d->kids);
    set_clear(&d->kids_changed);
    memset(d, 0, sizeof *d);
}

struct fs_dcache *fs_dcache_new(void)
{
    struct fs_dcache *dc = calloc(1, sizeof *dc);

    if (dc)
        pthread_mutex_init(&dc->lock, NULL);
    return dc;
}

void fs_dcache_free(struct fs_dcache *dc)
{
    if (!dc)
        return;
    for (size_t i = 0; i < FS_DCACHE_DIRS; i++)
        dir_clear(&dc->dirs[i]);
    pthread_mutex_destroy(&dc->lock);
    free(dc);
}

/* Splits a node's key into its directory's key and its name. */
static void split_key(const uint8_t *key, size_t len, size_t *dir_len, const uint8_t **name,
                      size_t *name_len)
{
    size_t i = len;

    while (i > 0 && key[i - 1] != '/')
        i--;
    *dir_len = i ? i - 1 : 0;
    *name = key + i;
    *name_len = len - i;
}

/* The slot of a directory (caller holds dc->lock); NULL if not remembered. */
static struct dc_dir *dir_find(struct fs_dcache *dc, const uint8_t *key, size_t len)
{
    for (size_t i = 0; i < FS_DCACHE_DIRS; i++) {
        struct dc_dir *d = &dc->dirs[i];
        if (d->key && d->key_len == len && memcmp(d->key, key, len) == 0)
            return d;
    }
    return NULL;
}

/* The remembered directory of the node `key`, and the node's name in it (caller holds dc->lock);
 * NULL if not remembered. */
static struct dc_dir *parent_find(struct fs_dcache *dc, const uint8_t *key, size_t key_len,
                                  const uint8_t **name, size_t *name_len)
{
    size_t dir_len;

    split_key(key, key_len, &dir_len, name, name_len);
    return dir_find(dc, key, dir_len);
}

/* A slot for a new directory: a free one or the least recently used that no listing is
 * being taken for. NULL if none (or out of memory). */
static struct dc_dir *dir_take(struct fs_dcache *dc, const uint8_t *key, size_t len)
{
    struct dc_dir *victim = NULL;
    uint8_t *copy;

    for (size_t i = 0; i < FS_DCACHE_DIRS; i++) {
        struct dc_dir *d = &dc->dirs[i];
        if (!d->key) {
            victim = d;
            break;
        }
        if (!d->fill_id && (!victim || d->last_use < victim->last_use))
            victim = d;
    }
    copy = malloc(len ? len : 1);
    if (!victim || !copy) {
        free(copy);
        return NULL;
    }
    dir_clear(victim);
    memcpy(copy, key, len);
    victim->key = copy;
    victim->key_len = len;
    return victim;
}

static int dir_fresh(const struct dc_dir *d, int64_t now)
{
    return d->listed_ms && now - d->listed_ms < FS_DCACHE_TTL_MS;
}

int fs_dcache_absent(struct fs_dcache *dc, const uint8_t *key, size_t key_len)
{
    const uint8_t *name;
    size_t name_len;
    struct dc_dir *d;
    int64_t now = fs_mono_ms();
    int absent = 0;

    if (!dc)
        return 0;
    pthread_mutex_lock(&dc->lock);
    d = parent_find(dc, key, key_len, &name, &name_len);
    if (d && dir_fresh(d, now)) {
        d->last_use = now;
        absent = !set_has(&d->names, name, name_len);
    }
    pthread_mutex_unlock(&dc->lock);
    return absent;
}

/* What a listing collects: the names met, within the caps. */
struct fill_acc {
    struct name_set set;
    size_t subdirs;
};

static int collect_name(void *arg, const uint8_t *comp, size_t clen, int below,
                        const uint8_t *value, size_t vlen)
{
    struct fill_acc *acc = arg;

    (void)value;
    (void)vlen;
    if (below && ++acc->subdirs > FS_DCACHE_MAX_SUBDIRS)
        return -E2BIG; /* each subtree costs a scan of its own */
    if (acc->set.n >= FS_DCACHE_MAX_NAMES)
        return -E2BIG;
    return set_add(&acc->set, comp, clen);
}

/* Lists the names of the directory `dir` (its content keys and its records) at a fresh
 * timestamp into acc. 0, -E2BIG past the caps, or another negative errno. */
static int list_names(struct fs *fs, const uint8_t *dir, size_t dir_len, struct fill_acc *acc)
{
    uint8_t prefix[CLIENT_MAX_KEY_BYTES + 1];
    uint8_t mprefix[CLIENT_MAX_KEY_BYTES + FS_META_PREFIX_LEN + 1];
    size_t plen = dir_len;
    struct client_txn *txn = NULL;
    int rc;

    if (dir_len + 1 > CLIENT_MAX_KEY_BYTES)
        return -ENAMETOOLONG;
    memcpy(prefix, dir, dir_len);
    if (dir_len)
        prefix[plen++] = '/';
    rc = client_txn_begin(fs->client, &txn);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    rc = fs_scan_children(txn, prefix, plen, 0, collect_name, acc);
    if (rc == 0)
        rc = fs_scan_children(txn, mprefix, fs_meta_key(prefix, plen, mprefix), 0, collect_name,
                              acc);
    client_txn_rollback(txn);
    client_txn_free(txn);
    return rc;
}

void fs_dcache_missed(struct fs *fs, const uint8_t *key, size_t key_len)
{
    struct fs_dcache *dc = fs->dcache;
    const uint8_t *name;
    size_t dir_len, name_len;
    struct dc_dir *d;
    struct fill_acc acc;
    uint64_t id;
    int64_t start = fs_mono_ms();
    int rc;

    if (!dc)
        return;
    split_key(key, key_len, &dir_len, &name, &name_len);
    pthread_mutex_lock(&dc->lock);
    d = dir_find(dc, key, dir_len);
    if (d && (d->fill_id || dir_fresh(d, start) || start < d->too_big_until)) {
        pthread_mutex_unlock(&dc->lock);
        return;
    }
    if (!d)
        d = dir_take(dc, key, dir_len);
    if (!d) {
        pthread_mutex_unlock(&dc->lock);
        return;
    }
    id = d->fill_id = ++dc->next_fill_id;
    d->last_use = start;
    set_clear(&d->pending);
    pthread_mutex_unlock(&dc->lock);

    /* `start` was read before the listing's timestamp was asked for. */
    memset(&acc, 0, sizeof acc);
    rc = list_names(fs, key, dir_len, &acc);

    pthread_mutex_lock(&dc->lock);
    d = dir_find(dc, key, dir_len);
    if (d && d->fill_id == id) {
        d->fill_id = 0;
        for (size_t i = 0; rc == 0 && i < d->pending.cap; i++)
            if (d->pending.v[i].name)
                rc = set_add(&acc.set, d->pending.v[i].name, d->pending.v[i].len);
        set_clear(&d->pending);
        if (rc == 0) {
            set_clear(&d->names);
            d->names = acc.set;
            memset(&acc.set, 0, sizeof acc.set);
            d->listed_ms = start;
        } else {
            /* No listing: the names noted before stay (they were never wrong). */
            d->listed_ms = 0;
            if (rc == -E2BIG)
                d->too_big_until = fs_mono_ms() + TOO_BIG_PAUSE_MS;
        }
    }
    pthread_mutex_unlock(&dc->lock);
    set_clear(&acc.set);
}

void fs_dcache_note(struct fs_dcache *dc, const uint8_t *key, size_t key_len)
{
    const uint8_t *name;
    size_t name_len;
    struct dc_dir *d;

    if (!dc)
        return;
    pthread_mutex_lock(&dc->lock);
    d = parent_find(dc, key, key_len, &name, &name_len);
    if (d) {
        int rc = set_add(&d->names, name, name_len);
        if (rc == 0 && d->fill_id)
            rc = set_add(&d->pending, name, name_len);
        if (rc != 0)
            d->listed_ms = 0; /* out of memory: this listing can no longer answer */
    }
    pthread_mutex_unlock(&dc->lock);
}

void fs_dcache_note_empty_dir(struct fs_dcache *dc, const uint8_t *key, size_t key_len,
                              int64_t since_ms)
{
    struct dc_dir *d;

    if (!dc)
        return;
    fs_dcache_note(dc, key, key_len);
    pthread_mutex_lock(&dc->lock);
    d = dir_find(dc, key, key_len);
    if (d && d->fill_id) {
        d->fill_id = 0; /* a listing of the directory that was there before: stale */
        set_clear(&d->pending);
    }
    if (!d)
        d = dir_take(dc, key, key_len);
    if (d) {
        set_clear(&d->names);
        d->listed_ms = since_ms;
        d->last_use = since_ms;
    }
    pthread_mutex_unlock(&dc->lock);
}

void fs_dcache_forget(struct fs_dcache *dc, const uint8_t *key, size_t key_len)
{
    if (!dc)
        return;
    pthread_mutex_lock(&dc->lock);
    for (size_t i = 0; i < FS_DCACHE_DIRS; i++) {
        struct dc_dir *d = &dc->dirs[i];
        int below = d->key && d->key_len >= key_len && memcmp(d->key, key, key_len) == 0 &&
                    (d->key_len == key_len || key_len == 0 || d->key[key_len] == '/');
        if (below)
            dir_clear(d); /* a listing being taken finds its slot gone and drops it */
    }
    pthread_mutex_unlock(&dc->lock);
}

int fs_dcache_attrs(struct fs_dcache *dc, const uint8_t *key, size_t key_len, struct fs_meta *m)
{
    struct dc_dir *d;
    int64_t now = fs_mono_ms();
    int found = 0;

    if (!dc)
        return 0;
    pthread_mutex_lock(&dc->lock);
    d = dir_find(dc, key, key_len);
    if (d && d->attrs_ms && now - d->attrs_ms < FS_DCACHE_ATTR_MS) {
        *m = d->attrs;
        d->last_use = now;
        found = 1;
    }
    pthread_mutex_unlock(&dc->lock);
    return found;
}

uint64_t fs_dcache_attr_epoch(struct fs_dcache *dc)
{
    uint64_t epoch = 0;

    if (dc) {
        pthread_mutex_lock(&dc->lock);
        epoch = dc->attr_epoch;
        pthread_mutex_unlock(&dc->lock);
    }
    return epoch;
}

void fs_dcache_keep_attrs(struct fs_dcache *dc, const uint8_t *key, size_t key_len,
                          const struct fs_meta *m, uint64_t epoch, int64_t read_ms)
{
    struct dc_dir *d;

    if (!dc)
        return;
    pthread_mutex_lock(&dc->lock);
    if (dc->attr_epoch == epoch) {
        d = dir_find(dc, key, key_len);
        if (!d)
            d = dir_take(dc, key, key_len);
        if (d && read_ms >= d->attrs_ms) {
            d->attrs = *m;
            d->attrs_ms = read_ms;
            d->last_use = fs_mono_ms();
        }
    }
    pthread_mutex_unlock(&dc->lock);
}

void fs_dcache_attrs_changed(struct fs_dcache *dc)
{
    if (!dc)
        return;
    pthread_mutex_lock(&dc->lock);
    dc->attr_epoch++;
    for (size_t i = 0; i < FS_DCACHE_DIRS; i++)
        dc->dirs[i].attrs_ms = 0;
    pthread_mutex_unlock(&dc->lock);
}

/* ------------------------------------------------------ children's records */

/* Drops d's children's records once even the newest is too old (caller holds dc->lock). */
static void kids_expire(struct dc_dir *d, int64_t now)
{
    if (d->kids_ms && now - d->kids_ms >= FS_DCACHE_ATTR_MS) {
        set_clear(&d->kids);
        d->kids_ms = 0;
    }
}

int fs_dcache_child_attrs(struct fs_dcache *dc, const uint8_t *key, size_t key_len,
                          struct fs_meta *m)
{
    const uint8_t *name;
    size_t name_len;
    struct dc_dir *d;
    struct name_slot *e;
    int64_t now = fs_mono_ms();
    int found = 0;

    if (!dc)
        return 0;
    pthread_mutex_lock(&dc->lock);
    d = parent_find(dc, key, key_len, &name, &name_len);
    if (d)
        kids_expire(d, now);
    if (d && d->kids_ms) {
        e = set_find(&d->kids, name_hash(name, name_len), name, name_len);
        if (e && e->name && e->meta && now - e->meta_ms < FS_DCACHE_ATTR_MS) {
            *m = *e->meta;
            d->last_use = now;
            found = 1;
        }
    }
    pthread_mutex_unlock(&dc->lock);
    return found;
}

void fs_dcache_child_changed(struct fs_dcache *dc, const uint8_t *key, size_t key_len)
{
    const uint8_t *name;
    size_t name_len;
    struct dc_dir *d;
    struct name_slot *e;

    if (!dc)
        return;
    pthread_mutex_lock(&dc->lock);
    d = parent_find(dc, key, key_len, &name, &name_len);
    if (d) {
        e = set_find(&d->kids, name_hash(name, name_len), name, name_len);
        if (e && e->name) {
            free(e->meta);
            e->meta = NULL; /* the name stays; its attributes are asked for again */
        }
        if (d->kids_fill && set_add(&d->kids_changed, name, name_len) != 0)
            d->kids_fill = 0; /* out of memory: that scan will not be kept */
    }
    pthread_mutex_unlock(&dc->lock);
}

void fs_dcache_parent_changed(struct fs_dcache *dc, const uint8_t *key, size_t key_len)
{
    const uint8_t *name;
    size_t dir_len, name_len;

    split_key(key, key_len, &dir_len, &name, &name_len);
    if (key_len > 0)
        fs_dcache_child_changed(dc, key, dir_len);
}

/* Keeps `m` as the record of the child `name` read by a scan begun at ms (caller holds
 * dc->lock). 0 or -ENOMEM. */
static int kid_put(struct name_set *set, const uint8_t *name, size_t len, const struct fs_meta *m,
                   int64_t ms)
{
    struct name_slot *e;
    int rc = set_add(set, name, len);

    if (rc != 0)
        return rc;
    e = set_find(set, name_hash(name, len), name, len);
    if (!e->meta) {
        e->meta = malloc(sizeof *e->meta);
        if (!e->meta)
            return -ENOMEM;
    }
    *e->meta = *m;
    e->meta_ms = ms;
    return 0;
}

/* Reads up to FS_DCACHE_CHILD_SCAN records of the children of `dir` from the child `name` on
 * (key order), in a transaction begun now, into set. 0 or a negative errno. */
static int scan_kids(struct fs *fs, const uint8_t *dir, size_t dir_len, const uint8_t *name,
                     size_t name_len, struct name_set *set, int64_t ms)
{
    uint8_t start[CLIENT_MAX_KEY_BYTES + FS_META_PREFIX_LEN + 1];
    uint8_t end[CLIENT_MAX_KEY_BYTES + FS_META_PREFIX_LEN + 1];
    size_t plen = FS_META_PREFIX_LEN + dir_len, end_len, n = 0;
    struct client_txn *txn = NULL;
    struct client_kv *kvs = NULL;
    struct fs_meta m;
    int rc;

    memcpy(start, FS_META_PREFIX, FS_META_PREFIX_LEN);
    memcpy(start + FS_META_PREFIX_LEN, dir, dir_len);
    if (dir_len)
        start[plen++] = '/';
    fs_prefix_end(start, plen, end, &end_len);
    memcpy(start + plen, name, name_len);
    rc = client_txn_begin(fs->client, &txn);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    rc = client_txn_scan(txn, start, plen + name_len, end, end_len, FS_DCACHE_CHILD_SCAN, &kvs, &n);
    client_txn_rollback(txn);
    client_txn_free(txn);
    if (rc != CLIENT_OK)
        return fs_neg_errno(rc);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const uint8_t *rest = kvs[i].key + plen;
        size_t rlen = kvs[i].key_len - plen;
        /* (a record below a child belongs to its subtree; one of another version is looked
         * up by itself) */
        if (kvs[i].key_len > plen && !memchr(rest, '/', rlen) &&
            fs_meta_decode(kvs[i].value, kvs[i].value_len, &m) == 0)
            rc = kid_put(set, rest, rlen, &m, ms);
    }
    client_kvs_free(kvs, n);
    return rc;
}

int fs_dcache_list_children(struct fs *fs, const uint8_t *key, size_t key_len)
{
    struct fs_dcache *dc = fs->dcache;
    const uint8_t *name;
    size_t dir_len, name_len;
    struct dc_dir *d;
    struct name_set acc;
    uint64_t id;
    int64_t now = fs_mono_ms(), start;
    int rc, kept = 0;

    if (!dc)
        return 0;
    split_key(key, key_len, &dir_len, &name, &name_len);
    pthread_mutex_lock(&dc->lock);
    d = dir_find(dc, key, dir_len);
    if (!d)
        d = dir_take(dc, key, dir_len);
    if (!d || d->kids_fill) {
        pthread_mutex_unlock(&dc->lock);
        return 0;
    }
    d->last_use = now;
    if (now - d->kids_miss_ms >= FS_DCACHE_TTL_MS)
        d->kids_misses = 0; /* (misses a second apart are no run of look-ups) */
    d->kids_miss_ms = now;
    if (++d->kids_misses < FS_DCACHE_LIST_AFTER) {
        pthread_mutex_unlock(&dc->lock);
        return 0;
    }
    d->kids_misses = 0;
    id = d->kids_fill = ++dc->next_fill_id;
    set_clear(&d->kids_changed);
    pthread_mutex_unlock(&dc->lock);

    /* `start` is read before the scan's timestamp is asked for: what it read answers until
     * start + FS_DCACHE_ATTR_MS, like a directory's own attributes. */
    memset(&acc, 0, sizeof acc);
    start = fs_mono_ms();
    rc = scan_kids(fs, key, dir_len, name, name_len, &acc, start);

    pthread_mutex_lock(&dc->lock);
    d = dir_find(dc, key, dir_len);
    if (d && d->kids_fill == id) {
        d->kids_fill = 0;
        kids_expire(d, fs_mono_ms());
        if (d->kids.n + acc.n > FS_DCACHE_MAX_NAMES) {
            set_clear(&d->kids);
            d->kids_ms = 0;
        }
        for (size_t i = 0; rc == 0 && i < acc.cap; i++) {
            struct name_slot *e = &acc.v[i];
            /* Names this mount changed meanwhile may have been read before the change. */
            if (e->name && e->meta && !set_has(&d->kids_changed, e->name, e->len))
                rc = kid_put(&d->kids, e->name, e->len, e->meta, start);
        }
        if (rc == 0 && acc.n > 0) {
            d->kids_ms = start;
            kept = 1;
        }
        set_clear(&d->kids_changed);
    }
    pthread_mutex_unlock(&dc->lock);
    set_clear(&acc);
    return kept;
}

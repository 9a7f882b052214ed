/* path_codec.c — the bijective escaping between key components and file names, and path parsing. */
#include <string.h>

#include "fs/fs.h"

static const char HEX[] = "0123456789ABCDEF";

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; /* lower case is not canonical */
}

/* Appends `n` bytes of `s`, keeping room for the NUL. */
static int put_str(char *out, size_t cap, size_t *pos, const char *s, size_t n)
{
    if (*pos + n + 1 > cap || *pos + n > FS_NAME_MAX)
        return FS_ERR_NAME_TOO_LONG;
    memcpy(out + *pos, s, n);
    *pos += n;
    out[*pos] = '\0';
    return FS_OK;
}

int fs_name_encode(const uint8_t *comp, size_t len, int top_level, char *out, size_t cap,
                   size_t *name_len)
{
    size_t pos = 0;
    int rc;

    if (cap == 0)
        return FS_ERR_NAME_TOO_LONG;
    out[0] = '\0';
    if (len == 0) {
        rc = put_str(out, cap, &pos, "%", 1);
        goto done;
    }
    if (len == 1 && comp[0] == '.') {
        rc = put_str(out, cap, &pos, "%2E", 3);
        goto done;
    }
    if (len == 2 && comp[0] == '.' && comp[1] == '.') {
        rc = put_str(out, cap, &pos, "%2E%2E", 6);
        goto done;
    }
    if (top_level && len == strlen(FS_SNAPSHOT_DIR) && memcmp(comp, FS_SNAPSHOT_DIR, len) == 0) {
        rc = put_str(out, cap, &pos, "%2E", 3);
        if (rc == FS_OK)
            rc = put_str(out, cap, &pos, FS_SNAPSHOT_DIR + 1, len - 1);
        goto done;
    }
    if (len == 1 && comp[0] == '%') {
        rc = put_str(out, cap, &pos, "%25", 3); /* a lone "%" is the empty component */
        goto done;
    }
    if (memchr(comp, '/', len))
        return FS_ERR_INVALID; /* keys are split at every '/': not a component */
    if (top_level && len == FS_RESERVED_TOP_LEN && comp[0] == 0 &&
        (comp[1] == FS_RESERVED_TOP[1] || comp[1] == FS_RESERVED_CHUNKS_TOP[1]))
        return FS_ERR_INVALID; /* the metadata and chunk keys (fs/meta.h): no name shows them */
    rc = FS_OK;
    for (size_t i = 0; i < len && rc == FS_OK; i++) {
        uint8_t b = comp[i];
        /* '%' stays literal unless two upper-case hex digits follow it (they
         * would read as an escape); NUL is always escaped. */
        int escape = b == 0 || (b == '%' && i + 2 < len && hex_value((char)comp[i + 1]) >= 0 &&
                                hex_value((char)comp[i + 2]) >= 0);
        if (escape) {
            char esc[3] = {'%', HEX[b >> 4], HEX[b & 15]};
            rc = put_str(out, cap, &pos, esc, 3);
        } else {
            rc = put_str(out, cap, &pos, (const char *)&comp[i], 1);
        }
    }
done:
    if (rc == FS_OK && name_len)
        *name_len = pos;
    return rc;
}

int fs_name_decode(const char *name, size_t name_len, int top_level, uint8_t *out, size_t cap,
                   size_t *out_len)
{
    char again[FS_NAME_MAX + 1];
    size_t n = 0, again_len;
    int rc;

    if (name_len == 0 || name_len > FS_NAME_MAX)
        return name_len == 0 ? FS_ERR_INVALID : FS_ERR_NAME_TOO_LONG;
    if (!(name_len == 1 && name[0] == '%')) {
        for (size_t i = 0; i < name_len; i++) {
            uint8_t b = (uint8_t)name[i];
            if (b == '%' && i + 2 < name_len && hex_value(name[i + 1]) >= 0 &&
                hex_value(name[i + 2]) >= 0) {
                b = (uint8_t)(hex_value(name[i + 1]) << 4 | hex_value(name[i + 2]));
                i += 2;
            } else if (b == '/' || b == 0) {
                return FS_ERR_INVALID;
            }
            if (b == '/')
                return FS_ERR_INVALID; /* "%2F" would become a separator */
            if (n >= cap)
                return FS_ERR_NAME_TOO_LONG;
            out[n++] = b;
        }
    }
    /* Canonical only: the name must be exactly what its bytes encode to. */
    rc = fs_name_encode(out, n, top_level, again, sizeof again, &again_len);
    if (rc != FS_OK || again_len != name_len || memcmp(again, name, name_len) != 0)
        return FS_ERR_INVALID;
    *out_len = n;
    return FS_OK;
}

/* Parses a canonical positive decimal u64 (no sign, no leading zeros). */
static int parse_ts(const char *s, size_t len, client_ts *ts)
{
    client_ts v = 0;

    if (len == 0 || len > 20 || s[0] == '0')
        return FS_ERR_NOT_FOUND;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return FS_ERR_NOT_FOUND;
        if (v > (UINT64_MAX - (client_ts)(s[i] - '0')) / 10)
            return FS_ERR_NOT_FOUND;
        v = v * 10 + (client_ts)(s[i] - '0');
    }
    *ts = v;
    return FS_OK;
}

/* Length of the next component of `p` (up to '/' or the end). */
static size_t comp_len(const char *p)
{
    const char *slash = strchr(p, '/');
    return slash ? (size_t)(slash - p) : strlen(p);
}

int fs_path_parse(const char *path, struct fs_path *out)
{
    const char *p = path;
    int top = 1;
    size_t n;

    out->kind = FS_PATH_ROOT;
    out->snapshot_ts = 0;
    out->key_len = 0;
    out->last_empty = 0;
    if (p[0] != '/')
        return FS_ERR_INVALID;
    p++;
    if (*p == '\0')
        return FS_OK;

    n = comp_len(p);
    if (n == strlen(FS_SNAPSHOT_DIR) && memcmp(p, FS_SNAPSHOT_DIR, n) == 0) {
        p += n;
        if (*p == '\0' || (p[0] == '/' && p[1] == '\0')) {
            out->kind = FS_PATH_SNAPSHOT_LIST;
            return FS_OK;
        }
        p++;
        n = comp_len(p);
        if (parse_ts(p, n, &out->snapshot_ts) != FS_OK)
            return FS_ERR_NOT_FOUND;
        p += n;
        if (*p == '/')
            p++;
        if (*p == '\0')
            return FS_OK; /* the snapshot's root */
    }

    out->kind = FS_PATH_NODE;
    for (;;) {
        size_t got;
        int rc;

        n = comp_len(p);
        if (!top) {
            if (out->key_len + 1 > CLIENT_MAX_KEY_BYTES)
                return FS_ERR_NAME_TOO_LONG;
            out->key[out->key_len++] = '/';
        }
        rc = fs_name_decode(p, n, top, out->key + out->key_len, sizeof out->key - out->key_len,
                            &got);
        if (rc != FS_OK)
            return rc;
        out->key_len += got;
        out->last_empty = got == 0;
        p += n;
        top = 0;
        if (*p == '\0')
            break;
        p++; /* the separator */
        if (*p == '\0')
            break; /* a trailing slash names the same node */
    }
    /* Room for the directory marker's '/' and the metadata prefix must remain. */
    if (out->key_len + 1 + FS_RESERVED_TOP_LEN + 1 > CLIENT_MAX_KEY_BYTES)
        return FS_ERR_NAME_TOO_LONG;
    return FS_OK;
}

int fs_key_to_path(const uint8_t *key, size_t key_len, char *out, size_t cap, int *is_dir)
{
    size_t pos = 0, start = 0;
    int top = 1;
    size_t end = key_len;

    if (key_len == 0)
        return FS_ERR_INVALID;
    *is_dir = key[key_len - 1] == '/';
    if (*is_dir)
        end = key_len - 1; /* the marker's '/' is not a separator */
    if (cap < 2)
        return FS_ERR_NAME_TOO_LONG;
    for (;;) {
        size_t stop = start, got;
        int rc;

        while (stop < end && key[stop] != '/')
            stop++;
        if (pos + 1 >= cap)
            return FS_ERR_NAME_TOO_LONG;
        out[pos++] = '/';
        rc = fs_name_encode(key + start, stop - start, top, out + pos, cap - pos, &got);
        if (rc != FS_OK)
            return rc;
        pos += got;
        top = 0;
        if (stop >= end)
            break;
        start = stop + 1;
    }
    out[pos] = '\0';
    return FS_OK;
}

const char *fs_strerror(int code)
{
    switch (code) {
    case FS_OK:
        return "ok";
    case FS_ERR_INVALID:
        return "not a canonical name or path";
    case FS_ERR_NOT_FOUND:
        return "no such path";
    case FS_ERR_NAME_TOO_LONG:
        return "name or key too long";
    case FS_ERR_NOMEM:
        return "out of memory";
    default:
        return client_strerror(code);
    }
}

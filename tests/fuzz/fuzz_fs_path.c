/* fuzz_fs_path.c — fuzzes the FUSE path codec (fs/path_codec.c): path parsing, name escaping and
 * the key -> path direction. */
#include <string.h>

#include "fs/fs.h"
#include "tests/fuzz/fuzz.h"

/* The path of a key fits in this many bytes (every byte may become a 3-byte escape). */
#define PATH_CAP (3 * CLIENT_MAX_KEY_BYTES + 64)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int top = size && (data[0] & 1);

    /* The bytes as one key component: what encodes decodes back to the same bytes. */
    char name[FS_NAME_MAX + 1];
    size_t name_len;
    if (fs_name_encode(data, size, top, name, sizeof name, &name_len) == FS_OK) {
        uint8_t back[FS_NAME_MAX + 1];
        size_t back_len;
        FUZZ_CHECK(name_len == strlen(name));
        FUZZ_CHECK(fs_name_decode(name, name_len, top, back, sizeof back, &back_len) == FS_OK);
        FUZZ_CHECK(back_len == size && (size == 0 || memcmp(back, data, size) == 0));
    }

    /* The bytes as a name: what decodes is canonical, so it encodes back to the name. */
    uint8_t comp[FS_NAME_MAX + 1];
    size_t comp_len;
    if (fs_name_decode((const char *)data, size, top, comp, sizeof comp, &comp_len) == FS_OK) {
        FUZZ_CHECK(fs_name_encode(comp, comp_len, top, name, sizeof name, &name_len) == FS_OK);
        FUZZ_CHECK(name_len == size && memcmp(name, data, size) == 0);
    }

    /* The bytes as a FUSE path (up to the first NUL, as the kernel hands it). */
    char *path = malloc(size + 1);
    FUZZ_CHECK(path);
    memcpy(path, data, size);
    path[size] = '\0';
    struct fs_path *p = malloc(sizeof *p);
    struct fs_path *again = malloc(sizeof *again);
    char *out = malloc(PATH_CAP);
    FUZZ_CHECK(p && again && out);
    int rc = fs_path_parse(path, p);
    FUZZ_CHECK(rc == FS_OK || rc == FS_ERR_INVALID || rc == FS_ERR_NOT_FOUND ||
               rc == FS_ERR_NAME_TOO_LONG);
    if (rc == FS_OK && p->kind == FS_PATH_NODE) {
        /* Only a directory's last, empty component ("/%") leaves the key empty: its marker is "/".
         */
        FUZZ_CHECK((p->key_len > 0 || p->last_empty) && p->key_len < CLIENT_MAX_KEY_BYTES);
        int is_dir;
        /* A node's key names it back: the path of the key parses to the same key. */
        if (fs_key_to_path(p->key, p->key_len, out, PATH_CAP, &is_dir) == FS_OK && !is_dir) {
            FUZZ_CHECK(fs_path_parse(out, again) == FS_OK);
            FUZZ_CHECK(again->kind == FS_PATH_NODE && again->key_len == p->key_len &&
                       memcmp(again->key, p->key, p->key_len) == 0);
        }
    }

    /* The bytes as a key: its path, when it has one, parses back to the key (less the marker). */
    int is_dir;
    if (size < CLIENT_MAX_KEY_BYTES &&
        fs_key_to_path(data, size, out, PATH_CAP, &is_dir) == FS_OK) {
        size_t key_len = is_dir ? size - 1 : size;
        rc = fs_path_parse(out, again);
        if (rc == FS_OK && key_len > 0) {
            FUZZ_CHECK(again->kind == FS_PATH_NODE);
            FUZZ_CHECK(again->key_len == key_len && memcmp(again->key, data, key_len) == 0);
        }
    }
    free(out);
    free(again);
    free(p);
    free(path);
    return 0;
}

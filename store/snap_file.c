/* snap_file.c — snapshot files: chunked writes through a .tmp name, checked streaming reads. */
#include "store/snap_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "TKVSNAP1"
#define MAGIC_LEN 8
#define WRITE_BUF_BYTES (1u << 20)
#define RECORD_HEAD 9 /* cf u8, key length u32, value length u32 */

/* CRC-32 (reflected polynomial 0xEDB88320), one table entry per byte value. */
static const uint32_t CRC_TABLE[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu, 0xe963a535u,
    0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u, 0x09b64c2bu, 0x7eb17cbdu,
    0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u, 0xf3b97148u, 0x84be41deu, 0x1adad47du,
    0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u, 0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu,
    0x14015c4fu, 0x63066cd9u, 0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u,
    0xa2677172u, 0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u, 0x26d930acu,
    0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u, 0xcfba9599u, 0xb8bda50fu,
    0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u, 0x2f6f7c87u, 0x58684c11u, 0xc1611dabu,
    0xb6662d3du, 0x76dc4190u, 0x01db7106u, 0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu,
    0x9fbfe4a5u, 0xe8b8d433u, 0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu,
    0x086d3d2du, 0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u, 0x8bbeb8eau,
    0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u, 0x4db26158u, 0x3ab551ceu,
    0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u, 0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au,
    0x346ed9fcu, 0xad678846u, 0xda60b8d0u, 0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u,
    0x5005713cu, 0x270241aau, 0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u,
    0xce61e49fu, 0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au, 0xead54739u,
    0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u, 0x0d6d6a3eu, 0x7a6a5aa8u,
    0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u, 0xf00f9344u, 0x8708a3d2u, 0x1e01f268u,
    0x6906c2feu, 0xf762575du, 0x806567cbu, 0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u,
    0x10da7a5au, 0x67dd4accu, 0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u,
    0xa1d1937eu, 0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u, 0x316e8eefu,
    0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u, 0xcc0c7795u, 0xbb0b4703u,
    0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u, 0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u,
    0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du, 0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au,
    0x9c0906a9u, 0xeb0e363fu, 0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu,
    0x0cb61b38u, 0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u, 0x88085ae6u,
    0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u, 0x616bffd3u, 0x166ccf45u,
    0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u, 0xa7672661u, 0xd06016f7u, 0x4969474du,
    0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu, 0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u,
    0x47b2cf7fu, 0x30b5ffe9u, 0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u,
    0xcdd70693u, 0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du};

uint32_t snap_file_crc32(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    crc = ~crc;
    while (len--)
        crc = CRC_TABLE[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static int fail_errno(char *errmsg, size_t len, const char *what, const char *path)
{
    snprintf(errmsg, len, "%s %.160s: %.60s", what, path, strerror(errno));
    return SNAP_FILE_ERR_IO;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int flush_buf(struct snap_file_writer *w)
{
    if (w->buf_len && write_all(w->fd, w->buf, w->buf_len) != 0)
        return fail_errno(w->errmsg, sizeof w->errmsg, "writing", w->tmp_path);
    w->buf_len = 0;
    return SNAP_FILE_OK;
}

int snap_file_create(struct snap_file_writer *w, const char *dir, const char *name, int raw)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    if ((size_t)snprintf(w->path, sizeof w->path, "%s/%s", dir, name) >= sizeof w->path ||
        (size_t)snprintf(w->tmp_path, sizeof w->tmp_path, "%s/%s.tmp", dir, name) >=
            sizeof w->tmp_path) {
        snprintf(w->errmsg, sizeof w->errmsg, "snapshot path too long in %.200s", dir);
        return SNAP_FILE_ERR_IO;
    }
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return fail_errno(w->errmsg, sizeof w->errmsg, "creating", dir);
    w->buf = malloc(WRITE_BUF_BYTES);
    if (!w->buf) {
        snprintf(w->errmsg, sizeof w->errmsg, "out of memory");
        return SNAP_FILE_ERR_NOMEM;
    }
    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_CLOEXEC | (raw ? O_EXCL : O_TRUNC), 0644);
    if (w->fd < 0) {
        int busy = raw && errno == EEXIST;
        int rc = fail_errno(w->errmsg, sizeof w->errmsg, "creating", w->tmp_path);
        if (busy)
            rc = SNAP_FILE_ERR_BUSY;
        free(w->buf);
        w->buf = NULL;
        return rc;
    }
    if (!raw) {
        int rc = snap_file_append(w, MAGIC, MAGIC_LEN);
        if (rc != SNAP_FILE_OK) {
            snap_file_abort(w);
            return rc;
        }
    }
    return SNAP_FILE_OK;
}

int snap_file_append(struct snap_file_writer *w, const void *data, size_t len)
{
    const uint8_t *p = data;
    w->crc = snap_file_crc32(w->crc, p, len);
    w->size += len;
    while (len) {
        size_t room = WRITE_BUF_BYTES - w->buf_len;
        size_t n = len < room ? len : room;
        memcpy(w->buf + w->buf_len, p, n);
        w->buf_len += n;
        p += n;
        len -= n;
        if (w->buf_len == WRITE_BUF_BYTES) {
            int rc = flush_buf(w);
            if (rc != SNAP_FILE_OK)
                return rc;
        }
    }
    return SNAP_FILE_OK;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int snap_file_put(struct snap_file_writer *w, uint8_t cf, const void *key, uint32_t key_len,
                  const void *value, uint32_t value_len)
{
    uint8_t head[RECORD_HEAD];
    head[0] = cf;
    put_u32(head + 1, key_len);
    put_u32(head + 5, value_len);
    int rc = snap_file_append(w, head, sizeof head);
    if (rc == SNAP_FILE_OK)
        rc = snap_file_append(w, key, key_len);
    if (rc == SNAP_FILE_OK)
        rc = snap_file_append(w, value, value_len);
    return rc;
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int snap_file_finish(struct snap_file_writer *w, int expect, uint64_t expect_size,
                     uint32_t expect_crc, uint64_t *size, uint32_t *crc)
{
    int rc = flush_buf(w);
    if (rc == SNAP_FILE_OK && expect && (w->size != expect_size || w->crc != expect_crc)) {
        snprintf(w->errmsg, sizeof w->errmsg,
                 "%.150s: %llu bytes with checksum %08x, expected %llu with %08x", w->tmp_path,
                 (unsigned long long)w->size, w->crc, (unsigned long long)expect_size, expect_crc);
        rc = SNAP_FILE_ERR_CORRUPT;
    }
    if (rc == SNAP_FILE_OK && fdatasync(w->fd) != 0)
        rc = fail_errno(w->errmsg, sizeof w->errmsg, "syncing", w->tmp_path);
    if (rc != SNAP_FILE_OK) {
        snap_file_abort(w);
        return rc;
    }
    close(w->fd);
    w->fd = -1;
    free(w->buf);
    w->buf = NULL;
    if (rename(w->tmp_path, w->path) != 0) {
        rc = fail_errno(w->errmsg, sizeof w->errmsg, "renaming", w->tmp_path);
        unlink(w->tmp_path);
        return rc;
    }
    if (sync_dir(w->dir) != 0) {
        rc = fail_errno(w->errmsg, sizeof w->errmsg, "syncing", w->dir);
        unlink(w->path);
        return rc;
    }
    if (size)
        *size = w->size;
    if (crc)
        *crc = w->crc;
    return SNAP_FILE_OK;
}

void snap_file_abort(struct snap_file_writer *w)
{
    if (w->fd >= 0) {
        close(w->fd);
        unlink(w->tmp_path);
    }
    w->fd = -1;
    free(w->buf);
    w->buf = NULL;
}

static int read_some(int fd, uint8_t *p, size_t cap, size_t *n)
{
    for (;;) {
        ssize_t k = read(fd, p, cap);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        *n = (size_t)k;
        return 0;
    }
}

/* check_whole streams the file once: size, checksum and magic as promised. */
static int check_whole(struct snap_file_reader *r, const char *path, uint64_t size, uint32_t crc)
{
    uint64_t seen = 0;
    uint32_t got = 0;
    uint8_t magic[MAGIC_LEN];
    for (;;) {
        size_t n;
        if (read_some(r->fd, r->buf, r->cap, &n) != 0)
            return fail_errno(r->errmsg, sizeof r->errmsg, "reading", path);
        if (n == 0)
            break;
        if (seen < MAGIC_LEN)
            memcpy(magic + seen, r->buf, n < MAGIC_LEN - seen ? n : MAGIC_LEN - seen);
        got = snap_file_crc32(got, r->buf, n);
        seen += n;
    }
    if (seen != size || got != crc || seen < MAGIC_LEN || memcmp(magic, MAGIC, MAGIC_LEN) != 0) {
        snprintf(r->errmsg, sizeof r->errmsg,
                 "%.150s: %llu bytes with checksum %08x, expected %llu with %08x", path,
                 (unsigned long long)seen, got, (unsigned long long)size, crc);
        return SNAP_FILE_ERR_CORRUPT;
    }
    if (lseek(r->fd, 0, SEEK_SET) != 0)
        return fail_errno(r->errmsg, sizeof r->errmsg, "seeking", path);
    return SNAP_FILE_OK;
}

int snap_file_open(struct snap_file_reader *r, const char *dir, const char *name, uint64_t size,
                   uint32_t crc)
{
    memset(r, 0, sizeof *r);
    char path[SNAP_FILE_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    r->size = size;
    r->cap = 64 * 1024;
    r->buf = malloc(r->cap);
    if (!r->buf) {
        snprintf(r->errmsg, sizeof r->errmsg, "out of memory");
        r->fd = -1;
        return SNAP_FILE_ERR_NOMEM;
    }
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = r->fd < 0 ? fail_errno(r->errmsg, sizeof r->errmsg, "opening", path)
                       : check_whole(r, path, size, crc);
    if (rc != SNAP_FILE_OK) {
        snap_file_close(r);
        return rc;
    }
    return SNAP_FILE_OK;
}

int snap_file_read(struct snap_file_reader *r, void *out, size_t cap, size_t *n)
{
    if (read_some(r->fd, out, cap, n) != 0)
        return fail_errno(r->errmsg, sizeof r->errmsg, "reading", "snapshot");
    r->offset += *n;
    return SNAP_FILE_OK;
}

/* fill makes at least `need` bytes available at r->buf + r->pos; 1 if it could, 0 at a clean
 * end of file, else an error. */
static int fill(struct snap_file_reader *r, size_t need)
{
    if (r->len - r->pos >= need)
        return 1;
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos;
    r->pos = 0;
    if (need > r->cap) {
        uint8_t *grown = realloc(r->buf, need);
        if (!grown) {
            snprintf(r->errmsg, sizeof r->errmsg, "out of memory");
            return -SNAP_FILE_ERR_NOMEM;
        }
        r->buf = grown;
        r->cap = need;
    }
    while (r->len < need) {
        size_t n;
        if (read_some(r->fd, r->buf + r->len, r->cap - r->len, &n) != 0) {
            fail_errno(r->errmsg, sizeof r->errmsg, "reading", "snapshot");
            return -SNAP_FILE_ERR_IO;
        }
        if (n == 0)
            return r->len == 0 ? 0 : -SNAP_FILE_ERR_CORRUPT;
        r->len += n;
        r->offset += n;
    }
    return 1;
}

int snap_file_next(struct snap_file_reader *r, uint8_t *cf, const uint8_t **key, uint32_t *key_len,
                   const uint8_t **value, uint32_t *value_len)
{
    if (r->offset == 0) {
        int got = fill(r, MAGIC_LEN);
        if (got != 1)
            return got == 0 ? SNAP_FILE_ERR_CORRUPT : -got;
        r->pos += MAGIC_LEN; /* checked by snap_file_open */
    }
    int got = fill(r, RECORD_HEAD);
    if (got <= 0) {
        if (got < 0)
            snprintf(r->errmsg, sizeof r->errmsg, "snapshot record cut short");
        return got == 0 ? 0 : -got;
    }
    uint32_t kl = get_u32(r->buf + r->pos + 1), vl = get_u32(r->buf + r->pos + 5);
    got = fill(r, (size_t)RECORD_HEAD + kl + vl);
    if (got != 1) {
        snprintf(r->errmsg, sizeof r->errmsg, "snapshot record cut short");
        return got == 0 ? SNAP_FILE_ERR_CORRUPT : -got;
    }
    const uint8_t *p = r->buf + r->pos;
    *cf = p[0];
    *key = p + RECORD_HEAD;
    *key_len = kl;
    *value = p + RECORD_HEAD + kl;
    *value_len = vl;
    r->pos += (size_t)RECORD_HEAD + kl + vl;
    return 1;
}

void snap_file_close(struct snap_file_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    free(r->buf);
    r->buf = NULL;
}

void snap_file_remove(const char *dir, const char *name)
{
    char path[SNAP_FILE_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

size_t snap_file_clean_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ends_with(e->d_name, ".snap") && !ends_with(e->d_name, ".snap.tmp"))
            continue;
        char path[SNAP_FILE_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

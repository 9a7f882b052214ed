/* fuzz_http_api.c — fuzzes the scheduler's HTTP admin API (pd/http_api.c): its routing, query
 * arguments and JSON bodies, in-process. */
#include <jansson.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <string.h>

#include "pd/pd.h"
#include "proto/log.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/pd_fixture.h"

/*
 * The seam: pd_http_start runs for real over an in-memory, bootstrapped
 * cluster, but libmicrohttpd's daemon and connection calls are replaced at
 * link time (-Wl,--wrap, FUZZ_WRAPS in the Makefile): the fake
 * MHD_start_daemon keeps the request and completion callbacks instead of
 * listening, and a request is handed to them the way the daemon would
 * (first call, body upload, final call, completion), over a fake connection
 * whose query arguments come from the input. Responses are checked: a status
 * a client can read (never 500 for bad input) and a JSON body that parses.
 *
 * Input: requests separated by a line "%%": each is "METHOD URL[?a=b&c=d]"
 * on its first line, the rest its body. Every input starts from a fresh
 * cluster.
 */

#define MAX_ARGS 8

struct fake_conn {
    char *names[MAX_ARGS];
    char *values[MAX_ARGS];
    size_t n;
    unsigned status; /* what MHD_queue_response was given */
};

static MHD_AccessHandlerCallback on_request;
static void *on_request_cls;
static MHD_RequestCompletedCallback on_completed;
static void *on_completed_cls;
static int fake_daemon;

struct MHD_Daemon *__wrap_MHD_start_daemon(unsigned int flags, uint16_t port,
                                           MHD_AcceptPolicyCallback apc, void *apc_cls,
                                           MHD_AccessHandlerCallback dh, void *dh_cls, ...);
struct MHD_Daemon *__wrap_MHD_start_daemon(unsigned int flags, uint16_t port,
                                           MHD_AcceptPolicyCallback apc, void *apc_cls,
                                           MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
    (void)flags;
    (void)port;
    (void)apc;
    (void)apc_cls;
    on_request = dh;
    on_request_cls = dh_cls;
    on_completed = NULL;
    va_list ap;
    va_start(ap, dh_cls);
    for (;;) {
        enum MHD_OPTION opt = va_arg(ap, enum MHD_OPTION);
        if (opt == MHD_OPTION_END)
            break;
        switch (opt) {
        case MHD_OPTION_SOCK_ADDR:
            (void)va_arg(ap, void *);
            break;
        case MHD_OPTION_NOTIFY_COMPLETED:
            on_completed = va_arg(ap, MHD_RequestCompletedCallback);
            on_completed_cls = va_arg(ap, void *);
            break;
        case MHD_OPTION_CONNECTION_TIMEOUT:
        case MHD_OPTION_CONNECTION_LIMIT:
            (void)va_arg(ap, unsigned int);
            break;
        default:
            /* An option this fake does not know: its arguments cannot be skipped. */
            fprintf(stderr, "fuzz_http_api: unknown MHD option %d\n", (int)opt);
            abort();
        }
    }
    va_end(ap);
    return (struct MHD_Daemon *)&fake_daemon;
}

const union MHD_DaemonInfo *__wrap_MHD_get_daemon_info(struct MHD_Daemon *d,
                                                       enum MHD_DaemonInfoType type, ...);
const union MHD_DaemonInfo *__wrap_MHD_get_daemon_info(struct MHD_Daemon *d,
                                                       enum MHD_DaemonInfoType type, ...)
{
    (void)d;
    (void)type;
    return NULL;
}

void __wrap_MHD_stop_daemon(struct MHD_Daemon *d);
void __wrap_MHD_stop_daemon(struct MHD_Daemon *d)
{
    (void)d;
}

const char *__wrap_MHD_lookup_connection_value(struct MHD_Connection *connection,
                                               enum MHD_ValueKind kind, const char *key);
const char *__wrap_MHD_lookup_connection_value(struct MHD_Connection *connection,
                                               enum MHD_ValueKind kind, const char *key)
{
    struct fake_conn *c = (struct fake_conn *)connection;
    if (kind != MHD_GET_ARGUMENT_KIND || key == NULL)
        return NULL;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->names[i], key) == 0)
            return c->values[i];
    return NULL;
}

/* The last response's body, kept by the MHD_create_response_from_buffer wrapper. */
static char *last_body;

struct MHD_Response *__real_MHD_create_response_from_buffer(size_t size, void *buffer,
                                                            enum MHD_ResponseMemoryMode mode);
struct MHD_Response *__wrap_MHD_create_response_from_buffer(size_t size, void *buffer,
                                                            enum MHD_ResponseMemoryMode mode);
struct MHD_Response *__wrap_MHD_create_response_from_buffer(size_t size, void *buffer,
                                                            enum MHD_ResponseMemoryMode mode)
{
    free(last_body);
    last_body = strndup(buffer, size);
    FUZZ_CHECK(last_body);
    return __real_MHD_create_response_from_buffer(size, buffer, mode);
}

enum MHD_Result __wrap_MHD_queue_response(struct MHD_Connection *connection,
                                          unsigned int status_code, struct MHD_Response *response);
enum MHD_Result __wrap_MHD_queue_response(struct MHD_Connection *connection,
                                          unsigned int status_code, struct MHD_Response *response)
{
    (void)response;
    ((struct fake_conn *)connection)->status = status_code;
    return MHD_YES;
}

/* Splits "a=b&c=d" into the connection's arguments (no unescaping: the handlers see bytes). */
static void parse_query(struct fake_conn *c, char *q)
{
    while (q && *q && c->n < MAX_ARGS) {
        char *next = strchr(q, '&');
        if (next)
            *next++ = '\0';
        char *eq = strchr(q, '=');
        if (eq)
            *eq++ = '\0';
        c->names[c->n] = q;
        c->values[c->n] = eq ? eq : "";
        c->n++;
        q = next;
    }
}

/* One request as libmicrohttpd delivers it: `text` is "METHOD URL\nBODY" (NUL-terminated copy). */
static void run_request(char *text, size_t len)
{
    char *nl = memchr(text, '\n', len);
    size_t line_len = nl ? (size_t)(nl - text) : len;
    char *line = strndup(text, line_len);
    FUZZ_CHECK(line);
    const char *body = nl ? nl + 1 : text + len;
    size_t body_len = nl ? len - line_len - 1 : 0;
    char *sp = strchr(line, ' ');
    const char *method = line;
    char *url = "/";
    if (sp) {
        *sp = '\0';
        url = sp + 1;
    }
    struct fake_conn conn = {0};
    char *q = strchr(url, '?');
    if (q) {
        *q++ = '\0';
        parse_query(&conn, q);
    }
    void *con_cls = NULL;
    size_t upload = 0;
    struct MHD_Connection *mc = (struct MHD_Connection *)&conn;
    enum MHD_Result r =
        on_request(on_request_cls, mc, url, method, "HTTP/1.1", NULL, &upload, &con_cls);
    FUZZ_CHECK(r == MHD_YES);
    /* The body arrives in pieces of at most 1000 bytes, as a slow client sends it. */
    for (size_t off = 0; off < body_len && r == MHD_YES;) {
        size_t n = body_len - off < 1000 ? body_len - off : 1000;
        upload = n;
        r = on_request(on_request_cls, mc, url, method, "HTTP/1.1", body + off, &upload, &con_cls);
        FUZZ_CHECK(upload == 0);
        off += n;
    }
    upload = 0;
    if (r == MHD_YES) {
        free(last_body);
        last_body = NULL;
        r = on_request(on_request_cls, mc, url, method, "HTTP/1.1", NULL, &upload, &con_cls);
        FUZZ_CHECK(r == MHD_YES && conn.status != 0 && last_body != NULL);
        if (conn.status < 200 || conn.status >= 500)
            fprintf(stderr, "fuzz_http_api: %s %s answered %u: %s\n", method, url, conn.status,
                    last_body);
        FUZZ_CHECK(conn.status >= 200 && conn.status < 500);
        if (last_body[0] == '{' || last_body[0] == '[') {
            json_t *j = json_loads(last_body, 0, NULL);
            FUZZ_CHECK(j);
            json_decref(j);
        }
    }
    if (on_completed)
        on_completed(on_completed_cls, mc, &con_cls, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    free(last_body);
    last_body = NULL;
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    log_current_level = LOG_ERROR; /* handlers log what they refuse: keep the runs quiet */
    struct pd_cluster *c = fuzz_pd_cluster_new(2);
    char err[256];
    struct pd_http *h;
    on_request = NULL;
    FUZZ_CHECK(pd_http_start(c, "127.0.0.1:0", NULL, "127.0.0.1:2379", &h, err, sizeof err) ==
               PD_OK);
    FUZZ_CHECK(on_request != NULL);

    char *text = malloc(size + 1);
    FUZZ_CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0';
    size_t pos = 0;
    while (pos <= size) {
        char *sep = strstr(text + pos, "\n%%\n");
        size_t end = sep ? (size_t)(sep - text) : size;
        if (strlen(text + pos) < end - pos)
            end = pos + strlen(text + pos); /* a NUL ends the input, as it would a C string */
        text[end] = '\0';
        run_request(text + pos, end - pos);
        if (!sep || end != (size_t)(sep - text))
            break;
        pos = end + 4;
    }
    free(text);
    pd_http_stop(h);
    pd_cluster_close(c);
    return 0;
}

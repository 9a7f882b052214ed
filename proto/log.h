/* log.h — leveled logging to stderr with timestamps, shared by every process. */
#ifndef TINYKV_PROTO_LOG_H
#define TINYKV_PROTO_LOG_H

/*
 * One process-wide level (set once at start-up by main, read by all threads);
 * LOG() checks the level before evaluating its arguments. Lines look like
 *   2026-11-25T21:58:28.123Z INFO  store/server_main.c:42 listening on ...
 * The Raft library never calls this: it logs through its own callback.
 */

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern int log_current_level;

#define LOG(level, ...)                                                                            \
    do {                                                                                           \
        if ((level) <= log_current_level)                                                          \
            log_write((level), __FILE__, __LINE__, __VA_ARGS__);                                   \
    } while (0)

void log_write(int level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* log_level_parse maps "error", "warn", "info", "debug" to a level; -1 if unknown. */
int log_level_parse(const char *name);

#endif

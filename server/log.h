/* log.h: JSON-lines logging. The application log goes to stderr, the access log to its own
 * stream (stdout by default). The level is checked before any formatting happens. */
#ifndef SAED_LOG_H
#define SAED_LOG_H

#include <stddef.h>
#include <stdio.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

extern int log_min_level;

const char *log_level_name(int level);
int log_level_parse(const char *s); /* -1 when unknown */
void log_set_access_stream(FILE *f);  /* NULL disables the access log */

void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_access(const char *method, const char *path, int status, size_t bytes,
                double duration_ms, const char *request_id);

#define log_debug(...) do { if (log_min_level <= LOG_DEBUG) log_write(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  do { if (log_min_level <= LOG_INFO)  log_write(LOG_INFO,  __VA_ARGS__); } while (0)
#define log_warn(...)  do { if (log_min_level <= LOG_WARN)  log_write(LOG_WARN,  __VA_ARGS__); } while (0)
#define log_error(...) do { if (log_min_level <= LOG_ERROR) log_write(LOG_ERROR, __VA_ARGS__); } while (0)

/* Length of the valid UTF-8 sequence at p, or 0 when p does not start one. */
size_t log_utf8_seq(const unsigned char *p);
/* Replaces each byte that is not part of valid UTF-8 with '?', in place. */
void log_utf8_sanitize(char *s);
/* Appends s to buf as the inside of a JSON string (no quotes), invalid UTF-8 as U+FFFD;
 * always NUL-terminates.
 * Returns the new length. Used by the loggers and by anything writing JSON by hand. */
size_t log_json_escape(char *buf, size_t len, size_t cap, const char *s);

#endif

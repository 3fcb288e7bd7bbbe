/* log.c: JSON-lines log writer. Each line is built in a local buffer and written with one
 * fwrite+fflush under the stream lock, so lines from different threads never interleave. */
#include "server/log.h"

#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

int log_min_level = LOG_INFO;
static FILE *access_stream;
static int access_set;

static const char *names[] = {"debug", "info", "warn", "error", "off"};

const char *log_level_name(int level)
{
    return (level >= LOG_DEBUG && level <= LOG_OFF) ? names[level] : "?";
}

int log_level_parse(const char *s)
{
    for (int i = LOG_DEBUG; i <= LOG_OFF; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

void log_set_access_stream(FILE *f)
{
    access_stream = f;
    access_set = 1;
}

size_t log_utf8_seq(const unsigned char *p)
{
    unsigned c = p[0];
    size_t n = c < 0x80 ? 1 : (c >= 0xc2 && c <= 0xdf) ? 2 : (c >= 0xe0 && c <= 0xef) ? 3 : (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if (n == 3 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f))) return 0; /* overlong, surrogates */
    if (n == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))) return 0;
    return n;
}

void log_utf8_sanitize(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p;) {
        size_t n = log_utf8_seq(p);
        if (n == 0) *p++ = '?';
        else p += n;
    }
}

size_t log_json_escape(char *buf, size_t len, size_t cap, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p && len + 7 < cap; p++) {
        if (*p >= 0x80) {
            size_t n = log_utf8_seq(p);
            if (n == 0) {
                len += (size_t)snprintf(buf + len, cap - len, "\\ufffd");
            } else if (len + n + 7 < cap) {
                memcpy(buf + len, p, n);
                len += n;
                p += n - 1;
            } else {
                break;
            }
        } else if (*p == '"' || *p == '\\') {
            buf[len++] = '\\';
            buf[len++] = (char)*p;
        } else if (*p == '\n') {
            buf[len++] = '\\'; buf[len++] = 'n';
        } else if (*p < 0x20 || *p == 0x7f) {
            len += (size_t)snprintf(buf + len, cap - len, "\\u%04x", *p);
        } else {
            buf[len++] = (char)*p;
        }
    }
    if (cap) buf[len < cap ? len : cap - 1] = '\0';
    return len;
}

static size_t put_ts(char *buf, size_t cap)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, cap, "{\"ts\":\"%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, cap - n, ".%03dZ\"", (int)(tv.tv_usec / 1000));
    return n;
}

static void emit(FILE *f, char *line, size_t n, size_t cap)
{
    if (n > cap - 3) n = cap - 3;
    line[n++] = '}';
    line[n++] = '\n';
    flockfile(f);
    fwrite(line, 1, n, f);
    fflush(f);
    funlockfile(f);
}

void log_write(int level, const char *fmt, ...)
{
    char msg[2048], line[4608];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t n = put_ts(line, sizeof line);
    n += (size_t)snprintf(line + n, sizeof line - n, ",\"level\":\"%s\",\"msg\":\"", log_level_name(level));
    n = log_json_escape(line, n, sizeof line - 2, msg);
    line[n++] = '"';
    emit(stderr, line, n, sizeof line);
}

void log_access(const char *method, const char *path, int status, size_t bytes,
                double duration_ms, const char *request_id)
{
    FILE *f = access_set ? access_stream : stdout;
    if (!f) return;
    char line[4096];
    size_t n = put_ts(line, sizeof line);
    n += (size_t)snprintf(line + n, sizeof line - n, ",\"type\":\"access\",\"method\":\"");
    n = log_json_escape(line, n, sizeof line - 512, method);
    n += (size_t)snprintf(line + n, sizeof line - n, "\",\"path\":\"");
    n = log_json_escape(line, n, sizeof line - 256, path);
    n += (size_t)snprintf(line + n, sizeof line - n,
                          "\",\"status\":%d,\"bytes\":%zu,\"duration_ms\":%.3f,\"request_id\":\"",
                          status, bytes, duration_ms);
    n = log_json_escape(line, n, sizeof line - 4, request_id ? request_id : "");
    line[n++] = '"';
    emit(f, line, n, sizeof line);
}

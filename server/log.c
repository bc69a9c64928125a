/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.c - timestamped, levelled log lines on stderr, as text or JSON lines.
 *
 * Each record is formatted into one buffer and written with a single write(2),
 * so lines from different threads never interleave. JSON lines are built with
 * jansson, so any byte a client sent (a path, a header) is escaped properly.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"

#define LINE_MAX_BYTES 2048
#define REPEAT_SLOTS   128

static enum log_level min_level = LOG_INFO;
static bool json_lines;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* Recent warning/error texts, by hash: when each window began, how many were written, skipped. */
struct repeat_slot {
    uint64_t hash;
    time_t window_start;
    int written;
    long suppressed;
};
static struct repeat_slot repeats[REPEAT_SLOTS];
static pthread_mutex_t repeats_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_long suppressed_total;

void log_set_level(enum log_level level)
{
    min_level = level;
}

void log_set_level_name(const char *name)
{
    if (!name)
        return;
    if (strcasecmp(name, "debug") == 0)
        min_level = LOG_DEBUG;
    else if (strcasecmp(name, "warn") == 0)
        min_level = LOG_WARN;
    else if (strcasecmp(name, "error") == 0)
        min_level = LOG_ERROR;
    else
        min_level = LOG_INFO;
}

void log_set_json(bool json)
{
    json_lines = json;
}

long log_suppressed_total(void)
{
    return atomic_load(&suppressed_total);
}

static void timestamp(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

static void write_line(const char *text, size_t n)
{
    if (write(STDERR_FILENO, text, n) < 0) {
        /* nowhere left to report it */
    }
}

/* Writes a JSON object as one line (steals the reference). */
static void write_json(json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text)
        return;
    size_t n = strlen(text);
    text[n] = '\n'; /* json_dumps's NUL becomes the newline: one write */
    write_line(text, n + 1);
    free(text);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/*
 * Whether a warning/error with this text may be written now; *earlier gets
 * how many like it were suppressed in the window that just ended.
 */
static bool repeat_allowed(const char *msg, long *earlier)
{
    uint64_t h = fnv1a(msg);
    struct repeat_slot *s = &repeats[h % REPEAT_SLOTS];
    time_t now = time(NULL);
    bool ok;

    *earlier = 0;
    pthread_mutex_lock(&repeats_lock);
    if (s->hash != h || now - s->window_start >= LOG_REPEAT_WINDOW) {
        if (s->hash == h)
            *earlier = s->suppressed;
        s->hash = h;
        s->window_start = now;
        s->written = 0;
        s->suppressed = 0;
    }
    ok = s->written < LOG_REPEAT_BURST;
    if (ok)
        s->written++;
    else
        s->suppressed++;
    pthread_mutex_unlock(&repeats_lock);
    if (!ok)
        atomic_fetch_add(&suppressed_total, 1);
    return ok;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char msg[LINE_MAX_BYTES], ts[40], line[LINE_MAX_BYTES + 128];
    long earlier = 0;
    va_list ap;
    int n;

    if (level < min_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (level >= LOG_WARN && !repeat_allowed(msg, &earlier))
        return;
    timestamp(ts, sizeof ts);
    if (json_lines) {
        json_t *obj = json_pack("{s:s,s:s}", "ts", ts, "level", level_names[level]);
        json_t *text = json_string(msg); /* NULL when not UTF-8: keep the line, not the text */
        if (obj)
            json_object_set_new(obj, "msg", text ? text : json_string("(message not UTF-8)"));
        else
            json_decref(text);
        if (obj && earlier)
            json_object_set_new(obj, "suppressed_before", json_integer(earlier));
        write_json(obj);
        return;
    }
    if (earlier)
        n = snprintf(line, sizeof line, "%s %s %s (and %ld more like it in the last %d s)\n", ts,
                     level_names[level], msg, earlier, LOG_REPEAT_WINDOW);
    else
        n = snprintf(line, sizeof line, "%s %s %s\n", ts, level_names[level], msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    write_line(line, (size_t)n);
}

void log_access(const struct log_access *a)
{
    char ts[40], line[LINE_MAX_BYTES];
    const char *user = a->user_id && *a->user_id ? a->user_id : NULL;
    int n;

    if (LOG_INFO < min_level)
        return;
    timestamp(ts, sizeof ts);
    if (json_lines) {
        json_t *obj =
            json_pack("{s:s,s:s,s:s,s:s,s:s?,s:i,s:I,s:f,s:s?,s:s,s:i}", "ts", ts, "level", "info",
                      "msg", "access", "method", a->method, "route", a->route, "status", a->status,
                      "bytes", (json_int_t)a->bytes, "duration_ms", a->duration_ms, "user_id", user,
                      "request_id", a->request_id, "worker", a->worker);
        write_json(obj);
        return;
    }
    n = snprintf(line, sizeof line, "%s info access %s %s %d %zu %.3fms user=%s rid=%s w=%d\n", ts,
                 a->method, a->route ? a->route : "-", a->status, a->bytes, a->duration_ms,
                 user ? user : "-", a->request_id, a->worker);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    write_line(line, (size_t)n);
}

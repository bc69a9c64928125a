/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.h - one-line log records on stderr: text, or JSON lines.
 *
 * Every line carries a time and a level and, where there is one, the context
 * it happened in (worker number, request id) so that lines from several event
 * loops can be told apart. Logging never fails loudly: a failed write is lost.
 *
 * Warnings and errors are rate-limited: the same text is written at most
 * LOG_REPEAT_BURST times per LOG_REPEAT_WINDOW seconds; the next line written
 * after that says how many were suppressed. A flood (a database outage under
 * load, a client repeating a bad call) cannot fill the disk or hide the rest.
 */
#ifndef ACCORD_LOG_H
#define ACCORD_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

#define LOG_REPEAT_BURST  5
#define LOG_REPEAT_WINDOW 60

/* Lines below this level are dropped (default LOG_INFO; ACCORD_LOG=debug|info|warn|error). */
void log_set_level(enum log_level level);
void log_set_level_name(const char *name);
/* JSON lines ({"ts":...,"level":...,"msg":...}) instead of text (ACCORD_LOG_FORMAT=json). */
void log_set_json(bool json);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* One answered request (the access log, level info, never rate-limited). */
struct log_access {
    const char *method; /* "GET" */
    const char *route;  /* the route template ("/v1/reviews/{id}"), or NULL: no route */
    int status;
    size_t bytes;        /* body bytes sent */
    double duration_ms;  /* from the request's arrival to its answer */
    const char *user_id; /* NULL or "" when not known */
    const char *request_id;
    int worker;
};
void log_access(const struct log_access *a);

/* Warning and error lines suppressed by the rate limit since start. */
long log_suppressed_total(void);

#endif

/*
 * log.h - one-line log records on stderr.
 *
 * Every line carries a level and, where there is one, the context it happened
 * in (worker number, request method and path) so that lines from several event
 * loops can be told apart. Logging never fails loudly: a failed write is lost.
 */
#ifndef ACCORD_LOG_H
#define ACCORD_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Lines below this level are dropped (default LOG_INFO; ACCORD_LOG=debug|info|warn|error). */
void log_set_level(enum log_level level);
void log_set_level_name(const char *name);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif

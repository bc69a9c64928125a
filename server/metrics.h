/*
 * metrics.h - process-wide counters, rendered in Prometheus text format.
 * Counters are C11 atomics: any loop thread may bump or read them.
 */
#ifndef ACCORD_METRICS_H
#define ACCORD_METRICS_H

#include <event2/buffer.h>

#include "pgpool.h"

void metrics_count_response(int status);
/* Registers a pool whose gauges /metrics reports (at most 64; called before serving). */
void metrics_add_pool(const struct pgpool *pool);
/* Appends the exposition text to out. */
void metrics_render(struct evbuffer *out);

#endif

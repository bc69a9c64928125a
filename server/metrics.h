/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.h - what /metrics reports, in the Prometheus text format (0.0.4).
 *
 * Counters and histograms are C11 atomics: any loop thread may update or read
 * them. Families: HTTP answers by class and latency per route, database pool
 * gauges and connection-wait latency per loop, build info, process resources
 * (CPU, memory, file descriptors), and the product gauges the database
 * computes at each scrape (queues, adjudications, paused peer review).
 */
#ifndef ACCORD_METRICS_H
#define ACCORD_METRICS_H

#include <event2/buffer.h>

#include "pgpool.h"

struct route;
struct worker;

void metrics_count_response(int status);
/* A request answered: route NULL when no route matched. */
void metrics_observe_request(const struct route *route, int status, double seconds);
/* Registers a pool whose gauges /metrics reports (at most 64; called before serving). */
void metrics_add_pool(const struct pgpool *pool);
/* Registers a worker whose connections and body memory /metrics reports (at most 64). */
void metrics_add_worker(const struct worker *w);
/*
 * Event loops that cannot reach the database now: their pool or their auth
 * gate has no live connection (each reconnects with its own backoff after an
 * outage). /readyz is ready only when this is 0. Any thread.
 */
int metrics_loops_unconnected(int *loops);
/*
 * Appends the exposition text to out. product is the JSON the ops_metrics()
 * statement returned, or NULL when the database could not be asked (then
 * accord_product_metrics_up is 0 and the product families are absent).
 */
void metrics_render(struct evbuffer *out, const char *product);

#endif

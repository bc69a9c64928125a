/* SPDX-License-Identifier: Apache-2.0 */
/*
 * offload.h - a few threads for work that blocks (writing and fsyncing
 * artifact files), so that no event loop ever waits on the disk.
 *
 * A job's work() runs on an offload thread; its done() then runs on the event
 * loop that submitted it. work() must not touch libevent objects the loop
 * uses; done() may.
 */
#ifndef ACCORD_OFFLOAD_H
#define ACCORD_OFFLOAD_H

#include <event2/event.h>

struct offload;

struct offload *offload_new(int threads);

/* Queues a job. Returns 0, or -1 (out of memory or shutting down): then nothing runs. */
int offload_submit(struct offload *o, struct event_base *base, void (*work)(void *arg),
                   void (*done)(void *arg), void *arg) __attribute__((warn_unused_result));

/*
 * Finishes every queued job, joins the threads and frees. The jobs' done()
 * callbacks are posted to their loops; run each loop once more afterwards
 * (EVLOOP_NONBLOCK) so they execute.
 */
void offload_free(struct offload *o);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conntrack.h - the connections a worker holds and the memory their request
 * bodies take, both bounded.
 *
 * libevent 2.1's evhttp reads a request's whole body into memory before the
 * server sees the request, and has no hook between the headers and the body
 * (evhttp_set_newreqcb came in 2.2). What it does expose is each new
 * connection's bufferevent (evhttp_set_bevcb), whose input buffer sees every
 * byte the client sends. So each worker:
 *
 *  - counts its connections and stops accepting at its share of
 *    --max-connections; the kernel's backlog holds the rest until one closes;
 *  - charges every byte a connection receives to that connection until its
 *    request reaches the router, then to the request until it is answered;
 *  - when the charges pass its share of --max-body-memory, stops reading from
 *    a connection that sends more than CONNTRACK_SMALL_BYTES (TCP flow control
 *    then holds the client back) and resumes it, oldest first, as memory is
 *    freed. When every connection that holds memory is paused and no request
 *    is being answered, the oldest paused one is let through to the end of
 *    its body (per-route limits still apply), so the server never deadlocks.
 *
 * A connection past CONNTRACK_SMALL_BYTES is read in large pieces
 * (bodyread.h), each no larger than what its worker's share has left.
 *
 * The bound: a worker holds at most its share of --max-body-memory, plus one
 * --max-body it let through, plus CONNTRACK_SMALL_BYTES and one socket read
 * (of libevent's, at most 16 KiB) per connection. Who the client is does not
 * matter: anonymous bodies are refused (401) only once read, but they wait
 * their turn like any other.
 *
 * Connections are noticed closing by a sweep (each CONNTRACK_SWEEP_MS) of the
 * bufferevents, on which the module holds a reference: evhttp frees a
 * connection without telling anyone but its single close callback, which is
 * left to the handlers.
 */
#ifndef ACCORD_CONNTRACK_H
#define ACCORD_CONNTRACK_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/http.h>

#include "worker.h"

/* Bytes a connection may receive however full memory is: headers, small JSON. */
#define CONNTRACK_SMALL_BYTES (16 * 1024)
#define CONNTRACK_SWEEP_MS    100
/* A request whose bytes arrived this recently is in flight (shutdown waits for it). */
#define CONNTRACK_ARRIVING_MS 2000

/* Installs the tracking on w->http (before the listener accepts). Returns 0 or -1. */
int conntrack_init(struct worker *w);

/*
 * The router got req: its connection's charge moves to the request. Returns
 * the bytes charged, to give back with conntrack_request_done().
 */
size_t conntrack_request_begins(struct worker *w, struct evhttp_request *req);

/* A request charged with `bytes` was answered (or dropped). */
void conntrack_request_done(struct worker *w, size_t bytes);

/*
 * Connections whose next request is arriving: bytes came within
 * CONNTRACK_ARRIVING_MS (or we paused it). Shutdown waits for them, not for a
 * client that sent half a request and stopped.
 */
int conntrack_receiving(const struct worker *w);

/* Stops the sweep, drops the references (after evhttp_free, before the base is freed). */
void conntrack_release(struct worker *w);

/* For /metrics: this worker's open connections, body bytes held now and at most. */
void conntrack_stats(const struct worker *w, long *connections, long *held_bytes,
                     long *held_peak_bytes);

#endif

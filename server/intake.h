/*
 * intake.h - what a connection may make the server hold before a request
 * reaches the router: the connection cap, accept back-off when descriptors run
 * out, and each request's body limit, chosen before the body is read.
 *
 * libevent 2.1 reads a whole body into memory before the server sees the
 * request, and it has no hook between the headers and the body. So every
 * connection's bytes pass through a bufferevent filter first: when a request's
 * head is complete, the filter looks at its request line and credential
 * (libevent still parses it; the filter only picks a limit) and sets the
 * connection's body limit before libevent reads any body byte:
 *
 *  - the route's own limit (router_body_limit(): uploads --max-body, JSON
 *    --max-json-body, routes without a body a few KiB) for a request whose
 *    credential the auth gate knows, and on public routes;
 *  - INTAKE_ANON_BODY for a request without a credential, or with one the gate
 *    says is unknown or revoked: a larger body is refused with 413 from its
 *    Content-Length, unread; a small one gets the router's JSON 401.
 *
 * A credential not yet in the gate's cache is looked up first: the filter
 * holds the request (at most INTAKE_HOLD_MAX bytes of it) until the gate
 * answers. So what one connection can make the server hold is its head plus
 * the limit that applies to it: connections × limit is the memory bound the
 * README states.
 *
 * The filter also knows which requests are still arriving: a draining worker
 * (SIGTERM) waits for them as for requests in flight.
 */
#ifndef ACCORD_INTAKE_H
#define ACCORD_INTAKE_H

#include "worker.h"

#define INTAKE_ANON_BODY  (4 * 1024)   /* body read from a request without a valid credential */
#define INTAKE_MAX_HEAD   (64 * 1024)  /* request line + headers (evhttp's own limit too) */
#define INTAKE_HOLD_MAX   (128 * 1024) /* read ahead while a credential is looked up */
#define INTAKE_BODY_BATCH (64 * 1024)  /* body bytes passed on at a time */

/*
 * Installs the filter on w->http and, when w->bound is set, the cap and the
 * accept back-off on its listener. Returns 0 or -1.
 */
int intake_init(struct worker *w);

/* The worker stops accepting (its listener is about to go): no more pauses or resumes. */
void intake_stop(struct worker *w);

/* Stops the timers (before the loop's base is freed). */
void intake_release(struct worker *w);

/* Connections open in this process now (every worker). */
long intake_connections(void);

#endif

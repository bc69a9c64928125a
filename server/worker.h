/* SPDX-License-Identifier: Apache-2.0 */
/*
 * worker.h - one event loop thread: its libevent base, its HTTP server on a
 * shared SO_REUSEPORT port, and its own database pool. Requests are handled
 * entirely on the loop that accepted them, so workers share nothing but the
 * read-only configuration, the offload threads and atomic counters.
 */
#ifndef ACCORD_WORKER_H
#define ACCORD_WORKER_H

#include <pthread.h>
#include <stdbool.h>

#include <event2/event.h>
#include <event2/http.h>

#include "config.h"
#include "pgpool.h"

struct authgate;
struct conntrack;
struct live_hub;
struct intake;
struct upload_sweep;
struct reliability_sweep;
struct offload;
struct storage;

struct worker {
    int id;
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct pgpool *pool;
    struct pgpool *replica;      /* --replica-url: reports (replica.h); NULL without one */
    struct authgate *gate;       /* credential check before any body is parsed */
    struct offload *offload;     /* shared blocking-work threads (disk) */
    struct offload *offload_net; /* shared threads for outbound HTTP (OpenID providers), apart
                                    so that a slow provider never holds up artifact writes */
    struct offload *hasher;      /* shared password-hashing threads (pwjob.h) */
    struct offload *reports;     /* the report pool: statistics, apart from the disk's threads
                                    so that a report never holds up an upload's fsync */
    const struct config *cfg;
    const struct storage *storage; /* where evidence bytes live (storage.h); shared, read-only */
    struct event *ev_stop;         /* activated from the main thread at shutdown */
    struct event *ev_deadline;     /* ends the drain after cfg->shutdown_grace */
    int inflight;                  /* requests accepted and not yet answered */
    struct intake *intake;         /* accept back-off and pause at the cap (intake.h) */
    struct conntrack *conntrack;   /* connections and body memory (conntrack.h) */
    struct upload_sweep *sweep;    /* worker 0 only: expired uploads, both kinds */
    struct live_hub *live;         /* live update streams (live.h) */
    struct reliability_sweep *reliability_sweep; /* worker 0 only: reliability.h */
    bool draining;
};

/* A request finished (answered and its context freed); ends a drain when it was the last. */
void worker_request_done(struct worker *w);

/* Ends a drain when nothing is in flight any more. */
void worker_check_drained(struct worker *w);

#endif

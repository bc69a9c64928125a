/* SPDX-License-Identifier: Apache-2.0 */
/*
 * outbox.h - the delivery threads of the transactional outbox
 * (db/migrations/013_outbox.sql).
 *
 * Each thread has its own blocking database connection and its own libcurl
 * handles, far from the event loops. They wake when the process's LISTEN
 * connection (pglisten.h) hears accord_outbox (a retry by hand, an
 * invitation) or accord_live (a server announced a change: livelisten.h; no
 * event NOTIFYs at its commit, which would serialise commits), and also
 * poll, because retries fall due with time and other tools announce nothing. It takes due
 * deliveries with FOR UPDATE SKIP LOCKED and a lease that covers its place in the batch, so several
 * threads and several servers share the work and a server killed mid-delivery leaves its rows to be
 * taken again when their leases end: at least once, with the event's id as
 * the receiver's idempotency key.
 *
 * Failures back off exponentially (--outbox-retry-ms doubling up to
 * --outbox-retry-max) with "equal jitter" (half fixed, half drawn), drawn from
 * a generator seeded by --random-seed when it is set; after --outbox-attempts
 * a delivery is dead until a lead or admin retries it.
 *
 * Thread 0 also runs the scan for time-based events (leases about to end,
 * overdue submissions) every few seconds.
 */
#ifndef ACCORD_OUTBOX_H
#define ACCORD_OUTBOX_H

#include <stdbool.h>
#include <stdint.h>

struct config;
struct evbuffer;
struct outbox;
struct pglisten;

enum outbox_channel { OUTBOX_WEBHOOK, OUTBOX_EMAIL };

/* Starts cfg->outbox_threads threads (none when 0). NULL when they cannot start. */
struct outbox *outbox_start(const struct config *cfg);

/* The threads wake on l's notifications (before pglisten_start). -1: no room. */
int outbox_listen(struct outbox *o, struct pglisten *l);

/* Stops: transfers under way are aborted (their rows are retried later); joins. */
void outbox_stop(struct outbox *o);

/*
 * The back-off before retry number `attempt` (1 = after the first failure),
 * in seconds: base * 2^(attempt-1) capped at max, half of it fixed and half
 * drawn from *state (splitmix64). Exposed for the unit test.
 */
double outbox_backoff(uint64_t *state, long attempt, long base_ms, long max_seconds);

/* n deliveries of channel made (ok) or attempts failed (!ok): this process's counters. */
void outbox_count(enum outbox_channel channel, bool ok, long n);

/*
 * The outbox's series (Prometheus text) onto out: the counters, and the
 * backlog gauges from product (the scrape's query: its "outbox" member), when
 * the database answered.
 */
void outbox_render_metrics(struct evbuffer *out, const char *product);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * outbox.h - the delivery threads of the transactional outbox
 * (db/migrations/013_outbox.sql).
 *
 * Each thread has its own blocking database connection and its own libcurl
 * handles, far from the event loops. It LISTENs on accord_outbox (written at
 * the commit of every event) and also polls, because retries fall due with
 * time. It takes due deliveries with FOR UPDATE SKIP LOCKED and a lease that
 * covers its place in the batch, so several threads and several servers
 * share the work and a server killed mid-delivery leaves its rows to be
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

#include <stdint.h>

struct config;
struct outbox;

/* Starts cfg->outbox_threads threads (none when 0). NULL when they cannot start. */
struct outbox *outbox_start(const struct config *cfg);

/* Stops: transfers under way are aborted (their rows are retried later); joins. */
void outbox_stop(struct outbox *o);

/*
 * The back-off before retry number `attempt` (1 = after the first failure),
 * in seconds: base * 2^(attempt-1) capped at max, half of it fixed and half
 * drawn from *state (splitmix64). Exposed for the unit test.
 */
double outbox_backoff(uint64_t *state, long attempt, long base_ms, long max_seconds);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * replica.h - reports read from a read replica (a streaming standby) within a
 * stated staleness bound, else from the primary.
 *
 * The bound. Once a second the monitor (on the main loop) reads the
 * primary's WAL insert position P(t), keeps the recent samples, then reads
 * the standby's replay position R. Every transaction the primary
 * acknowledged before t has its commit record below P(t), so once R >= P(t)
 * the standby shows everything acknowledged before t. The newest such t is
 * the standby's "fresh as of" time, and now - t bounds how far behind an
 * answer read from it can be. An idle primary does not make a caught-up
 * standby look old (its position does not move), and the bound only grows
 * while no newer sample is confirmed: a standby whose replay stops falls out
 * of use by itself once the bound passes --replica-max-lag. A standby that
 * cannot be reached, or is no longer in recovery (promoted), is out of use
 * at the next check.
 *
 * A report (agreement statistics, ratings.csv) is read from the replica
 * while the bound is at most --replica-max-lag seconds: the primary still
 * authorizes it and writes its audit row (api_report_access), the replica
 * builds the data (018_replica.sql: the one-call functions are the same two
 * halves in one transaction). When the replica fails or refuses, the primary
 * builds the data at once; nothing is answered with an error because of the
 * replica. Answers say where they began: `Accord-Read-From: replica` with
 * `Accord-Replica-Lag: <seconds>` (the bound when it was asked), or
 * `Accord-Read-From: primary`. A streamed report (ratings.csv) that began on
 * the replica continues on it page by page while the bound holds, and on
 * the primary from the first page that cannot (never back: pages do not go
 * back in time).
 *
 * The agreement report cache (report_cache.h) stays right: a kept answer is
 * sent again only when the source read now (replica or primary) gives the
 * same stamp, and 018's "cacheable" counts the minute from the last
 * transaction the standby replayed, not from the standby's clock.
 */
#ifndef ACCORD_REPLICA_H
#define ACCORD_REPLICA_H

#include <event2/event.h>

#include "config.h"
#include "request.h"

struct replica_monitor;

/* Starts the monitor when --replica-url is set (NULL otherwise, or when out of memory). */
struct replica_monitor *replica_monitor_start(struct event_base *base, const struct config *cfg);

void replica_monitor_free(struct replica_monitor *m);

/* Where a request's report reads: decided by its first part, kept by the request. */
enum replica_source { READ_UNDECIDED = 0, READ_PRIMARY, READ_REPLICA };

/*
 * Runs one part of report `report` ("agreement", "ratings.csv") for r.
 * r->params are the one-call statement `direct`'s (token, query, ...), and
 * `data` takes the same without the token. *src starts READ_UNDECIDED; the
 * first part decides (and sets the Accord-Read-From headers); later parts of
 * the same request follow it. cb gets r and the data either way. Returns
 * like pgpool_query(): DB_OK when cb will run, else the refusal.
 */
enum db_status replica_query(struct request *r, enum replica_source *src, const char *report,
                             enum stmt_id direct, enum stmt_id data, db_callback cb);

/* accord_replica_* gauges and counters (Prometheus text); nothing without a replica. */
struct evbuffer;
void replica_render_metrics(struct evbuffer *out);

#endif

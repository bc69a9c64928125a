/* SPDX-License-Identifier: Apache-2.0 */
/*
 * live.h - live updates for the web app: GET /v1/events, a Server-Sent Events
 * stream per signed-in user (cookie session or token).
 *
 * What a stream carries (server/API.md "Live updates" has the payloads):
 *   queue       an assessor's or expert's queue counts, one per grant
 *   submission  a change of status of the caller's own submissions (earners)
 *   routing     peer review paused or resumed, adjudication waiting (leads)
 *   ready       the stream is up to date (after opening, resuming, refreshing)
 *   resync      too much changed to replay: reload your lists
 *   end         the server closes the stream: signed out, disabled, shutdown
 * A stream carries only what its user may see: events are chosen by the
 * user's own grants and roles and their own submissions, read afresh by the
 * database for that user.
 *
 * Cost: no database connection per stream. One listening connection per
 * process (livelisten.h, pglisten.h) reads what committed since it last
 * looked and posts each change to every event loop's hub; a hub
 * marks which of its streams care, and at most one query per hub is in
 * flight (live_batch(), db/migrations/014_live.sql): it answers for every
 * stream that opened or needs a fresh look meanwhile, every changed queue and
 * submission, and every credential to re-check. Changes that arrive while it
 * runs wait for the next one (coalescing); so a burst of a thousand
 * submissions costs a handful of queries per hub, not a query per stream.
 *
 * Bounds: --live-streams (per process) and --live-streams-per-user; a
 * heartbeat comment every --live-heartbeat seconds; a client that does not
 * read (LIVE_MAX_BACKLOG bytes waiting) is disconnected. Credentials are
 * re-checked when the auth gate's notifications say so and every minute, so
 * a stream ends with an `end` event at sign-out, revocation, disabling or
 * the session's expiry; and at SIGTERM (live_hub_stop).
 */
#ifndef ACCORD_LIVE_H
#define ACCORD_LIVE_H

#include <stdbool.h>

#include "request.h"
#include "worker.h"

struct live_hub;
struct evbuffer;

/* The worker's hub, on its loop. NULL when out of memory. */
struct live_hub *live_hub_new(struct worker *w);

/* Shutdown (on the worker's loop): every stream gets `end` and finishes once written. */
void live_hub_stop(struct live_hub *h);

/* After the worker's HTTP server is freed. */
void live_hub_free(struct live_hub *h);

/* GET /v1/events */
void handle_events(struct request *r);

/*
 * From the listener (main thread): one change (a line of live_changes(),
 * db/migrations/022_notify2.sql, as channel accord_live) or a notification of
 * accord_auth; live_post_flush() then wakes the hubs that got any.
 */
void live_post(const char *channel, const char *payload);
void live_post_flush(void);
/* The listener (re)connected: every stream of every hub looks again. */
void live_post_resync_all(void);

/* Streams open in this process. */
int live_streams_open(void);

/* Appends the streams' counters (Prometheus text) to out. */
void live_render_metrics(struct evbuffer *out);

#endif

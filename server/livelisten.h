/* SPDX-License-Identifier: Apache-2.0 */
/*
 * livelisten.h - what feeds every live stream (live.h), on the process's one
 * LISTEN connection (pglisten.h). No stream ever holds a database connection.
 *
 * Nothing is announced inside a writer's transaction (a NOTIFY there makes
 * every notifying commit of the cluster wait for the others:
 * db/migrations/022_notify2.sql). Instead:
 *   - the announcer: after a request of this process changed something
 *     (livelisten_announce), one payload-less NOTIFY accord_live, at most
 *     every LIVE_ANNOUNCE_MS;
 *   - the catch-up: on every accord_live (from any server) and every second
 *     regardless, SELECT live_changes(previous snapshot) tells what committed
 *     since; each change goes to every event loop's hub (live_post). At most
 *     one catch-up is in flight, and they start at most every
 *     LIVE_CATCHUP_MIN_MS, however many servers announce.
 * accord_auth notifications (sign-out, revocation) go to the hubs as they come.
 * After every (re)connection the first catch-up only takes a snapshot, and
 * every stream then looks again (live_post_resync_all): what changed while
 * nobody listened is not lost.
 */
#ifndef ACCORD_LIVELISTEN_H
#define ACCORD_LIVELISTEN_H

#include <event2/event.h>

struct livelisten;
struct pglisten;

/* Registers on l (before pglisten_start). NULL when out of memory or room. */
struct livelisten *livelisten_start(struct event_base *base, struct pglisten *l);

void livelisten_free(struct livelisten *ll);

/*
 * A request of this process committed a change someone may watch (any
 * thread; cheap: one atomic exchange, and a wake-up of the main loop at most
 * once per announcement).
 */
void livelisten_announce(void);

#endif

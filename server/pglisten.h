/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pglisten.h - the one LISTEN connection of a server process.
 *
 * Modules register the channels they want (pglisten_channel) before
 * pglisten_start; one connection LISTENs on all of them, on the main
 * thread's event base, never blocking it (libpq's non-blocking connect and
 * queries), and reconnects by itself with backoff (100 ms doubling to 5 s).
 * Notifications arriving while it is down are lost: each registration's
 * state callback hears when the connection is up (LISTEN done) and when it
 * went down, so a module can look again at whatever it caches.
 *
 * The connection also runs short commands for the modules (pglisten_query),
 * one at a time in order: the live stream's catch-up query and the
 * announcer's NOTIFY (livelisten.h).
 *
 * LISTEN is a session's: conninfo must reach PostgreSQL directly, never
 * through a transaction pooler (pooler.h).
 */
#ifndef ACCORD_PGLISTEN_H
#define ACCORD_PGLISTEN_H

#include <stdbool.h>

#include <event2/event.h>
#include <libpq-fe.h>

struct pglisten;

/* A notification on channel (payload: "" when none). Main thread. */
typedef void (*pglisten_notify_fn)(const char *channel, const char *payload, void *arg);
/* up: LISTEN is in place (after every (re)connection); !up: the connection is gone. */
typedef void (*pglisten_state_fn)(bool up, void *arg);
/* A command's result (PGRES_TUPLES_OK or PGRES_COMMAND_OK), or NULL when it failed. */
typedef void (*pglisten_result_fn)(const PGresult *res, void *arg);

/* NULL when out of memory. Nothing happens before pglisten_start. */
struct pglisten *pglisten_new(struct event_base *base, const char *conninfo);

/*
 * Before pglisten_start: fn gets channel's notifications, state (may be NULL)
 * the connection's ups and downs. A channel may have several registrations.
 * Channel names are plain identifiers. Returns -1 when out of room.
 */
int pglisten_channel(struct pglisten *l, const char *channel, pglisten_notify_fn fn,
                     pglisten_state_fn state, void *arg);

/* Starts connecting. */
void pglisten_start(struct pglisten *l);

/* Whether LISTEN is in place now. */
bool pglisten_up(const struct pglisten *l);

/*
 * Queues sql (parameters copied) to run after the commands queued before it;
 * cb(result, arg) runs on the main thread when it completes, or cb(NULL, arg)
 * when it fails or the connection goes down first. Returns -1 (and cb is not
 * called) when the connection is not up or PGLISTEN_MAX_QUEUE commands wait.
 */
#define PGLISTEN_MAX_QUEUE  8
#define PGLISTEN_MAX_PARAMS 4
int pglisten_query(struct pglisten *l, const char *sql, int nparams, const char *const *params,
                   pglisten_result_fn cb, void *arg);

/* Closes the connection (queued commands get cb(NULL)); no state callbacks run. */
void pglisten_free(struct pglisten *l);

#endif

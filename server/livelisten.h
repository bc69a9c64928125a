/* SPDX-License-Identifier: Apache-2.0 */
/*
 * livelisten.h - the one database connection per process that feeds every
 * live stream (live.h): it LISTENs on accord_live (changes, sent by the
 * triggers of db/migrations/014_live.sql) and accord_auth (credentials
 * revoked or users disabled, 009_limits.sql), and posts each notification to
 * every event loop's hub. No stream ever holds a database connection.
 *
 * It runs on the main thread's event base, never blocks it (libpq's
 * non-blocking connect), and reconnects by itself with backoff. Whatever was
 * announced while it was not listening is lost, so every (re)connection asks
 * every hub to refresh all its streams (live_post_resync_all()).
 */
#ifndef ACCORD_LIVELISTEN_H
#define ACCORD_LIVELISTEN_H

#include <event2/event.h>

struct livelisten;

/* Starts connecting at once. Returns NULL when out of memory. */
struct livelisten *livelisten_start(struct event_base *base, const char *conninfo);

void livelisten_free(struct livelisten *l);

#endif

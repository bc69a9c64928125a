/* SPDX-License-Identifier: Apache-2.0 */
/*
 * authlisten.h - one connection per process that LISTENs on channel
 * accord_auth and empties every loop's credential cache (authgate.h) when a
 * credential is revoked or disabled.
 *
 * It runs on the main thread's event base, never blocks it (libpq's
 * non-blocking connect), and reconnects by itself with backoff. While it is
 * not listening the gates cache nothing, and every (re)connection empties
 * the caches, so a notification lost in an outage cannot matter.
 */
#ifndef ACCORD_AUTHLISTEN_H
#define ACCORD_AUTHLISTEN_H

#include <event2/event.h>

struct authlisten;

/* Starts connecting at once. Returns NULL when out of memory. */
struct authlisten *authlisten_start(struct event_base *base, const char *conninfo);

void authlisten_free(struct authlisten *l);

#endif

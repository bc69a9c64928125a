/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bodyread.h - reading a large request body off its socket in large pieces.
 *
 * libevent 2.1's socket bufferevent reads at most 4 KiB per readiness event
 * (EVBUFFER_MAX_READ in its buffer.c; 2.2 made it settable with
 * evbuffer_set_max_read). A 64 MiB tus chunk is then 16,384 trips round the
 * event loop, ~120 ms on loopback, and since a tus chunk may be acknowledged
 * only once it is durable, the disk waits through all of it.
 *
 * While a connection is receiving a large body (conntrack.h decides), a
 * second read event on the same socket reads whatever the kernel holds, up
 * to BODYREAD_PIECE per read(2) and BODYREAD_BURST per wake-up, into the
 * connection's own input buffer, and then runs evhttp's read callback
 * (bufferevent_trigger), just as the bufferevent would after its own read.
 * evhttp parses those bytes as it parses any: nothing here looks at them.
 *
 * It reads only while the bufferevent itself is reading: when evhttp or the
 * memory bound (conntrack.h) stops reading a connection, this stops too
 * (checked after every piece, since the input buffer's callbacks may pause it
 * in between), until bodyread_start is called again. End of file and errors
 * are left for the bufferevent to find on its own next read.
 */
#ifndef ACCORD_BODYREAD_H
#define ACCORD_BODYREAD_H

#include <event2/bufferevent.h>
#include <event2/event.h>

#define BODYREAD_PIECE (256 * 1024) /* bytes per read(2) at most */
#define BODYREAD_MIN   (16 * 1024)  /* below this room, the bufferevent's own reads will do */
#define BODYREAD_BURST                                                                             \
    (1024 * 1024) /* bytes per wake-up: the loop's other clients wait no longer */

struct bodyread;

/* How many more bytes the connection may hold now (conntrack's memory bound). */
typedef size_t (*bodyread_room_fn)(void *arg);

/*
 * For bev, a socket bufferevent (its descriptor may be set later). Before
 * each read(2) room(arg) says how much it may take: no piece ever carries a
 * connection past the memory bound. NULL when out of memory.
 */
struct bodyread *bodyread_new(struct event_base *base, struct bufferevent *bev,
                              bodyread_room_fn room, void *arg);

/* Starts (or keeps) reading bev's socket in large pieces while bev reads. */
void bodyread_start(struct bodyread *br);

/* Stops reading; bev reads alone again. */
void bodyread_stop(struct bodyread *br);

/* NULL is fine. */
void bodyread_free(struct bodyread *br);

/* For /metrics: the reads made here since start, all loops, and their bytes. */
void bodyread_stats(unsigned long long *pieces, unsigned long long *bytes);

#endif

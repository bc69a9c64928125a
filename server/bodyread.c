/* SPDX-License-Identifier: Apache-2.0 */
/* bodyread.c - large request bodies read in large pieces (see bodyread.h). */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/uio.h>

#include <event2/buffer.h>

#include "bodyread.h"

#define BODYREAD_VECS 2

/* for /metrics: every loop's large reads */
static atomic_ullong pieces_read, bytes_read;

struct bodyread {
    struct event_base *base;
    struct bufferevent *bev;
    struct event *ev; /* EV_READ | EV_PERSIST on the bufferevent's socket, made on first start */
    evutil_socket_t fd;
    bodyread_room_fn room;
    void *room_arg;
};

struct bodyread *bodyread_new(struct event_base *base, struct bufferevent *bev,
                              bodyread_room_fn room, void *arg)
{
    struct bodyread *br = calloc(1, sizeof *br);
    if (!br)
        return NULL;
    br->base = base;
    br->bev = bev;
    br->fd = -1;
    br->room = room;
    br->room_arg = arg;
    return br;
}

static bool bev_reading(const struct bodyread *br)
{
    return (bufferevent_get_enabled(br->bev) & EV_READ) != 0 &&
           bufferevent_getfd(br->bev) == br->fd;
}

/*
 * One read(2) of at most `want` bytes into the input buffer. Returns the
 * bytes read; 0 when the socket has nothing now (EAGAIN) or is at its end or
 * failed (the bufferevent's own read reports those).
 */
static size_t read_piece(struct bodyread *br, struct evbuffer *in, size_t want)
{
    struct evbuffer_iovec vec[BODYREAD_VECS];
    struct iovec iov[BODYREAD_VECS];
    ssize_t got;
    size_t left;
    int n;

    /* The bufferevent keeps its input closed to writers except while it reads; so do we. */
    evbuffer_unfreeze(in, 0);
    n = evbuffer_reserve_space(in, (ev_ssize_t)want, vec, BODYREAD_VECS);
    if (n <= 0) {
        evbuffer_freeze(in, 0);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        iov[i].iov_base = vec[i].iov_base;
        iov[i].iov_len = vec[i].iov_len < want ? vec[i].iov_len : want;
        want -= iov[i].iov_len;
    }
    do
        got = readv(br->fd, iov, n);
    while (got < 0 && errno == EINTR);
    if (got <= 0) {
        evbuffer_freeze(in, 0); /* the reservation lapses uncommitted */
        return 0;
    }
    left = (size_t)got;
    for (int i = 0; i < n; i++) {
        if (vec[i].iov_len > left)
            vec[i].iov_len = left;
        left -= vec[i].iov_len;
        if (vec[i].iov_len == 0) {
            n = i;
            break;
        }
    }
    /* runs the input buffer's callbacks: conntrack counts the bytes and may pause reading */
    evbuffer_commit_space(in, vec, n);
    evbuffer_freeze(in, 0);
    atomic_fetch_add_explicit(&pieces_read, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&bytes_read, (unsigned long long)got, memory_order_relaxed);
    return (size_t)got;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct bodyread *br = arg;
    struct evbuffer *in = bufferevent_get_input(br->bev);
    size_t total = 0, got, want;
    (void)fd;
    (void)what;

    if (!bev_reading(br)) {
        bodyread_stop(br);
        return;
    }
    do {
        want = br->room(br->room_arg);
        if (want > BODYREAD_PIECE)
            want = BODYREAD_PIECE;
        if (want < BODYREAD_MIN)
            break; /* memory is nearly full: the bufferevent's small reads and the bound decide */
        got = read_piece(br, in, want);
        total += got;
    } while (got == want && total < BODYREAD_BURST && bev_reading(br));
    /* evhttp takes what arrived, as after the bufferevent's own read */
    if (total > 0)
        bufferevent_trigger(br->bev, EV_READ, 0);
}

void bodyread_start(struct bodyread *br)
{
    evutil_socket_t fd = br ? bufferevent_getfd(br->bev) : -1;
    if (fd < 0)
        return;
    if (br->ev && br->fd != fd) {
        event_free(br->ev);
        br->ev = NULL;
    }
    if (!br->ev) {
        br->fd = fd;
        br->ev = event_new(br->base, fd, EV_READ | EV_PERSIST, on_readable, br);
        if (!br->ev)
            return; /* out of memory: the bufferevent reads alone */
    }
    if (!event_pending(br->ev, EV_READ, NULL))
        event_add(br->ev, NULL);
}

void bodyread_stop(struct bodyread *br)
{
    if (br && br->ev)
        event_del(br->ev);
}

void bodyread_free(struct bodyread *br)
{
    if (!br)
        return;
    if (br->ev)
        event_free(br->ev);
    free(br);
}

void bodyread_stats(unsigned long long *pieces, unsigned long long *bytes)
{
    *pieces = atomic_load_explicit(&pieces_read, memory_order_relaxed);
    *bytes = atomic_load_explicit(&bytes_read, memory_order_relaxed);
}

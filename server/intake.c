/* SPDX-License-Identifier: Apache-2.0 */
/* intake.c - accept back-off when descriptors run out (see intake.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>
#include <event2/listener.h>

#include "intake.h"
#include "log.h"

struct intake {
    struct evconnlistener *listener;
    struct event *ev_resume;
    bool paused; /* backing off after a failed accept */
    bool full;   /* at the connection cap */
    int backoff_ms;
    struct timespec last_failure;
};

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct intake *in = w->intake;
    (void)fd;
    (void)what;
    if (!in->paused || !in->listener || w->draining)
        return;
    in->paused = false;
    if (!in->full)
        evconnlistener_enable(in->listener);
}

void intake_set_full(struct worker *w, bool full)
{
    struct intake *in = w->intake;
    if (!in || in->full == full)
        return;
    in->full = full;
    if (!in->listener || w->draining)
        return;
    if (full) {
        log_warn("worker %d: at its share of --max-connections; accepting waits", w->id);
        evconnlistener_disable(in->listener);
    } else if (!in->paused) {
        evconnlistener_enable(in->listener);
    }
}

/*
 * The listener's error callback gets evhttp's argument, not ours: the worker
 * is found by its listener (a few entries, written before the loops start).
 */
#define MAX_LISTENERS 64
static struct {
    struct evconnlistener *listener;
    struct worker *w;
} listeners[MAX_LISTENERS];

static void on_accept_error(struct evconnlistener *listener, void *arg)
{
    struct worker *w = NULL;
    struct intake *in;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv;
    struct timespec now;
    (void)arg;

    for (int i = 0; i < MAX_LISTENERS && !w; i++)
        if (listeners[i].listener == listener)
            w = listeners[i].w;
    if (!w || !w->intake)
        return;
    in = w->intake;

    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
        log_warn("worker %d: accept failed: %s", w->id, strerror(err));
        return;
    }
    /* Failures in a row double the pause (to 1 s); a quiet 2 s starts again at 10 ms. */
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (in->backoff_ms == 0 || now.tv_sec - in->last_failure.tv_sec > 2)
        in->backoff_ms = 10;
    else if ((in->backoff_ms *= 2) > 1000)
        in->backoff_ms = 1000;
    in->last_failure = now;
    log_warn("worker %d: cannot accept (%s): pausing %d ms", w->id, strerror(err), in->backoff_ms);
    if (!in->listener || w->draining)
        return;
    evconnlistener_disable(in->listener);
    in->paused = true;
    tv.tv_sec = in->backoff_ms / 1000;
    tv.tv_usec = (in->backoff_ms % 1000) * 1000;
    event_add(in->ev_resume, &tv);
}

int intake_init(struct worker *w)
{
    struct intake *in = calloc(1, sizeof *in);
    if (!in)
        return -1;
    w->intake = in;
    in->ev_resume = evtimer_new(w->base, on_resume, w);
    if (!in->ev_resume)
        return -1;
    if (w->bound && w->id >= 0 && w->id < MAX_LISTENERS) {
        in->listener = evhttp_bound_socket_get_listener(w->bound);
        listeners[w->id].listener = in->listener;
        listeners[w->id].w = w;
        evconnlistener_set_error_cb(in->listener, on_accept_error);
    }
    return 0;
}

void intake_stop(struct worker *w)
{
    if (!w->intake)
        return;
    if (w->id >= 0 && w->id < MAX_LISTENERS)
        listeners[w->id].listener = NULL;
    w->intake->listener = NULL;
    w->intake->paused = false;
    event_del(w->intake->ev_resume);
}

void intake_release(struct worker *w)
{
    if (!w->intake)
        return;
    if (w->intake->ev_resume)
        event_free(w->intake->ev_resume);
    free(w->intake);
    w->intake = NULL;
}

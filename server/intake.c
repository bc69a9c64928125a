/*
 * intake.c - the per-connection filter, the connection cap and the accept
 * back-off (see intake.h).
 *
 * A connection's filter moves bytes from the socket's buffer (src) to the one
 * evhttp reads (dst) in states:
 *   HEAD  - waiting for a complete head; nothing passes until it is whole;
 *   GATE  - the head is whole, the auth gate is looking its credential up:
 *           nothing passes, so evhttp cannot judge the body by an old limit;
 *   ADMITTED - the gate answered and the limit is set: the head goes on;
 *   BODY  - passing exactly Content-Length bytes of body;
 *   PASS  - everything passes (chunked bodies, heads we cannot frame): evhttp
 *           and the limit set last still bound what is read.
 * A limit must not change while evhttp still reads the previous body, so a
 * pipelined head that follows a body waits for the next loop turn (kick_in).
 *
 * libevent 2.1's filter does not pass output that evhttp queued while the
 * filter's writing was off (it turns writing on afterwards): an evbuffer
 * callback on the output kicks a flush on the next loop turn.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "authgate.h"
#include "intake.h"
#include "log.h"
#include "router.h"

enum conn_state { ST_HEAD, ST_GATE, ST_ADMITTED, ST_BODY, ST_PASS };

struct conn {
    struct worker *w;
    struct bufferevent *bev;   /* the filter evhttp sees */
    struct event *kick_in;     /* process input held back on the next loop turn */
    struct event *kick_out;    /* pass queued output on the next loop turn */
    struct event *ev_writable; /* the socket can take more of a large answer */
    struct event_base *base;
    enum conn_state state;
    uint64_t body_left;
    size_t head_len;     /* GATE/ADMITTED: the head's bytes at the start of src */
    long limit_if_valid; /* GATE: the route's limit */
    bool arriving;       /* a request's head is in, its body is not complete */
    bool wait_turn;      /* a body just ended: next head on the next loop turn */
    bool lookup_pending; /* the gate will call back with this conn */
    bool closed;         /* the bufferevent is gone; free when the lookup returns */
    char user_id[AUTH_USER_ID_LEN + 1];
};

struct intake {
    struct evconnlistener *listener;
    struct event *ev_resume; /* re-enables accepting after a pause */
    bool paused;
    int backoff_ms;
};

static atomic_long open_connections;

long intake_connections(void)
{
    return atomic_load(&open_connections);
}

static struct evhttp_connection *conn_evcon(struct conn *c)
{
    bufferevent_data_cb rcb, wcb;
    bufferevent_event_cb ecb;
    void *arg = NULL;
    bufferevent_getcb(c->bev, &rcb, &wcb, &ecb, &arg);
    return arg;
}

static void set_limit(struct conn *c, long limit)
{
    struct evhttp_connection *evcon = conn_evcon(c);
    if (evcon)
        evhttp_connection_set_max_body_size(evcon, limit);
}

/*
 * A body that completes becomes a request in flight within the same callback
 * (evhttp dispatches it as soon as the filter returns), so only a connection
 * that ends mid-body may end a drain here (on_conn_freed).
 */
static void set_arriving(struct conn *c, bool on)
{
    if (c->arriving == on)
        return;
    c->arriving = on;
    c->w->arriving += on ? 1 : -1;
}

/* ------------------------------------------------------------------ */
/* Reading a head: the request line and the few headers that pick a limit. */

struct head {
    size_t len; /* bytes up to and including the empty line */
    char method[16];
    char path[1024];
    bool has_body, chunked, ambiguous;
    uint64_t content_length;
    enum auth_found found;
    struct auth_credential cred;
};

static bool starts_with_ci(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len > n && strncasecmp(line, name, n) == 0 && line[n] == ':';
}

static const char *header_value(const char *line, size_t len, size_t name_len, size_t *vlen)
{
    const char *v = line + name_len + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *vlen = (size_t)(end - v);
    return v;
}

static void read_request_line(struct head *h, const char *line)
{
    const char *sp1 = strchr(line, ' '), *sp2;
    struct evhttp_uri *uri;
    char target[2048];
    size_t n;

    if (!sp1 || (size_t)(sp1 - line) >= sizeof h->method)
        return;
    memcpy(h->method, line, (size_t)(sp1 - line));
    sp2 = strchr(sp1 + 1, ' ');
    n = sp2 ? (size_t)(sp2 - sp1 - 1) : strlen(sp1 + 1);
    if (n >= sizeof target)
        return;
    memcpy(target, sp1 + 1, n);
    target[n] = '\0';
    uri = evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT);
    if (uri && evhttp_uri_get_path(uri))
        snprintf(h->path, sizeof h->path, "%s", evhttp_uri_get_path(uri));
    if (uri)
        evhttp_uri_free(uri);
}

/*
 * Returns 1 with *h filled when src starts with a complete head, 0 when more
 * bytes are needed, -1 when it cannot be a head we can frame (too long).
 */
static int read_head(struct evbuffer *src, struct head *h)
{
    struct evbuffer_ptr pos, eol;
    size_t eol_len = 0, start = 0;
    int n_lines = 0, n_cl = 0;
    char line[8192];
    struct evkeyvalq creds;

    memset(h, 0, sizeof *h);
    TAILQ_INIT(&creds);
    evbuffer_ptr_set(src, &pos, 0, EVBUFFER_PTR_SET);
    for (;;) {
        size_t len, copy;
        eol = evbuffer_search_eol(src, &pos, &eol_len, EVBUFFER_EOL_CRLF);
        if (eol.pos < 0)
            break;
        len = (size_t)eol.pos - start;
        copy = len < sizeof line - 1 ? len : sizeof line - 1;
        evbuffer_ptr_set(src, &pos, start, EVBUFFER_PTR_SET);
        evbuffer_copyout_from(src, &pos, line, copy);
        line[copy] = '\0';
        start = (size_t)eol.pos + eol_len;
        evbuffer_ptr_set(src, &pos, start, EVBUFFER_PTR_SET);
        if (n_lines++ == 0) {
            read_request_line(h, line);
            continue;
        }
        if (len == 0) {
            h->len = start;
            goto done;
        }
        if (starts_with_ci(line, copy, "content-length")) {
            size_t vlen;
            const char *v = header_value(line, copy, 14, &vlen);
            char *end;
            n_cl++;
            errno = 0;
            h->content_length = vlen ? strtoull(v, &end, 10) : 0;
            if (!vlen || errno || end != v + vlen || v[0] < '0' || v[0] > '9')
                h->ambiguous = true;
        } else if (starts_with_ci(line, copy, "transfer-encoding")) {
            h->chunked = true;
        } else if (starts_with_ci(line, copy, "authorization")) {
            size_t vlen;
            const char *v = header_value(line, copy, 13, &vlen);
            char value[512];
            if (vlen < sizeof value && !evhttp_find_header(&creds, "Authorization")) {
                memcpy(value, v, vlen);
                value[vlen] = '\0';
                evhttp_add_header(&creds, "Authorization", value);
            }
        }
        if (start > INTAKE_MAX_HEAD)
            return -1;
    }
    return evbuffer_get_length(src) > INTAKE_MAX_HEAD ? -1 : 0;
done:
    if (n_cl > 1 || (n_cl && h->chunked))
        h->ambiguous = true;
    h->has_body = h->chunked || h->ambiguous || h->content_length > 0;
    h->found = auth_credential_from_headers(&creds, &h->cred);
    evhttp_clear_headers(&creds);
    return 1;
}

/* ------------------------------------------------------------------ */
/* The filter. */

static void on_writable(evutil_socket_t fd, short what, void *arg);

/* The bufferevent is gone: nothing may fire for it any more. */
static void conn_drop_events(struct conn *c)
{
    if (c->kick_in)
        event_free(c->kick_in);
    if (c->kick_out)
        event_free(c->kick_out);
    if (c->ev_writable)
        event_free(c->ev_writable);
    c->kick_in = c->kick_out = c->ev_writable = NULL;
    c->bev = NULL;
}

static void conn_free(struct conn *c)
{
    conn_drop_events(c);
    free(c);
}

static void on_gate(enum auth_verdict verdict, const char *user_id, void *arg)
{
    struct conn *c = arg;
    c->lookup_pending = false;
    if (c->closed) {
        conn_free(c);
        return;
    }
    if (verdict == AUTH_VALID) {
        snprintf(c->user_id, sizeof c->user_id, "%s", user_id);
        set_limit(c, c->limit_if_valid);
    } else if (verdict == AUTH_UNAVAILABLE) {
        set_limit(c, c->limit_if_valid); /* the router answers 503 */
    } else {
        set_limit(c, INTAKE_ANON_BODY);
    }
    c->state = ST_ADMITTED;
    event_active(c->kick_in, EV_TIMEOUT, 0);
}

/* A complete head is at the start of src: choose its limit. Returns false when it must wait. */
static bool admit_head(struct conn *c, const struct head *h)
{
    bool is_public = false;
    long limit = router_body_limit(c->w->cfg, h->method, h->path, &is_public);

    c->user_id[0] = '\0';
    if (!h->has_body || is_public) {
        set_limit(c, limit);
        return true;
    }
    if (h->ambiguous) {
        set_limit(c, 0); /* evhttp refuses it, or reads nothing */
        return true;
    }
    if (h->found != AUTH_FOUND_OK) {
        set_limit(c, limit < INTAKE_ANON_BODY ? limit : INTAKE_ANON_BODY);
        return true;
    }
    switch (authgate_check(c->w->gate, &h->cred, c->user_id, on_gate, c)) {
    case AUTH_VALID:
    case AUTH_UNAVAILABLE:
        set_limit(c, limit);
        return true;
    case AUTH_PENDING:
        c->limit_if_valid = limit;
        c->lookup_pending = true;
        return false;
    case AUTH_INVALID:
    case AUTH_BUSY:
    default:
        set_limit(c, limit < INTAKE_ANON_BODY ? limit : INTAKE_ANON_BODY);
        return true;
    }
}

/* The head (head_len bytes of src) is admitted: pass it, then its body. */
static void pass_head(struct conn *c, struct evbuffer *src, struct evbuffer *dst)
{
    evbuffer_remove_buffer(src, dst, c->head_len);
    c->state = c->body_left > 0 ? ST_BODY : ST_HEAD;
    if (c->state == ST_HEAD && evbuffer_get_length(src) > 0) {
        c->wait_turn = true;
        event_active(c->kick_in, EV_TIMEOUT, 0);
    }
}

static enum bufferevent_filter_result filter_in(struct evbuffer *src, struct evbuffer *dst,
                                                ev_ssize_t dst_limit,
                                                enum bufferevent_flush_mode mode, void *arg)
{
    struct conn *c = arg;
    bool moved = false;
    struct head h;
    (void)dst_limit;
    (void)mode;

    while (evbuffer_get_length(src) > 0 && !c->wait_turn) {
        switch (c->state) {
        case ST_GATE:
            return moved ? BEV_OK : BEV_NEED_MORE;
        case ST_PASS:
            evbuffer_add_buffer(dst, src);
            return BEV_OK;
        case ST_ADMITTED:
            pass_head(c, src, dst);
            moved = true;
            break;
        case ST_BODY: {
            size_t n = evbuffer_get_length(src);
            /*
             * Move bodies in batches: a chain moved half full wastes its free
             * half, which for one 4 KiB read at a time doubles what a large
             * body costs in memory.
             */
            if (n < c->body_left && n < INTAKE_BODY_BATCH)
                return moved ? BEV_OK : BEV_NEED_MORE;
            if (n > c->body_left)
                n = (size_t)c->body_left;
            evbuffer_remove_buffer(src, dst, n);
            c->body_left -= n;
            moved = true;
            if (c->body_left == 0) {
                c->state = ST_HEAD;
                set_arriving(c, false);
                if (evbuffer_get_length(src) > 0) {
                    c->wait_turn = true;
                    event_active(c->kick_in, EV_TIMEOUT, 0);
                }
            }
            break;
        }
        case ST_HEAD:
            switch (read_head(src, &h)) {
            case 0:
                return moved ? BEV_OK : BEV_NEED_MORE;
            case -1:
                c->state = ST_PASS; /* evhttp answers an oversized head itself */
                continue;
            default:
                break;
            }
            if (h.chunked || h.ambiguous) {
                /* Not framed by us: the limit chosen now holds for the rest of the connection. */
                admit_head(c, &h);
                c->state = ST_PASS;
                continue;
            }
            c->body_left = h.content_length;
            c->head_len = h.len;
            if (h.content_length > 0)
                set_arriving(c, true);
            if (!admit_head(c, &h)) {
                c->state = ST_GATE; /* on_gate moves on to ST_ADMITTED */
                return moved ? BEV_OK : BEV_NEED_MORE;
            }
            pass_head(c, src, dst);
            moved = true;
            break;
        }
    }
    return moved ? BEV_OK : BEV_NEED_MORE;
}

/*
 * Output goes straight to the socket, not into the socket bufferevent: evhttp
 * takes an empty filter output for "sent" and may close the connection then,
 * so the filter's output must only empty once the kernel has the bytes.
 */
static enum bufferevent_filter_result filter_out(struct evbuffer *src, struct evbuffer *dst,
                                                 ev_ssize_t dst_limit,
                                                 enum bufferevent_flush_mode mode, void *arg)
{
    struct conn *c = arg;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    int n;
    (void)dst;
    (void)dst_limit;
    (void)mode;

    if (fd < 0) {
        evbuffer_drain(src, evbuffer_get_length(src));
        return BEV_OK;
    }
    n = evbuffer_write(src, fd);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        /* The peer is gone: nothing will be delivered; let evhttp see the end. */
        evbuffer_drain(src, evbuffer_get_length(src));
        return BEV_OK;
    }
    if (evbuffer_get_length(src) > 0) {
        if (!c->ev_writable)
            c->ev_writable = event_new(c->base, fd, EV_WRITE, on_writable, c);
        if (c->ev_writable)
            event_add(c->ev_writable, NULL);
    }
    return n > 0 ? BEV_OK : BEV_NEED_MORE;
}

/*
 * bufferevent_free() clears the callbacks; libevent finalizes (and calls
 * on_conn_freed) later. A kick that fires in between must not touch the
 * bufferevent: a flush would take and drop a reference and free it twice.
 */
static bool conn_gone(struct conn *c)
{
    bufferevent_event_cb ecb = NULL;
    if (!c->bev)
        return true;
    bufferevent_getcb(c->bev, NULL, NULL, &ecb, NULL);
    return ecb == NULL;
}

static void on_kick_in(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    if (conn_gone(c))
        return;
    c->wait_turn = false;
    if (!(bufferevent_get_enabled(c->bev) & EV_READ)) {
        /* evhttp is busy with the previous request: look again shortly (pipelining only). */
        struct timeval soon = {0, 5000};
        event_add(c->kick_in, &soon);
        return;
    }
    bufferevent_flush(c->bev, EV_READ, BEV_NORMAL);
    /* evhttp reads on its own once it reads again; nudge it only when it is reading now. */
    if ((bufferevent_get_enabled(c->bev) & EV_READ) &&
        evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        bufferevent_data_cb rcb;
        bufferevent_getcb(c->bev, &rcb, NULL, NULL, NULL);
        if (rcb)
            bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
    }
}

static void on_kick_out(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    if (conn_gone(c))
        return;
    bufferevent_flush(c->bev, EV_WRITE, BEV_NORMAL);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    if (conn_gone(c))
        return;
    bufferevent_flush(c->bev, EV_WRITE, BEV_NORMAL);
}

static void on_output_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;
    (void)buf;
    if (info->n_added)
        event_active(c->kick_out, EV_TIMEOUT, 0);
}

/* ------------------------------------------------------------------ */
/* Connections: creation, the cap, the end. */

static void pause_accepting(struct worker *w, int ms)
{
    struct intake *in = w->intake;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (!in->listener || w->draining)
        return;
    if (!in->paused)
        evconnlistener_disable(in->listener);
    in->paused = true;
    event_add(in->ev_resume, &tv);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct intake *in = w->intake;
    (void)fd;
    (void)what;
    if (!in->paused || !in->listener || w->draining)
        return;
    if (atomic_load(&open_connections) >= w->cfg->max_connections) {
        pause_accepting(w, 50); /* look again soon: another loop may close some */
        return;
    }
    in->paused = false;
    evconnlistener_enable(in->listener);
}

static void on_conn_freed(void *arg)
{
    struct conn *c = arg;
    struct worker *w = c->w;

    if (c->arriving) {
        set_arriving(c, false);
        worker_check_drained(w);
    }
    atomic_fetch_sub(&open_connections, 1);
    if (w->intake && w->intake->paused && w->intake->backoff_ms == 0)
        event_active(w->intake->ev_resume, EV_TIMEOUT, 0);
    if (c->lookup_pending) {
        /* on_gate frees it; until then nothing may touch the freed bufferevent */
        conn_drop_events(c);
        c->closed = true;
        return;
    }
    conn_free(c);
}

static struct bufferevent *make_bufferevent(struct event_base *base, void *arg)
{
    struct worker *w = arg;
    struct bufferevent *under = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    struct conn *c = calloc(1, sizeof *c);

    if (!under || !c)
        goto fail;
    c->w = w;
    c->base = base;
    c->kick_in = event_new(base, -1, 0, on_kick_in, c);
    c->kick_out = event_new(base, -1, 0, on_kick_out, c);
    if (!c->kick_in || !c->kick_out)
        goto fail;
    /* What the filter may hold back while a credential is looked up. */
    bufferevent_setwatermark(under, EV_READ, 0, INTAKE_HOLD_MAX);
    c->bev = bufferevent_filter_new(under, filter_in, filter_out, BEV_OPT_CLOSE_ON_FREE,
                                    on_conn_freed, c);
    if (!c->bev)
        goto fail;
    evbuffer_add_cb(bufferevent_get_output(c->bev), on_output_added, c);
    if (atomic_fetch_add(&open_connections, 1) + 1 >= w->cfg->max_connections)
        pause_accepting(w, 50);
    return c->bev;
fail:
    /* evhttp then makes a plain bufferevent: served, but unfiltered (out of memory only). */
    if (c)
        conn_free(c);
    if (under)
        bufferevent_free(under);
    log_error("worker %d: out of memory for a connection", w->id);
    return NULL;
}

static void on_accept_error(struct evconnlistener *listener, void *arg)
{
    struct worker *w = arg;
    struct intake *in = w->intake;
    int err = EVUTIL_SOCKET_ERROR();
    (void)listener;

    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        in->backoff_ms =
            in->backoff_ms ? (in->backoff_ms * 2 > 1000 ? 1000 : in->backoff_ms * 2) : 10;
        log_warn("worker %d: cannot accept (%s, %ld connections open): pausing %d ms", w->id,
                 strerror(err), atomic_load(&open_connections), in->backoff_ms);
        pause_accepting(w, in->backoff_ms);
        return;
    }
    log_warn("worker %d: accept failed: %s", w->id, strerror(err));
}

static void on_resume_reset(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    on_resume(fd, what, arg);
    if (!w->intake->paused)
        w->intake->backoff_ms = 0;
}

int intake_init(struct worker *w)
{
    struct intake *in = calloc(1, sizeof *in);
    if (!in)
        return -1;
    w->intake = in;
    in->ev_resume = evtimer_new(w->base, on_resume_reset, w);
    if (!in->ev_resume)
        return -1;
    evhttp_set_bevcb(w->http, make_bufferevent, w);
    if (w->bound) {
        in->listener = evhttp_bound_socket_get_listener(w->bound);
        evconnlistener_set_error_cb(in->listener, on_accept_error);
    }
    return 0;
}

void intake_stop(struct worker *w)
{
    if (!w->intake)
        return;
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

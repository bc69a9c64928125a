/* SPDX-License-Identifier: Apache-2.0 */
/*
 * server.c - `accord serve`: the process.
 *
 * Start-up: read the configuration, apply migrations (before any request is
 * taken), prepare the artifact store, open one SO_REUSEPORT listening socket
 * per event loop on the same port (the kernel spreads connections across
 * them), start the loops, and print the address.
 *
 * Shutdown (SIGTERM/SIGINT): each loop stops accepting, answers what is in
 * flight (bounded by --shutdown-grace), and exits; blocking work in the
 * offload threads finishes and its completions run; pools close; exit 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include "authgate.h"
#include "authlisten.h"
#include "commands.h"
#include "intake.h"
#include "config.h"
#include "conntrack.h"
#include "keys.h"
#include "live.h"
#include "livelisten.h"
#include "pglisten.h"
#include "log.h"
#include "metrics.h"
#include "migrate.h"
#include "offload.h"
#include "password.h"
#include "oidc_client.h"
#include "outbox.h"
#include "report_cache.h"
#include "pooler.h"
#include "reliability.h"
#include "replica.h"
#include "router.h"
#include "storage.h"
#include "upload_sweep.h"
#include "worker.h"

#define OFFLOAD_THREADS 2
/* outbound HTTP: OpenID providers and, under ACCORD_STORAGE=s3, the object store */
#define OFFLOAD_NET_THREADS 4
#define REPORT_THREADS      1 /* reports at a time per server (their bootstrap uses every core) */

static void worker_exit_loop(struct worker *w)
{
    event_base_loopexit(w->base, NULL);
}

void worker_check_drained(struct worker *w)
{
    /* a connection whose request is still arriving counts as in flight */
    if (w->draining && w->inflight == 0 && conntrack_receiving(w) == 0)
        worker_exit_loop(w);
}

void worker_request_done(struct worker *w)
{
    w->inflight--;
    worker_check_drained(w);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    log_warn("worker %d: %d requests still in flight after the grace period; stopping", w->id,
             w->inflight);
    worker_exit_loop(w);
}

/* Runs on the worker's own loop (activated from the main thread). */
static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct timeval grace = {w->cfg->shutdown_grace, 0};
    (void)fd;
    (void)what;
    live_hub_stop(w->live); /* streams end with `end`; in flight until written */
    if (w->bound) {
        intake_stop(w);
        evhttp_del_accept_socket(w->http, w->bound);
        w->bound = NULL;
    }
    w->draining = true;
    event_add(w->ev_deadline, &grace);
    worker_check_drained(w);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

/* A listening socket with SO_REUSEPORT, so every loop can have its own on one port. */
static int open_listener(const char *host, int port, int *bound_port)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char portstr[16];
    int fd = -1, one = 1, rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof portstr, "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0) {
        log_error("cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        log_error("cannot listen on %s:%d: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    if (bound_port) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
            *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                         : ((struct sockaddr_in *)&ss)->sin_port);
    }
    return fd;
}

/*
 * SO_REUSEPORT lets any process of this user join a port and take a share of
 * its connections, so another server on the port would silently split the
 * traffic. Binding once without it first tells whether anybody listens there.
 */
static int address_in_use(const char *host, int port)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char portstr[16];
    int fd, one = 1, taken = 0;

    if (port == 0)
        return 0;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof portstr, "%d", port);
    if (getaddrinfo(host, portstr, &hints, &ai) != 0)
        return 0; /* open_listener says why */
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        taken = bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno == EADDRINUSE;
        close(fd);
    }
    freeaddrinfo(ai);
    return taken;
}

static int worker_init(struct worker *w, int id, const struct config *cfg, struct offload *off,
                       struct offload *off_net, struct offload *hasher, int listen_fd)
{
    w->id = id;
    w->cfg = cfg;
    w->offload = off;
    w->offload_net = off_net;
    w->hasher = hasher;
    w->base = event_base_new();
    if (!w->base)
        return -1;
    w->http = evhttp_new(w->base);
    w->ev_stop = event_new(w->base, -1, 0, on_stop, w);
    w->ev_deadline = evtimer_new(w->base, on_deadline, w);
    w->pool =
        pgpool_new(w->base, cfg->database_url, (int)cfg->db_pool_size, (int)cfg->db_queue_max, id);
    w->gate = authgate_new(w->base, cfg->database_url, (int)cfg->auth_queue_max, id);
    w->live = live_hub_new(w);
    if (!w->http || !w->ev_stop || !w->ev_deadline || !w->pool || !w->gate || !w->live)
        return -1;
    if (cfg->replica_url[0] &&
        !(w->replica = pgpool_new(w->base, cfg->replica_url, (int)cfg->db_pool_size,
                                  (int)cfg->db_queue_max, id)))
        return -1;
    metrics_add_pool(w->pool);
    metrics_add_worker(w);
    evhttp_set_gencb(w->http, router_dispatch, w);
    /* The router applies each route's own limit; this is the ceiling (from Content-Length). */
    evhttp_set_max_body_size(w->http, cfg->max_body > cfg->max_json_body ? cfg->max_body
                                                                         : cfg->max_json_body);
    evhttp_set_max_headers_size(w->http, 64 * 1024);
    evhttp_set_timeout(w->http, 120);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_OPTIONS);
    w->bound = evhttp_accept_socket_with_handle(w->http, listen_fd);
    if (id == 0 && !(w->sweep = upload_sweep_start(w)))
        return -1;
    if (id == 0 && !(w->reliability_sweep = reliability_sweep_start(w)))
        return -1;
    return w->bound && intake_init(w) == 0 && conntrack_init(w) == 0 ? 0 : -1;
}

static void worker_release(struct worker *w)
{
    /* Completions of offloaded work, posted after the loop stopped. */
    if (w->base)
        event_base_loop(w->base, EVLOOP_NONBLOCK);
    upload_sweep_free(w->sweep);
    reliability_sweep_free(w->reliability_sweep);
    /* Connections closed from here on must not try to end the loop again. */
    w->draining = false;
    /* Fails whatever still waits on the database (answers 503). */
    authgate_free(w->gate);
    pgpool_free(w->replica); /* its queries fall back to w->pool, failed next */
    pgpool_free(w->pool);
    if (w->http)
        evhttp_free(w->http);
    conntrack_release(w);
    live_hub_free(w->live); /* after the connections its streams were on */
    if (w->ev_stop)
        event_free(w->ev_stop);
    if (w->ev_deadline)
        event_free(w->ev_deadline);
    intake_release(w);
    if (w->base)
        event_base_free(w->base);
}

/* Makes the dummy hash (password_verify(NULL, ...)) before the first unknown email needs it. */
static void warm_password_work(void *arg)
{
    (void)arg;
    (void)password_verify(NULL, "", 0);
}

static void warm_password_done(void *arg)
{
    (void)arg;
}

/*
 * Descriptors: the soft limit goes up to the hard one (Debian's default soft
 * limit of 1024 is far below what a server with many idle clients needs);
 * when even that runs out, accepting backs off (intake.h).
 */
static void raise_descriptor_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        log_warn("cannot raise the descriptor limit to %ld: %s", (long)rl.rlim_max,
                 strerror(errno));
}

/* libevent's own warnings (accept failures among them) go through log.c's rate limit. */
static void on_libevent_log(int severity, const char *msg)
{
    log_msg(severity >= EVENT_LOG_ERR    ? LOG_ERROR
            : severity >= EVENT_LOG_WARN ? LOG_WARN
                                         : LOG_DEBUG,
            "libevent: %s", msg);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct event_base *main_base = arg;
    (void)what;
    log_info("signal %d: finishing requests in flight, then exiting", (int)sig);
    event_base_loopexit(main_base, NULL);
}

int cmd_serve(int argc, char **argv)
{
    struct config cfg;
    struct worker *workers = NULL;
    struct offload *off = NULL, *off_net = NULL, *hasher = NULL, *reports = NULL;
    struct event_base *main_base = NULL;
    struct event *ev_term = NULL, *ev_int = NULL;
    struct pglisten *listener = NULL;
    struct livelisten *live_listener = NULL;
    static struct storage storage; /* read-only once open; every loop points at it */
    struct outbox *outbox = NULL;
    struct replica_monitor *replica = NULL;
    char err[512];
    int port = 0, n_started = 0, rc = 1;
    long i;

    rc = config_load(&cfg, argc, argv);
    if (rc != 0)
        return rc < 0 ? 2 : 0;
    rc = 1;
    log_set_level_name(cfg.log_level);
    log_set_json(cfg.log_json);
    signal(SIGPIPE, SIG_IGN);
    if (password_init() < 0) {
        log_error("libsodium cannot initialise");
        return 1;
    }
    event_set_log_callback(on_libevent_log);
    raise_descriptor_limit();
    if (evthread_use_pthreads() < 0) {
        log_error("libevent lacks thread support");
        return 1;
    }
    /* session-bound work (an advisory lock, LISTEN) never goes through a pooler */
    if (cfg.migrate && migrate_apply(config_direct_url(&cfg), false) < 0)
        return 1;
    pgpool_use_prepared(cfg.db_prepared != 0);
    if (!cfg.db_prepared && pooler_apply_settings(&cfg) < 0)
        return 1;
    /*
     * Without a usable signing key the review loop still serves: badges already
     * signed are served, new ones answer 503 until an operator restores the
     * key or rotates (keys_ensure logged why).
     */
    if (keys_ensure(&cfg) < 0)
        log_warn("badges cannot be signed until the key problem above is fixed");
    if (storage_open(&storage, &cfg, err, sizeof err) < 0) {
        log_error("evidence storage: %s", err);
        return 1;
    }
    main_base = event_base_new();
    if (oidc_client_init() < 0) {
        log_error("libcurl could not start");
        goto cleanup;
    }
    off = offload_new(OFFLOAD_THREADS);
    off_net = offload_new(OFFLOAD_NET_THREADS);
    reports = offload_new(REPORT_THREADS);
    /* argon2id is CPU-bound: at most half the cores, so sign-ins never starve the loops. */
    hasher = offload_new(cfg.threads > 2 ? (int)cfg.threads / 2 : 1);
    workers = calloc((size_t)cfg.threads, sizeof *workers);
    if (!main_base || !off || !off_net || !hasher || !reports || !workers)
        goto cleanup;
    /* LISTEN is a session's: never through a transaction pooler (pooler.h) */
    listener = pglisten_new(main_base, config_direct_url(&cfg));
    if (!listener || authlisten_register(listener) < 0 ||
        !(live_listener = livelisten_start(main_base, listener)))
        goto cleanup;
    if (cfg.replica_url[0] && !(replica = replica_monitor_start(main_base, &cfg)))
        goto cleanup;
    port = cfg.listen_port;
    if (address_in_use(cfg.listen_host, port)) {
        log_error("cannot listen on %s:%d: the address is already in use (another server?)",
                  cfg.listen_host, port);
        goto cleanup;
    }
    for (i = 0; i < cfg.threads; i++) {
        /* The first socket may pick the port (port 0); the others join it. */
        int fd = open_listener(cfg.listen_host, port, i == 0 ? &port : NULL);
        workers[i].reports = reports;
        if (fd < 0 || worker_init(&workers[i], (int)i, &cfg, off, off_net, hasher, fd) < 0) {
            if (fd >= 0 && !workers[i].bound)
                close(fd);
            log_error("cannot start event loop %ld", i);
            goto stop;
        }
        workers[i].storage = &storage;
    }
    config_set_default_public_url(&cfg, port);
    /* notifications (issue 14): delivery threads with their own connections */
    if (!(outbox = outbox_start(&cfg)) || outbox_listen(outbox, listener) < 0)
        goto stop;
    /* one LISTEN connection for the auth gate, the live streams and the outbox */
    pglisten_start(listener);
    /* completes on loop 0, which runs its last completions at shutdown (worker_release) */
    if (offload_submit(hasher, workers[0].base, warm_password_work, warm_password_done, NULL) < 0)
        goto stop;
    for (i = 0; i < cfg.threads; i++) {
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
            log_error("cannot start thread %ld", i);
            goto stop;
        }
        n_started++;
    }
    ev_term = evsignal_new(main_base, SIGTERM, on_signal, main_base);
    ev_int = evsignal_new(main_base, SIGINT, on_signal, main_base);
    if (!ev_term || !ev_int || event_add(ev_term, NULL) < 0 || event_add(ev_int, NULL) < 0)
        goto stop;
    printf("accord: listening on http://%s%s%s:%d (%ld event loops, data in %s%s%s)\n",
           strchr(cfg.listen_host, ':') ? "[" : "", cfg.listen_host,
           strchr(cfg.listen_host, ':') ? "]" : "", port, cfg.threads, cfg.data_dir,
           storage.backend == STORAGE_S3 ? ", evidence in S3 bucket " : "",
           storage.backend == STORAGE_S3 ? storage.s3.bucket : "");
    fflush(stdout);
    if (!cfg.metrics_token && strcmp(cfg.listen_host, "127.0.0.1") != 0 &&
        strcmp(cfg.listen_host, "::1") != 0 && strcmp(cfg.listen_host, "localhost") != 0)
        log_warn("/metrics answers anyone who reaches %s:%d; set --metrics-token to require one",
                 cfg.listen_host, port);
    event_base_dispatch(main_base);
    rc = 0;
stop:
    outbox_stop(outbox);
    for (i = 0; i < n_started; i++)
        event_active(workers[i].ev_stop, EV_TIMEOUT, 0);
    for (i = 0; i < n_started; i++)
        pthread_join(workers[i].thread, NULL);
    /* Blocking work finishes before the loops that wait for it go away. */
    offload_free(off);
    off = NULL;
    offload_free(off_net);
    off_net = NULL;
    offload_free(hasher);
    hasher = NULL;
    offload_free(reports);
    reports = NULL;
    for (i = 0; i < cfg.threads; i++)
        worker_release(&workers[i]);
    log_info("stopped");
cleanup:
    replica_monitor_free(replica);
    pglisten_free(listener); /* first: its commands' callbacks reach live_listener */
    livelisten_free(live_listener);
    if (ev_term)
        event_free(ev_term);
    if (ev_int)
        event_free(ev_int);
    offload_free(off);
    offload_free(off_net);
    offload_free(hasher);
    offload_free(reports);
    report_cache_clear();
    oidc_client_cleanup();
    free(workers);
    if (main_base)
        event_base_free(main_base);
    libevent_global_shutdown();
    return rc;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.c - the series behind /metrics (see metrics.h). */
#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "authgate.h"
#include "bodyread.h"
#include "conntrack.h"
#include "histogram.h"
#include "log.h"
#include "live.h"
#include "metrics.h"
#include "outbox.h"
#include "read_grant.h"
#include "replica.h"
#include "router.h"
#include "version.h"

#define MAX_POOLS  64
#define MAX_ROUTES 256

static atomic_long responses[6]; /* by status class: [1..5] */
static atomic_long responses_503;
static struct histogram route_latency[MAX_ROUTES + 1]; /* last: no route matched */
static const struct pgpool *pools[MAX_POOLS];
static int n_pools;
static const struct worker *workers[MAX_POOLS];
static int n_workers;
static time_t started;

void metrics_count_response(int status)
{
    int cls = status / 100;
    if (cls >= 1 && cls <= 5)
        atomic_fetch_add(&responses[cls], 1);
    if (status == 503)
        atomic_fetch_add(&responses_503, 1);
}

void metrics_observe_request(const struct route *route, int status, double seconds)
{
    size_t i = route ? router_route_index(route) : MAX_ROUTES;
    (void)status;
    histogram_observe(&route_latency[i < MAX_ROUTES ? i : MAX_ROUTES], seconds);
}

void metrics_add_pool(const struct pgpool *pool)
{
    if (!started)
        started = time(NULL);
    if (n_pools < MAX_POOLS)
        pools[n_pools++] = pool;
}

void metrics_add_worker(const struct worker *w)
{
    if (n_workers < MAX_POOLS)
        workers[n_workers++] = w;
}

static bool loop_connected(const struct worker *w)
{
    struct pgpool_stats st;
    pgpool_get_stats(w->pool, &st);
    return st.connections_up > 0 && authgate_connected(w->gate);
}

int metrics_loops_unconnected(int *loops)
{
    int down = 0;
    for (int i = 0; i < n_workers; i++)
        down += !loop_connected(workers[i]);
    *loops = n_workers;
    return down;
}

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "OTHER";
    }
}

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_http(struct evbuffer *out)
{
    size_t n_routes = router_route_count();
    char labels[320];

    family(out, "accord_http_responses_total", "counter", "HTTP responses by status class.");
    for (int cls = 1; cls <= 5; cls++)
        evbuffer_add_printf(out, "accord_http_responses_total{class=\"%dxx\"} %ld\n", cls,
                            atomic_load(&responses[cls]));
    family(out, "accord_http_unavailable_total", "counter",
           "503 answers (database down or busy, shutting down).");
    evbuffer_add_printf(out, "accord_http_unavailable_total %ld\n", atomic_load(&responses_503));
    family(out, "accord_http_request_duration_seconds", "histogram",
           "Time from a request's arrival to its answer, by route template (routes "
           "asked at least once).");
    for (size_t i = 0; i < n_routes && i < MAX_ROUTES; i++) {
        const struct route *rt = router_route_at(i);
        if (histogram_count(&route_latency[i]) == 0)
            continue;
        snprintf(labels, sizeof labels, "method=\"%s\",route=\"%s\"", method_name(rt->method),
                 rt->pattern);
        histogram_render(out, "accord_http_request_duration_seconds", labels, &route_latency[i]);
    }
    histogram_render(out, "accord_http_request_duration_seconds", "method=\"\",route=\"unmatched\"",
                     &route_latency[MAX_ROUTES]);
}

/* Connections and request-body memory per loop, against their bounds (conntrack.h). */
static void render_connections(struct evbuffer *out)
{
    long conns[MAX_POOLS], held[MAX_POOLS], peak[MAX_POOLS];
    unsigned long long pieces, bytes;

    for (int i = 0; i < n_workers; i++)
        conntrack_stats(workers[i], &conns[i], &held[i], &peak[i]);
    family(out, "accord_connections", "gauge", "Open client connections, per event loop.");
    for (int i = 0; i < n_workers; i++)
        evbuffer_add_printf(out, "accord_connections{loop=\"%d\"} %ld\n", workers[i]->id, conns[i]);
    family(out, "accord_body_memory_bytes", "gauge",
           "Request body bytes held (arriving or being handled), per event loop.");
    for (int i = 0; i < n_workers; i++)
        evbuffer_add_printf(out, "accord_body_memory_bytes{loop=\"%d\"} %ld\n", workers[i]->id,
                            held[i]);
    family(out, "accord_body_memory_peak_bytes", "gauge",
           "Most request body bytes held at once since start, per event loop.");
    for (int i = 0; i < n_workers; i++)
        evbuffer_add_printf(out, "accord_body_memory_peak_bytes{loop=\"%d\"} %ld\n", workers[i]->id,
                            peak[i]);
    bodyread_stats(&pieces, &bytes);
    family(out, "accord_body_large_reads_total", "counter",
           "Reads of large request bodies made in large pieces (bodyread.h).");
    evbuffer_add_printf(out, "accord_body_large_reads_total %llu\n", pieces);
    family(out, "accord_body_large_read_bytes_total", "counter",
           "Request body bytes read in those large pieces.");
    evbuffer_add_printf(out, "accord_body_large_read_bytes_total %llu\n", bytes);
}

static void render_pools(struct evbuffer *out)
{
    struct pgpool_stats st[MAX_POOLS];
    char labels[32];

    for (int i = 0; i < n_pools; i++)
        pgpool_get_stats(pools[i], &st[i]);
    family(out, "accord_db_pool_size", "gauge", "Database connections configured, per event loop.");
    for (int i = 0; i < n_pools; i++)
        evbuffer_add_printf(out, "accord_db_pool_size{loop=\"%d\"} %d\n", st[i].worker, st[i].size);
    family(out, "accord_db_connections_up", "gauge",
           "Database connections ready for work, per event loop.");
    for (int i = 0; i < n_pools; i++)
        evbuffer_add_printf(out, "accord_db_connections_up{loop=\"%d\"} %d\n", st[i].worker,
                            st[i].connections_up);
    family(out, "accord_db_connections_busy", "gauge",
           "Database connections running a query, per event loop.");
    for (int i = 0; i < n_pools; i++)
        evbuffer_add_printf(out, "accord_db_connections_busy{loop=\"%d\"} %d\n", st[i].worker,
                            st[i].connections_busy);
    family(out, "accord_db_queue_depth", "gauge",
           "Queries waiting for a database connection, per event loop.");
    for (int i = 0; i < n_pools; i++)
        evbuffer_add_printf(out, "accord_db_queue_depth{loop=\"%d\"} %d\n", st[i].worker,
                            st[i].queued);
    family(out, "accord_db_wait_seconds", "histogram",
           "Time a query waited for a free database connection, per event loop.");
    for (int i = 0; i < n_pools; i++) {
        snprintf(labels, sizeof labels, "loop=\"%d\"", st[i].worker);
        histogram_render(out, "accord_db_wait_seconds", labels, st[i].wait);
    }
    family(out, "accord_auth_gate_connected", "gauge",
           "Whether the credential check's own database connection is up, per event loop.");
    for (int i = 0; i < n_workers; i++)
        evbuffer_add_printf(out, "accord_auth_gate_connected{loop=\"%d\"} %d\n", workers[i]->id,
                            authgate_connected(workers[i]->gate) ? 1 : 0);
}

/* /proc/self/stat: user and system CPU ticks, virtual size, resident pages. */
static void render_process(struct evbuffer *out)
{
    char buf[1024];
    unsigned long utime = 0, stime = 0, vsize = 0;
    long rss = 0, ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    struct rlimit rl;
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    const char *p;
    int fds = 0;
    DIR *d;

    if (f)
        fclose(f);
    buf[n] = '\0';
    /* after "(comm)": state is field 3; utime 14, stime 15, vsize 23, rss 24 */
    p = strrchr(buf, ')');
    if (p &&
        sscanf(p + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
               "%*u %lu %ld",
               &utime, &stime, &vsize, &rss) == 4 &&
        ticks > 0) {
        family(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent.");
        evbuffer_add_printf(out, "process_cpu_seconds_total %.2f\n",
                            (double)(utime + stime) / (double)ticks);
        family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        evbuffer_add_printf(out, "process_resident_memory_bytes %ld\n", rss * page);
        family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        evbuffer_add_printf(out, "process_virtual_memory_bytes %lu\n", vsize);
    }
    if ((d = opendir("/proc/self/fd"))) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                fds++;
        closedir(d);
        family(out, "process_open_fds", "gauge", "Open file descriptors.");
        evbuffer_add_printf(out, "process_open_fds %d\n", fds - 1); /* less opendir's own */
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        family(out, "process_max_fds", "gauge", "Limit on open file descriptors.");
        evbuffer_add_printf(out, "process_max_fds %lld\n", (long long)rl.rlim_cur);
    }
    family(out, "process_start_time_seconds", "gauge", "Unix time the process started.");
    evbuffer_add_printf(out, "process_start_time_seconds %ld\n", (long)started);
}

/* A label value from the database: only UUIDs are expected; anything else is skipped. */
static const char *uuid_label(json_t *v)
{
    const char *s = json_string_value(v);
    if (!s || strlen(s) != 36 || strspn(s, "0123456789abcdef-") != 36)
        return NULL;
    return s;
}

static void render_product(struct evbuffer *out, const char *product)
{
    json_t *doc = product ? json_loads(product, 0, NULL) : NULL;
    json_t *creds = json_object_get(doc, "credentials"), *c;
    size_t i;

    family(out, "accord_product_metrics_up", "gauge",
           "1 when the product gauges below could be read from the database at this scrape.");
    evbuffer_add_printf(out, "accord_product_metrics_up %d\n", json_is_array(creds) ? 1 : 0);
    if (!json_is_array(creds))
        goto cleanup;
    family(out, "accord_queue_submissions", "gauge",
           "Submissions waiting for a claim, per credential and review stage.");
    json_array_foreach(creds, i, c)
    {
        const char *id = uuid_label(json_object_get(c, "credential_id"));
        static const char *const stages[] = {"first", "second", "adjudication"};
        for (size_t k = 0; id && k < 3; k++)
            evbuffer_add_printf(
                out, "accord_queue_submissions{credential_id=\"%s\",stage=\"%s\"} %lld\n", id,
                stages[k],
                (long long)json_integer_value(
                    json_object_get(json_object_get(c, "waiting"), stages[k])));
    }
    family(out, "accord_queue_oldest_age_seconds", "gauge",
           "Age of the oldest submission waiting for a claim, per credential (0: none waits).");
    json_array_foreach(creds, i, c)
    {
        const char *id = uuid_label(json_object_get(c, "credential_id"));
        if (id)
            evbuffer_add_printf(out, "accord_queue_oldest_age_seconds{credential_id=\"%s\"} %.3f\n",
                                id, json_number_value(json_object_get(c, "oldest_age_seconds")));
    }
    family(out, "accord_adjudications_open", "gauge",
           "Submissions in adjudication (claimed or not), per credential.");
    json_array_foreach(creds, i, c)
    {
        const char *id = uuid_label(json_object_get(c, "credential_id"));
        if (id)
            evbuffer_add_printf(
                out, "accord_adjudications_open{credential_id=\"%s\"} %lld\n", id,
                (long long)json_integer_value(json_object_get(c, "adjudications_open")));
    }
    family(out, "accord_peer_review_paused", "gauge",
           "1 when peer review of the credential is paused for low reliability.");
    json_array_foreach(creds, i, c)
    {
        const char *id = uuid_label(json_object_get(c, "credential_id"));
        if (id)
            evbuffer_add_printf(out, "accord_peer_review_paused{credential_id=\"%s\"} %d\n", id,
                                json_is_true(json_object_get(c, "peer_paused")) ? 1 : 0);
    }
cleanup:
    json_decref(doc);
}

void metrics_render(struct evbuffer *out, const char *product)
{
    int pq = PQlibVersion();

    family(out, "accord_build_info", "gauge", "The running build: version and library versions.");
    evbuffer_add_printf(out,
                        "accord_build_info{version=\"%s\",libevent=\"%s\",libpq=\"%d.%d\","
                        "jansson=\"%s\"} 1\n",
                        ACCORD_VERSION, event_get_version(), pq / 10000, pq % 10000,
                        jansson_version_str());
    family(out, "accord_start_time_seconds", "gauge", "Unix time the server started.");
    evbuffer_add_printf(out, "accord_start_time_seconds %ld\n", (long)started);
    render_http(out);
    render_pools(out);
    render_connections(out);
    family(out, "accord_log_suppressed_total", "counter",
           "Warning and error lines not written because the same text repeated too often.");
    evbuffer_add_printf(out, "accord_log_suppressed_total %ld\n", log_suppressed_total());
    render_process(out);
    authgate_render_metrics(out);
    read_grant_render_metrics(out);
    live_render_metrics(out);
    outbox_render_metrics(out, product);
    replica_render_metrics(out);
    render_product(out, product);
}

/* metrics.c - counters behind /metrics. */
#include <stdatomic.h>
#include <time.h>

#include "authgate.h"
#include "metrics.h"

#define MAX_POOLS 64

static atomic_long responses[6]; /* by status class: [1..5] */
static atomic_long responses_503;
static const struct pgpool *pools[MAX_POOLS];
static int n_pools;
static time_t started;

void metrics_count_response(int status)
{
    int cls = status / 100;
    if (cls >= 1 && cls <= 5)
        atomic_fetch_add(&responses[cls], 1);
    if (status == 503)
        atomic_fetch_add(&responses_503, 1);
}

void metrics_add_pool(const struct pgpool *pool)
{
    if (!started)
        started = time(NULL);
    if (n_pools < MAX_POOLS)
        pools[n_pools++] = pool;
}

void metrics_render(struct evbuffer *out)
{
    struct pgpool_stats st, sum = {0};

    for (int i = 0; i < n_pools; i++) {
        pgpool_get_stats(pools[i], &st);
        sum.connections_up += st.connections_up;
        sum.connections_busy += st.connections_busy;
        sum.queued += st.queued;
    }
    evbuffer_add_printf(out, "# HELP accord_http_responses_total HTTP responses by status class.\n"
                             "# TYPE accord_http_responses_total counter\n");
    for (int cls = 1; cls <= 5; cls++)
        evbuffer_add_printf(out, "accord_http_responses_total{class=\"%dxx\"} %ld\n", cls,
                            atomic_load(&responses[cls]));
    evbuffer_add_printf(
        out,
        "# HELP accord_http_unavailable_total 503 answers (database down or busy).\n"
        "# TYPE accord_http_unavailable_total counter\n"
        "accord_http_unavailable_total %ld\n"
        "# HELP accord_db_connections_up Database connections ready for work.\n"
        "# TYPE accord_db_connections_up gauge\n"
        "accord_db_connections_up %d\n"
        "# HELP accord_db_connections_busy Database connections running a query.\n"
        "# TYPE accord_db_connections_busy gauge\n"
        "accord_db_connections_busy %d\n"
        "# HELP accord_db_queue_depth Queries waiting for a connection.\n"
        "# TYPE accord_db_queue_depth gauge\n"
        "accord_db_queue_depth %d\n"
        "# HELP accord_start_time_seconds Unix time the server started.\n"
        "# TYPE accord_start_time_seconds gauge\n"
        "accord_start_time_seconds %ld\n",
        atomic_load(&responses_503), sum.connections_up, sum.connections_busy, sum.queued,
        (long)started);
    authgate_render_metrics(out);
}

/* handlers_ops.c - /healthz, /readyz, /metrics. */
#include <event2/buffer.h>

#include "metrics.h"
#include "router.h"

/* Both a status for probes and the API's error shape for people. */
#define NOT_READY                                                                                  \
    "{\"status\":\"unavailable\",\"error\":{\"code\":\"unavailable\",\"message\":"                 \
    "\"the database is unreachable\"}}"

void handle_healthz(struct request *r)
{
    reply_json_text(r, 200, "{\"status\":\"ok\"}");
}

static void on_ping(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    if (res->status == DB_OK)
        reply_json_text(r, 200, "{\"status\":\"ready\"}");
    else
        reply_json_text(r, 503, NOT_READY);
}

/* Ready means a real round trip to the database works now, not that one worked once. */
void handle_readyz(struct request *r)
{
    if (pgpool_query(r->w->pool, STMT_PING, r->params, on_ping, r) != DB_OK)
        reply_json_text(r, 503, NOT_READY);
}

void handle_metrics(struct request *r)
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    metrics_render(buf);
    reply_buffer(r, 200, "text/plain; version=0.0.4", buf);
    evbuffer_free(buf);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* handlers_ops.c - /healthz, /readyz, /metrics, /openapi.json. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "auth.h"
#include "metrics.h"
#include "router.h"
#include "store.h"

/* The OpenAPI document compiled into the binary (build/gen/openapi_json.c). */
extern const char openapi_json[];
extern const unsigned long openapi_json_len;

void handle_healthz(struct request *r)
{
    reply_json_text(r, 200, "{\"status\":\"ok\"}");
}

/* Both a status for probes and the API's error shape (with the request id) for people. */
static void reply_unready(struct request *r, const char *code, const char *message)
{
    json_t *body = request_error_body(r, code, message);
    if (body)
        json_object_set_new(body, "status", json_string("unavailable"));
    reply_json(r, 503, body);
}

static void reply_not_ready(struct request *r)
{
    reply_unready(r, "unavailable", "the database is unreachable");
}

static void on_ping(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    int loops, down;
    char text[128];

    if (res->status != DB_OK) {
        reply_not_ready(r);
        return;
    }
    /* this loop reached the database; after an outage the others reconnect on their own clocks */
    down = metrics_loops_unconnected(&loops);
    if (down > 0) {
        snprintf(text, sizeof text, "%d of %d event loops are still reconnecting to the database",
                 down, loops);
        reply_unready(r, "reconnecting", text);
        return;
    }
    reply_json_text(r, 200, "{\"status\":\"ready\"}");
}

/*
 * Ready means a real round trip to the database works now, not that one worked
 * once; that every event loop (its pool and its auth gate) is connected, so a
 * balancer sends nothing a loop would answer 503; and that the artifact disk
 * has more than --storage-reserve free (so a balancer moves uploads elsewhere
 * before the disk is full).
 */
void handle_readyz(struct request *r)
{
    uint64_t free_bytes;
    if (store_free_bytes(r->w->cfg->data_dir, &free_bytes) == 0 &&
        free_bytes < (uint64_t)r->w->cfg->storage_reserve) {
        char text[128];
        snprintf(text, sizeof text,
                 "%llu bytes free on the artifact disk, under the reserve of %ld",
                 (unsigned long long)free_bytes, r->w->cfg->storage_reserve);
        reply_unready(r, "storage_low", text);
        return;
    }
    if (pgpool_query(r->w->pool, STMT_PING, r->params, on_ping, r) != DB_OK)
        reply_not_ready(r);
}

static void reply_metrics(struct request *r, const char *product)
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    metrics_render(buf, product);
    reply_buffer(r, 200, "text/plain; version=0.0.4; charset=utf-8", buf);
    evbuffer_free(buf);
}

static void on_product_metrics(const struct db_result *res, void *arg)
{
    reply_metrics(arg, res->status == DB_OK ? res->value : NULL);
}

/* With --metrics-token, "Authorization: Bearer <that token>" (compared in constant time). */
static bool metrics_authorized(struct request *r)
{
    const char *want = r->w->cfg->metrics_token;
    const char *got = evhttp_find_header(evhttp_request_get_input_headers(r->req), "Authorization");
    char want_hash[AUTH_HASH_LEN + 1], got_hash[AUTH_HASH_LEN + 1];

    if (!want)
        return true;
    if (!got || strncmp(got, "Bearer ", 7) != 0 ||
        auth_sha256_hex(got + 7, strlen(got + 7), got_hash) < 0 ||
        auth_sha256_hex(want, strlen(want), want_hash) < 0)
        return false;
    return CRYPTO_memcmp(want_hash, got_hash, AUTH_HASH_LEN) == 0;
}

/*
 * Process and pool series are read in memory; the product gauges come from
 * one read-only query. When the database cannot answer, the scrape still
 * succeeds without them (accord_product_metrics_up 0): an outage is exactly
 * when the other series matter.
 */
void handle_metrics(struct request *r)
{
    if (!metrics_authorized(r)) {
        reply_error(r, 401, "unauthorized",
                    "/metrics wants 'Authorization: Bearer <the metrics token>' "
                    "(--metrics-token)");
        return;
    }
    if (pgpool_query(r->w->pool, STMT_OPS_METRICS, r->params, on_product_metrics, r) != DB_OK)
        reply_metrics(r, NULL);
}

void handle_openapi(struct request *r)
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    evbuffer_add_reference(buf, openapi_json, openapi_json_len, NULL, NULL);
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Cache-Control",
                      "public, max-age=300");
    reply_buffer(r, 200, "application/json", buf);
    evbuffer_free(buf);
}

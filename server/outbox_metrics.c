/* SPDX-License-Identifier: Apache-2.0 */
/*
 * outbox_metrics.c - the outbox's series on /metrics (outbox.h): this
 * process's delivery counters, and the backlog gauges the scrape's database
 * query read (outbox_metrics(), db/migrations/022_notify2.sql).
 */
#include <stdatomic.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "outbox.h"

static atomic_long delivered[2], failed[2]; /* [webhook, email] */

static const char *const channels[2] = {"webhook", "email"};

void outbox_count(enum outbox_channel channel, bool ok, long n)
{
    atomic_fetch_add(ok ? &delivered[channel] : &failed[channel], n);
}

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{channel="..."} N for each channel, from counts {"webhook": N, "email": N} */
static void per_channel(struct evbuffer *out, const char *name, json_t *counts)
{
    for (int c = 0; c < 2; c++)
        evbuffer_add_printf(out, "%s{channel=\"%s\"} %lld\n", name, channels[c],
                            (long long)json_integer_value(json_object_get(counts, channels[c])));
}

void outbox_render_metrics(struct evbuffer *out, const char *product)
{
    json_t *doc = product ? json_loads(product, 0, NULL) : NULL;
    json_t *ob = json_object_get(doc, "outbox");

    family(out, "accord_outbox_delivered_total", "counter",
           "Deliveries this process made: webhook messages answered 2xx, mails accepted "
           "(each event in a digest counts).");
    for (int c = 0; c < 2; c++)
        evbuffer_add_printf(out, "accord_outbox_delivered_total{channel=\"%s\"} %ld\n", channels[c],
                            atomic_load(&delivered[c]));
    family(out, "accord_outbox_failed_attempts_total", "counter",
           "Delivery attempts this process made that failed (retried later, or dead).");
    for (int c = 0; c < 2; c++)
        evbuffer_add_printf(out, "accord_outbox_failed_attempts_total{channel=\"%s\"} %ld\n",
                            channels[c], atomic_load(&failed[c]));
    if (!json_is_object(ob))
        goto cleanup; /* the database did not answer this scrape (accord_product_metrics_up 0) */
    family(out, "accord_outbox_pending", "gauge",
           "Deliveries not yet made: due, backing off after a failure, or mail waiting for "
           "its digest.");
    per_channel(out, "accord_outbox_pending", json_object_get(ob, "pending"));
    family(out, "accord_outbox_dead", "gauge",
           "Deliveries that failed their last attempt, waiting for a lead or admin to retry "
           "them (GET /v1/outbox/dead).");
    per_channel(out, "accord_outbox_dead", json_object_get(ob, "dead"));
    family(out, "accord_outbox_oldest_pending_age_seconds", "gauge",
           "Age of the oldest pending delivery (0: none).");
    evbuffer_add_printf(out, "accord_outbox_oldest_pending_age_seconds %.3f\n",
                        json_number_value(json_object_get(ob, "oldest_pending_age_seconds")));
cleanup:
    json_decref(doc);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * webhook_api.c - POST /v1/webhooks: the parts of registering an endpoint
 * that belong in C. The URL is parsed by libcurl's URL parser (the one that
 * will deliver to it), must be https in production mode, and may not name a
 * loopback, private or link-local address literally (the delivery checks the
 * address actually connected as well: webhook.h). The secret is the admin's
 * ("whsec_" + base64 of 24 to 64 bytes) or made here from the CSPRNG. The
 * rest (events, limits, audit) is api_webhook_create() in SQL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "router.h"
#include "webhook.h"

struct webhook_create {
    char url[2100];
    char secret[WEBHOOK_SECRET_MAX];
};

static void webhook_create_free(void *arg)
{
    OPENSSL_cleanse(arg, sizeof(struct webhook_create));
    free(arg);
}

static void on_created(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Cache-Control", "no-store");
    reply_json_text(r, 201, res->value);
}

void handle_webhook_create(struct request *r)
{
    struct webhook_create *st = calloc(1, sizeof *st);
    json_t *doc = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *url = json_object_get(doc, "url"), *secret = json_object_get(doc, "secret");
    char why[200];

    if (!st) {
        json_decref(doc);
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    r->state = st;
    r->state_free = webhook_create_free;
    if (!json_is_string(url)) {
        reply_error(r, 400, "invalid_url", "url is required: the https:// address to deliver to");
        goto cleanup;
    }
    if (webhook_check_url(json_string_value(url), r->w->cfg->production,
                          r->w->cfg->webhook_allow_private != 0, st->url, sizeof st->url, why,
                          sizeof why) < 0) {
        reply_error(r, 400, "invalid_url", "%s", why);
        goto cleanup;
    }
    if (secret && !json_is_null(secret)) {
        if (!json_is_string(secret) || !webhook_secret_valid(json_string_value(secret))) {
            reply_error(r, 400, "invalid_secret",
                        "secret must be \"whsec_\" followed by the base64 of 24 to 64 random "
                        "bytes (or leave it out and one is made)");
            goto cleanup;
        }
        snprintf(st->secret, sizeof st->secret, "%s", json_string_value(secret));
    } else if (webhook_new_secret(st->secret) < 0) {
        reply_error(r, 500, "internal", "could not make a secret");
        goto cleanup;
    }
    r->params[0] = r->token_hash;
    r->params[1] = r->body;
    r->params[2] = st->url;
    r->params[3] = st->secret;
    request_query(r, STMT_WEBHOOK_CREATE, on_created);
cleanup:
    json_decref(doc);
}

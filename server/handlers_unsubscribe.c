/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handlers_unsubscribe.c - GET /v1/unsubscribe?token=, the "stop these
 * emails" link in every notification mail (RFC 8058 keeps POST for the
 * one-click unsubscribe of mail clients, and a GET must change nothing:
 * mail scanners fetch links).
 *
 * A person who clicks it in their mail is a browser navigating: they are
 * sent to the web app's page (/unsubscribe#token), which says what the link
 * does and stops the mails with one button (that POST). The token travels in
 * the fragment, which browsers keep out of logs and Referer. Scripts (any
 * other Accept) get the JSON answer as before.
 */
#include <string.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include "request.h"
#include "router.h"

#define UNSUBSCRIBE_TOKEN_LEN 64

void handle_unsubscribe_get(struct request *r)
{
    json_t *query = r->query ? json_loads(r->query, 0, NULL) : NULL;
    const char *token = json_string_value(json_object_get(query, "token"));
    char location[32 + UNSUBSCRIBE_TOKEN_LEN];

    /* an ill-formed token goes on to the SQL, which answers 404 not_found */
    if (request_wants_html(r) && token && strlen(token) == UNSUBSCRIBE_TOKEN_LEN &&
        strspn(token, "0123456789abcdef") == UNSUBSCRIBE_TOKEN_LEN) {
        struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
        snprintf(location, sizeof location, "/unsubscribe#%s", token);
        json_decref(query);
        evhttp_add_header(out, "Location", location);
        evhttp_add_header(out, "Cache-Control", "no-store");
        evhttp_add_header(out, "Referrer-Policy", "no-referrer");
        reply_empty(r, 303);
        return;
    }
    json_decref(query);
    router_call(r, STMT_UNSUBSCRIBE_GET, 200);
}

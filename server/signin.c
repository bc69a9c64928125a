/* SPDX-License-Identifier: Apache-2.0 */
/*
 * signin.c - the end of a browser sign-in that leaves the API for a page
 * (OpenID Connect): session_start(), then 303 to where the person was going.
 */
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "signin.h"

static void on_session(struct request *r, const struct db_result *res, const char *csrf_token,
                       void *arg)
{
    char *return_to = arg;

    (void)csrf_token; /* the page reads it from GET /v1/me */
    if (res->status != DB_OK) {
        free(return_to);
        reply_db_failure(r, res);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Location", return_to);
    free(return_to);
    reply_empty(r, 303);
}

void signin_session_redirect(struct request *r, const char *user_id, const char *return_to,
                             const char *method)
{
    char *copy = strdup(return_to);
    if (!copy) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    session_start(r, user_id, method, on_session, copy);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * router.h - the route table and the request entry point.
 *
 * Most API routes are "generic": the path's ids, the token hash, the JSON body
 * and perhaps the lease become the bound parameters of one statement, and the
 * function's JSON is the answer. Routes with real work in C (rubric validation,
 * artifact bytes, token generation, operations endpoints) name a handler.
 */
#ifndef ACCORD_ROUTER_H
#define ACCORD_ROUTER_H

#include <event2/http.h>

#include "config.h"
#include "request.h"
#include "statements.h"

enum route_flags {
    ROUTE_PUBLIC = 1 << 0,        /* no token; the statement takes none */
    ROUTE_BODY = 1 << 1,          /* a JSON object body is required */
    ROUTE_BODY_OPTIONAL = 1 << 2, /* a JSON object body, or none (then {}) */
    ROUTE_LEASE = 1 << 3,         /* append the configured lease seconds */
    ROUTE_RAW_BODY = 1 << 4,      /* the handler reads the body itself */
    ROUTE_QUERY = 1 << 5,         /* the query string, as a JSON object of strings */
    ROUTE_BASE_URL = 1 << 6,      /* the public base URL (after the token); 503 when unset */
    ROUTE_UPLOAD = 1 << 7,        /* media bytes: the body may be up to --max-body */
    ROUTE_NAVIGATION = 1 << 8,    /* a browser navigates here (single sign-on): a refusal
                                     to a browser is a 303 back to the web app's sign-in
                                     page naming the error code, not a JSON page */
};

/* The body a route without a body still tolerates (a client's stray "{}"). */
#define ROUTE_NO_BODY_LIMIT 4096

typedef void (*route_handler)(struct request *r);

struct route {
    enum evhttp_cmd_type method;
    const char *pattern;   /* "/v1/reviews/{id}/scores": {id} matches a UUID */
    route_handler handler; /* NULL: generic statement call */
    enum stmt_id stmt;
    unsigned flags;
    int ok_status;
};

/* The route table, for /metrics: routes are numbered 0 .. count-1. */
size_t router_route_count(void);
const struct route *router_route_at(size_t i);
size_t router_route_index(const struct route *route);

/* The evhttp generic callback; arg is the struct worker. */
void router_dispatch(struct evhttp_request *req, void *arg);

/*
 * The largest body the route for METHOD (its name, e.g. "POST") and PATH
 * accepts, and whether it is public: --max-body for uploads, --max-json-body
 * for JSON, ROUTE_NO_BODY_LIMIT otherwise (unknown routes too).
 */
long router_body_limit(const struct config *cfg, const char *method, const char *path,
                       bool *is_public);

/* Runs r->route->stmt with r->params; answers with its JSON (NULL -> 204). */
void router_call(struct request *r, enum stmt_id stmt, int ok_status);

/* Handlers defined elsewhere. */
void handle_healthz(struct request *r);
void handle_readyz(struct request *r);
void handle_metrics(struct request *r);
void handle_openapi(struct request *r);
void handle_token_create(struct request *r);
void handle_me(struct request *r);
void handle_sign_in(struct request *r);
void handle_sign_out(struct request *r);
void handle_my_token_create(struct request *r);
void handle_invitation_create(struct request *r);
void handle_invitation_open(struct request *r);
void handle_invitation_accept(struct request *r);
void handle_me(struct request *r);
void handle_sign_in(struct request *r);
void handle_sign_out(struct request *r);
void handle_my_token_create(struct request *r);
void handle_invitation_create(struct request *r);
void handle_invitation_open(struct request *r);
void handle_invitation_accept(struct request *r);
void handle_rubric_create(struct request *r);
void handle_artifact_create(struct request *r);
void handle_artifact_content(struct request *r);
void handle_review_score(struct request *r);
void handle_report_agreement(struct request *r);
void handle_report_ratings_csv(struct request *r);
void handle_report_assessors(struct request *r); /* replica_reports.c */
void handle_report_routing(struct request *r);
void handle_upload_options(struct request *r);
void handle_upload_create(struct request *r);
void handle_upload_get(struct request *r);
void handle_upload_patch(struct request *r);
void handle_oidc_start(struct request *r);
void handle_oidc_callback(struct request *r);
void handle_award_public(struct request *r);
void handle_my_award_jwt(struct request *r);
void handle_my_award_json(struct request *r);
void handle_issuer(struct request *r);
void handle_achievement(struct request *r);
void handle_upload_delete(struct request *r);
void handle_events(struct request *r);
/* object storage (issue 13): s3_uploads.c */
void handle_object_upload_create(struct request *r);
void handle_object_upload_part_urls(struct request *r);
void handle_object_upload_complete(struct request *r);
void handle_object_upload_delete(struct request *r);
void handle_webhook_create(struct request *r);              /* webhook_api.c */
void handle_submission_evidence_checked(struct request *r); /* storage_submit.c */
void handle_unsubscribe_get(struct request *r);             /* handlers_unsubscribe.c */

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * router.c - matches a request to a route, checks what can be checked
 * without the database (token present, UUIDs well formed, body is a JSON
 * object), and runs the route.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "authgate.h"
#include "conntrack.h"
#include "log.h"
#include "router.h"
#include "session.h"
#include "static.h"

static const struct route routes[] = {
    {EVHTTP_REQ_GET, "/healthz", handle_healthz, 0, ROUTE_PUBLIC, 200},
    {EVHTTP_REQ_GET, "/readyz", handle_readyz, 0, ROUTE_PUBLIC, 200},
    {EVHTTP_REQ_GET, "/metrics", handle_metrics, 0, ROUTE_PUBLIC, 200},
    {EVHTTP_REQ_GET, "/openapi.json", handle_openapi, 0, ROUTE_PUBLIC, 200},
    {EVHTTP_REQ_GET, "/v1/me", handle_me, STMT_ME, 0, 200},
    {EVHTTP_REQ_POST, "/v1/users", NULL, STMT_USER_CREATE, ROUTE_BODY, 201},
    /* people (issue 10) */
    {EVHTTP_REQ_POST, "/v1/sessions", handle_sign_in, STMT_SIGN_IN_BEGIN, ROUTE_PUBLIC | ROUTE_BODY,
     201},
    {EVHTTP_REQ_DELETE, "/v1/sessions/current", handle_sign_out, STMT_SESSION_END, 0, 204},
    {EVHTTP_REQ_GET, "/v1/me/tokens", NULL, STMT_MY_TOKENS, 0, 200},
    {EVHTTP_REQ_POST, "/v1/me/tokens", handle_my_token_create, STMT_MY_TOKEN_CREATE, ROUTE_BODY,
     201},
    {EVHTTP_REQ_DELETE, "/v1/me/tokens/{id}", NULL, STMT_MY_TOKEN_REVOKE, 0, 204},
    {EVHTTP_REQ_DELETE, "/v1/tokens/{id}", NULL, STMT_TOKEN_REVOKE, 0, 204},
    {EVHTTP_REQ_GET, "/v1/users", NULL, STMT_USER_LIST, ROUTE_QUERY, 200},
    {EVHTTP_REQ_GET, "/v1/users/{id}", NULL, STMT_USER_GET, 0, 200},
    {EVHTTP_REQ_PATCH, "/v1/users/{id}", NULL, STMT_USER_PATCH, ROUTE_BODY, 200},
    {EVHTTP_REQ_POST, "/v1/invitations", handle_invitation_create, STMT_INVITATION_CREATE,
     ROUTE_BODY, 201},
    {EVHTTP_REQ_GET, "/v1/invitations", NULL, STMT_INVITATION_LIST, ROUTE_QUERY, 200},
    {EVHTTP_REQ_DELETE, "/v1/invitations/{id}", NULL, STMT_INVITATION_REVOKE, 0, 204},
    {EVHTTP_REQ_POST, "/v1/invitations/open", handle_invitation_open, STMT_INVITATION_OPEN,
     ROUTE_PUBLIC | ROUTE_BODY, 200},
    {EVHTTP_REQ_POST, "/v1/invitations/accept", handle_invitation_accept, STMT_INVITATION_ACCEPT,
     ROUTE_PUBLIC | ROUTE_BODY, 201},
    {EVHTTP_REQ_POST, "/v1/users/{id}/tokens", handle_token_create, STMT_TOKEN_CREATE,
     ROUTE_BODY_OPTIONAL, 201},
    {EVHTTP_REQ_POST, "/v1/rubrics", handle_rubric_create, STMT_RUBRIC_CREATE, ROUTE_BODY, 201},
    {EVHTTP_REQ_GET, "/v1/rubrics/{id}", NULL, STMT_RUBRIC_GET, 0, 200},
    {EVHTTP_REQ_POST, "/v1/credentials", NULL, STMT_CREDENTIAL_CREATE, ROUTE_BODY, 201},
    {EVHTTP_REQ_GET, "/v1/credentials", NULL, STMT_CREDENTIAL_LIST, 0, 200},
    {EVHTTP_REQ_GET, "/v1/credentials/{id}", NULL, STMT_CREDENTIAL_GET, 0, 200},
    {EVHTTP_REQ_POST, "/v1/credentials/{id}/assessors", NULL, STMT_ASSESSOR_GRANT, ROUTE_BODY, 201},
    {EVHTTP_REQ_POST, "/v1/artifacts", handle_artifact_create, 0, ROUTE_RAW_BODY | ROUTE_UPLOAD,
     201},
    {EVHTTP_REQ_GET, "/v1/artifacts/{id}", NULL, STMT_ARTIFACT_GET, 0, 200},
    {EVHTTP_REQ_GET, "/v1/artifacts/{id}/content", handle_artifact_content, STMT_ARTIFACT_CONTENT,
     0, 200},
    {EVHTTP_REQ_OPTIONS, "/v1/uploads", handle_upload_options, 0, ROUTE_PUBLIC, 204},
    {EVHTTP_REQ_POST, "/v1/uploads", handle_upload_create, STMT_UPLOAD_CREATE, ROUTE_RAW_BODY, 201},
    {EVHTTP_REQ_OPTIONS, "/v1/uploads/{id}", handle_upload_options, 0, ROUTE_PUBLIC, 204},
    {EVHTTP_REQ_GET, "/v1/uploads/{id}", handle_upload_get, STMT_UPLOAD_GET, 0, 200},
    {EVHTTP_REQ_PATCH, "/v1/uploads/{id}", handle_upload_patch, STMT_UPLOAD_BEGIN,
     ROUTE_RAW_BODY | ROUTE_UPLOAD, 204},
    {EVHTTP_REQ_DELETE, "/v1/uploads/{id}", handle_upload_delete, STMT_UPLOAD_DELETE, 0, 204},
    /* object storage (issue 13): presigned multipart uploads, s3_uploads.c */
    {EVHTTP_REQ_POST, "/v1/object-uploads", handle_object_upload_create, STMT_OBJECT_UPLOAD_CREATE,
     ROUTE_BODY, 201},
    {EVHTTP_REQ_GET, "/v1/object-uploads/{id}", NULL, STMT_OBJECT_UPLOAD_GET, 0, 200},
    {EVHTTP_REQ_POST, "/v1/object-uploads/{id}/part-urls", handle_object_upload_part_urls,
     STMT_OBJECT_UPLOAD_PART_URLS, ROUTE_BODY, 200},
    {EVHTTP_REQ_POST, "/v1/object-uploads/{id}/parts", NULL, STMT_OBJECT_UPLOAD_PART_DONE,
     ROUTE_BODY, 200},
    {EVHTTP_REQ_POST, "/v1/object-uploads/{id}/complete", handle_object_upload_complete,
     STMT_OBJECT_UPLOAD_COMPLETE_BEGIN, 0, 201},
    {EVHTTP_REQ_DELETE, "/v1/object-uploads/{id}", handle_object_upload_delete,
     STMT_OBJECT_UPLOAD_DELETE, 0, 204},
    /* (S3: the evidence is checked in the store first, storage_submit.c) */
    {EVHTTP_REQ_POST, "/v1/submissions", handle_submission_evidence_checked, STMT_SUBMISSION_CREATE,
     ROUTE_BODY, 201},
    {EVHTTP_REQ_GET, "/v1/submissions", NULL, STMT_SUBMISSION_LIST, 0, 200},
    {EVHTTP_REQ_GET, "/v1/submissions/{id}", NULL, STMT_SUBMISSION_GET, 0, 200},
    {EVHTTP_REQ_POST, "/v1/submissions/{id}/resubmit", handle_submission_evidence_checked,
     STMT_SUBMISSION_RESUBMIT, ROUTE_BODY, 201},
    {EVHTTP_REQ_POST, "/v1/reviews/claim", NULL, STMT_REVIEW_CLAIM,
     ROUTE_BODY_OPTIONAL | ROUTE_LEASE, 200},
    {EVHTTP_REQ_GET, "/v1/reviews/{id}", NULL, STMT_REVIEW_GET, 0, 200},
    {EVHTTP_REQ_POST, "/v1/reviews/{id}/release", NULL, STMT_REVIEW_RELEASE, 0, 200},
    {EVHTTP_REQ_POST, "/v1/reviews/{id}/scores", handle_review_score, STMT_REVIEW_SCORE, ROUTE_BODY,
     200},
    {EVHTTP_REQ_GET, "/v1/awards/{id}", handle_award_public, STMT_BADGE_PUBLIC, ROUTE_PUBLIC, 200},
    /* badges (issue 12) */
    {EVHTTP_REQ_POST, "/v1/awards/{id}/revoke", NULL, STMT_BADGE_REVOKE, ROUTE_BODY, 200},
    {EVHTTP_REQ_GET, "/.well-known/jwks.json", NULL, STMT_JWKS, ROUTE_PUBLIC | ROUTE_BASE_URL, 200},
    {EVHTTP_REQ_GET, "/v1/keys/{id}", NULL, STMT_JWK_GET, ROUTE_PUBLIC | ROUTE_BASE_URL, 200},
    {EVHTTP_REQ_GET, "/v1/issuer", handle_issuer, 0, ROUTE_PUBLIC, 200},
    {EVHTTP_REQ_GET, "/v1/achievements/{id}", handle_achievement, STMT_ACHIEVEMENT_PUBLIC,
     ROUTE_PUBLIC, 200},
    {EVHTTP_REQ_GET, "/v1/issuer/revocations", NULL, STMT_REVOCATION_LIST,
     ROUTE_PUBLIC | ROUTE_BASE_URL, 200},
    {EVHTTP_REQ_GET, "/v1/earners/{id}/badges", NULL, STMT_EARNER_BADGES,
     ROUTE_PUBLIC | ROUTE_BASE_URL, 200},
    {EVHTTP_REQ_GET, "/v1/me/awards", NULL, STMT_MY_AWARDS, ROUTE_BASE_URL, 200},
    {EVHTTP_REQ_PUT, "/v1/me/awards/{id}", NULL, STMT_MY_AWARD_UPDATE, ROUTE_BASE_URL | ROUTE_BODY,
     200},
    {EVHTTP_REQ_GET, "/v1/me/awards/{id}/badge.jwt", handle_my_award_jwt, STMT_MY_BADGE, 0, 200},
    {EVHTTP_REQ_GET, "/v1/me/awards/{id}/badge.json", handle_my_award_json, STMT_MY_BADGE, 0, 200},
    {EVHTTP_REQ_PUT, "/v1/credentials/{id}/badge", NULL, STMT_CREDENTIAL_BADGE_PUT, ROUTE_BODY,
     200},
    {EVHTTP_REQ_POST, "/v1/stacks", NULL, STMT_STACK_CREATE, ROUTE_BODY, 201},
    {EVHTTP_REQ_GET, "/v1/stacks", NULL, STMT_STACK_LIST, 0, 200},
    {EVHTTP_REQ_GET, "/v1/stacks/{id}", NULL, STMT_STACK_GET, 0, 200},
    {EVHTTP_REQ_GET, "/v1/reports/stacks", NULL, STMT_REPORT_STACKS, 0, 200},
    /* calibration (issue 4) */
    {EVHTTP_REQ_GET, "/v1/rubrics/{id}/calibration", NULL, STMT_RUBRIC_CALIBRATION_GET, 0, 200},
    {EVHTTP_REQ_PUT, "/v1/rubrics/{id}/calibration", NULL, STMT_RUBRIC_CALIBRATION_PUT, ROUTE_BODY,
     200},
    {EVHTTP_REQ_PUT, "/v1/credentials/{id}/policy", NULL, STMT_CREDENTIAL_POLICY_PUT, ROUTE_BODY,
     200},
    {EVHTTP_REQ_POST, "/v1/anchors", NULL, STMT_ANCHOR_CREATE, ROUTE_BODY, 201},
    {EVHTTP_REQ_GET, "/v1/anchors", NULL, STMT_ANCHOR_LIST, ROUTE_QUERY, 200},
    {EVHTTP_REQ_GET, "/v1/anchors/{id}", NULL, STMT_ANCHOR_GET, 0, 200},
    {EVHTTP_REQ_POST, "/v1/calibration/sessions", NULL, STMT_CALIBRATION_SESSION_CREATE, ROUTE_BODY,
     201},
    {EVHTTP_REQ_GET, "/v1/calibration/sessions/{id}", NULL, STMT_CALIBRATION_SESSION_GET, 0, 200},
    {EVHTTP_REQ_POST, "/v1/calibration/sessions/{id}/items/{id}/scores", NULL,
     STMT_CALIBRATION_ITEM_SCORE, ROUTE_BODY, 200},
    {EVHTTP_REQ_GET, "/v1/me/qualifications", NULL, STMT_MY_QUALIFICATIONS, 0, 200},
    {EVHTTP_REQ_POST, "/v1/assessors/{id}/qualifications", NULL, STMT_QUALIFICATION_SET, ROUTE_BODY,
     201},
    {EVHTTP_REQ_GET, "/v1/reports/agreement", handle_report_agreement, STMT_REPORT_AGREEMENT_DATA,
     ROUTE_QUERY, 200},
    /* replica_reports.c: from the read replica when it may (replica.h) */
    {EVHTTP_REQ_GET, "/v1/reports/assessors", handle_report_assessors, STMT_REPORT_ASSESSORS,
     ROUTE_QUERY, 200},
    {EVHTTP_REQ_GET, "/v1/reports/routing", handle_report_routing, STMT_REPORT_ROUTING, 0, 200},
    {EVHTTP_REQ_GET, "/v1/reports/ratings.csv", handle_report_ratings_csv, STMT_REPORT_RATINGS_PAGE,
     ROUTE_QUERY, 200},
    /* single sign-on (issue 10 item 4) */
    {EVHTTP_REQ_POST, "/v1/identity-providers", NULL, STMT_OIDC_PROVIDER_CREATE, ROUTE_BODY, 201},
    {EVHTTP_REQ_GET, "/v1/identity-providers", NULL, STMT_OIDC_PROVIDER_LIST, 0, 200},
    {EVHTTP_REQ_GET, "/v1/identity-providers/{id}", NULL, STMT_OIDC_PROVIDER_GET, 0, 200},
    {EVHTTP_REQ_PATCH, "/v1/identity-providers/{id}", NULL, STMT_OIDC_PROVIDER_UPDATE, ROUTE_BODY,
     200},
    {EVHTTP_REQ_DELETE, "/v1/identity-providers/{id}", NULL, STMT_OIDC_PROVIDER_DELETE, 0, 204},
    {EVHTTP_REQ_GET, "/v1/auth/oidc/providers", NULL, STMT_OIDC_PROVIDERS_PUBLIC, ROUTE_PUBLIC,
     200},
    {EVHTTP_REQ_GET, "/v1/auth/oidc/{id}/start", handle_oidc_start, STMT_OIDC_LOGIN_BEGIN,
     ROUTE_PUBLIC | ROUTE_NAVIGATION, 302},
    {EVHTTP_REQ_GET, "/v1/auth/oidc/callback", handle_oidc_callback, STMT_OIDC_LOGIN_TAKE,
     ROUTE_PUBLIC | ROUTE_NAVIGATION, 303},
    /* hardening (issue 7) */
    {EVHTTP_REQ_POST, "/v1/organisations", NULL, STMT_ORG_CREATE, ROUTE_BODY, 201},
    {EVHTTP_REQ_GET, "/v1/organisations", NULL, STMT_ORG_LIST, 0, 200},
    {EVHTTP_REQ_PUT, "/v1/users/{id}/organisation", NULL, STMT_USER_ORG_SET, ROUTE_BODY, 200},
    {EVHTTP_REQ_POST, "/v1/assessors/{id}/calibration-attempts", NULL, STMT_CALIBRATION_ALLOW,
     ROUTE_BODY, 201},
    {EVHTTP_REQ_GET, "/v1/audit", NULL, STMT_AUDIT_LIST, ROUTE_QUERY, 200},
    /* live updates (issue 14 item 3) */
    {EVHTTP_REQ_GET, "/v1/events", handle_events, STMT_LIVE_BATCH, 0, 200},
    /* the web app (issue 11) */
    {EVHTTP_REQ_POST, "/v1/reviews/{id}/extend", NULL, STMT_REVIEW_EXTEND, ROUTE_LEASE, 200},
    {EVHTTP_REQ_GET, "/v1/reviews/{id}/draft", NULL, STMT_REVIEW_DRAFT_GET, 0, 200},
    {EVHTTP_REQ_PUT, "/v1/reviews/{id}/draft", NULL, STMT_REVIEW_DRAFT_PUT, ROUTE_BODY, 200},
    {EVHTTP_REQ_GET, "/v1/me/reviews", NULL, STMT_MY_REVIEWS, ROUTE_QUERY, 200},
    {EVHTTP_REQ_GET, "/v1/credentials/{id}/assessors", NULL, STMT_ASSESSOR_LIST, 0, 200},
    {EVHTTP_REQ_DELETE, "/v1/credentials/{id}/assessors/{id}", NULL, STMT_ASSESSOR_REVOKE, 0, 204},
    {EVHTTP_REQ_POST, "/v1/submissions/{id}/override", NULL, STMT_SUBMISSION_OVERRIDE, ROUTE_BODY,
     200},
    {EVHTTP_REQ_GET, "/v1/submissions/{id}/reviews", NULL, STMT_SUBMISSION_REVIEWS, 0, 200},
    {EVHTTP_REQ_GET, "/v1/adjudications", NULL, STMT_ADJUDICATION_LIST, 0, 200},
    {EVHTTP_REQ_GET, "/v1/rubrics", NULL, STMT_RUBRIC_LIST, 0, 200},
    /* notifications (issue 14): webhooks, the dead letters, mail preferences */
    {EVHTTP_REQ_POST, "/v1/webhooks", handle_webhook_create, STMT_WEBHOOK_CREATE, ROUTE_BODY, 201},
    {EVHTTP_REQ_GET, "/v1/webhooks", NULL, STMT_WEBHOOK_LIST, 0, 200},
    {EVHTTP_REQ_GET, "/v1/webhooks/{id}", NULL, STMT_WEBHOOK_GET, 0, 200},
    {EVHTTP_REQ_DELETE, "/v1/webhooks/{id}", NULL, STMT_WEBHOOK_DELETE, 0, 204},
    {EVHTTP_REQ_GET, "/v1/webhooks/{id}/deliveries", NULL, STMT_WEBHOOK_DELIVERIES, ROUTE_QUERY,
     200},
    {EVHTTP_REQ_GET, "/v1/outbox/dead", NULL, STMT_OUTBOX_DEAD, ROUTE_QUERY, 200},
    {EVHTTP_REQ_POST, "/v1/outbox/retry", NULL, STMT_OUTBOX_RETRY, ROUTE_BODY, 200},
    {EVHTTP_REQ_GET, "/v1/me/notifications", NULL, STMT_MY_NOTIFICATIONS, 0, 200},
    {EVHTTP_REQ_PUT, "/v1/me/notifications", NULL, STMT_MY_NOTIFICATIONS_PUT, ROUTE_BODY, 200},
    {EVHTTP_REQ_GET, "/v1/unsubscribe", handle_unsubscribe_get, STMT_UNSUBSCRIBE_GET,
     ROUTE_PUBLIC | ROUTE_QUERY, 200},
    {EVHTTP_REQ_POST, "/v1/unsubscribe", NULL, STMT_UNSUBSCRIBE_POST, ROUTE_PUBLIC | ROUTE_QUERY,
     200},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

enum match { MATCH_NONE, MATCH_OK, MATCH_BAD_ID };
static enum match match_path(const char *pattern, const char *path, struct request *r);

size_t router_route_count(void)
{
    return N_ROUTES;
}

const struct route *router_route_at(size_t i)
{
    return i < N_ROUTES ? &routes[i] : NULL;
}

size_t router_route_index(const struct route *route)
{
    return (size_t)(route - routes);
}

/*
 * CORS (--cors-origins): what a browser on an allowed origin may send and
 * read. Request headers: everything a handler reads. Exposed: everything a
 * handler sets that a script needs (tus, ranges, ids, Retry-After).
 */
#define CORS_ALLOW_HEADERS                                                                         \
    "Authorization, Content-Type, X-Request-Id, X-Artifact-Kind, X-Filename, Range, "              \
    "Tus-Resumable, Upload-Length, Upload-Offset, Upload-Metadata, Upload-Defer-Length, "          \
    "Last-Event-ID"
#define CORS_EXPOSE_HEADERS                                                                        \
    "Location, Retry-After, X-Request-Id, X-Artifact-Id, Content-Range, Accept-Ranges, "           \
    "Content-Disposition, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, "               \
    "Upload-Offset, Upload-Length"
#define CORS_MAX_AGE "600"

static const char *cmd_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET, HEAD";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return NULL; /* OPTIONS: the preflight itself */
    }
}

/* Headers every answer to an allowed origin carries; returns whether it is allowed. */
static bool cors_simple(struct request *r, const char *origin)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
    if (!r->w->cfg->cors_origins[0])
        return false;
    evhttp_add_header(out, "Vary", "Origin");
    if (!config_cors_allows(r->w->cfg, origin))
        return false;
    evhttp_add_header(out, "Access-Control-Allow-Origin", origin);
    evhttp_add_header(out, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
    return true;
}

/* A preflight (OPTIONS with Access-Control-Request-Method) for any route's path. */
static void cors_preflight(struct request *r, const char *path, bool allowed)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
    char methods[128] = "";
    struct request scratch;

    for (size_t i = 0; i < N_ROUTES; i++) {
        const char *name = cmd_name(routes[i].method);
        if (!name || match_path(routes[i].pattern, path, &scratch) == MATCH_NONE ||
            strstr(methods, name))
            continue;
        if (methods[0])
            strcat(methods, ", ");
        strcat(methods, name);
    }
    if (!methods[0]) {
        reply_error(r, 404, "not_found", "no such endpoint: %s", path);
        return;
    }
    if (!allowed) {
        reply_error(r, 403, "cors_origin_not_allowed",
                    "this origin may not call the API from a browser (see --cors-origins)");
        return;
    }
    strcat(methods, ", OPTIONS");
    evhttp_add_header(out, "Access-Control-Allow-Methods", methods);
    evhttp_add_header(out, "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
    evhttp_add_header(out, "Access-Control-Max-Age", CORS_MAX_AGE);
    reply_empty(r, 204);
}

static bool is_uuid(const char *s, size_t len)
{
    if (len != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

/* Matches path against pattern; collects {id} segments into r->ids. */
static enum match match_path(const char *pattern, const char *path, struct request *r)
{
    int n_ids = 0;
    bool bad_id = false;

    while (*pattern && *path) {
        if (*pattern != '/' || *path != '/')
            return MATCH_NONE;
        pattern++;
        path++;
        const char *pend = strchr(pattern, '/');
        const char *send = strchr(path, '/');
        size_t plen = pend ? (size_t)(pend - pattern) : strlen(pattern);
        size_t slen = send ? (size_t)(send - path) : strlen(path);
        if (plen == 4 && memcmp(pattern, "{id}", 4) == 0) {
            if (slen == 0)
                return MATCH_NONE;
            if (!is_uuid(path, slen)) {
                bad_id = true;
            } else if (n_ids < REQUEST_MAX_PATH_IDS) {
                for (size_t i = 0; i < 36; i++)
                    r->ids[n_ids][i] = (char)tolower((unsigned char)path[i]);
                r->ids[n_ids][36] = '\0';
                n_ids++;
            }
        } else if (plen != slen || memcmp(pattern, path, plen) != 0) {
            return MATCH_NONE;
        }
        pattern += plen;
        path += slen;
    }
    if (*pattern || (*path && strcmp(path, "/") != 0))
        return MATCH_NONE;
    r->n_ids = n_ids;
    return bad_id ? MATCH_BAD_ID : MATCH_OK;
}

static long route_limit(const struct config *cfg, const struct route *route)
{
    if (route->flags & ROUTE_UPLOAD)
        return cfg->max_body;
    if (route->flags & (ROUTE_BODY | ROUTE_BODY_OPTIONAL))
        return cfg->max_json_body;
    return ROUTE_NO_BODY_LIMIT;
}

static const struct {
    const char *name;
    enum evhttp_cmd_type method;
} methods[] = {{"GET", EVHTTP_REQ_GET},        {"HEAD", EVHTTP_REQ_HEAD},
               {"POST", EVHTTP_REQ_POST},      {"PUT", EVHTTP_REQ_PUT},
               {"PATCH", EVHTTP_REQ_PATCH},    {"DELETE", EVHTTP_REQ_DELETE},
               {"OPTIONS", EVHTTP_REQ_OPTIONS}};

long router_body_limit(const struct config *cfg, const char *method, const char *path,
                       bool *is_public)
{
    struct request scratch;
    enum evhttp_cmd_type m;
    size_t i;

    *is_public = false;
    for (i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(methods[i].name, method) == 0)
            break;
    if (i == sizeof methods / sizeof methods[0])
        return ROUTE_NO_BODY_LIMIT;
    m = methods[i].method;
    /* As router_dispatch: a literal segment beats an {id}. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = 0; k < N_ROUTES; k++) {
            enum match mk = match_path(routes[k].pattern, path, &scratch);
            if (mk == MATCH_NONE || (pass == 0 && mk == MATCH_BAD_ID))
                continue;
            if (routes[k].method == m ||
                (m == EVHTTP_REQ_HEAD && routes[k].method == EVHTTP_REQ_GET)) {
                *is_public = (routes[k].flags & ROUTE_PUBLIC) != 0;
                return route_limit(cfg, &routes[k]);
            }
        }
    return ROUTE_NO_BODY_LIMIT;
}

static void on_statement_done(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    if (!res->value) {
        reply_empty(r, 204);
        return;
    }
    reply_json_text(r, r->ok_status, res->value);
}

void router_call(struct request *r, enum stmt_id stmt, int ok_status)
{
    r->ok_status = ok_status;
    request_query(r, stmt, on_statement_done);
}

/* Takes the body out of the request; checks it is a JSON object when the route wants one. */
static int read_body(struct request *r, unsigned flags)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    size_t len = evbuffer_get_length(in);
    json_error_t err;
    json_t *doc;

    if (flags & ROUTE_RAW_BODY)
        return 0;
    if (!(flags & (ROUTE_BODY | ROUTE_BODY_OPTIONAL)))
        return 0;
    if (len == 0) {
        if (flags & ROUTE_BODY_OPTIONAL) {
            r->body = strdup("{}");
            r->body_len = 2;
            return r->body ? 0 : -1;
        }
        reply_error(r, 400, "invalid_json", "a JSON object body is required");
        return -1;
    }
    r->body = malloc(len + 1);
    if (!r->body) {
        reply_error(r, 503, "busy", "out of memory");
        return -1;
    }
    evbuffer_remove(in, r->body, len);
    r->body[len] = '\0';
    r->body_len = len;
    doc = json_loadb(r->body, len, JSON_REJECT_DUPLICATES, &err);
    if (!doc) {
        reply_error(r, 400, "invalid_json", "the body is not valid JSON: %s (line %d, column %d)",
                    err.text, err.line, err.column);
        return -1;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        reply_error(r, 400, "invalid_json", "the body must be a JSON object");
        return -1;
    }
    json_decref(doc);
    return 0;
}

#define MAX_QUERY_PARAMS 16
#define MAX_QUERY_VALUE  512

/*
 * The query string as a JSON object of strings ({"credential_id":"..."}), so a
 * statement takes it as one jsonb parameter and validates it in SQL. Bounded;
 * a repeated or oversized parameter answers 400.
 */
static int read_query(struct request *r)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq params;
    struct evkeyval *kv;
    json_t *obj = json_object();
    int n = 0, rc = -1;

    TAILQ_INIT(&params);
    if (!obj) {
        reply_error(r, 503, "busy", "out of memory");
        return -1;
    }
    if (query && *query && evhttp_parse_query_str(query, &params) < 0) {
        reply_error(r, 400, "bad_request", "the query string is malformed");
        goto cleanup;
    }
    TAILQ_FOREACH(kv, &params, next)
    {
        json_t *value;
        if (++n > MAX_QUERY_PARAMS || strlen(kv->key) > 64 || strlen(kv->value) > MAX_QUERY_VALUE) {
            reply_error(r, 400, "bad_request",
                        "at most %d query parameters, names up to 64 and values up to %d bytes",
                        MAX_QUERY_PARAMS, MAX_QUERY_VALUE);
            goto cleanup;
        }
        if (json_object_get(obj, kv->key)) {
            reply_error(r, 400, "bad_request", "query parameter '%s' is given twice", kv->key);
            goto cleanup;
        }
        value = json_string(kv->value);
        if (!value || json_object_set_new(obj, kv->key, value) < 0) {
            reply_error(r, 400, "bad_request", "query parameters must be UTF-8 text");
            goto cleanup;
        }
    }
    r->query = json_dumps(obj, JSON_COMPACT);
    if (!r->query) {
        reply_error(r, 503, "busy", "out of memory");
        goto cleanup;
    }
    rc = 0;
cleanup:
    evhttp_clear_headers(&params);
    json_decref(obj);
    return rc;
}

static void dispatch_admitted(struct request *r);

static void reply_unknown_credential(struct request *r)
{
    if (r->auth_kind == AUTH_KIND_SESSION)
        reply_error(r, 401, "session_ended", "your session has ended; sign in again");
    else
        reply_error(r, 401, "unauthorized", "unknown, expired or revoked token");
}

static bool changes_state(enum evhttp_cmd_type method)
{
    return method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD && method != EVHTTP_REQ_OPTIONS;
}

/*
 * A cookie session: the credential parameter is "s:" + the hash (auth.h),
 * and a request that changes state must pass the CSRF check (session.h)
 * before anything else is done for it. Answers and returns -1 when it may
 * not go on.
 */
static int admit_session(struct request *r, const struct auth_credential *cred)
{
    char secret[SESSION_SECRET_LEN + 1];

    r->token_hash[0] = 's';
    r->token_hash[1] = ':';
    memcpy(r->token_hash + 2, cred->hash, AUTH_HASH_LEN + 1);
    if (session_cookie_secret(r->req, r->w->cfg, secret) < 0 ||
        session_csrf_token(secret, r->csrf_token) < 0) {
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        return -1;
    }
    if (changes_state(evhttp_request_get_command(r->req)))
        return session_csrf_check(r);
    return 0;
}

static void on_gate(enum auth_verdict verdict, const char *user_id, void *arg)
{
    struct request *r = arg;
    switch (verdict) {
    case AUTH_VALID:
        snprintf(r->user_id, sizeof r->user_id, "%s", user_id);
        dispatch_admitted(r);
        break;
    case AUTH_INVALID:
        reply_unknown_credential(r);
        break;
    default:
        log_warn("database unavailable: answering 503");
        reply_error(r, 503, "unavailable", "the database is unavailable; try again shortly");
        break;
    }
}

/*
 * The credential is checked before the body is parsed or sent anywhere: an
 * unknown one costs a cache probe or one shared lookup, never a JSON parse.
 */
static void gate_then_dispatch(struct request *r)
{
    struct auth_credential cred;
    const struct evkeyvalq *headers = evhttp_request_get_input_headers(r->req);

    switch (auth_credential_from_headers(headers, &cred)) {
    case AUTH_FOUND_NONE:
        reply_error(r, 401, "unauthorized",
                    "sign in (POST /v1/sessions) or send a token: Authorization: Bearer <token>");
        return;
    case AUTH_FOUND_MALFORMED:
        if (evhttp_find_header(headers, "Authorization") &&
            strncasecmp(evhttp_find_header(headers, "Authorization"), "Bearer ", 7) != 0)
            reply_error(r, 401, "unauthorized",
                        "the Authorization header must be 'Bearer <token>'");
        else
            reply_unknown_credential(r);
        return;
    case AUTH_FOUND_OK:
        break;
    }
    r->auth_kind = cred.kind;
    if (cred.kind == AUTH_KIND_SESSION) {
        if (admit_session(r, &cred) < 0)
            return;
    } else {
        memcpy(r->token_hash, cred.hash, AUTH_HASH_LEN + 1);
    }
    switch (authgate_check(r->w->gate, &cred, r->user_id, on_gate, r)) {
    case AUTH_VALID:
        dispatch_admitted(r);
        return;
    case AUTH_INVALID:
        reply_unknown_credential(r);
        return;
    case AUTH_PENDING:
        return;
    case AUTH_BUSY:
        reply_error(r, 503, "busy", "the server is busy; try again shortly");
        return;
    case AUTH_UNAVAILABLE:
        log_warn("database unavailable: answering 503");
        reply_error(r, 503, "unavailable", "the database is unavailable; try again shortly");
        return;
    }
}

void router_dispatch(struct evhttp_request *req, void *arg)
{
    struct worker *w = arg;
    struct request *r;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    const struct route *route = NULL;
    bool path_known = false;
    enum match m = MATCH_NONE;
    const char *origin;
    bool cors_allowed;

    r = calloc(1, sizeof *r);
    if (!r) {
        evhttp_send_error(req, 503, "out of memory");
        return;
    }
    r->req = req;
    r->w = w;
    clock_gettime(CLOCK_MONOTONIC, &r->started);
    request_assign_id(r);
    w->inflight++;
    r->held_bytes = conntrack_request_begins(w, req);

    /*
     * While draining (SIGTERM), requests that are complete are still served
     * (their bodies may have been arriving when the signal came); each answer
     * closes its connection and no new connection is accepted.
     */
    if (!path || !*path)
        path = "/";
    origin = evhttp_find_header(evhttp_request_get_input_headers(req), "Origin");
    cors_allowed = cors_simple(r, origin);
    if (method == EVHTTP_REQ_OPTIONS && origin &&
        evhttp_find_header(evhttp_request_get_input_headers(req),
                           "Access-Control-Request-Method")) {
        cors_preflight(r, path, cors_allowed);
        return;
    }
    /*
     * A literal segment beats an {id}: "/v1/reviews/claim" must not be read
     * as a malformed review id. So a route whose ids are malformed is only
     * used when no route matches the path exactly.
     */
    for (int pass = 0; pass < 2 && !route && !path_known; pass++) {
        for (size_t i = 0; i < N_ROUTES; i++) {
            enum match mi = match_path(routes[i].pattern, path, r);
            if (mi == MATCH_NONE || (pass == 0 && mi == MATCH_BAD_ID))
                continue;
            path_known = true;
            if (routes[i].method == method ||
                (method == EVHTTP_REQ_HEAD && routes[i].method == EVHTTP_REQ_GET)) {
                route = &routes[i];
                m = mi;
                break;
            }
        }
    }
    if (!route) {
        if (path_known)
            reply_error(r, 405, "method_not_allowed", "this path does not accept that method");
        else if (!static_serve(r, path)) /* the web app (issue 11) */
            reply_error(r, 404, "not_found", "no such endpoint: %s", path);
        return;
    }
    r->route = route;
    /* libevent refused bodies over --max-body from Content-Length; this is the route's own. */
    if ((long)evbuffer_get_length(evhttp_request_get_input_buffer(req)) >
        route_limit(w->cfg, route)) {
        reply_error(r, 413, "body_too_large", "the body is over this route's limit of %ld bytes",
                    route_limit(w->cfg, route));
        return;
    }
    if (m == MATCH_BAD_ID) {
        reply_error(r, 400, "invalid_uuid", "ids in the path must be UUIDs");
        return;
    }
    if (!(route->flags & ROUTE_PUBLIC)) {
        gate_then_dispatch(r);
        return;
    }
    dispatch_admitted(r);
}

/* Past the gate (or on a public route): read the body and run the route. */
static void dispatch_admitted(struct request *r)
{
    const struct route *route = r->route;
    struct worker *w = r->w;
    int np = 0;

    if (!(route->flags & ROUTE_PUBLIC))
        r->params[np++] = r->token_hash;
    if (route->flags & ROUTE_BASE_URL) {
        if (!w->cfg->public_url_set) {
            reply_error(r, 503, "not_configured",
                        "badges are not issued: the server has no ACCORD_PUBLIC_URL");
            return;
        }
        r->params[np++] = w->cfg->public_url;
    }
    if (read_body(r, route->flags) < 0)
        return;
    for (int i = 0; i < r->n_ids; i++)
        r->params[np++] = r->ids[i];
    if (route->flags & ROUTE_QUERY) {
        if (read_query(r) < 0)
            return;
        r->params[np++] = r->query;
    }
    if (r->body)
        r->params[np++] = r->body;
    if (route->flags & ROUTE_LEASE) {
        snprintf(r->scratch, sizeof r->scratch, "%ld", w->cfg->lease_seconds);
        r->params[np++] = r->scratch;
    }
    if (route->handler) {
        route->handler(r);
        return;
    }
    if (np != statements[route->stmt].nparams) {
        log_error("route %s: %d parameters for statement %s", route->pattern, np,
                  statements[route->stmt].name);
        reply_error(r, 500, "internal", "internal error (logged on the server)");
        return;
    }
    router_call(r, route->stmt, route->ok_status);
}

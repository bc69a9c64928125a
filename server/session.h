/* SPDX-License-Identifier: Apache-2.0 */
/*
 * session.h - browser sessions: the cookie, its CSRF protection, and starting
 * a signed-in session for a user.
 *
 * A session is 32 random bytes (64 hex digits) in a cookie named
 * "accord_session" ("__Host-accord_session" when the public URL is https),
 * with HttpOnly, SameSite=Lax, Path=/, Max-Age = the absolute lifetime, and
 * Secure when https. The database keeps only SHA-256(secret) (table sessions)
 * with the idle limit and absolute end; _auth() checks both.
 *
 * CSRF: a request authenticated by the cookie that may change state (any
 * method but GET, HEAD, OPTIONS) must
 *   - come from the public origin: an Origin header, when sent, equal to it,
 *     and a Sec-Fetch-Site header, when sent, "same-origin" or "none"; and
 *   - carry the session's CSRF token in X-CSRF-Token. The token is
 *     hex SHA-256("accord-csrf:" + secret): the server derives it without a
 *     lookup; the browser gets it when signing in and from GET /v1/me.
 * Bearer-token requests need neither (a browser never adds the header on its own).
 *
 * For single sign-on (issue 10 item 4) and any other way of signing in:
 * session_start() below (signin.h wraps it with a redirect).
 */
#ifndef ACCORD_SESSION_H
#define ACCORD_SESSION_H

#include <event2/http.h>

#include "config.h"
#include "request.h"

#define SESSION_SECRET_LEN  AUTH_SESSION_SECRET_LEN /* 64 hex digits */
#define SESSION_CSRF_HEADER "X-CSRF-Token"

/* The cookie's name for this configuration. */
const char *session_cookie_name(const struct config *cfg);

/*
 * The session secret from the request's Cookie header into secret. Returns 0,
 * or -1 when there is no such cookie or its value is not 64 hex digits.
 */
int session_cookie_secret(struct evhttp_request *req, const struct config *cfg,
                          char secret[SESSION_SECRET_LEN + 1]);

/* The credential parameter ("s:" + SHA-256 hex) of a secret. Returns 0 or -1. */
int session_credential(const char *secret, char out[AUTH_CRED_LEN + 1])
    __attribute__((warn_unused_result));

/* The SHA-256 hex of a secret (what the sessions table stores). Returns 0 or -1. */
int session_secret_hash(const char *secret, char out[AUTH_HASH_LEN + 1])
    __attribute__((warn_unused_result));

/* The CSRF token of a secret. Returns 0 or -1. */
int session_csrf_token(const char *secret, char out[AUTH_HASH_LEN + 1])
    __attribute__((warn_unused_result));

/*
 * NULL when the request may be cross-site-safe by its Origin and
 * Sec-Fetch-Site headers (see above), else a message saying why not. Used
 * for cookie-authenticated requests that change state and for the public
 * routes that set a session cookie (no signing in from another site).
 */
const char *session_origin_problem(struct evhttp_request *req, const struct config *cfg);

/*
 * Checks a cookie-authenticated request that changes state (origin and CSRF
 * token). Returns 0 when it may go on; else answers 403 csrf_failed itself
 * and returns -1.
 */
int session_csrf_check(struct request *r) __attribute__((warn_unused_result));

/* The peer's address as text into out (cap >= 64); "unknown" if there is none. */
void session_client_addr(struct request *r, char *out, size_t cap);

/* A new random secret and its SHA-256 hex. Returns 0, or -1 if the CSPRNG failed. */
int session_new_secret(char secret[SESSION_SECRET_LEN + 1], char hash[AUTH_HASH_LEN + 1])
    __attribute__((warn_unused_result));

/* Adds the Set-Cookie header for a session with this secret. */
void session_set_cookie(struct request *r, const char *secret);

/* Adds a Set-Cookie that ends the browser's session cookie. */
void session_clear_cookie(struct request *r);

/*
 * Called once session_start() is done. On success (res->status == DB_OK)
 * the Set-Cookie header is already on the response, res->value is
 * {"user": {...}, "session": {"id", "method", "expires_at", "idle_seconds"}},
 * and csrf_token is the new session's token. On failure (e.g. 403
 * account_disabled, 503) csrf_token is NULL and no cookie was set. Either way
 * the callback answers the request (reply_session_started() or a redirect).
 */
typedef void (*session_done)(struct request *r, const struct db_result *res, const char *csrf_token,
                             void *arg);

/*
 * Starts a signed-in browser session for user_id (a canonical UUID string)
 * after the caller has established who the person is; method is "password",
 * "invitation" or "oidc". Ends the session the browser came with (a new id at
 * every sign-in), records the client address, audits. One round trip, on the
 * event loop; never touches r->state, so the caller's state survives. If the
 * query cannot even be queued (database down, out of memory), done() runs
 * with a failed result before session_start() returns.
 */
void session_start(struct request *r, const char *user_id, const char *method, session_done done,
                   void *arg);

/*
 * For a session whose row the caller's own statement created (password
 * sign-in, accepting an invitation): res is that statement's result. Sets the
 * cookie for secret and answers 201 {user, session, csrf_token}.
 */
void reply_session_created(struct request *r, const struct db_result *res, const char *secret);

/* Answers 201 {user, session, csrf_token} for a session just started (a session_done). */
void reply_session_started(struct request *r, const struct db_result *res, const char *csrf_token,
                           void *arg);

#endif

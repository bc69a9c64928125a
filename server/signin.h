/* SPDX-License-Identifier: Apache-2.0 */
/*
 * signin.h - the end of every browser sign-in (password, invitation, OpenID
 * Connect): a new session for the user, its cookie, and on to where the
 * person was going.
 */
#ifndef ACCORD_SIGNIN_H
#define ACCORD_SIGNIN_H

#include "request.h"

/*
 * Starts a browser session for user_id (method says how they proved who they
 * are: "oidc", "password", ...), sets its cookie and answers 303 to
 * return_to (a path on this server, already checked). Answers r in every case.
 */
void signin_session_redirect(struct request *r, const char *user_id, const char *return_to,
                             const char *method);

#endif

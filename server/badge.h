/* SPDX-License-Identifier: Apache-2.0 */
/*
 * badge.h - an accord award (or completed stack) as an Open Badges 3.0
 * OpenBadgeCredential, built from the row the database gives (badge_row() in
 * db/migrations/008_badges.sql), its VC-JWT header and claims, and the public
 * verification page. Pure functions: no I/O, safe on any thread.
 */
#ifndef ACCORD_BADGE_H
#define ACCORD_BADGE_H

#include <jansson.h>

#include "config.h"

#define BADGE_CONTEXT_VC "https://www.w3.org/ns/credentials/v2"
#define BADGE_CONTEXT_OB "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"

/* The issuer Profile (id {public}/v1/issuer) from the settings; new reference. */
json_t *badge_issuer_profile(const struct config *cfg);

/* The Achievement of a credential or stack (the row's "achievement"); new reference or NULL. */
json_t *badge_achievement(const struct config *cfg, const json_t *achievement_row);

/* The OpenBadgeCredential of a badge row; new reference, NULL when the row is malformed. */
json_t *badge_credential(const struct config *cfg, const json_t *row);

/* The JOSE header {alg RS256, kid <key URL>, typ JWT}. */
json_t *badge_jwt_header(const struct config *cfg, const char *kid);

/* The JWT payload: the credential plus iss, jti, nbf, sub (and exp with validUntil). */
json_t *badge_jwt_payload(const json_t *credential, const json_t *row);

/*
 * The public page: the signed credential (payload), its status from the row
 * and what the signature check found (check: a sentence). Every value is
 * HTML-escaped; no script, no inline style. Returns malloc'd HTML or NULL.
 */
char *badge_html(const struct config *cfg, const json_t *row, const json_t *payload,
                 const char *check, size_t *len);

#endif

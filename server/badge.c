/* SPDX-License-Identifier: Apache-2.0 */
/*
 * badge.c - OpenBadgeCredential, VC-JWT claims and the public page (badge.h).
 *
 * Field names follow Open Badges 3.0 (https://www.imsglobal.org/spec/ob/v3p0/):
 * the credential's required fields, an AchievementSubject identified by a
 * salted hash of the earner's email (IdentityObject), the rubric as
 * ResultDescriptions with RubricCriterionLevels, results, evidence and a
 * 1EdTech Revocation List status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "badge.h"
#include "html_escape.h"

static const char *str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static const char *str_or(const json_t *obj, const char *key, const char *dflt)
{
    const char *s = str(obj, key);
    return s && *s ? s : dflt;
}

/* {public URL}{path}{id}, as a JSON string. */
static json_t *url(const struct config *cfg, const char *path, const char *id)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s%s%s", cfg->public_url, path, id ? id : "");
    return n > 0 && (size_t)n < sizeof buf ? json_string(buf) : NULL;
}

json_t *badge_issuer_profile(const struct config *cfg)
{
    json_t *p = json_pack("{s:o,s:[s],s:s}", "id", url(cfg, "/v1/issuer", NULL), "type", "Profile",
                          "name", cfg->issuer_name);
    if (p)
        json_object_set_new(p, "url",
                            json_string(cfg->issuer_url[0] ? cfg->issuer_url : cfg->public_url));
    if (p && cfg->issuer_email[0])
        json_object_set_new(p, "email", json_string(cfg->issuer_email));
    return p;
}

/* The label of level `value` in a criterion's levels, or NULL. */
static const char *level_label(const json_t *levels, json_int_t value)
{
    size_t i;
    json_t *lv;
    json_array_foreach(levels, i, lv)
    {
        if (json_integer_value(json_object_get(lv, "value")) == value)
            return str(lv, "label");
    }
    return NULL;
}

/* ResultDescription per criterion: its levels as RubricCriterionLevels. */
static json_t *result_descriptions(const char *ach_id, const json_t *ach)
{
    json_t *out = json_array(), *criteria = json_object_get(ach, "criteria"), *c;
    json_int_t min = json_integer_value(json_object_get(ach, "min_level_each"));
    size_t i, j;
    char id[1200], lid[1300];

    json_array_foreach(criteria, i, c)
    {
        json_t *levels = json_array(), *lv;
        const char *key = str_or(c, "key", "criterion");
        snprintf(id, sizeof id, "%s#criterion-%s", ach_id, key);
        json_array_foreach(json_object_get(c, "levels"), j, lv)
        {
            json_int_t v = json_integer_value(json_object_get(lv, "value"));
            char level[32];
            snprintf(lid, sizeof lid, "%s-level-%lld", id, (long long)v);
            snprintf(level, sizeof level, "%lld", (long long)v);
            json_array_append_new(levels, json_pack("{s:s,s:[s],s:s,s:s}", "id", lid, "type",
                                                    "RubricCriterionLevel", "name",
                                                    str_or(lv, "label", level), "level", level));
        }
        snprintf(lid, sizeof lid, "%s-level-%lld", id, (long long)min);
        json_array_append_new(out, json_pack("{s:s,s:[s],s:s,s:s,s:s,s:o}", "id", id, "type",
                                             "ResultDescription", "name", str_or(c, "title", key),
                                             "resultType", "RubricCriterionLevel", "requiredLevel",
                                             lid, "rubricCriterionLevel", levels));
    }
    return out;
}

static json_t *results(const char *ach_id, const json_t *row)
{
    json_t *out = json_array(), *r;
    size_t i;
    char rd[1200], lid[1300];
    json_array_foreach(json_object_get(row, "results"), i, r)
    {
        snprintf(rd, sizeof rd, "%s#criterion-%s", ach_id, str_or(r, "criterion", "criterion"));
        snprintf(lid, sizeof lid, "%s-level-%lld", rd,
                 (long long)json_integer_value(json_object_get(r, "level")));
        json_array_append_new(out, json_pack("{s:[s],s:s,s:s}", "type", "Result",
                                             "resultDescription", rd, "achievedLevel", lid));
    }
    return out;
}

/* What an employer asks before trusting a micro-credential: how it was assessed. */
static char *assessment_narrative(const json_t *row)
{
    const json_t *ach = json_object_get(row, "achievement"),
                 *as = json_object_get(row, "assessment");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    const json_t *pools = json_object_get(as, "pools");
    bool expert = false, peer = false;
    size_t i;
    json_t *p;

    if (!f)
        return NULL;
    json_array_foreach(pools, i, p)
    {
        const char *s = json_string_value(p);
        if (s && strcmp(s, "expert") == 0)
            expert = true;
        else if (s && strcmp(s, "peer") == 0)
            peer = true;
    }
    if (str(ach, "kind") && strcmp(str(ach, "kind"), "stack") == 0) {
        fprintf(f, "Issued when the earner held every credential of the stack; each member "
                   "badge is listed as evidence.");
    } else {
        fprintf(f,
                "Scored against the rubric \"%s\" by %lld independent review%s (%s%s%s) of "
                "submitted classroom evidence; %s-stakes credential; passed on attempt %lld. ",
                str_or(ach, "rubric_title", "rubric"),
                (long long)json_integer_value(json_object_get(as, "reviews")),
                json_integer_value(json_object_get(as, "reviews")) == 1 ? "" : "s",
                peer ? "peer" : "", peer && expert ? " and " : "", expert ? "expert" : "",
                str_or(as, "stakes", "low"),
                (long long)json_integer_value(json_object_get(as, "attempt")));
        fprintf(f, json_is_true(json_object_get(as, "calibrated"))
                       ? "Every assessor held a current calibration qualification on this rubric."
                       : "Not every assessor held a calibration qualification on this rubric.");
    }
    fclose(f);
    return text;
}

static json_t *evidence(const struct config *cfg, const json_t *row)
{
    json_t *out = json_array(), *e, *ach = json_object_get(row, "achievement");
    char *narrative = assessment_narrative(row);
    size_t i;

    json_array_append_new(out, json_pack("{s:[s],s:s,s:s}", "type", "Evidence", "name",
                                         "How this was assessed", "narrative",
                                         narrative ? narrative : ""));
    free(narrative);
    json_array_foreach(json_object_get(row, "evidence"), i, e)
    {
        char desc[400];
        snprintf(desc, sizeof desc, "%s%s%s", str_or(e, "media_type", ""),
                 str(e, "sha256") ? ", sha256 " : "", str_or(e, "sha256", ""));
        json_t *item = json_pack("{s:[s],s:s,s:s,s:s}", "type", "Evidence", "name",
                                 str_or(e, "title", "evidence"), "genre",
                                 str_or(e, "kind", "other"), "description", desc);
        if (item && str(e, "url"))
            json_object_set_new(item, "id", json_string(str(e, "url")));
        json_array_append_new(out, item);
    }
    json_array_foreach(json_object_get(ach, "members"), i, e)
    {
        json_t *item = json_pack("{s:[s],s:s,s:s}", "type", "Evidence", "name",
                                 str_or(e, "title", "member"), "genre", "Open Badge");
        if (item && str(e, "badge_id"))
            json_object_set_new(item, "id", url(cfg, "/v1/awards/", str(e, "badge_id")));
        json_array_append_new(out, item);
    }
    return out;
}

static char *criteria_narrative(const json_t *ach)
{
    char *text = NULL;
    size_t len = 0, i;
    FILE *f = open_memstream(&text, &len);
    json_t *m;
    if (!f)
        return NULL;
    if (str(ach, "kind") && strcmp(str(ach, "kind"), "stack") == 0) {
        fprintf(f, "Hold every one of these credentials:");
        json_array_foreach(json_object_get(ach, "members"), i, m)
            fprintf(f, " %zu. %s.", i + 1, str_or(m, "title", "?"));
    } else {
        json_int_t min = json_integer_value(json_object_get(ach, "min_level_each"));
        json_t *c0 = json_array_get(json_object_get(ach, "criteria"), 0);
        const char *label = level_label(json_object_get(c0, "levels"), min);
        fprintf(f,
                "Submit classroom evidence that trained assessors score at level %lld%s%s%s or "
                "higher on every criterion of the rubric \"%s\".",
                (long long)min, label ? " (" : "", label ? label : "", label ? ")" : "",
                str_or(ach, "rubric_title", "rubric"));
    }
    fclose(f);
    return text;
}

json_t *badge_achievement(const struct config *cfg, const json_t *ach)
{
    const char *title = str(ach, "title"), *kind = str(ach, "kind");
    json_t *achievement = NULL, *ach_id;
    char *narrative;

    if (!title || !kind || !str(ach, "id"))
        return NULL;
    ach_id = url(cfg, "/v1/achievements/", str(ach, "id"));
    narrative = criteria_narrative(ach);
    if (ach_id && narrative)
        achievement = json_pack(
            "{s:O,s:[s],s:s,s:s,s:s,s:{s:s},s:o}", "id", ach_id, "type", "Achievement",
            "achievementType", strcmp(kind, "stack") == 0 ? "Certificate" : "MicroCredential",
            "name", title, "description", str_or(ach, "description", title), "criteria",
            "narrative", narrative, "creator", badge_issuer_profile(cfg));
    if (achievement && strcmp(kind, "credential") == 0)
        json_object_set_new(achievement, "resultDescription",
                            result_descriptions(json_string_value(ach_id), ach));
    free(narrative);
    json_decref(ach_id);
    return achievement;
}

json_t *badge_credential(const struct config *cfg, const json_t *row)
{
    const json_t *ach = json_object_get(row, "achievement");
    const char *id = str(row, "id"), *title = str(ach, "title"), *hash = str(row, "identity_hash");
    json_t *cred = NULL, *achievement = NULL, *subject = NULL;
    const char *ach_id;
    char hashed[80];

    if (!id || !title || !hash || !str(row, "issued_at"))
        return NULL;
    achievement = badge_achievement(cfg, ach);
    if (!achievement)
        return NULL;
    ach_id = json_string_value(json_object_get(achievement, "id"));
    snprintf(hashed, sizeof hashed, "sha256$%s", hash);
    subject = json_pack("{s:[s],s:[{s:s,s:s,s:s,s:b,s:s},{s:s,s:s,s:s,s:b}],s:O}", "type",
                        "AchievementSubject", "identifier", "type", "IdentityObject",
                        "identityHash", hashed, "identityType", "emailAddress", "hashed", 1, "salt",
                        str_or(row, "salt", ""), "type", "IdentityObject", "identityHash",
                        str_or(row, "earner_name", "?"), "identityType", "name", "hashed", 0,
                        "achievement", achievement);
    if (subject && strcmp(str(ach, "kind"), "credential") == 0)
        json_object_set_new(subject, "result", results(ach_id, row));
    cred = json_pack("{s:[s,s],s:o,s:[s,s],s:s,s:s,s:o,s:s,s:o,s:o,s:{s:o,s:s}}", "@context",
                     BADGE_CONTEXT_VC, BADGE_CONTEXT_OB, "id", url(cfg, "/v1/awards/", id), "type",
                     "VerifiableCredential", "OpenBadgeCredential", "name", title, "description",
                     str_or(ach, "description", title), "issuer", badge_issuer_profile(cfg),
                     "validFrom", str(row, "issued_at"), "credentialSubject", subject, "evidence",
                     evidence(cfg, row), "credentialStatus", "id",
                     url(cfg, "/v1/issuer/revocations", NULL), "type", "1EdTechRevocationList");
    subject = NULL; /* owned by cred (json_pack's "o" steals, even on failure) */
    if (cred && str(row, "valid_until"))
        json_object_set_new(cred, "validUntil", json_string(str(row, "valid_until")));
    json_decref(achievement);
    return cred;
}

json_t *badge_jwt_header(const struct config *cfg, const char *kid)
{
    return json_pack("{s:s,s:o,s:s}", "alg", "RS256", "kid", url(cfg, "/v1/keys/", kid), "typ",
                     "JWT");
}

json_t *badge_jwt_payload(const json_t *credential, const json_t *row)
{
    json_t *p = json_deep_copy(credential);
    json_t *issuer = json_object_get(credential, "issuer");
    json_t *ids = json_object_get(json_object_get(credential, "credentialSubject"), "identifier");
    if (!p)
        return NULL;
    json_object_set(p, "iss", json_object_get(issuer, "id"));
    json_object_set(p, "jti", json_object_get(credential, "id"));
    json_object_set(p, "sub", json_object_get(json_array_get(ids, 0), "identityHash"));
    json_object_set(p, "nbf", json_object_get(row, "nbf"));
    if (json_is_integer(json_object_get(row, "exp")))
        json_object_set(p, "exp", json_object_get(row, "exp"));
    return p;
}

static void row_kv(FILE *f, const char *label, const char *value)
{
    fputs("<tr><th scope=\"row\">", f);
    html_escape(f, label);
    fputs("</th><td>", f);
    html_escape(f, value);
    fputs("</td></tr>\n", f);
}

/* A link only to http(s) URLs (never javascript: or data:); anything else is text. */
static void html_link(FILE *f, const char *href, const char *text)
{
    if (strncmp(href, "https://", 8) != 0 && strncmp(href, "http://", 7) != 0) {
        html_escape(f, text);
        return;
    }
    fputs("<a href=\"", f);
    html_escape(f, href);
    fputs("\">", f);
    html_escape(f, text);
    fputs("</a>", f);
}

/* The name the earner chose to show (the identifier of type "name"). */
static const char *earner_name(const json_t *subject)
{
    size_t i;
    json_t *id;
    json_array_foreach(json_object_get(subject, "identifier"), i, id)
    {
        const char *t = str(id, "identityType");
        if (t && strcmp(t, "name") == 0)
            return str(id, "identityHash");
    }
    return "?";
}

static const char *level_name(const json_t *rds, const char *rd_id, const char *level_id,
                              const char **criterion)
{
    size_t i, j;
    json_t *rd, *lv;
    *criterion = rd_id;
    json_array_foreach(rds, i, rd)
    {
        if (!str(rd, "id") || !rd_id || strcmp(str(rd, "id"), rd_id) != 0)
            continue;
        *criterion = str_or(rd, "name", rd_id);
        json_array_foreach(json_object_get(rd, "rubricCriterionLevel"), j, lv)
        {
            if (str(lv, "id") && level_id && strcmp(str(lv, "id"), level_id) == 0)
                return str(lv, "name");
        }
    }
    return level_id;
}

char *badge_html(const struct config *cfg, const json_t *row, const json_t *payload,
                 const char *check, size_t *len)
{
    char *html = NULL, href[1200];
    FILE *f = open_memstream(&html, len);
    const json_t *subject = json_object_get(payload, "credentialSubject");
    const json_t *ach = json_object_get(subject, "achievement");
    const json_t *issuer = json_object_get(payload, "issuer");
    const json_t *rds = json_object_get(ach, "resultDescription"), *res, *ev;
    const char *status = str_or(row, "status", "valid");
    size_t i;

    if (!f)
        return NULL;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
          f);
    html_escape(f, str_or(payload, "name", "Badge"));
    fputs(" - badge verification</title>\n</head>\n<body>\n<main>\n<h1>", f);
    html_escape(f, str_or(payload, "name", "Badge"));
    fputs("</h1>\n<p id=\"status\"><strong>Status: ", f);
    html_escape(f, strcmp(status, "revoked") == 0   ? "REVOKED: the issuer withdrew this badge"
                   : strcmp(status, "expired") == 0 ? "EXPIRED: this badge is past its validity"
                                                    : "VALID");
    fputs("</strong></p>\n<table>\n", f);
    row_kv(f, "Earned by", earner_name(subject));
    row_kv(f, "Issued by", str_or(issuer, "name", "?"));
    row_kv(f, "Issued on", str_or(payload, "validFrom", "?"));
    if (str(payload, "validUntil"))
        row_kv(f, "Valid until", str(payload, "validUntil"));
    if (str(row, "revoked_at"))
        row_kv(f, "Revoked on", str(row, "revoked_at"));
    row_kv(f, "Credential id", str_or(payload, "id", "?"));
    fputs("</table>\n<h2>What it certifies</h2>\n<p>", f);
    html_escape(f, str_or(ach, "description", ""));
    fputs("</p>\n<p>", f);
    html_escape(f, str_or(json_object_get(ach, "criteria"), "narrative", ""));
    fputs("</p>\n", f);
    if (json_array_size(json_object_get(subject, "result")) > 0) {
        fputs("<h2>Rubric results</h2>\n<table>\n<tr><th scope=\"col\">Criterion</th>"
              "<th scope=\"col\">Level reached</th></tr>\n",
              f);
        json_array_foreach(json_object_get(subject, "result"), i, res)
        {
            const char *criterion;
            const char *level = level_name(rds, str(res, "resultDescription"),
                                           str(res, "achievedLevel"), &criterion);
            row_kv(f, criterion ? criterion : "?", level ? level : "?");
        }
        fputs("</table>\n", f);
    }
    fputs("<h2>Evidence</h2>\n<ul>\n", f);
    json_array_foreach(json_object_get(payload, "evidence"), i, ev)
    {
        fputs("<li><strong>", f);
        if (str(ev, "id"))
            html_link(f, str(ev, "id"), str_or(ev, "name", "evidence"));
        else
            html_escape(f, str_or(ev, "name", "evidence"));
        fputs("</strong>", f);
        if (str(ev, "narrative") || str(ev, "description")) {
            fputs(": ", f);
            html_escape(f, str(ev, "narrative") ? str(ev, "narrative") : str(ev, "description"));
        }
        fputs("</li>\n", f);
    }
    fputs("</ul>\n<h2>How this page checked the badge</h2>\n<p>", f);
    html_escape(f, check);
    fputs("</p>\n<p>Check it yourself: download the signed badge (", f);
    snprintf(href, sizeof href, "%s", str_or(payload, "id", ""));
    html_escape(f, "GET ");
    html_escape(f, href);
    html_escape(f, " with Accept: application/vc+jwt), the issuer's keys (");
    snprintf(href, sizeof href, "%s/.well-known/jwks.json", cfg->public_url);
    html_link(f, href, href);
    fputs(") and the revocation list (", f);
    snprintf(href, sizeof href, "%s/v1/issuer/revocations", cfg->public_url);
    html_link(f, href, href);
    fputs("), then verify the RS256 signature with any JOSE library.</p>\n"
          "</main>\n</body>\n</html>\n",
          f);
    if (fclose(f) != 0) {
        free(html);
        return NULL;
    }
    return html;
}

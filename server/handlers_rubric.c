/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handlers_rubric.c - POST /v1/rubrics.
 *
 * The body is read into rubric/'s structs (type errors answer 400 naming the
 * field), validated by rubric_validate() (422 with its sentence), levels
 * sorted, and the canonical JSON stored: what the database keeps is always a
 * rubric the C model accepts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "rubric.h"

struct rubric_state {
    struct rubric rubric;
    json_t *doc; /* owns every string the rubric points to */
    char *canonical;
};

static void rubric_state_free(void *arg)
{
    struct rubric_state *st = arg;
    if (!st)
        return;
    for (size_t i = 0; i < st->rubric.n_criteria; i++)
        free(st->rubric.criteria[i].levels);
    free(st->rubric.criteria);
    json_decref(st->doc);
    free(st->canonical);
    free(st);
}

/* Optional string member: NULL when absent or null; -1 when present but not a string. */
static int optional_string(json_t *obj, const char *name, const char **out)
{
    json_t *v = json_object_get(obj, name);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    *out = json_string_value(v);
    return 0;
}

/* Fills st->rubric from st->doc. Returns 0, or -1 after answering 400. */
static int read_rubric(struct request *r, struct rubric_state *st)
{
    json_t *criteria = json_object_get(st->doc, "criteria");
    size_t n;

    st->rubric.title = json_string_value(json_object_get(st->doc, "title"));
    if (!st->rubric.title) {
        reply_error(r, 400, "bad_request", "title must be a string");
        return -1;
    }
    if (optional_string(st->doc, "description", &st->rubric.description) < 0) {
        reply_error(r, 400, "bad_request", "description must be a string");
        return -1;
    }
    if (!json_is_array(criteria)) {
        reply_error(r, 400, "bad_request", "criteria must be an array");
        return -1;
    }
    n = json_array_size(criteria);
    if (n > RUBRIC_MAX_CRITERIA) {
        reply_error(r, 422, "invalid_rubric", "a rubric needs 1 to %d criteria, got %zu",
                    RUBRIC_MAX_CRITERIA, n);
        return -1;
    }
    st->rubric.criteria = calloc(n ? n : 1, sizeof *st->rubric.criteria);
    if (!st->rubric.criteria) {
        reply_error(r, 503, "busy", "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(criteria, i), *levels;
        struct rubric_criterion *rc = &st->rubric.criteria[i];
        size_t nl;
        st->rubric.n_criteria = i + 1;
        if (!json_is_object(c)) {
            reply_error(r, 400, "bad_request", "criteria[%zu] must be an object", i);
            return -1;
        }
        rc->key = json_string_value(json_object_get(c, "key"));
        rc->title = json_string_value(json_object_get(c, "title"));
        if (!rc->key || !rc->title || optional_string(c, "description", &rc->description) < 0) {
            reply_error(r, 400, "bad_request",
                        "criteria[%zu] needs string key and title (and description, if given)", i);
            return -1;
        }
        levels = json_object_get(c, "levels");
        if (!json_is_array(levels)) {
            reply_error(r, 400, "bad_request", "criteria[%zu].levels must be an array", i);
            return -1;
        }
        nl = json_array_size(levels);
        if (nl > RUBRIC_MAX_LEVELS) {
            reply_error(r, 422, "invalid_rubric", "criterion '%s': needs 2 to %d levels, got %zu",
                        rc->key, RUBRIC_MAX_LEVELS, nl);
            return -1;
        }
        rc->levels = calloc(nl ? nl : 1, sizeof *rc->levels);
        if (!rc->levels) {
            reply_error(r, 503, "busy", "out of memory");
            return -1;
        }
        rc->n_levels = nl;
        for (size_t k = 0; k < nl; k++) {
            json_t *l = json_array_get(levels, k);
            json_t *value = json_object_get(l, "value");
            rc->levels[k].label = json_string_value(json_object_get(l, "label"));
            if (!json_is_integer(value) || !rc->levels[k].label ||
                optional_string(l, "description", &rc->levels[k].description) < 0) {
                reply_error(r, 400, "bad_request",
                            "criteria[%zu].levels[%zu] needs an integer value and a string label "
                            "(and a string description, if given)",
                            i, k);
                return -1;
            }
            if (json_integer_value(value) < RUBRIC_LEVEL_MIN ||
                json_integer_value(value) > RUBRIC_LEVEL_MAX) {
                reply_error(r, 422, "invalid_rubric",
                            "criterion '%s': level value %lld is outside %d..%d", rc->key,
                            (long long)json_integer_value(value), RUBRIC_LEVEL_MIN,
                            RUBRIC_LEVEL_MAX);
                return -1;
            }
            rc->levels[k].value = (int)json_integer_value(value);
        }
    }
    return 0;
}

static json_t *canonical_rubric(const struct rubric *rb)
{
    json_t *criteria = json_array();
    for (size_t i = 0; criteria && i < rb->n_criteria; i++) {
        const struct rubric_criterion *c = &rb->criteria[i];
        json_t *levels = json_array();
        for (size_t k = 0; levels && k < c->n_levels; k++)
            json_array_append_new(levels, json_pack("{s:i,s:s,s:s*}", "value", c->levels[k].value,
                                                    "label", c->levels[k].label, "description",
                                                    c->levels[k].description));
        json_array_append_new(criteria,
                              json_pack("{s:s,s:s,s:s?,s:o}", "key", c->key, "title", c->title,
                                        "description", c->description, "levels", levels));
    }
    return json_pack("{s:s,s:s?,s:o}", "title", rb->title, "description", rb->description,
                     "criteria", criteria);
}

void handle_rubric_create(struct request *r)
{
    struct rubric_state *st = calloc(1, sizeof *st);
    char err[300];
    json_t *canonical;

    if (!st) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    r->state = st;
    r->state_free = rubric_state_free;
    st->doc = json_loadb(r->body, r->body_len, 0, NULL);
    if (!st->doc) {
        reply_error(r, 400, "invalid_json", "the body is not valid JSON");
        return;
    }
    if (read_rubric(r, st) < 0)
        return; /* answered (and r freed) */
    if (!rubric_validate(&st->rubric, err, sizeof err)) {
        reply_error(r, 422, "invalid_rubric", "%s", err);
        return;
    }
    rubric_sort_levels(&st->rubric);
    canonical = canonical_rubric(&st->rubric);
    st->canonical = canonical ? json_dumps(canonical, JSON_COMPACT) : NULL;
    json_decref(canonical);
    if (!st->canonical) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    r->params[1] = st->canonical;
    router_call(r, STMT_RUBRIC_CREATE, 201);
}

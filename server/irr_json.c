/* SPDX-License-Identifier: Apache-2.0 */
/* irr_json.c - rendering reliability results as JSON (see irr_json.h). */
#include <math.h>

#include "irr_json.h"

/* A real, or null when not finite (JSON has no NaN or infinity, and
 * json_real would fail on them as if out of memory). */
static json_t *json_finite(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* A number, or null when not finite. Integral values print as integers. */
static json_t *json_num(double v)
{
    if (!isfinite(v))
        return json_null();
    if (v == floor(v) && fabs(v) < 9e15)
        return json_integer((json_int_t)v);
    return json_real(v);
}

json_t *irr_metric_json(const irr_metric *m, int with_ci)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = 0;
    if (m->defined) {
        bad |= json_object_set_new(o, "value", json_finite(m->value));
    } else {
        bad |= json_object_set_new(o, "value", json_null());
        bad |= json_object_set_new(o, "reason", json_string(m->reason));
    }
    if (with_ci && m->defined) {
        bad |= json_object_set_new(o, "se", json_finite(m->se));
        if (m->has_ci) {
            bad |= json_object_set_new(
                o, "ci", json_pack("[oo]", json_finite(m->ci_lo), json_finite(m->ci_hi)));
            bad |= json_object_set_new(o, "ci_method", json_string(m->ci_method));
        } else {
            bad |= json_object_set_new(o, "ci", json_null());
            bad |= json_object_set_new(o, "ci_reason", json_string(m->ci_reason));
        }
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *rater_json(const irr_rater_stats *s)
{
    json_t *name = json_stringn(s->rater, s->rater_len);
    if (!name)
        return NULL; /* not UTF-8: the caller reports it */
    return json_pack("{s:o, s:I, s:o, s:I, s:o, s:o, s:o}", "rater", name, "n_ratings",
                     (json_int_t)s->n_ratings, "mean", json_num(s->mean), "n_compared",
                     (json_int_t)s->n_compared, "severity", json_num(s->severity), "exact",
                     json_num(s->exact), "adjacent", json_num(s->adjacent));
}

/* Children are attached to root as soon as they exist, so on any failure
 * freeing root frees everything. */
json_t *irr_result_json(const irr_result *r, const irr_options *o, int *bad_name)
{
    json_t *root = json_object();
    json_t *levels = json_array(), *metrics = json_object();
    if (!root || json_object_set_new(root, "n_units", json_integer((json_int_t)r->n_units)) ||
        json_object_set_new(root, "n_raters", json_integer((json_int_t)r->n_raters)) ||
        json_object_set_new(root, "n_ratings", json_integer((json_int_t)r->n_ratings)) ||
        json_object_set_new(root, "levels", levels) ||
        json_object_set_new(root, "metrics", metrics)) {
        if (!root) {
            json_decref(levels);
            json_decref(metrics);
        }
        goto fail;
    }
    for (size_t i = 0; i < r->n_levels; i++)
        if (json_array_append_new(levels, json_num(r->levels[i])))
            goto fail;
    for (int i = 0; i < IRR_METRIC_COUNT; i++)
        if (json_object_set_new(metrics, irr_metric_name((irr_metric_id)i),
                                irr_metric_json(&r->metrics[i], o->ci)))
            goto fail;
    if (o->by_rater || o->reference) {
        json_t *raters = json_array();
        if (json_object_set_new(root, "severity_against",
                                json_string(o->reference ? o->reference : "others")) ||
            json_object_set_new(root, "raters", raters))
            goto fail;
        for (size_t i = 0; i < r->n_rater_stats; i++) {
            json_t *row = rater_json(&r->raters[i]);
            if (!row) {
                *bad_name = 1;
                goto fail;
            }
            if (json_array_append_new(raters, row))
                goto fail;
        }
    }
    return root;
fail:
    json_decref(root);
    return NULL;
}

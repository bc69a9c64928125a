/* SPDX-License-Identifier: Apache-2.0 */
/*
 * irr_json.h - an irr_result as JSON, the one shape that `accord irr` prints
 * and the agreement report serves.
 */
#ifndef ACCORD_IRR_JSON_H
#define ACCORD_IRR_JSON_H

#include <jansson.h>

#include "irr.h"

/*
 * {"n_units","n_raters","n_ratings","levels","metrics":{name:{value|reason,
 * se?,ci?...}},"raters"?}. Metrics carry se/ci when o->ci; raters when
 * o->by_rater or o->reference. Returns a new reference, or NULL when out of
 * memory or (then *bad_name = 1) a rater name is not UTF-8.
 */
json_t *irr_result_json(const irr_result *r, const irr_options *o, int *bad_name);

/* One metric as JSON ({"value":…} or {"value":null,"reason":…}, plus se/ci when with_ci). */
json_t *irr_metric_json(const irr_metric *m, int with_ci);

#endif

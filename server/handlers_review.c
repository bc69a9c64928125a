/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handlers_review.c - POST /v1/reviews/{id}/scores.
 *
 * One SQL call scores, decides the verdict or the next stage, and audits.
 * When that score completed a peer/expert pair on a low-stakes credential,
 * the function's answer carries "_reliability_due": the server strips such
 * internal keys, answers the assessor, and only then recomputes the
 * reliability estimate (reliability.h), so the assessor never waits for it.
 */
#include <string.h>

#include "reliability.h"
#include "router.h"

static void on_scored(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    json_t *doc, *due;
    char credential[37] = "";
    const char *key;
    void *tmp;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    if (!res->value || !strstr(res->value, "\"_")) {
        reply_json_text(r, 200, res->value ? res->value : "{}");
        return;
    }
    doc = json_loads(res->value, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        reply_json_text(r, 200, res->value);
        return;
    }
    due = json_object_get(doc, "_reliability_due");
    if (json_is_string(due) && strlen(json_string_value(due)) == 36)
        memcpy(credential, json_string_value(due), 37);
    json_object_foreach_safe(doc, tmp, key, due)
    {
        if (key[0] == '_')
            json_object_del(doc, key);
    }
    {
        struct worker *w = r->w;
        reply_json(r, 200, doc); /* frees r */
        if (credential[0])
            reliability_recompute(w, credential);
    }
}

void handle_review_score(struct request *r)
{
    request_query(r, STMT_REVIEW_SCORE, on_scored);
}

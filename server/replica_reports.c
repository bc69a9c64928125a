/* SPDX-License-Identifier: Apache-2.0 */
/*
 * replica_reports.c - GET /v1/reports/assessors and /v1/reports/routing: plain
 * SQL answers, read from the replica while it may serve (replica.h), else
 * from the primary, as the agreement report and ratings.csv are.
 */
#include <stdlib.h>

#include "replica.h"
#include "router.h"

static void on_report_json(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    if (res->status != DB_OK || !res->value) {
        reply_db_failure(r, res);
        return;
    }
    reply_json_text(r, 200, res->value);
}

static void plain_report(struct request *r, const char *report, enum stmt_id direct,
                         enum stmt_id data)
{
    enum replica_source *src = calloc(1, sizeof *src);
    struct db_result res = {.status = DB_BUSY};

    if (!src) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    r->state = src;
    r->state_free = free;
    res.status = replica_query(r, src, report, direct, data, on_report_json);
    if (res.status != DB_OK)
        reply_db_failure(r, &res);
}

void handle_report_assessors(struct request *r)
{
    plain_report(r, "assessors", STMT_REPORT_ASSESSORS, STMT_REPLICA_ASSESSORS_DATA);
}

void handle_report_routing(struct request *r)
{
    plain_report(r, "routing", STMT_REPORT_ROUTING, STMT_REPLICA_ROUTING_DATA);
}

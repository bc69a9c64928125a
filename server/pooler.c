/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pooler.c - session settings as role defaults, for a transaction pooler
 * (see pooler.h). The values are the ones pgpool.c's SET statements and
 * config.c's PGOPTIONS give a direct connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "pooler.h"

static int exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        log_error("pooler settings: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

int pooler_apply_settings(const struct config *cfg)
{
    PGconn *c = PQconnectdb(config_direct_url(cfg));
    PGresult *r = NULL;
    char *role = NULL, *db = NULL;
    char value[32], sql[600];
    int rc = -1;

    if (PQstatus(c) != CONNECTION_OK) {
        log_error("pooler settings: cannot connect to --direct-database-url: %s",
                  PQerrorMessage(c));
        goto cleanup;
    }
    r = PQexec(c, "select current_user, current_database()");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        log_error("pooler settings: %s", PQresultErrorMessage(r));
        goto cleanup;
    }
    role = PQescapeIdentifier(c, PQgetvalue(r, 0, 0), strlen(PQgetvalue(r, 0, 0)));
    db = PQescapeIdentifier(c, PQgetvalue(r, 0, 1), strlen(PQgetvalue(r, 0, 1)));
    if (!role || !db)
        goto cleanup;
    /* Each is a whole statement of its own: ALTER ROLE takes no parameters. */
    const char *fixed[][2] = {{"statement_timeout", "'30s'"},
                              {"idle_in_transaction_session_timeout", "'60s'"}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        snprintf(sql, sizeof sql, "ALTER ROLE %s IN DATABASE %s SET %s = %s", role, db, fixed[i][0],
                 fixed[i][1]);
        if (exec_ok(c, sql) < 0)
            goto cleanup;
    }
    snprintf(value, sizeof value, "%ld", cfg->max_releases);
    snprintf(sql, sizeof sql, "ALTER ROLE %s IN DATABASE %s SET accord.max_releases = '%s'", role,
             db, value);
    if (exec_ok(c, sql) < 0)
        goto cleanup;
    if (cfg->random_seed >= 0)
        snprintf(sql, sizeof sql, "ALTER ROLE %s IN DATABASE %s SET accord.random_seed = '%ld'",
                 role, db, cfg->random_seed);
    else
        snprintf(sql, sizeof sql, "ALTER ROLE %s IN DATABASE %s RESET accord.random_seed", role,
                 db);
    if (exec_ok(c, sql) < 0)
        goto cleanup;
    log_info("behind a transaction pooler: statements unprepared; session settings are defaults "
             "of role %s in database %s (every server of this database shares them)",
             PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
    rc = 0;
cleanup:
    PQfreemem(role);
    PQfreemem(db);
    PQclear(r);
    PQfinish(c);
    return rc;
}

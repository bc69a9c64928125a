/* SPDX-License-Identifier: Apache-2.0 */
/*
 * migrate.c - `accord migrate`, and migrations at `accord serve` start.
 *
 * Blocking libpq is right here: this runs before any event loop exists.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "commands.h"
#include "log.h"
#include "migrate.h"
#include "migrations.h"

/* An arbitrary constant: the advisory lock that serialises migrators. */
#define MIGRATE_LOCK_KEY 7277323

static int exec_ok(PGconn *c, const char *sql, const char *what)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        log_error("migrate: %s: %s", what, PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

static int is_applied(PGconn *c, const char *version)
{
    const char *params[1] = {version};
    PGresult *r = PQexecParams(c, "select 1 from schema_migrations where version = $1", 1, NULL,
                               params, NULL, NULL, 0);
    int applied = PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r) > 0 : -1;
    if (applied < 0)
        log_error("migrate: %s", PQresultErrorMessage(r));
    PQclear(r);
    return applied;
}

static int record(PGconn *c, const char *version)
{
    const char *params[1] = {version};
    PGresult *r = PQexecParams(c, "insert into schema_migrations (version) values ($1)", 1, NULL,
                               params, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        log_error("migrate: recording %s: %s", version, PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

int migrate_apply(const char *conninfo, bool verbose)
{
    PGconn *c = PQconnectdb(conninfo);
    int applied = 0, rc = -1;
    char lock_sql[96];

    if (PQstatus(c) != CONNECTION_OK) {
        log_error("migrate: cannot connect to the database: %s", PQerrorMessage(c));
        goto cleanup;
    }
    if (exec_ok(c, "SET client_min_messages = warning; SET statement_timeout = 0", "settings") < 0)
        goto cleanup;
    snprintf(lock_sql, sizeof lock_sql, "select pg_advisory_lock(%d)", MIGRATE_LOCK_KEY);
    if (exec_ok(c, lock_sql, "taking the migration lock") < 0)
        goto cleanup;
    if (exec_ok(c,
                "create table if not exists schema_migrations ("
                " version text primary key,"
                " applied_at timestamptz not null default now())",
                "creating schema_migrations") < 0)
        goto cleanup;
    for (int i = 0; i < migration_count; i++) {
        const struct migration *m = &migrations[i];
        int done = is_applied(c, m->version);
        if (done < 0)
            goto cleanup;
        if (done)
            continue;
        if (exec_ok(c, "BEGIN", "begin") < 0)
            goto cleanup;
        if (exec_ok(c, m->sql, m->version) < 0 || record(c, m->version) < 0 ||
            exec_ok(c, "COMMIT", "commit") < 0) {
            PQclear(PQexec(c, "ROLLBACK"));
            goto cleanup;
        }
        applied++;
        if (verbose)
            printf("applied %s\n", m->version);
    }
    rc = applied;
cleanup:
    PQfinish(c);
    return rc;
}

static const char migrate_usage[] =
    "usage: accord migrate [--database-url URL]\n"
    "Applies the migrations compiled into this binary that the database lacks\n"
    "(each in its own transaction, under an advisory lock), then exits.\n"
    "  --database-url URL   DATABASE_URL   (required; libpq conninfo or URI; when\n"
    "                       ACCORD_DIRECT_DATABASE_URL is set, that one: not a pooler)\n"
    "  --help               this text\n";

int cmd_migrate(int argc, char **argv)
{
    const char *url = getenv("DATABASE_URL"), *direct = getenv("ACCORD_DIRECT_DATABASE_URL");
    static const struct option opts[] = {{"database-url", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c, n;

    /* the advisory lock is the session's: never through a transaction pooler */
    if (direct && *direct)
        url = direct;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(migrate_usage, stdout);
            return 0;
        }
        if (c != 'd') {
            fputs(migrate_usage, stderr);
            return 2;
        }
        url = optarg;
    }
    if (optind < argc) {
        fprintf(stderr, "accord migrate: unexpected argument '%s'\n", argv[optind]);
        fputs(migrate_usage, stderr);
        return 2;
    }
    if (!url || !*url) {
        fprintf(stderr, "accord migrate: DATABASE_URL is not set (or pass --database-url)\n");
        return 2;
    }
    n = migrate_apply(url, true);
    if (n < 0)
        return 1;
    printf("%d migration%s applied; the schema is up to date\n", n, n == 1 ? "" : "s");
    return 0;
}

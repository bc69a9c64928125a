/*
 * cmd_admin.c - `accord user add` and `accord token create`: bootstrap an
 * administrator (or anyone) straight from the shell, with the database
 * credentials standing in for an API token.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "auth.h"
#include "commands.h"

static PGconn *connect_or_complain(const char *cmd)
{
    const char *url = getenv("DATABASE_URL");
    PGconn *c;
    if (!url || !*url) {
        fprintf(stderr, "accord %s: DATABASE_URL is not set\n", cmd);
        return NULL;
    }
    c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "accord %s: cannot connect: %s", cmd, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Runs one single-value query; prints the value on success. Returns an exit status. */
static int run_and_print(PGconn *c, const char *cmd, const char *sql, int n,
                         const char *const *params, const char *print_instead)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        fprintf(stderr, "accord %s: %s\n", cmd, msg ? msg : PQerrorMessage(c));
        rc = 1;
    } else {
        printf("%s\n", print_instead ? print_instead : PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return rc;
}

int cmd_user(int argc, char **argv)
{
    static const struct option opts[] = {{"email", required_argument, NULL, 'e'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"roles", required_argument, NULL, 'r'},
                                         {"org", required_argument, NULL, 'o'},
                                         {NULL, 0, NULL, 0}};
    const char *email = NULL, *name = NULL, *roles = NULL, *org = NULL;
    const char *params[4];
    PGconn *c;
    int ch, rc;

    if (argc < 2 || strcmp(argv[1], "add") != 0)
        goto usage;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'e':
            email = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'r':
            roles = optarg;
            break;
        case 'o':
            org = optarg;
            break;
        default:
            goto usage;
        }
    }
    if (!email || !roles || optind != argc)
        goto usage;
    if (!(c = connect_or_complain("user add")))
        return 1;
    params[0] = email;
    params[1] = name ? name : email;
    params[2] = roles;
    params[3] = org;
    rc = run_and_print(c, "user add", "select admin_user_add($1, $2, string_to_array($3, ','), $4)",
                       4, params, NULL);
    PQfinish(c);
    return rc;
usage:
    fprintf(stderr, "usage: accord user add --email E [--name N] --roles r1,r2 [--org O]\n"
                    "roles: earner, assessor, expert, lead, admin\n");
    return 2;
}

int cmd_token(int argc, char **argv)
{
    static const struct option opts[] = {{"email", required_argument, NULL, 'e'},
                                         {NULL, 0, NULL, 0}};
    const char *email = NULL, *params[2];
    char token[AUTH_TOKEN_LEN + 1], hash[AUTH_HASH_LEN + 1];
    PGconn *c;
    int ch, rc;

    if (argc < 2 || strcmp(argv[1], "create") != 0)
        goto usage;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch != 'e')
            goto usage;
        email = optarg;
    }
    if (!email || optind != argc)
        goto usage;
    if (auth_token_generate(token) < 0 || auth_sha256_hex(token, strlen(token), hash) < 0) {
        fprintf(stderr, "accord token create: the random generator failed\n");
        return 1;
    }
    if (!(c = connect_or_complain("token create")))
        return 1;
    params[0] = email;
    params[1] = hash;
    /* Shown once: only the hash is stored. */
    rc = run_and_print(c, "token create", "select admin_token_add($1, $2)", 2, params, token);
    PQfinish(c);
    return rc;
usage:
    fprintf(stderr, "usage: accord token create --email E\n");
    return 2;
}

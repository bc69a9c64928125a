/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_admin.c - administration from the shell, with the database credentials
 * standing in for an API token: bootstrap the first administrator, give
 * someone a password or an invitation link, issue and revoke tokens.
 *
 *   accord user add --email E [--name N] --roles r1,r2 [--org O]
 *   accord user password --email E          (the password on standard input)
 *   accord user invite --email E [--name N] --roles r1,r2 [--org O] [--public-url URL]
 *   accord token create --email E
 *   accord token revoke --id TOKEN_ID | --email E   (every token of that user)
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "auth.h"
#include "commands.h"
#include "password.h"

static const char user_usage[] =
    "usage: accord user add --email E [--name N] --roles r1,r2 [--org O]\n"
    "       accord user invite --email E [--name N] [--roles r1,r2] [--org O]\n"
    "                          [--public-url URL]   (prints a one-time link, 7 days)\n"
    "       accord user password --email E   (reads the password from stdin)\n"
    "Works straight on the database (DATABASE_URL).\n"
    "roles: earner, assessor, expert, lead, admin\n";

static const char token_usage[] =
    "usage: accord token create --email E\n"
    "       accord token revoke --id TOKEN_ID | --email E (all of theirs)\n"
    "Works straight on the database (DATABASE_URL); a new token is shown once:\n"
    "only its SHA-256 is stored.\n";

/* --help or -h anywhere before "--". */
static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

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

/*
 * Reads a password from standard input: one line (the newline is not part of
 * it), or everything up to end of file. Echo is off when it is a terminal.
 * Returns the length, or -1.
 */
static long read_password(char *buf, size_t cap)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    size_t len = 0;
    int ch;

    if (tty) {
        fprintf(stderr, "new password (at least %d characters): ", PASSWORD_MIN_CHARS);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    while ((ch = getchar()) != EOF && ch != '\n') {
        if (len + 1 >= cap) {
            len = cap; /* too long */
            break;
        }
        buf[len++] = (char)ch;
    }
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (len >= cap)
        return -1;
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    buf[len] = '\0';
    return (long)len;
}

static int user_password(int argc, char **argv)
{
    static const struct option opts[] = {{"email", required_argument, NULL, 'e'},
                                         {NULL, 0, NULL, 0}};
    const char *email = NULL, *problem, *params[2];
    char pw[PASSWORD_MAX_BYTES + 2], hash[PASSWORD_HASH_MAX];
    PGconn *c;
    long len;
    int ch, rc;

    optind = 2;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch != 'e')
            goto usage;
        email = optarg;
    }
    if (!email || optind != argc)
        goto usage;
    if (password_init() < 0) {
        fprintf(stderr, "accord user password: libsodium cannot initialise\n");
        return 1;
    }
    len = read_password(pw, sizeof pw);
    if (len < 0 || (size_t)len > PASSWORD_MAX_BYTES) {
        fprintf(stderr, "accord user password: the password is too long (at most %d bytes)\n",
                PASSWORD_MAX_BYTES);
        return 2;
    }
    problem = password_problem(pw, (size_t)len, email);
    if (problem) {
        sodium_memzero(pw, sizeof pw);
        fprintf(stderr, "accord user password: %s\n", problem);
        return 2;
    }
    rc = password_hash(pw, (size_t)len, hash);
    sodium_memzero(pw, sizeof pw);
    if (rc < 0) {
        fprintf(stderr, "accord user password: could not hash the password (out of memory?)\n");
        return 1;
    }
    if (!(c = connect_or_complain("user password")))
        return 1;
    params[0] = email;
    params[1] = hash;
    rc = run_and_print(c, "user password", "select admin_password_set($1, $2)", 2, params, NULL);
    PQfinish(c);
    return rc;
usage:
    fprintf(stderr, "usage: accord user password --email E   (reads the password from stdin)\n");
    return 2;
}

static int user_add_or_invite(int argc, char **argv, bool invite)
{
    static const struct option opts[] = {
        {"email", required_argument, NULL, 'e'},      {"name", required_argument, NULL, 'n'},
        {"roles", required_argument, NULL, 'r'},      {"org", required_argument, NULL, 'o'},
        {"public-url", required_argument, NULL, 'u'}, {NULL, 0, NULL, 0}};
    const char *email = NULL, *name = NULL, *roles = NULL, *org = NULL;
    const char *url = getenv("ACCORD_PUBLIC_URL");
    const char *params[5];
    char secret[AUTH_HASH_LEN + 1], hash[AUTH_HASH_LEN + 1], link[1200];
    unsigned char bytes[32];
    PGconn *c;
    int ch, rc;

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
        case 'u':
            if (!invite)
                return -1;
            url = optarg;
            break;
        default:
            return -1;
        }
    }
    if (!email || (!roles && !invite) || optind != argc)
        return -1;
    if (!invite) {
        if (!(c = connect_or_complain("user add")))
            return 1;
        params[0] = email;
        params[1] = name ? name : email;
        params[2] = roles;
        params[3] = org;
        rc = run_and_print(c, "user add",
                           "select admin_user_add($1, $2, string_to_array($3, ','), $4)", 4, params,
                           NULL);
        PQfinish(c);
        return rc;
    }
    if (!url || !*url)
        url = "http://127.0.0.1:8080";
    if (strlen(url) > 1000 ||
        (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        fprintf(stderr, "accord user invite: --public-url must be http(s)://...\n");
        return 2;
    }
    if (password_init() < 0)
        return 1;
    randombytes_buf(bytes, sizeof bytes);
    sodium_bin2hex(secret, sizeof secret, bytes, sizeof bytes);
    if (auth_sha256_hex(secret, strlen(secret), hash) < 0)
        return 1;
    if (!(c = connect_or_complain("user invite")))
        return 1;
    params[0] = email;
    params[1] = name;
    params[2] = roles;
    params[3] = org;
    params[4] = hash;
    snprintf(link, sizeof link, "%.*s/invite#%s",
             (int)(strlen(url) - (url[strlen(url) - 1] == '/')), url, secret);
    /* The link is printed once: only its hash is stored. */
    rc = run_and_print(c, "user invite",
                       "select admin_invitation_add($1, $2, string_to_array($3, ','), $4, $5)", 5,
                       params, link);
    PQfinish(c);
    return rc;
}

int cmd_user(int argc, char **argv)
{
    int rc = -1;
    if (wants_help(argc, argv)) {
        fputs(user_usage, stdout);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "add") == 0)
        rc = user_add_or_invite(argc, argv, false);
    else if (argc >= 2 && strcmp(argv[1], "invite") == 0)
        rc = user_add_or_invite(argc, argv, true);
    else if (argc >= 2 && strcmp(argv[1], "password") == 0)
        return user_password(argc, argv);
    if (rc >= 0)
        return rc;
    fputs(user_usage, stderr);
    return 2;
}

static int token_revoke(int argc, char **argv)
{
    static const struct option opts[] = {{"email", required_argument, NULL, 'e'},
                                         {"id", required_argument, NULL, 'i'},
                                         {NULL, 0, NULL, 0}};
    const char *email = NULL, *id = NULL, *params[2];
    PGconn *c;
    int ch, rc;

    optind = 2;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'e')
            email = optarg;
        else if (ch == 'i')
            id = optarg;
        else
            return -1;
    }
    if ((!email) == (!id) || optind != argc)
        return -1;
    if (!(c = connect_or_complain("token revoke")))
        return 1;
    params[0] = id;
    params[1] = email;
    rc = run_and_print(c, "token revoke", "select admin_token_revoke($1::uuid, $2)", 2, params,
                       NULL);
    PQfinish(c);
    return rc;
}

int cmd_token(int argc, char **argv)
{
    static const struct option opts[] = {{"email", required_argument, NULL, 'e'},
                                         {NULL, 0, NULL, 0}};
    const char *email = NULL, *params[2];
    char token[AUTH_TOKEN_LEN + 1], hash[AUTH_HASH_LEN + 1];
    PGconn *c;
    int ch, rc;

    if (wants_help(argc, argv)) {
        fputs(token_usage, stdout);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "revoke") == 0) {
        rc = token_revoke(argc, argv);
        if (rc >= 0)
            return rc;
        goto usage;
    }
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
    fputs(token_usage, stderr);
    return 2;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keys.c - signing keys at start and `accord keys rotate` (see keys.h).
 * Blocking libpq is right here: no event loop runs yet (or at all).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <uuid/uuid.h>

#include "commands.h"
#include "jws.h"
#include "keys.h"
#include "log.h"

int keys_path(const char *dir, const char *kid, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s.pem", dir, kid);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int make_key_dir(const char *dir)
{
    struct stat st;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        log_error("key directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        log_error("key directory %s is not a directory", dir);
        return -1;
    }
    if (st.st_mode & 077) {
        log_error("key directory %s is open to other users (mode %03o): chmod 700 it", dir,
                  (unsigned)(st.st_mode & 0777));
        return -1;
    }
    return 0;
}

/*
 * A new key: its file written (0600) and its id, JWK and public PEM returned
 * for the database. Returns -1 (nothing left behind) on failure.
 */
static int new_key(const char *dir, char kid[37], char **jwk_text, char **pem, char *path,
                   size_t path_cap)
{
    uuid_t u;
    EVP_PKEY *key = NULL;
    json_t *jwk = NULL;
    int rc = -1;

    *jwk_text = *pem = NULL;
    uuid_generate_random(u);
    uuid_unparse_lower(u, kid);
    if (keys_path(dir, kid, path, path_cap) < 0 || !(key = jws_key_generate()) ||
        !(jwk = jws_key_public_jwk(key)) || !(*jwk_text = json_dumps(jwk, JSON_COMPACT)) ||
        !(*pem = jws_key_public_pem(key))) {
        log_error("cannot create a signing key");
        goto cleanup;
    }
    if (jws_key_write_private(key, path) < 0) {
        log_error("cannot write the signing key %s: %s", path, strerror(errno));
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (rc < 0) {
        free(*jwk_text);
        free(*pem);
        *jwk_text = *pem = NULL;
    }
    json_decref(jwk);
    EVP_PKEY_free(key);
    return rc;
}

static PGresult *query(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        log_error("signing keys: %s", PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

int keys_ensure(const struct config *cfg)
{
    PGconn *c = NULL;
    PGresult *r = NULL;
    char kid[37], path[1100], active[37] = "";
    char *jwk = NULL, *pem = NULL;
    int rc = -1;

    if (make_key_dir(cfg->key_dir) < 0)
        return -1;
    c = PQconnectdb(cfg->database_url);
    if (PQstatus(c) != CONNECTION_OK) {
        log_error("signing keys: cannot connect: %s", PQerrorMessage(c));
        goto cleanup;
    }
    if (!(r = query(c, "select signing_key_active()", 0, NULL)))
        goto cleanup;
    if (PQgetisnull(r, 0, 0)) {
        const char *params[3];
        PQclear(r);
        r = NULL;
        if (new_key(cfg->key_dir, kid, &jwk, &pem, path, sizeof path) < 0)
            goto cleanup;
        params[0] = kid;
        params[1] = jwk;
        params[2] = pem;
        if (!(r = query(c, "select signing_key_first($1::uuid, $2::jsonb, $3)", 3, params))) {
            unlink(path);
            goto cleanup;
        }
        if (strcmp(PQgetvalue(r, 0, 0), kid) != 0)
            unlink(path); /* another server made the first key meanwhile */
        else
            log_info("created the badge signing key %s", kid);
    }
    snprintf(active, sizeof active, "%s", PQgetvalue(r, 0, 0));
    if (keys_path(cfg->key_dir, active, path, sizeof path) < 0 || access(path, R_OK) < 0) {
        log_error("the active badge signing key %s is not in the key directory %s; copy its "
                  "file there or run `accord keys rotate`",
                  active, cfg->key_dir);
        goto cleanup;
    }
    rc = 0;
cleanup:
    free(jwk);
    free(pem);
    PQclear(r);
    PQfinish(c);
    return rc;
}

/* accord keys rotate [--revoke-old] */
int cmd_keys(int argc, char **argv)
{
    static const struct option opts[] = {{"revoke-old", no_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    const char *url = getenv("DATABASE_URL"), *dir = getenv("ACCORD_KEY_DIR");
    const char *params[4];
    char kid[37], path[1100], old_path[1100];
    char *jwk = NULL, *pem = NULL;
    bool revoke_old = false;
    PGconn *c = NULL;
    PGresult *r = NULL;
    int ch, rc = 1;

    if (argc < 2 || strcmp(argv[1], "rotate") != 0)
        goto usage;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch != 'r')
            goto usage;
        revoke_old = true;
    }
    if (optind != argc)
        goto usage;
    if (!dir || !*dir)
        dir = "var/keys";
    if (!url || !*url) {
        fprintf(stderr, "accord keys: DATABASE_URL is not set\n");
        return 1;
    }
    if (make_key_dir(dir) < 0)
        return 1;
    c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "accord keys: cannot connect: %s", PQerrorMessage(c));
        goto cleanup;
    }
    if (new_key(dir, kid, &jwk, &pem, path, sizeof path) < 0)
        goto cleanup;
    params[0] = kid;
    params[1] = jwk;
    params[2] = pem;
    params[3] = revoke_old ? "true" : "false";
    r = query(c, "select signing_key_add($1::uuid, $2::jsonb, $3, $4::boolean)", 4, params);
    if (!r) {
        unlink(path);
        goto cleanup;
    }
    /* The old private key signs nothing any more: only its public half stays (published). */
    if (!PQgetisnull(r, 0, 0) &&
        keys_path(dir, PQgetvalue(r, 0, 0), old_path, sizeof old_path) == 0 &&
        unlink(old_path) < 0 && errno != ENOENT)
        fprintf(stderr, "accord keys: could not delete the old private key %s: %s\n", old_path,
                strerror(errno));
    printf("%s\n", kid);
    rc = 0;
cleanup:
    free(jwk);
    free(pem);
    PQclear(r);
    PQfinish(c);
    return rc;
usage:
    fprintf(stderr, "usage: accord keys rotate [--revoke-old]\n"
                    "  makes a new badge signing key the active one (in ACCORD_KEY_DIR);\n"
                    "  the old public key stays published so old badges still verify.\n"
                    "  --revoke-old: the old key is compromised: stop publishing it and sign\n"
                    "  its badges again with the new key.\n");
    return 2;
}

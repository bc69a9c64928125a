/*
 * handlers_users.c - POST /v1/users/{id}/tokens: the server makes the token,
 * the database stores only its hash, and the token is shown this once.
 */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "router.h"

struct token_state {
    char token[AUTH_TOKEN_LEN + 1];
    char hash[AUTH_HASH_LEN + 1];
};

static void on_token_stored(const struct db_result *res, void *arg)
{
    struct request *r = arg;
    struct token_state *st = r->state;

    if (res->status != DB_OK) {
        reply_db_failure(r, res);
        return;
    }
    reply_json(r, 201, json_pack("{s:s,s:s}", "token", st->token, "user_id", r->ids[0]));
}

void handle_token_create(struct request *r)
{
    struct token_state *st = calloc(1, sizeof *st);

    if (!st) {
        reply_error(r, 503, "busy", "out of memory");
        return;
    }
    r->state = st;
    r->state_free = free;
    if (auth_token_generate(st->token) < 0 ||
        auth_sha256_hex(st->token, strlen(st->token), st->hash) < 0) {
        log_error("token: the random generator failed");
        reply_error(r, 500, "internal", "could not generate a token");
        return;
    }
    r->params[0] = r->token_hash;
    r->params[1] = r->ids[0];
    r->params[2] = st->hash;
    request_query(r, STMT_TOKEN_CREATE, on_token_stored);
}

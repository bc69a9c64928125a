/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pwjob.h - password hashing and verification off the event loop.
 *
 * argon2id costs tens of milliseconds and 64 MiB per call by design, so it
 * runs on the server's small hashing pool (worker->hasher), never on a loop
 * and never queued behind disk writes. At most PWJOB_MAX_PENDING jobs wait at
 * once across the process: beyond that a sign-in gets 503 at once rather than
 * a growing queue (and memory) under a flood.
 */
#ifndef ACCORD_PWJOB_H
#define ACCORD_PWJOB_H

#include <stdbool.h>

#include "password.h"
#include "request.h"

#define PWJOB_MAX_PENDING 32

struct pwjob {
    char password[PASSWORD_MAX_BYTES + 1]; /* wiped when the job is done */
    size_t len;
    char hash[PASSWORD_HASH_MAX]; /* verify: the stored hash ("" = none); hash: the result */
    bool verify;                  /* true: verify against hash; false: make hash */
    bool ok;                      /* verify: it matched; hash: it was made */
};

/*
 * Runs job on the hashing pool; done(r) then runs on r's loop (the job is
 * wherever the caller keeps it, e.g. in r->state). Returns 0, or -1 after
 * answering 503 itself (pool full or shutting down).
 */
int pwjob_submit(struct request *r, struct pwjob *job, void (*done)(struct request *r));

#endif

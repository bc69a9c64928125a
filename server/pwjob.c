/* SPDX-License-Identifier: Apache-2.0 */
/* pwjob.c - see pwjob.h. */
#include <stdatomic.h>
#include <stdlib.h>

#include <sodium.h>

#include "offload.h"
#include "pwjob.h"

struct pending {
    struct request *r;
    struct pwjob *job;
    void (*done)(struct request *r);
};

static atomic_int n_pending;

static void work(void *arg)
{
    struct pending *p = arg;
    struct pwjob *job = p->job;

    if (job->verify) {
        job->ok = password_verify(job->hash[0] ? job->hash : NULL, job->password, job->len);
    } else {
        job->ok = password_hash(job->password, job->len, job->hash) == 0;
    }
    sodium_memzero(job->password, sizeof job->password);
}

static void finished(void *arg)
{
    struct pending *p = arg;
    atomic_fetch_sub(&n_pending, 1);
    p->done(p->r);
    free(p);
}

int pwjob_submit(struct request *r, struct pwjob *job, void (*done)(struct request *r))
{
    struct pending *p;

    if (atomic_fetch_add(&n_pending, 1) >= PWJOB_MAX_PENDING) {
        atomic_fetch_sub(&n_pending, 1);
        sodium_memzero(job->password, sizeof job->password);
        reply_error(r, 503, "busy", "too many sign-ins at once; try again in a moment");
        return -1;
    }
    p = malloc(sizeof *p);
    if (p) {
        *p = (struct pending){r, job, done};
        if (offload_submit(r->w->hasher, r->w->base, work, finished, p) == 0)
            return 0;
        free(p);
    }
    atomic_fetch_sub(&n_pending, 1);
    sodium_memzero(job->password, sizeof job->password);
    reply_error(r, 503, "busy", "the server is busy; try again shortly");
    return -1;
}

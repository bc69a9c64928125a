/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pgpool.h - non-blocking PostgreSQL connections for one event loop.
 *
 * Each event loop owns one pool: a few libpq connections driven entirely by
 * socket events (PQconnectStart/PQconnectPoll, PQsendQueryPrepared,
 * PQconsumeInput/PQisBusy), so the loop never waits on the database. Every
 * statement of statements.h is prepared when a connection comes up.
 *
 * A query goes to an idle connection at once, or waits in a bounded FIFO.
 * Broken connections fail their query, reconnect with backoff by themselves,
 * and when no connection is left every waiting query fails at once, so a
 * database outage turns into quick 503s rather than hanging requests.
 *
 * Callers never see libpq: they get a struct db_result.
 */
#ifndef ACCORD_PGPOOL_H
#define ACCORD_PGPOOL_H

#include <stdbool.h>

#include <event2/event.h>

#include "histogram.h"
#include "statements.h"

struct pgpool;

enum db_status {
    DB_OK,          /* the statement ran; value holds its first column */
    DB_ERROR,       /* the statement failed; sqlstate/message/detail say why */
    DB_UNAVAILABLE, /* no connection to the database (or it broke mid-query) */
    DB_BUSY,        /* every connection busy and the wait queue full */
};

struct db_result {
    enum db_status status;
    const char *value; /* DB_OK: first column of the first row; NULL for SQL NULL or no row */
    const char *sqlstate, *message, *detail; /* DB_ERROR; detail may be NULL */
};

/*
 * Called exactly once per accepted query, always from the event loop and never
 * from inside pgpool_query(). The result and its strings live until the
 * callback returns: copy what you keep.
 */
typedef void (*db_callback)(const struct db_result *res, void *arg);

struct pgpool_stats {
    int connections_up; /* idle or busy */
    int connections_busy;
    int queued;
    int size;                     /* connections configured */
    int worker;                   /* the event loop this pool belongs to */
    const struct histogram *wait; /* time queries waited for a connection */
};

/* A pool of `size` connections to `conninfo` on `base`; starts connecting at once. */
struct pgpool *pgpool_new(struct event_base *base, const char *conninfo, int size, int queue_max,
                          int worker);

/* Fails every pending query with DB_UNAVAILABLE (callbacks run), then frees. */
void pgpool_free(struct pgpool *pool);

/*
 * Runs statement `stmt` with text parameters (statements[stmt].nparams of
 * them; NULL is SQL NULL). The parameter strings must stay valid until the
 * callback runs. Returns DB_OK when accepted (the callback will run), or
 * DB_UNAVAILABLE / DB_BUSY when refused at once (the callback will not run).
 */
enum db_status pgpool_query(struct pgpool *pool, enum stmt_id stmt, const char *const *params,
                            db_callback cb, void *arg) __attribute__((warn_unused_result));

/*
 * false: no prepared statements and no session settings, for a transaction
 * pooler (pooler.h). Process-wide; call before the first pgpool_new().
 */
void pgpool_use_prepared(bool on);

void pgpool_get_stats(const struct pgpool *pool, struct pgpool_stats *out);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * read_grant.h - evidence read grants this server may reuse for a moment.
 *
 * A video player asks for many byte ranges of one artifact. Each used to be
 * authorized by a database round trip (~0.4 ms of an idle backend's wake-up,
 * half a 1 MB range's time). A grant is the database's "yes" to a reader
 * (credential) and an artifact, kept by the event loop that asked and reused
 * without asking again while all of these hold:
 *
 *  - it is younger than READ_GRANT_MAX_MS, and younger than what the database
 *    said the clock alone keeps the right (grant_ms: a review lease's
 *    remaining time; the cap for owners, leads and calibration sessions).
 *    The cap also bounds what no listener hears of: a session or token that
 *    expires, a change made by a tool that bypasses the catch-up;
 *  - the reader's artifact.read audit row of this minute still stands
 *    (audit_ms), so every viewing stays audited;
 *  - nothing that could revoke it happened since its query started: any
 *    write committed through this server (reply.c), any accord_auth
 *    notification (authlisten.c: revocation, sign-out, role change, user
 *    disabled), any write another accord server announced (accord_live,
 *    within ~50 ms of its answer) and any change the live catch-up saw
 *    committed by other tools (livelisten.c: <= 1 s; submissions, credentials
 *    and grants). Each is one atomic increment of a process-wide epoch
 *    (read_grant_invalidate_all); a grant is kept with the epoch its query
 *    started in, so a grant whose query raced with a revocation is born
 *    unusable;
 *  - the process's LISTEN connection is up and its first catch-up done:
 *    while it is down no grant is reused (nothing would tell us).
 *
 * Refused or failed reads are never kept and forget the slot. The table is
 * per thread (no lock): 256 slots by hash of "<credential> <artifact>"; a
 * collision only costs the next read a round trip.
 */
#ifndef ACCORD_READ_GRANT_H
#define ACCORD_READ_GRANT_H

#include <stdbool.h>
#include <stdint.h>

#define READ_GRANT_MAX_MS 2000 /* the longest a grant is reused */

enum read_grant_found {
    READ_GRANT_NONE,    /* ask the database and audit (api_artifact_content) */
    READ_GRANT_AUDITED, /* the audit row stands: ask without auditing (api_artifact_reread) */
    READ_GRANT_REUSE,   /* the database's answer is at hand: no round trip */
};

/* Taken when a read's database query starts (read_grant_begin). */
struct read_grant_query {
    uint64_t started_ms; /* CLOCK_MONOTONIC: what the answer's durations count from */
    long epoch;
};

/*
 * This thread's memory of (credential, artifact). On READ_GRANT_REUSE
 * *answer points to the database's answer (JSON text), valid until this
 * thread's next read_grant_ call. Counts the reuse (/metrics).
 */
enum read_grant_found read_grant_find(const char *credential, const char *artifact_id,
                                      const char **answer);

/* Right before the query is sent. */
void read_grant_begin(struct read_grant_query *q);

/*
 * The database authorized the read that q began. audit_ms: how long its
 * audit row stands from the query's start (< 0: this answer does not say,
 * the one remembered stays); grant_ms: how long the grant may be reused
 * (clamped to READ_GRANT_MAX_MS; 0: not at all); answer: the text to reuse
 * (NULL or too long: nothing to reuse). Counts the read (/metrics).
 */
void read_grant_store(const char *credential, const char *artifact_id,
                      const struct read_grant_query *q, int64_t audit_ms, int64_t grant_ms,
                      const char *answer);

/* The read was refused or failed: the next one goes to the database, audited. */
void read_grant_forget(const char *credential, const char *artifact_id);

/* Something may have revoked a right: no grant kept so far is reused (any thread). */
void read_grant_invalidate_all(void);

/* Whether invalidations can be trusted to arrive (any thread; set by livelisten.c). */
void read_grant_set_listening(bool listening);

/* Appends the counters (Prometheus text) to out. */
struct evbuffer;
void read_grant_render_metrics(struct evbuffer *out);

#endif

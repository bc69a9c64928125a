/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_read_grant.c - server/read_grant.c: when an evidence read's
 * authorization may be reused, and when never. Time is moved by giving a
 * query a start in the past (the table counts durations from it), so
 * nothing here sleeps.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "check.h"
#include "read_grant.h"

#define CRED   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define CRED2  "s:123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0"
#define ART    "5f1a7c1e-9f0e-4a55-9a8e-2b1d3c4d5e6f"
#define ART2   "6f1a7c1e-9f0e-4a55-9a8e-2b1d3c4d5e6f"
#define ANSWER "{\"id\":\"" ART "\",\"sha256\":\"ab\",\"media_type\":\"video/mp4\"}"

/* A query that began ago_ms milliseconds ago, in the current epoch. */
static struct read_grant_query began(uint64_t ago_ms)
{
    struct read_grant_query q;
    read_grant_begin(&q);
    q.started_ms -= ago_ms;
    return q;
}

static enum read_grant_found find(const char *cred, const char *art, const char **answer)
{
    const char *unused;
    return read_grant_find(cred, art, answer ? answer : &unused);
}

static void test_reused_only_by_its_reader_while_listening(void)
{
    struct read_grant_query q = began(0);
    const char *answer = NULL;

    read_grant_set_listening(false);
    read_grant_store(CRED, ART, &q, 60000, 2000, ANSWER);
    /* nobody would tell us of a revocation: ask again, without auditing */
    CHECK(find(CRED, ART, NULL) == READ_GRANT_AUDITED);
    read_grant_set_listening(true);
    CHECK(find(CRED, ART, &answer) == READ_GRANT_REUSE);
    CHECK_STR(answer, ANSWER);
    CHECK(find(CRED2, ART, NULL) == READ_GRANT_NONE);
    CHECK(find(CRED, ART2, NULL) == READ_GRANT_NONE);
    CHECK(find(NULL, ART, NULL) == READ_GRANT_NONE);
}

static void test_invalidation_and_the_race(void)
{
    struct read_grant_query q = began(0);

    read_grant_set_listening(true);
    read_grant_store(CRED, ART, &q, 60000, 2000, ANSWER);
    CHECK(find(CRED, ART, NULL) == READ_GRANT_REUSE);
    read_grant_invalidate_all();
    /* the audit row still stands: no second audit row, but a round trip */
    CHECK(find(CRED, ART, NULL) == READ_GRANT_AUDITED);

    /* a revocation while the query was under way: the answer is born unusable */
    q = began(0);
    read_grant_invalidate_all();
    read_grant_store(CRED, ART, &q, -1, 2000, ANSWER);
    CHECK(find(CRED, ART, NULL) == READ_GRANT_AUDITED);
    q = began(0);
    read_grant_store(CRED, ART, &q, -1, 2000, ANSWER);
    CHECK(find(CRED, ART, NULL) == READ_GRANT_REUSE);
}

static void test_bounded_by_the_clock(void)
{
    struct read_grant_query q;

    read_grant_set_listening(true);
    /* the cap: asked for an hour, kept 2 s from the query's start */
    q = began(READ_GRANT_MAX_MS - 500);
    read_grant_store(CRED, ART, &q, 60000, 3600000, ANSWER);
    CHECK(find(CRED, ART, NULL) == READ_GRANT_REUSE);
    q = began(READ_GRANT_MAX_MS + 1);
    read_grant_store(CRED, ART, &q, 60000, 3600000, ANSWER);
    CHECK(find(CRED, ART, NULL) == READ_GRANT_AUDITED);
    /* the database's bound (a lease ending) */
    q = began(300);
    read_grant_store(CRED, ART, &q, 60000, 250, ANSWER);
    CHECK(find(CRED, ART, NULL) == READ_GRANT_AUDITED);
    /* none at all */
    q = began(0);
    read_grant_store(CRED, ART, &q, 60000, 0, ANSWER);
    CHECK(find(CRED, ART, NULL) == READ_GRANT_AUDITED);
    /* the audit row's minute is over: a fresh audited read, grant or not */
    q = began(61000);
    read_grant_store(CRED, ART, &q, 60000, 2000, ANSWER);
    CHECK(find(CRED, ART, NULL) == READ_GRANT_NONE);
    q = began(0);
    read_grant_store(CRED, ART, &q, 0, 2000, ANSWER);
    CHECK(find(CRED, ART, NULL) == READ_GRANT_NONE);
}

static void test_reread_keeps_the_audit_row(void)
{
    struct read_grant_query q = began(0);

    read_grant_set_listening(true);
    read_grant_store(CRED, ART, &q, 60000, 0, ANSWER);
    q = began(0);
    read_grant_store(CRED, ART, &q, -1, 2000, ANSWER); /* a reread says nothing of it */
    CHECK(find(CRED, ART, NULL) == READ_GRANT_REUSE);
}

static void test_refusals_and_long_answers(void)
{
    struct read_grant_query q = began(0);
    char *long_answer = malloc(4096);

    read_grant_set_listening(true);
    read_grant_store(CRED, ART, &q, 60000, 2000, ANSWER);
    read_grant_forget(CRED, ART);
    CHECK(find(CRED, ART, NULL) == READ_GRANT_NONE);
    /* someone else's refusal leaves this reader's grant alone */
    q = began(0);
    read_grant_store(CRED, ART, &q, 60000, 2000, ANSWER);
    read_grant_forget(CRED2, ART);
    CHECK(find(CRED, ART, NULL) == READ_GRANT_REUSE);
    /* an answer longer than a slot holds: the audit row is remembered, nothing reused */
    memset(long_answer, 'x', 4095);
    long_answer[4095] = '\0';
    q = began(0);
    read_grant_store(CRED, ART, &q, 60000, 2000, long_answer);
    CHECK(find(CRED, ART, NULL) == READ_GRANT_AUDITED);
    free(long_answer);
}

static void test_metrics(void)
{
    struct evbuffer *b = evbuffer_new();
    size_t n;
    char *s;

    read_grant_render_metrics(b);
    n = evbuffer_get_length(b);
    s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    CHECK(strstr(s, "\naccord_evidence_reads_total{authorized=\"database\"} ") != NULL);
    CHECK(strstr(s, "\naccord_evidence_reads_total{authorized=\"grant\"} ") != NULL);
    CHECK(strstr(s, "\naccord_read_grant_invalidations_total ") != NULL);
    free(s);
    evbuffer_free(b);
}

int main(void)
{
    RUN(test_reused_only_by_its_reader_while_listening);
    RUN(test_invalidation_and_the_race);
    RUN(test_bounded_by_the_clock);
    RUN(test_reread_keeps_the_audit_row);
    RUN(test_refusals_and_long_answers);
    RUN(test_metrics);
    return check_summary("read_grant");
}

/* SPDX-License-Identifier: Apache-2.0 */
/* read_grant.c - evidence read grants reused for a moment (see read_grant.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "clock.h"
#include "read_grant.h"

#define READ_GRANT_SLOTS      256  /* per event loop */
#define READ_GRANT_KEY_MAX    112  /* "<credential> <artifact id>": 66 + 1 + 36 */
#define READ_GRANT_ANSWER_MAX 1024 /* longer answers (long file names) are not kept */

struct read_grant {
    char key[READ_GRANT_KEY_MAX]; /* "": empty */
    uint64_t audit_until_ms;      /* the artifact.read row stands until (0: unknown) */
    uint64_t grant_until_ms;      /* the answer may be reused until (0: not at all) */
    long epoch;                   /* the epoch its query started in */
    char answer[READ_GRANT_ANSWER_MAX];
};

static atomic_long epoch = 1;
static atomic_bool listening;
static atomic_long n_database, n_grant, n_invalidations;

/* Each loop's table, made at its first evidence read (~300 kB: not in every thread's TLS). */
static pthread_key_t table_key;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;
static bool table_key_made;

static void table_key_make(void)
{
    table_key_made = pthread_key_create(&table_key, free) == 0;
}

/* NULL (no grants, every read asks the database) when there is no memory for it. */
static struct read_grant *table(void)
{
    struct read_grant *t;
    pthread_once(&table_once, table_key_make);
    if (!table_key_made)
        return NULL;
    t = pthread_getspecific(table_key);
    if (!t && (t = calloc(READ_GRANT_SLOTS, sizeof *t)) && pthread_setspecific(table_key, t) != 0) {
        free(t);
        t = NULL;
    }
    return t;
}

/* The slot of (credential, artifact), its key in key; NULL without a table or a key. */
static struct read_grant *slot_of(const char *credential, const char *artifact_id,
                                  char key[READ_GRANT_KEY_MAX])
{
    struct read_grant *t;
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    int n;

    if (!credential || !artifact_id)
        return NULL;
    n = snprintf(key, READ_GRANT_KEY_MAX, "%s %s", credential, artifact_id);
    if (n < 0 || n >= READ_GRANT_KEY_MAX || !(t = table()))
        return NULL;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    return &t[h % READ_GRANT_SLOTS];
}

enum read_grant_found read_grant_find(const char *credential, const char *artifact_id,
                                      const char **answer)
{
    char key[READ_GRANT_KEY_MAX];
    struct read_grant *s = slot_of(credential, artifact_id, key);
    uint64_t now;

    if (!s || strcmp(s->key, key) != 0)
        return READ_GRANT_NONE;
    now = (uint64_t)clock_ms();
    if (now >= s->audit_until_ms)
        return READ_GRANT_NONE;
    /* the audit row stands; the answer only while nothing could have revoked it */
    if (now < s->grant_until_ms && s->epoch == atomic_load(&epoch) && atomic_load(&listening)) {
        *answer = s->answer;
        atomic_fetch_add_explicit(&n_grant, 1, memory_order_relaxed);
        return READ_GRANT_REUSE;
    }
    return READ_GRANT_AUDITED;
}

void read_grant_begin(struct read_grant_query *q)
{
    /* the epoch first: a revocation after this point is one the query may not have seen */
    q->epoch = atomic_load(&epoch);
    q->started_ms = (uint64_t)clock_ms();
}

void read_grant_store(const char *credential, const char *artifact_id,
                      const struct read_grant_query *q, int64_t audit_ms, int64_t grant_ms,
                      const char *answer)
{
    char key[READ_GRANT_KEY_MAX];
    struct read_grant *s;
    size_t n = answer ? strlen(answer) : 0;

    atomic_fetch_add_explicit(&n_database, 1, memory_order_relaxed);
    if (!(s = slot_of(credential, artifact_id, key)))
        return;
    if (strcmp(s->key, key) != 0) { /* empty, or another reading's: this one takes it */
        memcpy(s->key, key, sizeof key);
        s->audit_until_ms = 0;
    }
    /* durations count from the query's start, before the database's now(): never too long */
    if (audit_ms >= 0)
        s->audit_until_ms = q->started_ms + (uint64_t)audit_ms;
    s->grant_until_ms = 0;
    if (grant_ms <= 0 || !answer || n >= sizeof s->answer)
        return;
    memcpy(s->answer, answer, n + 1);
    s->epoch = q->epoch;
    s->grant_until_ms =
        q->started_ms + (uint64_t)(grant_ms < READ_GRANT_MAX_MS ? grant_ms : READ_GRANT_MAX_MS);
}

void read_grant_forget(const char *credential, const char *artifact_id)
{
    char key[READ_GRANT_KEY_MAX];
    struct read_grant *s = slot_of(credential, artifact_id, key);

    if (s && strcmp(s->key, key) == 0) {
        s->audit_until_ms = 0;
        s->grant_until_ms = 0;
    }
}

void read_grant_invalidate_all(void)
{
    atomic_fetch_add(&epoch, 1);
    atomic_fetch_add_explicit(&n_invalidations, 1, memory_order_relaxed);
}

void read_grant_set_listening(bool on)
{
    atomic_store(&listening, on);
}

void read_grant_render_metrics(struct evbuffer *out)
{
    evbuffer_add_printf(
        out,
        "# HELP accord_evidence_reads_total Evidence reads authorized, by how: by the database, "
        "or by reusing a read grant of a moment ago (read_grant.h).\n"
        "# TYPE accord_evidence_reads_total counter\n"
        "accord_evidence_reads_total{authorized=\"database\"} %ld\n"
        "accord_evidence_reads_total{authorized=\"grant\"} %ld\n"
        "# HELP accord_read_grant_invalidations_total Times every read grant was dropped "
        "(a write, a revocation, a change seen by the live catch-up).\n"
        "# TYPE accord_read_grant_invalidations_total counter\n"
        "accord_read_grant_invalidations_total %ld\n",
        atomic_load(&n_database), atomic_load(&n_grant), atomic_load(&n_invalidations));
}

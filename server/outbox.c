/* SPDX-License-Identifier: Apache-2.0 */
/* outbox.c - the delivery threads (see outbox.h). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "mail.h"
#include "mail_digest.h"
#include "outbox.h"
#include "pglisten.h"
#include "webhook.h"

#define WEBHOOK_BATCH   16
#define MAIL_BATCH      10
#define LEASE_MARGIN_S  2  /* database round trips around an attempt */
#define MAIL_LEASE_S    75 /* one SMTP transaction: 10 s connect + 60 s total + margin */
#define SCAN_EVERY_MS   5000
#define RECORD_EVERY_MS 500 /* webhook outcomes are recorded at least this often */
#define RECONNECT_MAX_S 30

struct outbox_thread {
    struct outbox *o;
    int index;
    pthread_t thread;
    uint64_t rng;
    bool started;
    unsigned long kicks_seen; /* o->kicks when it last woke */
};

struct outbox {
    const struct config *cfg;
    volatile int stop;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* stop or a kick: every wait ends */
    unsigned long kicks;
    bool sync_ready;
    int n;
    struct outbox_thread *threads;
};

/*
 * Waits up to ms, or until stopping, or (kickable) until a kick since this
 * thread last woke; false when stopping.
 */
static bool wait_for(struct outbox_thread *t, long ms, bool kickable)
{
    struct outbox *o = t->o;
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&o->mu);
    while (!o->stop && !(kickable && o->kicks != t->kicks_seen))
        if (pthread_cond_timedwait(&o->cond, &o->mu, &until) != 0)
            break; /* ETIMEDOUT */
    if (kickable)
        t->kicks_seen = o->kicks;
    pthread_mutex_unlock(&o->mu);
    return !o->stop;
}

/* Runs one statement returning a single text value (or nothing); NULL on error (logged). */
static char *query_value(PGconn *db, const char *sql, int nparams, const char *const *params,
                         bool *failed)
{
    PGresult *res = PQexecParams(db, sql, nparams, NULL, params, NULL, NULL, 0);
    char *value = NULL;
    *failed = false;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_error("outbox: %s", PQresultErrorMessage(res));
        *failed = true;
    } else if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        value = strdup(PQgetvalue(res, 0, 0));
        *failed = value == NULL;
    }
    PQclear(res);
    return value;
}

static PGconn *connect_db(struct outbox *o)
{
    PGconn *db = PQconnectdb(config_direct_url(o->cfg));
    if (PQstatus(db) != CONNECTION_OK) {
        log_warn("outbox: cannot connect to the database: %s", PQerrorMessage(db));
        PQfinish(db);
        return NULL;
    }
    return db;
}

/* s when it is UTF-8 (jansson refuses anything else), else fallback */
static const char *utf8_or(const char *s, const char *fallback)
{
    json_t *j = json_string(s);
    if (!j)
        return fallback;
    json_decref(j);
    return s;
}

/*
 * Records the outcomes gathered in results (then empties it) in one
 * transaction; false on a database error. Until then a delivery stays leased:
 * a server killed before recording delivers it again (at least once).
 */
static bool record_webhooks(struct outbox *o, PGconn *db, json_t *results)
{
    char attempts[16], *text, *r;
    bool failed = false;

    if (json_array_size(results) == 0)
        return true;
    if (!(text = json_dumps(results, JSON_COMPACT)))
        return false;
    snprintf(attempts, sizeof attempts, "%ld", o->cfg->outbox_attempts);
    const char *p[2] = {text, attempts};
    r = query_value(db, "select outbox_results($1::jsonb, $2::int)", 2, p, &failed);
    free(r);
    free(text);
    json_array_clear(results);
    return !failed;
}

/* Webhooks: returns how many were attempted, -1 on a database error. */
static int deliver_webhooks(struct outbox_thread *t, PGconn *db, CURL *curl)
{
    struct outbox *o = t->o;
    const struct config *cfg = o->cfg;
    char limit[16], timeout[24], margin[16];
    const char *params[3];
    struct webhook_policy policy = {.https_only = cfg->production,
                                    .allow_private = cfg->webhook_allow_private != 0,
                                    .timeout_ms = cfg->webhook_timeout_ms,
                                    .cancel = &o->stop};
    bool failed;
    json_t *rows, *row, *results = json_array();
    size_t i;
    int n = 0;
    long first_unrecorded = 0;
    char *text;

    if (!results)
        return -1;
    snprintf(limit, sizeof limit, "%d", WEBHOOK_BATCH);
    snprintf(timeout, sizeof timeout, "%ld", cfg->webhook_timeout_ms);
    snprintf(margin, sizeof margin, "%d", LEASE_MARGIN_S);
    params[0] = limit;
    params[1] = timeout;
    params[2] = margin;
    text = query_value(db, "select outbox_take_webhooks($1::int, $2::int, $3::int)", 3, params,
                       &failed);
    if (failed) {
        json_decref(results);
        return -1;
    }
    rows = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    json_array_foreach(rows, i, row)
    {
        struct webhook_outcome out;
        json_t *body = json_object();
        char *body_text = NULL;
        long attempt = (long)json_integer_value(json_object_get(row, "attempts"));
        bool ok;

        if (o->stop) /* left to their leases */
            break;
        json_object_set(body, "type", json_object_get(row, "type"));
        json_object_set(body, "timestamp", json_object_get(row, "created_at"));
        json_object_set(body, "data", json_object_get(row, "payload"));
        body_text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(body);
        if (!body_text)
            break;
        ok = webhook_deliver(curl, &policy, json_string_value(json_object_get(row, "url")),
                             json_string_value(json_object_get(row, "secret")),
                             json_string_value(json_object_get(row, "event_id")), (long)time(NULL),
                             body_text, &out);
        free(body_text);
        if (o->stop && !ok) /* aborted by the shutdown: not the receiver's fault */
            break;
        json_array_append_new(
            results,
            json_pack(
                "{s:O,s:b,s:o,s:s?,s:I,s:f}", "id", json_object_get(row, "id"), "ok", ok, "status",
                out.status ? json_integer(out.status) : json_null(), "error",
                ok ? NULL : utf8_or(out.error, "(an error that is not text)"), "duration_ms",
                (json_int_t)out.duration_ms, "retry_seconds",
                outbox_backoff(&t->rng, attempt, cfg->outbox_retry_ms, cfg->outbox_retry_max)));
        outbox_count(OUTBOX_WEBHOOK, ok, 1);
        if (!ok)
            log_info("webhook delivery %lld (attempt %ld) failed: %s",
                     (long long)json_integer_value(json_object_get(row, "id")), attempt, out.error);
        n++;
        /*
         * One transaction per batch, not per delivery; but a slow receiver
         * does not hold the others' outcomes (and the delivery log) back for
         * long.
         */
        if (!first_unrecorded)
            first_unrecorded = clock_ms();
        if (clock_ms() - first_unrecorded >= RECORD_EVERY_MS) {
            if (!record_webhooks(o, db, results)) {
                n = -1;
                break;
            }
            first_unrecorded = 0;
        }
    }
    if (n >= 0 && !record_webhooks(o, db, results))
        n = -1;
    json_decref(results);
    json_decref(rows);
    return n;
}

static void sha256_hex(const char *s, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

/* One recipient's digest; returns false on a database error. */
static bool mail_one(struct outbox_thread *t, PGconn *db, CURL *curl, json_t *rcpt)
{
    struct outbox *o = t->o;
    const struct config *cfg = o->cfg;
    json_t *items = json_object_get(rcpt, "items"), *item;
    const char *address = json_string_value(json_object_get(rcpt, "address"));
    bool has_user = json_is_string(json_object_get(rcpt, "user_id"));
    char token[65] = "", token_hash[65] = "", unsub[1200], err[300] = "", retry[32], max_s[16];
    unsigned char raw[32];
    struct mail_digest d = {0};
    char *ids = NULL, *message = NULL, *r;
    size_t ids_len = 0, len = 0, i;
    long attempt = 1;
    bool ok = false, sent = false, failed;
    FILE *f = open_memstream(&ids, &ids_len);

    if (!f)
        return true;
    fputc('{', f);
    json_array_foreach(items, i, item)
    {
        long a = (long)json_integer_value(json_object_get(item, "attempts")) + 1;
        if (a > attempt)
            attempt = a;
        fprintf(f, "%s%lld", i ? "," : "",
                (long long)json_integer_value(json_object_get(item, "id")));
    }
    fputc('}', f);
    if (fclose(f) != 0) {
        free(ids);
        return true;
    }
    if (has_user && RAND_bytes(raw, sizeof raw) == 1) {
        for (i = 0; i < sizeof raw; i++)
            sprintf(token + 2 * i, "%02x", raw[i]);
        sha256_hex(token, token_hash);
        snprintf(unsub, sizeof unsub, "%s/v1/unsubscribe?token=%s", cfg->public_url, token);
    }
    if (!address || !mail_address_ok(address)) {
        snprintf(err, sizeof err, "the address cannot be mailed");
        attempt = cfg->outbox_attempts; /* no retry can help */
    } else if (mail_digest_render(rcpt, cfg->public_url, token[0] ? unsub : NULL, &d) < 0) {
        snprintf(err, sizeof err, "out of memory");
    } else if (d.lines == 0) {
        ok = true; /* nothing left to say (the queue emptied meanwhile) */
    } else if (!(message = mail_compose(cfg,
                                        &(struct mail_content){address, d.subject, d.text, d.html,
                                                               token[0] ? unsub : NULL},
                                        &len))) {
        snprintf(err, sizeof err, "out of memory");
    } else {
        ok = sent = mail_send(curl, cfg, address, message, len, &o->stop, err, sizeof err);
        if (!ok)
            log_info("mail to recipient %s failed: %s",
                     json_string_value(json_object_get(rcpt, "recipient")), err);
    }
    snprintf(retry, sizeof retry, "%.3f",
             outbox_backoff(&t->rng, attempt, cfg->outbox_retry_ms, cfg->outbox_retry_max));
    snprintf(max_s, sizeof max_s, "%ld", cfg->outbox_attempts);
    const char *p[8] = {json_string_value(json_object_get(rcpt, "recipient")),
                        ids,
                        ok ? "true" : "false",
                        sent ? "true" : "false",
                        ok ? NULL : err,
                        retry,
                        max_s,
                        sent && token_hash[0] ? token_hash : NULL};
    r = query_value(db,
                    "select outbox_mail_result($1, $2::bigint[], $3::boolean, $4::boolean, $5, "
                    "$6::float8, $7::int, $8)",
                    8, p, &failed);
    free(r);
    if (sent)
        outbox_count(OUTBOX_EMAIL, true, (long)json_array_size(items));
    else if (!ok)
        outbox_count(OUTBOX_EMAIL, false, 1);
    free(message);
    free(ids);
    mail_digest_free(&d);
    return !failed;
}

static int deliver_mail(struct outbox_thread *t, PGconn *db, CURL *curl)
{
    struct outbox *o = t->o;
    const struct config *cfg = o->cfg;
    char limit[16], interval[24], delay[32], lease[16];
    const char *params[4] = {limit, interval, delay, lease};
    json_t *rows, *row;
    size_t i;
    bool failed;
    int n = 0;
    char *text;

    snprintf(limit, sizeof limit, "%d", MAIL_BATCH);
    snprintf(interval, sizeof interval, "%ld", cfg->mail_interval);
    snprintf(delay, sizeof delay, "%.3f", cfg->mail_delay_ms / 1000.0);
    snprintf(lease, sizeof lease, "%d", MAIL_LEASE_S);
    text = query_value(db, "select outbox_take_mail($1::int, $2::int, $3::float8, $4::int)", 4,
                       params, &failed);
    if (failed)
        return -1;
    rows = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    json_array_foreach(rows, i, row)
    {
        if (o->stop)
            break;
        if (!mail_one(t, db, curl, row)) {
            json_decref(rows);
            return -1;
        }
        n++;
    }
    json_decref(rows);
    return n;
}

static void scan(struct outbox *o, PGconn *db)
{
    char warn[24], hours[24];
    const char *params[2] = {warn, hours};
    bool failed;
    char *r;

    if (o->cfg->lease_warn == 0)
        snprintf(warn, sizeof warn, "-1");
    else
        snprintf(warn, sizeof warn, "%ld", o->cfg->lease_warn);
    snprintf(hours, sizeof hours, "%ld", o->cfg->turnaround_hours);
    r = query_value(db, "select outbox_scan($1::int, $2::int)", 2, params, &failed);
    free(r);
}

static void *outbox_main(void *arg)
{
    struct outbox_thread *t = arg;
    struct outbox *o = t->o;
    const struct config *cfg = o->cfg;
    CURL *web = curl_easy_init(), *smtp = curl_easy_init();
    PGconn *db = NULL;
    long backoff_s = 1, next_scan = 0;
    long poll_ms = cfg->outbox_retry_ms < 1000 ? cfg->outbox_retry_ms : 1000;

    if (cfg->smtp_url[0] && cfg->mail_delay_ms < poll_ms)
        poll_ms = cfg->mail_delay_ms;
    if (poll_ms < 50)
        poll_ms = 50;
    if (!web || !smtp) {
        log_error("outbox: libcurl could not start; thread %d delivers nothing", t->index);
        goto cleanup;
    }
    while (!o->stop) {
        int hooks, mails = 0;
        if (!db) {
            db = connect_db(o);
            if (!db) {
                if (!wait_for(t, backoff_s * 1000, false))
                    break;
                backoff_s = backoff_s * 2 > RECONNECT_MAX_S ? RECONNECT_MAX_S : backoff_s * 2;
                continue;
            }
            backoff_s = 1;
        }
        if (t->index == 0 && clock_ms() >= next_scan) {
            scan(o, db);
            next_scan = clock_ms() + SCAN_EVERY_MS;
        }
        hooks = deliver_webhooks(t, db, web);
        if (hooks >= 0 && cfg->smtp_url[0] && !o->stop)
            mails = deliver_mail(t, db, smtp);
        if (hooks < 0 || mails < 0) {
            if (PQstatus(db) != CONNECTION_OK) {
                PQfinish(db);
                db = NULL;
            }
            wait_for(t, 1000, false);
            continue;
        }
        if (hooks == 0 && mails == 0)
            wait_for(t, poll_ms, true);
    }
cleanup:
    PQfinish(db);
    if (web)
        curl_easy_cleanup(web);
    if (smtp)
        curl_easy_cleanup(smtp);
    return NULL;
}

static int sync_init(struct outbox *o)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return -1;
    if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&o->cond, &attr) != 0) {
        pthread_condattr_destroy(&attr);
        return -1;
    }
    pthread_condattr_destroy(&attr);
    if (pthread_mutex_init(&o->mu, NULL) != 0) {
        pthread_cond_destroy(&o->cond);
        return -1;
    }
    o->sync_ready = true;
    return 0;
}

static void kick(struct outbox *o)
{
    pthread_mutex_lock(&o->mu);
    o->kicks++;
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->mu);
}

static void on_notify(const char *channel, const char *payload, void *arg)
{
    (void)channel;
    (void)payload;
    kick(arg);
}

int outbox_listen(struct outbox *o, struct pglisten *l)
{
    if (o->n == 0)
        return 0;
    /* accord_outbox: a retry by hand, an invitation; accord_live: any announced change */
    if (pglisten_channel(l, "accord_outbox", on_notify, NULL, o) < 0 ||
        pglisten_channel(l, "accord_live", on_notify, NULL, o) < 0)
        return -1;
    return 0;
}

struct outbox *outbox_start(const struct config *cfg)
{
    struct outbox *o = calloc(1, sizeof *o);
    uint64_t seed = 0;

    if (!o)
        return NULL;
    o->cfg = cfg;
    if (sync_init(o) < 0)
        goto fail;
    o->n = (int)cfg->outbox_threads;
    o->threads = calloc(o->n > 0 ? (size_t)o->n : 1, sizeof *o->threads);
    if (!o->threads)
        goto fail;
    if (cfg->random_seed >= 0)
        seed = (uint64_t)cfg->random_seed * 1000003u;
    else if (RAND_bytes((unsigned char *)&seed, sizeof seed) != 1)
        goto fail;
    for (int i = 0; i < o->n; i++) {
        struct outbox_thread *t = &o->threads[i];
        t->o = o;
        t->index = i;
        t->rng = seed + (uint64_t)i * 0x9e3779b97f4a7c15ULL;
        if (pthread_create(&t->thread, NULL, outbox_main, t) != 0) {
            log_error("outbox: cannot start delivery thread %d", i);
            outbox_stop(o);
            return NULL;
        }
        t->started = true;
    }
    return o;
fail:
    outbox_stop(o);
    return NULL;
}

void outbox_stop(struct outbox *o)
{
    if (!o)
        return;
    if (o->sync_ready) {
        pthread_mutex_lock(&o->mu);
        o->stop = 1;
        pthread_cond_broadcast(&o->cond);
        pthread_mutex_unlock(&o->mu);
    }
    o->stop = 1;
    for (int i = 0; o->threads && i < o->n; i++)
        if (o->threads[i].started)
            pthread_join(o->threads[i].thread, NULL);
    if (o->sync_ready) {
        pthread_cond_destroy(&o->cond);
        pthread_mutex_destroy(&o->mu);
    }
    free(o->threads);
    free(o);
}

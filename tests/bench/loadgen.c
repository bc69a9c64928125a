/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loadgen.c - virtual assessors for the review-loop benchmark.
 *
 * N clients, each with its own keep-alive HTTP connection and bearer token
 * (<prefix><i>, i = 1..N), loop on
 *
 *     POST /v1/reviews/claim {"credential_id": ID}      -> 200 (204: queue empty, client stops)
 *     POST /v1/reviews/{id}/scores {scores, feedback}   -> 200
 *
 * scoring every criterion of the claim's rubric at a random one of its levels.
 * A cycle's latency runs from the claim being sent to the score's answer.
 * The run lasts warm-up + duration seconds; cycles that end inside the
 * measured window count. Clients are spread over --threads event loops (one
 * libevent base each; a thread's stats are merged when it has stopped).
 *
 * Bounded on purpose: it talks to 127.0.0.1 only (any host given is refused),
 * runs for a fixed time and stops by itself. An error answer is counted by
 * status and the client goes on with a fresh claim after a short pause, so a
 * saturated server (503) is measured rather than hammered.
 *
 * Output: one line,
 *   loadgen clients=16 cycles=... seconds=... rate=... p50_ms=... p99_ms=... errors=...
 * followed by per-phase latencies and errors by status.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#define MAX_CLIENTS  1024
#define MAX_THREADS  16
#define MAX_CRITERIA 32
#define MAX_LEVELS   16
#define RETRY_MS     20
#define HTTP_TIMEOUT 30
#define STATUS_SLOTS 600 /* index 0: no answer (connection failed / timed out) */

struct opts {
    int port;
    int clients;
    int threads;
    double warmup, duration;
    const char *credential;
    const char *token_prefix;
    const char *feedback;
    const char *latencies; /* file for the raw cycle latencies, or NULL */
};

/* Latencies in microseconds; grows as needed. */
struct samples {
    uint32_t *v;
    size_t n, cap;
};

struct stats {
    uint64_t cycles;       /* completed inside the window */
    uint64_t cycles_total; /* completed at any time */
    uint64_t status[STATUS_SLOTS];
    uint64_t errors;
    uint64_t bad_json;
    int empty_clients; /* stopped on 204 */
    struct samples cycle, claim, score;
};

struct worker;

enum phase { PH_IDLE, PH_CLAIM, PH_SCORE, PH_DONE };

struct client {
    struct worker *w;
    int index; /* 1-based: token suffix */
    struct evhttp_connection *conn;
    char auth[160];
    enum phase phase;
    uint64_t rng;
    double t_cycle, t_phase; /* seconds, monotonic */
    char review_id[64];
    struct event *ev_retry;
};

struct worker {
    const struct opts *o;
    struct event_base *base;
    struct client *clients;
    int n_clients;
    int active;
    double t_start, t_measure, t_end;
    struct event *ev_stop;
    struct stats st;
    pthread_t thread;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: cheap, per-client, reproducible from the client index. */
static uint32_t rnd(struct client *c)
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return (uint32_t)((c->rng * 2685821657736338717ULL) >> 32);
}

static void samples_add(struct samples *s, double seconds)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        uint32_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            fprintf(stderr, "loadgen: out of memory\n");
            exit(1);
        }
        s->v = v;
        s->cap = cap;
    }
    double us = seconds * 1e6;
    s->v[s->n++] = us > 4e9 ? UINT32_MAX : (uint32_t)us;
}

static void samples_merge(struct samples *dst, const struct samples *src)
{
    for (size_t i = 0; i < src->n; i++)
        samples_add(dst, src->v[i] / 1e6);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile in milliseconds; the samples must be sorted. */
static double pct_ms(const struct samples *s, double p)
{
    if (s->n == 0)
        return 0;
    size_t rank = (size_t)(p / 100.0 * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return s->v[rank - 1] / 1000.0;
}

static double mean_ms(const struct samples *s)
{
    double sum = 0;
    for (size_t i = 0; i < s->n; i++)
        sum += s->v[i];
    return s->n ? sum / (double)s->n / 1000.0 : 0;
}

static void start_claim(struct client *c);

static void client_stop(struct client *c)
{
    if (c->phase == PH_DONE)
        return;
    c->phase = PH_DONE;
    if (--c->w->active == 0)
        event_base_loopexit(c->w->base, NULL);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    start_claim(arg);
}

/* An error answer: count it, pause, then start a fresh cycle. */
static void client_error(struct client *c, int status)
{
    struct timeval tv = {0, RETRY_MS * 1000};
    struct stats *st = &c->w->st;

    st->errors++;
    st->status[status > 0 && status < STATUS_SLOTS ? status : 0]++;
    c->phase = PH_IDLE;
    evtimer_add(c->ev_retry, &tv);
}

static bool in_window(const struct worker *w, double t)
{
    return t >= w->t_measure && t <= w->t_end;
}

static struct evhttp_request *new_request(struct client *c,
                                          void (*cb)(struct evhttp_request *, void *),
                                          const char *body, size_t len)
{
    struct evhttp_request *req = evhttp_request_new(cb, c);
    struct evkeyvalq *h;

    if (!req)
        return NULL;
    h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", "127.0.0.1");
    evhttp_add_header(h, "Authorization", c->auth);
    evhttp_add_header(h, "Content-Type", "application/json");
    evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
    return req;
}

static json_t *read_json(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *data = (const char *)evbuffer_pullup(in, -1);
    json_error_t err;

    if (!data)
        return NULL;
    return json_loadb(data, len, 0, &err);
}

/*
 * The score body: every criterion of the rubric at a random level of its
 * own. Returns a malloc'd string or NULL when the claim's JSON is not what
 * the API promises.
 */
static char *score_body(struct client *c, json_t *claim)
{
    json_t *criteria = json_object_get(json_object_get(claim, "rubric"), "criteria");
    json_t *scores, *body, *crit;
    size_t i;
    char *text;

    if (!json_is_array(criteria) || json_array_size(criteria) == 0)
        return NULL;
    scores = json_array();
    json_array_foreach(criteria, i, crit)
    {
        json_t *key = json_object_get(crit, "key");
        json_t *levels = json_object_get(crit, "levels");
        size_t n = json_array_size(levels);
        if (!json_is_string(key) || n == 0) {
            json_decref(scores);
            return NULL;
        }
        json_t *level = json_object_get(json_array_get(levels, rnd(c) % n), "value");
        if (!json_is_integer(level)) {
            json_decref(scores);
            return NULL;
        }
        json_array_append_new(
            scores, json_pack("{s:O,s:I}", "criterion", key, "level", json_integer_value(level)));
    }
    body = json_pack("{s:o,s:s}", "scores", scores, "feedback", c->w->o->feedback);
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return text;
}

static void on_score(struct evhttp_request *req, void *arg)
{
    struct client *c = arg;
    struct worker *w = c->w;
    double t = now_s();
    int status = req ? evhttp_request_get_response_code(req) : 0;

    if (c->phase != PH_SCORE)
        return;
    if (status != 200) {
        client_error(c, status);
        return;
    }
    w->st.status[200]++;
    w->st.cycles_total++;
    if (in_window(w, t) && c->t_cycle >= w->t_measure) {
        w->st.cycles++;
        samples_add(&w->st.cycle, t - c->t_cycle);
        samples_add(&w->st.score, t - c->t_phase);
    }
    start_claim(c);
}

static void on_claim(struct evhttp_request *req, void *arg)
{
    struct client *c = arg;
    struct worker *w = c->w;
    double t = now_s();
    int status = req ? evhttp_request_get_response_code(req) : 0;
    json_t *claim, *id;
    struct evhttp_request *next;
    char path[128], *body;

    if (c->phase != PH_CLAIM)
        return;
    if (status == 204) {
        w->st.status[204]++;
        w->st.empty_clients++;
        client_stop(c);
        return;
    }
    if (status != 200) {
        client_error(c, status);
        return;
    }
    w->st.status[200]++;
    if (in_window(w, t) && c->t_cycle >= w->t_measure)
        samples_add(&w->st.claim, t - c->t_phase);

    claim = read_json(req);
    id = json_object_get(claim, "id");
    body = json_is_string(id) ? score_body(c, claim) : NULL;
    if (!body || strlen(json_string_value(id)) >= sizeof c->review_id) {
        json_decref(claim);
        free(body);
        w->st.bad_json++;
        client_error(c, 1);
        return;
    }
    strcpy(c->review_id, json_string_value(id));
    json_decref(claim);

    snprintf(path, sizeof path, "/v1/reviews/%s/scores", c->review_id);
    next = new_request(c, on_score, body, strlen(body));
    free(body);
    c->phase = PH_SCORE;
    c->t_phase = now_s();
    if (!next || evhttp_make_request(c->conn, next, EVHTTP_REQ_POST, path) != 0)
        client_error(c, 0);
}

static void start_claim(struct client *c)
{
    struct worker *w = c->w;
    char body[160];
    int len;
    struct evhttp_request *req;

    if (c->phase == PH_DONE)
        return;
    len = snprintf(body, sizeof body, "{\"credential_id\":\"%s\"}", w->o->credential);
    req = new_request(c, on_claim, body, (size_t)len);
    c->phase = PH_CLAIM;
    c->t_cycle = c->t_phase = now_s();
    if (!req || evhttp_make_request(c->conn, req, EVHTTP_REQ_POST, "/v1/reviews/claim") != 0)
        client_error(c, 0);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    event_base_loopexit(w->base, NULL);
}

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    double left = w->t_end - now_s();
    struct timeval tv;

    if (left < 0)
        left = 0;
    tv.tv_sec = (long)left;
    tv.tv_usec = (long)((left - (double)tv.tv_sec) * 1e6);
    evtimer_add(w->ev_stop, &tv);
    for (int i = 0; i < w->n_clients; i++)
        start_claim(&w->clients[i]);
    event_base_dispatch(w->base);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --port PORT --credential UUID [--clients N] [--threads T]\n"
            "               [--warmup S] [--duration S] [--token-prefix P] [--latencies FILE]\n"
            "  Virtual assessors claim and score reviews on http://127.0.0.1:PORT.\n"
            "  Client i (1..N) uses the bearer token <P><i as 64 digits> (default P: acc_).\n"
            "  --latencies FILE writes each measured cycle's latency (microseconds, sorted).\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        {"port", required_argument, NULL, 'p'},
        {"clients", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"warmup", required_argument, NULL, 'w'},
        {"duration", required_argument, NULL, 'd'},
        {"credential", required_argument, NULL, 'C'},
        {"token-prefix", required_argument, NULL, 'P'},
        {"latencies", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    *o = (struct opts){.clients = 1,
                       .threads = 1,
                       .warmup = 2,
                       .duration = 10,
                       .token_prefix = "acc_",
                       .feedback = "Clear evidence on most criteria; see the comments."};
    while ((ch = getopt_long(argc, argv, "p:c:t:w:d:C:P:L:h", lo, NULL)) != -1) {
        switch (ch) {
        case 'p':
            o->port = atoi(optarg);
            break;
        case 'c':
            o->clients = atoi(optarg);
            break;
        case 't':
            o->threads = atoi(optarg);
            break;
        case 'w':
            o->warmup = atof(optarg);
            break;
        case 'd':
            o->duration = atof(optarg);
            break;
        case 'C':
            o->credential = optarg;
            break;
        case 'P':
            o->token_prefix = optarg;
            break;
        case 'L':
            o->latencies = optarg;
            break;
        default:
            usage();
            return -1;
        }
    }
    if (o->port <= 0 || o->port > 65535 || !o->credential || strlen(o->credential) != 36 ||
        o->clients < 1 || o->clients > MAX_CLIENTS || o->threads < 1 || o->threads > MAX_THREADS ||
        o->warmup < 0 || o->warmup > 600 || o->duration <= 0 || o->duration > 600 ||
        strlen(o->token_prefix) > 64) {
        usage();
        return -1;
    }
    if (o->threads > o->clients)
        o->threads = o->clients;
    return 0;
}

static int worker_init(struct worker *w, const struct opts *o, struct client *clients, int first,
                       int n)
{
    w->o = o;
    w->clients = clients + first;
    w->n_clients = w->active = n;
    w->base = event_base_new();
    if (!w->base)
        return -1;
    w->ev_stop = evtimer_new(w->base, on_stop, w);
    for (int i = 0; i < n; i++) {
        struct client *c = &w->clients[i];
        c->w = w;
        c->index = first + i + 1;
        c->rng = 0x9E3779B97F4A7C15ULL * (uint64_t)c->index;
        snprintf(c->auth, sizeof c->auth, "Bearer %s%064d", o->token_prefix, c->index);
        c->conn = evhttp_connection_base_new(w->base, NULL, "127.0.0.1", (unsigned short)o->port);
        c->ev_retry = evtimer_new(w->base, on_retry, c);
        if (!c->conn || !c->ev_retry)
            return -1;
        evhttp_connection_set_timeout(c->conn, HTTP_TIMEOUT);
        evhttp_connection_set_retries(c->conn, 0);
    }
    return w->ev_stop ? 0 : -1;
}

static void worker_free(struct worker *w)
{
    for (int i = 0; i < w->n_clients; i++) {
        if (w->clients[i].conn)
            evhttp_connection_free(w->clients[i].conn);
        if (w->clients[i].ev_retry)
            event_free(w->clients[i].ev_retry);
    }
    if (w->ev_stop)
        event_free(w->ev_stop);
    if (w->base)
        event_base_free(w->base);
    free(w->st.cycle.v);
    free(w->st.claim.v);
    free(w->st.score.v);
}

int main(int argc, char **argv)
{
    struct opts o;
    struct client *clients;
    struct worker workers[MAX_THREADS];
    struct stats total;
    double t0, t1, seconds;
    int rc = 0;

    if (parse_opts(argc, argv, &o) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    clients = calloc((size_t)o.clients, sizeof *clients);
    memset(workers, 0, sizeof workers);
    memset(&total, 0, sizeof total);
    if (!clients)
        return 1;

    for (int t = 0, first = 0; t < o.threads; t++) {
        int n = o.clients / o.threads + (t < o.clients % o.threads);
        if (worker_init(&workers[t], &o, clients, first, n) < 0) {
            fprintf(stderr, "loadgen: cannot set up event loop %d\n", t);
            return 1;
        }
        first += n;
    }
    t0 = now_s();
    for (int t = 0; t < o.threads; t++) {
        workers[t].t_start = t0;
        workers[t].t_measure = t0 + o.warmup;
        workers[t].t_end = t0 + o.warmup + o.duration;
    }
    for (int t = 0; t < o.threads; t++)
        if (pthread_create(&workers[t].thread, NULL, worker_run, &workers[t]) != 0) {
            fprintf(stderr, "loadgen: pthread_create: %s\n", strerror(errno));
            return 1;
        }
    for (int t = 0; t < o.threads; t++)
        pthread_join(workers[t].thread, NULL);
    t1 = now_s();

    for (int t = 0; t < o.threads; t++) {
        struct stats *s = &workers[t].st;
        total.cycles += s->cycles;
        total.cycles_total += s->cycles_total;
        total.errors += s->errors;
        total.bad_json += s->bad_json;
        total.empty_clients += s->empty_clients;
        for (int i = 0; i < STATUS_SLOTS; i++)
            total.status[i] += s->status[i];
        samples_merge(&total.cycle, &s->cycle);
        samples_merge(&total.claim, &s->claim);
        samples_merge(&total.score, &s->score);
        worker_free(&workers[t]);
    }
    qsort(total.cycle.v, total.cycle.n, sizeof(uint32_t), cmp_u32);
    qsort(total.claim.v, total.claim.n, sizeof(uint32_t), cmp_u32);
    qsort(total.score.v, total.score.n, sizeof(uint32_t), cmp_u32);

    /*
     * The window is warm-up .. end, unless every client ran out of work
     * first: then it ends when the last one stopped.
     */
    seconds = t1 - t0 - o.warmup;
    if (seconds > o.duration)
        seconds = o.duration;
    if (seconds <= 0) {
        fprintf(stderr, "loadgen: the queue ran dry during the warm-up\n");
        seconds = 0;
        rc = 1;
    }
    printf("loadgen clients=%d cycles=%llu seconds=%.2f rate=%.1f p50_ms=%.2f p99_ms=%.2f "
           "errors=%llu\n",
           o.clients, (unsigned long long)total.cycles, seconds,
           seconds > 0 ? (double)total.cycles / seconds : 0.0, pct_ms(&total.cycle, 50),
           pct_ms(&total.cycle, 99), (unsigned long long)total.errors);
    printf("loadgen detail claim_p50_ms=%.2f claim_p99_ms=%.2f claim_mean_ms=%.2f "
           "score_p50_ms=%.2f score_p99_ms=%.2f score_mean_ms=%.2f cycles_total=%llu "
           "empty_clients=%d bad_json=%llu\n",
           pct_ms(&total.claim, 50), pct_ms(&total.claim, 99), mean_ms(&total.claim),
           pct_ms(&total.score, 50), pct_ms(&total.score, 99), mean_ms(&total.score),
           (unsigned long long)total.cycles_total, total.empty_clients,
           (unsigned long long)total.bad_json);
    if (total.errors) {
        printf("loadgen errors_by_status");
        for (int i = 0; i < STATUS_SLOTS; i++)
            if (i != 200 && i != 204 && total.status[i]) {
                if (i == 0)
                    printf(" no_answer=%llu", (unsigned long long)total.status[i]);
                else if (i == 1)
                    printf(" bad_json=%llu", (unsigned long long)total.status[i]);
                else
                    printf(" %d=%llu", i, (unsigned long long)total.status[i]);
            }
        printf("\n");
    }
    if (o.latencies) {
        FILE *f = fopen(o.latencies, "w");
        if (!f) {
            fprintf(stderr, "loadgen: %s: %s\n", o.latencies, strerror(errno));
            rc = 1;
        } else {
            for (size_t i = 0; i < total.cycle.n; i++)
                fprintf(f, "%u\n", total.cycle.v[i]);
            if (fclose(f) != 0)
                rc = 1;
        }
    }
    free(total.cycle.v);
    free(total.claim.v);
    free(total.score.v);
    free(clients);
    return rc;
}

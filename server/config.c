/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.c - settings as a table: each numeric setting names its flag, its
 * environment variable, its default and its bounds, so parsing, validation
 * and the usage text come from one place.
 */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "storage.h"

struct numeric_setting {
    const char *flag; /* long option name */
    const char *env;
    long def, min, max;
    size_t offset; /* of the long in struct config */
    const char *help;
};

static const struct numeric_setting numeric_settings[] = {
    {"lease-seconds", "ACCORD_LEASE_SECONDS", 7200, 1, 30L * 24 * 3600,
     offsetof(struct config, lease_seconds), "review claim lease"},
    {"max-body", "ACCORD_MAX_BODY", 64L << 20, 4096, 1L << 30, offsetof(struct config, max_body),
     "largest upload body in bytes: POST /v1/artifacts, a tus PATCH (held in memory)"},
    /* A rubric or a score set is kilobytes; nothing JSON needs megabytes. */
    {"max-json-body", "ACCORD_MAX_JSON_BODY", 256L << 10, 1024, 16L << 20,
     offsetof(struct config, max_json_body), "largest JSON request body in bytes"},
    /* /readyz says storage_low under it; uploads stop (507) at half of it. */
    /* Past the share of a loop, accepting waits (the kernel's backlog holds the rest). */
    {"max-connections", "ACCORD_MAX_CONNECTIONS", 4096, 1, 1L << 20,
     offsetof(struct config, max_connections), "open client connections at most"},
    /* Request bodies being received or handled; over it, readers wait (conntrack.h). */
    {"max-body-memory", "ACCORD_MAX_BODY_MEMORY", 256L << 20, 1L << 20, 1L << 40,
     offsetof(struct config, max_body_memory), "bytes of request bodies held in memory at once"},
    {"storage-reserve", "ACCORD_STORAGE_RESERVE", 512L << 20, 0, 1L << 62,
     offsetof(struct config, storage_reserve), "bytes kept free on the data directory's disk"},
    {"quota-bytes", "ACCORD_QUOTA_BYTES", 20L << 30, 1, 1L << 62,
     offsetof(struct config, quota_bytes), "per user: bytes stored plus unfinished uploads"},
    {"quota-in-flight", "ACCORD_QUOTA_IN_FLIGHT", 16L << 30, 1, 1L << 62,
     offsetof(struct config, quota_in_flight), "per user: bytes of unfinished uploads"},
    {"upload-expiry", "ACCORD_UPLOAD_EXPIRY", 86400, 1, 365L * 86400,
     offsetof(struct config, upload_expiry), "seconds an untouched unfinished upload is kept"},
    {"threads", "ACCORD_THREADS", 0, 0, 64, offsetof(struct config, threads),
     "event loops (0 = one per core)"},
    /*
     * Two per loop, i.e. about two backends per core in all: claims contend
     * on the queue's head, and more backends than cores only add contention.
     * On the 2-core bench machine (tests/bench/review.sh, noisy, +-20%
     * between runs): 1 per loop 0.68 of pgbench at 16 clients, 2 per loop
     * 0.72-0.94, 3 per loop 0.86-0.90, 4 per loop 0.73.
     */
    {"db-pool", "ACCORD_DB_POOL", 2, 1, 64, offsetof(struct config, db_pool_size),
     "database connections per event loop"},
    {"db-queue", "ACCORD_DB_QUEUE", 1024, 1, 1 << 20, offsetof(struct config, db_queue_max),
     "queries waiting for a connection per loop before 503"},
    /* Lookups of credentials not in the cache run on one connection per loop. */
    {"auth-queue", "ACCORD_AUTH_QUEUE", 64, 1, 1 << 16, offsetof(struct config, auth_queue_max),
     "credential lookups waiting per loop before 503"},
    {"shutdown-grace", "ACCORD_SHUTDOWN_GRACE", 10, 0, 3600,
     offsetof(struct config, shutdown_grace), "seconds to finish requests at shutdown"},
    /* Read by the SQL functions as settings of every connection (see db_settings). */
    {"max-releases", "ACCORD_MAX_RELEASES", 10, 1, 10000, offsetof(struct config, max_releases),
     "reviews an assessor may give back unscored per 24 h"},
    {"random-seed", "ACCORD_RANDOM_SEED", -1, -1, 2147483647, offsetof(struct config, random_seed),
     "seed of every random draw, for tests (-1: random)"},
    /* A teacher's working day unused; a week at most (then a new sign-in). */
    {"session-idle", "ACCORD_SESSION_IDLE", 8 * 3600, 60, 30L * 24 * 3600,
     offsetof(struct config, session_idle), "seconds a browser session lasts unused"},
    {"session-lifetime", "ACCORD_SESSION_LIFETIME", 7 * 24 * 3600, 300, 365L * 24 * 3600,
     offsetof(struct config, session_lifetime), "seconds a browser session lasts at most"},
    /* live updates (issue 14): a stream costs a descriptor and ~1 KiB, no database connection */
    {"live-streams", "ACCORD_LIVE_STREAMS", 10000, 0, 1000000,
     offsetof(struct config, live_streams), "live update streams (GET /v1/events) per process"},
    {"live-streams-per-user", "ACCORD_LIVE_STREAMS_PER_USER", 8, 1, 1000,
     offsetof(struct config, live_streams_per_user), "live update streams per person"},
    /* under the 30-60 s idle timeouts of common proxies and load balancers */
    {"live-heartbeat", "ACCORD_LIVE_HEARTBEAT", 20, 1, 3600,
     offsetof(struct config, live_heartbeat), "seconds between a live stream's heartbeats"},
    /* notifications (issue 14) */
    {"outbox-threads", "ACCORD_OUTBOX_THREADS", 1, 0, 16, offsetof(struct config, outbox_threads),
     "notification delivery threads (0: this server delivers none)"},
    {"outbox-attempts", "ACCORD_OUTBOX_ATTEMPTS", 12, 1, 100,
     offsetof(struct config, outbox_attempts), "attempts before a delivery is dead-lettered"},
    {"outbox-retry-ms", "ACCORD_OUTBOX_RETRY_MS", 30000, 10, 86400000L,
     offsetof(struct config, outbox_retry_ms),
     "first retry after this many ms, doubling, with jitter"},
    {"outbox-retry-max", "ACCORD_OUTBOX_RETRY_MAX", 21600, 1, 7L * 86400,
     offsetof(struct config, outbox_retry_max), "longest retry back-off in seconds"},
    {"webhook-timeout-ms", "ACCORD_WEBHOOK_TIMEOUT_MS", 10000, 100, 60000,
     offsetof(struct config, webhook_timeout_ms), "one webhook delivery attempt, ms"},
    {"webhook-allow-private", "ACCORD_WEBHOOK_ALLOW_PRIVATE", 0, 0, 1,
     offsetof(struct config, webhook_allow_private),
     "1: webhooks may reach loopback, private and link-local addresses"},
    {"mail-interval", "ACCORD_MAIL_INTERVAL", 3600, 0, 7L * 86400,
     offsetof(struct config, mail_interval), "seconds between two mails to one person (digest)"},
    {"mail-delay-ms", "ACCORD_MAIL_DELAY_MS", 60000, 0, 3600000L,
     offsetof(struct config, mail_delay_ms), "ms a notification waits for others to join its mail"},
    {"lease-warn", "ACCORD_LEASE_WARN", 900, 0, 86400, offsetof(struct config, lease_warn),
     "seconds before a review lease ends that the assessor is mailed (0: never)"},
    {"turnaround-hours", "ACCORD_TURNAROUND_HOURS", 336, 1, 8760,
     offsetof(struct config, turnaround_hours), "leads hear of submissions waiting longer"},
    /* scale-out (issue 13): PgBouncer in transaction mode (pooler.h) and the replica */
    {"db-prepared", "ACCORD_DB_PREPARED", 1, 0, 1, offsetof(struct config, db_prepared),
     "1: prepared statements; 0: behind a transaction pooler (PgBouncer)"},
    {"replica-max-lag", "ACCORD_REPLICA_MAX_LAG", 30, 1, 86400,
     offsetof(struct config, replica_max_lag),
     "seconds the replica may be behind the primary and still serve reports"},
};
#define N_NUMERIC (sizeof numeric_settings / sizeof numeric_settings[0])

static int parse_long(const char *text, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end)
        return -1;
    *out = v;
    return 0;
}

static int set_numeric(struct config *cfg, const struct numeric_setting *s, const char *text,
                       const char *source)
{
    long v;
    if (parse_long(text, &v) < 0 || v < s->min || v > s->max) {
        fprintf(stderr, "accord: %s: '%s' is not a whole number from %ld to %ld (%s)\n", source,
                text, s->min, s->max, s->help);
        return -1;
    }
    *(long *)((char *)cfg + s->offset) = v;
    return 0;
}

static int set_listen(struct config *cfg, const char *text)
{
    const char *colon = strrchr(text, ':');
    long port;
    size_t hostlen;

    if (!colon || parse_long(colon + 1, &port) < 0 || port < 0 || port > 65535) {
        fprintf(stderr, "accord: --listen wants HOST:PORT (port 0 picks a free one), got '%s'\n",
                text);
        return -1;
    }
    hostlen = (size_t)(colon - text);
    if (hostlen == 0 || hostlen >= sizeof cfg->listen_host) {
        fprintf(stderr, "accord: --listen: bad host in '%s'\n", text);
        return -1;
    }
    memcpy(cfg->listen_host, text, hostlen);
    cfg->listen_host[hostlen] = '\0';
    /* [::1]:8080 */
    if (cfg->listen_host[0] == '[' && cfg->listen_host[hostlen - 1] == ']') {
        memmove(cfg->listen_host, cfg->listen_host + 1, hostlen - 2);
        cfg->listen_host[hostlen - 2] = '\0';
    }
    cfg->listen_port = (int)port;
    return 0;
}

static int set_string(char *dst, size_t cap, const char *text, const char *name)
{
    if (strlen(text) >= cap) {
        fprintf(stderr, "accord: %s is too long\n", name);
        return -1;
    }
    strcpy(dst, text);
    return 0;
}

/* http(s)://host[:port][/path], stored without a trailing slash. */
static int set_public_url(struct config *cfg, const char *text)
{
    size_t len = strlen(text);
    const char *host, *end;
    if ((strncmp(text, "https://", 8) != 0 && strncmp(text, "http://", 7) != 0) ||
        len >= sizeof cfg->public_url || strpbrk(text, "?#\"' <>\\") ||
        text[strncmp(text, "https://", 8) == 0 ? 8 : 7] == '\0') {
        fprintf(stderr, "accord: the public URL must be http(s)://host[:port][/path], got '%s'\n",
                text);
        return -1;
    }
    while (len > 0 && text[len - 1] == '/')
        len--;
    memcpy(cfg->public_url, text, len);
    cfg->public_url[len] = '\0';
    /* the origin (scheme://host[:port]) cookie-authenticated requests must come from */
    host = cfg->public_url + (strncmp(text, "https://", 8) == 0 ? 8 : 7);
    end = strchr(host, '/');
    len = end ? (size_t)(end - cfg->public_url) : strlen(cfg->public_url);
    memcpy(cfg->public_origin, cfg->public_url, len);
    cfg->public_origin[len] = '\0';
    cfg->secure_cookies = strncmp(text, "https://", 8) == 0;
    cfg->public_url_set = true;
    return 0;
}

/* Badge settings (issue 12): flag, environment variable, where, how large. */
struct string_setting {
    const char *flag;
    const char *env;
    size_t offset, cap;
};

static const struct string_setting string_settings[] = {
    {"key-dir", "ACCORD_KEY_DIR", offsetof(struct config, key_dir),
     sizeof(((struct config *)0)->key_dir)},
    {"issuer-name", "ACCORD_ISSUER_NAME", offsetof(struct config, issuer_name),
     sizeof(((struct config *)0)->issuer_name)},
    {"issuer-url", "ACCORD_ISSUER_URL", offsetof(struct config, issuer_url),
     sizeof(((struct config *)0)->issuer_url)},
    {"issuer-email", "ACCORD_ISSUER_EMAIL", offsetof(struct config, issuer_email),
     sizeof(((struct config *)0)->issuer_email)},
    /* mail (issue 14); the password is ACCORD_SMTP_PASSWORD only */
    {"smtp-url", "ACCORD_SMTP_URL", offsetof(struct config, smtp_url),
     sizeof(((struct config *)0)->smtp_url)},
    {"smtp-user", "ACCORD_SMTP_USER", offsetof(struct config, smtp_user),
     sizeof(((struct config *)0)->smtp_user)},
    {"smtp-from", "ACCORD_SMTP_FROM", offsetof(struct config, smtp_from),
     sizeof(((struct config *)0)->smtp_from)},
    {"smtp-tls", "ACCORD_SMTP_TLS", offsetof(struct config, smtp_tls),
     sizeof(((struct config *)0)->smtp_tls)},
    {"smtp-ca-file", "ACCORD_SMTP_CA_FILE", offsetof(struct config, smtp_ca_file),
     sizeof(((struct config *)0)->smtp_ca_file)},
    /* scale-out (issue 13) */
    {"direct-database-url", "ACCORD_DIRECT_DATABASE_URL",
     offsetof(struct config, direct_database_url),
     sizeof(((struct config *)0)->direct_database_url)},
    {"replica-url", "ACCORD_REPLICA_URL", offsetof(struct config, replica_url),
     sizeof(((struct config *)0)->replica_url)},
};
#define N_STRING (sizeof string_settings / sizeof string_settings[0])

/*
 * Production mode (ACCORD_PRODUCTION=1) refuses what only fits a laptop: a
 * public URL derived from the listening address, or one that is not https
 * (badge verifiers fetch the issuer's keys from it).
 */
/* Mail (issue 14): a usable URL, a sender, and TLS unless said otherwise. */
static int check_notify_settings(struct config *cfg)
{
    const char *pw = getenv("ACCORD_SMTP_PASSWORD");
    cfg->smtp_password = pw && *pw ? pw : NULL;
    if (!cfg->smtp_tls[0])
        strcpy(cfg->smtp_tls, "require");
    if (strcmp(cfg->smtp_tls, "require") != 0 && strcmp(cfg->smtp_tls, "try") != 0 &&
        strcmp(cfg->smtp_tls, "off") != 0) {
        fprintf(stderr, "accord: ACCORD_SMTP_TLS must be require, try or off, got '%s'\n",
                cfg->smtp_tls);
        return -1;
    }
    if (!cfg->smtp_url[0])
        return 0;
    if ((strncmp(cfg->smtp_url, "smtp://", 7) != 0 && strncmp(cfg->smtp_url, "smtps://", 8) != 0) ||
        strpbrk(cfg->smtp_url, " \r\n\"'<>")) {
        fprintf(stderr,
                "accord: ACCORD_SMTP_URL must be smtp://HOST[:PORT] or smtps://HOST[:PORT], "
                "got '%s'\n",
                cfg->smtp_url);
        return -1;
    }
    if (!cfg->smtp_from[0] || !strchr(cfg->smtp_from, '@') ||
        strpbrk(cfg->smtp_from, " \r\n<>\"")) {
        fprintf(stderr, "accord: mail needs ACCORD_SMTP_FROM, the sender's address "
                        "(e.g. accord@district.example.org)\n");
        return -1;
    }
    if (cfg->production && strcmp(cfg->smtp_tls, "off") == 0 &&
        strncmp(cfg->smtp_url, "smtps://", 8) != 0) {
        fprintf(stderr, "accord: production mode sends mail over TLS only "
                        "(ACCORD_SMTP_TLS=require or an smtps:// URL)\n");
        return -1;
    }
    return 0;
}

static int check_badge_settings(const struct config *cfg)
{
    if (cfg->production && !cfg->public_url_set) {
        fprintf(stderr, "accord: production mode (ACCORD_PRODUCTION=1) needs ACCORD_PUBLIC_URL "
                        "(https): badges, keys and sign-in are named under it\n");
        return -1;
    }
    if (cfg->production && strncmp(cfg->public_url, "https://", 8) != 0) {
        fprintf(stderr,
                "accord: production mode (ACCORD_PRODUCTION=1) needs an https "
                "ACCORD_PUBLIC_URL, got '%s'\n",
                cfg->public_url);
        return -1;
    }
    if (cfg->issuer_url[0] && strncmp(cfg->issuer_url, "https://", 8) != 0 &&
        strncmp(cfg->issuer_url, "http://", 7) != 0) {
        fprintf(stderr, "accord: ACCORD_ISSUER_URL must be an absolute http(s) URL, got '%s'\n",
                cfg->issuer_url);
        return -1;
    }
    if (cfg->issuer_email[0] && !strchr(cfg->issuer_email, '@')) {
        fprintf(stderr, "accord: ACCORD_ISSUER_EMAIL is not an email address: '%s'\n",
                cfg->issuer_email);
        return -1;
    }
    return 0;
}

/*
 * The settings the SQL functions read (current_setting('accord.*')) travel
 * as startup options of every connection: PGOPTIONS, which libpq adds to
 * each connection it opens (unless the URL sets options itself).
 */
static int export_db_settings(const struct config *cfg)
{
    char opts[1024];
    /* A transaction pooler gets them as database defaults instead (pooler.h). */
    if (!cfg->db_prepared)
        return 0;
    const char *prev = getenv("PGOPTIONS");
    int n = snprintf(opts, sizeof opts, "%s%s-c accord.max_releases=%ld", prev ? prev : "",
                     prev && *prev ? " " : "", cfg->max_releases);
    if (n > 0 && (size_t)n < sizeof opts && cfg->random_seed >= 0)
        n += snprintf(opts + n, sizeof opts - (size_t)n, " -c accord.random_seed=%ld",
                      cfg->random_seed);
    if (n < 0 || (size_t)n >= sizeof opts || setenv("PGOPTIONS", opts, 1) < 0) {
        fprintf(stderr, "accord: PGOPTIONS is too long to add accord's settings\n");
        return -1;
    }
    return 0;
}

const char *config_direct_url(const struct config *cfg)
{
    return cfg->direct_database_url[0] ? cfg->direct_database_url : cfg->database_url;
}

/* Behind a transaction pooler, session-bound work needs a connection of its own. */
static int check_pooler_settings(const struct config *cfg)
{
    if (!cfg->db_prepared && !cfg->direct_database_url[0]) {
        fprintf(stderr,
                "accord: --db-prepared 0 (a transaction pooler) needs --direct-database-url "
                "(ACCORD_DIRECT_DATABASE_URL): PostgreSQL itself or a session-mode pool, for "
                "migrations, database settings and LISTEN\n");
        return -1;
    }
    return 0;
}

void config_set_default_public_url(struct config *cfg, int bound_port)
{
    char url[sizeof cfg->public_url];
    const char *h = cfg->listen_host;
    bool v6 = strchr(h, ':') != NULL;

    if (cfg->public_url[0])
        return;
    /* Good for development; behind a proxy or on 0.0.0.0 set --public-url. */
    if (strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0)
        h = v6 ? "::1" : "127.0.0.1";
    snprintf(url, sizeof url, "http://%s%s%s:%d", v6 ? "[" : "", h, v6 ? "]" : "", bound_port);
    if (set_public_url(cfg, url) < 0)
        cfg->public_url[0] = cfg->public_origin[0] = '\0';
    cfg->public_url_set = false; /* derived, not given: badges need it given */
}

void config_usage(FILE *out)
{
    fprintf(
        out,
        "usage: accord serve [options]\n"
        "\n"
        "Every option is also an environment variable; the flag wins.\n"
        "  --listen HOST:PORT    ACCORD_LISTEN         (default 127.0.0.1:8080; port 0 picks one)\n"
        "  --data-dir DIR        ACCORD_DATA_DIR       (default var/artifacts)\n"
        "  --database-url URL    DATABASE_URL          (required; libpq conninfo or URI)\n"
        "  --no-migrate          ACCORD_MIGRATE=0      (do not apply migrations at start)\n"
        "  --public-url URL      ACCORD_PUBLIC_URL     (how browsers reach accord, e.g.\n"
        "                                               https://accord.example.org; default\n"
        "                                               http://LISTEN; badges are issued only\n"
        "                                               when it is set; https makes session\n"
        "                                               cookies Secure)\n"
        "  --production          ACCORD_PRODUCTION=1   (the public URL must be set, https)\n"
        "  --key-dir DIR         ACCORD_KEY_DIR        (default var/keys; badge signing keys)\n"
        "  --issuer-name NAME    ACCORD_ISSUER_NAME    (default accord)\n"
        "  --issuer-url URL      ACCORD_ISSUER_URL     (default the public URL)\n"
        "  --issuer-email E      ACCORD_ISSUER_EMAIL\n"
        "  --direct-database-url URL  ACCORD_DIRECT_DATABASE_URL  (default --database-url;\n"
        "                                               migrations, LISTEN, keys: needed\n"
        "                                               behind a transaction pooler)\n"
        "  --replica-url URL     ACCORD_REPLICA_URL    (default none; a streaming standby\n"
        "                                               for reports, see --replica-max-lag)\n"
        "  --log-level LEVEL     ACCORD_LOG            (default info; debug, info, warn, error)\n"
        "  --log-format FORMAT   ACCORD_LOG_FORMAT     (default text; json: one JSON object a "
        "line)\n"
        "  --cors-origins LIST   ACCORD_CORS_ORIGINS   (default none; comma-separated origins\n"
        "                                               such as https://app.example.org, or *)\n"
        "  --metrics-token TOKEN ACCORD_METRICS_TOKEN  (default none: /metrics is open;\n"
        "                                               set: /metrics wants Bearer TOKEN)\n"
        "  --smtp-url URL        ACCORD_SMTP_URL       (default none: no mail; smtp://HOST:PORT\n"
        "                                               or smtps://HOST:PORT)\n"
        "  --smtp-user USER      ACCORD_SMTP_USER      (the password: ACCORD_SMTP_PASSWORD)\n"
        "  --smtp-from ADDRESS   ACCORD_SMTP_FROM      (the sender; required with a URL)\n"
        "  --smtp-tls MODE       ACCORD_SMTP_TLS       (default require: STARTTLS or fail;\n"
        "                                               try; off)\n"
        "  --smtp-ca-file FILE   ACCORD_SMTP_CA_FILE   (default the system's CA store)\n");
    for (size_t i = 0; i < N_NUMERIC; i++)
        fprintf(out, "  --%-19s ACCORD_%-14s (default %ld; %s)\n", numeric_settings[i].flag,
                numeric_settings[i].env + 7, numeric_settings[i].def, numeric_settings[i].help);
    fprintf(out, "  --help                this text\n\n");
    storage_usage(out); /* storage.h: ACCORD_STORAGE, ACCORD_S3_* */
}

static int set_log_level(struct config *cfg, const char *text, const char *source)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (strcmp(text, levels[i]) == 0) {
            strcpy(cfg->log_level, levels[i]);
            return 0;
        }
    fprintf(stderr, "accord: %s: '%s' is not one of debug, info, warn, error\n", source, text);
    return -1;
}

static int set_log_format(struct config *cfg, const char *text, const char *source)
{
    if (strcmp(text, "text") != 0 && strcmp(text, "json") != 0) {
        fprintf(stderr, "accord: %s: '%s' is not text or json\n", source, text);
        return -1;
    }
    cfg->log_json = strcmp(text, "json") == 0;
    return 0;
}

/* Each origin is "*" or scheme://host[:port], no path: what browsers send in Origin. */
static int set_cors_origins(struct config *cfg, const char *text, const char *source)
{
    const char *p = text;

    if (set_string(cfg->cors_origins, sizeof cfg->cors_origins, text, source) < 0)
        return -1;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *scheme_end = memchr(p, ':', len);
        bool star = len == 1 && *p == '*';
        bool ok = star || (scheme_end && (size_t)(scheme_end - p) + 3 < len &&
                           scheme_end[1] == '/' && scheme_end[2] == '/' &&
                           !memchr(scheme_end + 3, '/', len - (size_t)(scheme_end + 3 - p)));
        for (size_t i = 0; ok && i < len; i++)
            if (p[i] <= ' ' || p[i] == 0x7f)
                ok = false;
        if (!ok) {
            fprintf(stderr,
                    "accord: %s: '%.*s' is not an origin like https://app.example.org (or *)\n",
                    source, (int)len, p);
            return -1;
        }
        p += len + (end ? 1 : 0);
    }
    return 0;
}

bool config_cors_allows(const struct config *cfg, const char *origin)
{
    size_t olen = origin ? strlen(origin) : 0;
    const char *p = cfg->cors_origins;

    if (olen == 0)
        return false;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if ((len == 1 && *p == '*') || (len == olen && strncasecmp(p, origin, len) == 0))
            return true;
        p += len + (end ? 1 : 0);
    }
    return false;
}

int config_load(struct config *cfg, int argc, char **argv)
{
    enum {
        OPT_LISTEN = 1000,
        OPT_DATA_DIR,
        OPT_DB_URL,
        OPT_NO_MIGRATE,
        OPT_LOG_LEVEL,
        OPT_LOG_FORMAT,
        OPT_CORS,
        OPT_METRICS_TOKEN,
        OPT_HELP,
        OPT_PUBLIC_URL,
        OPT_PRODUCTION,
        OPT_STRING,
        OPT_NUMERIC = OPT_STRING + 100
    };
    struct option opts[N_NUMERIC + N_STRING + 12];
    const char *env;
    int c, n = 0;

    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->listen_host, "127.0.0.1");
    cfg->listen_port = 8080;
    strcpy(cfg->data_dir, "var/artifacts");
    strcpy(cfg->key_dir, "var/keys");
    strcpy(cfg->issuer_name, "accord");
    cfg->migrate = true;
    strcpy(cfg->log_level, "info");
    for (size_t i = 0; i < N_NUMERIC; i++) {
        const struct numeric_setting *s = &numeric_settings[i];
        *(long *)((char *)cfg + s->offset) = s->def;
        if ((env = getenv(s->env)) && *env && set_numeric(cfg, s, env, s->env) < 0)
            return -1;
    }
    if ((env = getenv("ACCORD_LISTEN")) && *env && set_listen(cfg, env) < 0)
        return -1;
    if ((env = getenv("ACCORD_DATA_DIR")) && *env &&
        set_string(cfg->data_dir, sizeof cfg->data_dir, env, "ACCORD_DATA_DIR") < 0)
        return -1;
    if ((env = getenv("ACCORD_PUBLIC_URL")) && *env && set_public_url(cfg, env) < 0)
        return -1;
    for (size_t i = 0; i < N_STRING; i++) {
        const struct string_setting *s = &string_settings[i];
        if ((env = getenv(s->env)) && *env &&
            set_string((char *)cfg + s->offset, s->cap, env, s->env) < 0)
            return -1;
    }
    if ((env = getenv("ACCORD_PRODUCTION")) && strcmp(env, "1") == 0)
        cfg->production = true;
    if ((env = getenv("ACCORD_MIGRATE")) && strcmp(env, "0") == 0)
        cfg->migrate = false;
    cfg->database_url = getenv("DATABASE_URL");
    if ((env = getenv("ACCORD_LOG")) && *env && set_log_level(cfg, env, "ACCORD_LOG") < 0)
        return -1;
    if ((env = getenv("ACCORD_LOG_FORMAT")) && *env &&
        set_log_format(cfg, env, "ACCORD_LOG_FORMAT") < 0)
        return -1;
    if ((env = getenv("ACCORD_CORS_ORIGINS")) && *env &&
        set_cors_origins(cfg, env, "ACCORD_CORS_ORIGINS") < 0)
        return -1;
    if ((env = getenv("ACCORD_METRICS_TOKEN")) && *env)
        cfg->metrics_token = env;

    opts[n++] = (struct option){"listen", required_argument, NULL, OPT_LISTEN};
    opts[n++] = (struct option){"data-dir", required_argument, NULL, OPT_DATA_DIR};
    opts[n++] = (struct option){"database-url", required_argument, NULL, OPT_DB_URL};
    opts[n++] = (struct option){"no-migrate", no_argument, NULL, OPT_NO_MIGRATE};
    opts[n++] = (struct option){"log-level", required_argument, NULL, OPT_LOG_LEVEL};
    opts[n++] = (struct option){"log-format", required_argument, NULL, OPT_LOG_FORMAT};
    opts[n++] = (struct option){"cors-origins", required_argument, NULL, OPT_CORS};
    opts[n++] = (struct option){"metrics-token", required_argument, NULL, OPT_METRICS_TOKEN};
    opts[n++] = (struct option){"help", no_argument, NULL, OPT_HELP};
    opts[n++] = (struct option){"public-url", required_argument, NULL, OPT_PUBLIC_URL};
    opts[n++] = (struct option){"production", no_argument, NULL, OPT_PRODUCTION};
    for (size_t i = 0; i < N_STRING; i++)
        opts[n++] =
            (struct option){string_settings[i].flag, required_argument, NULL, OPT_STRING + (int)i};
    for (size_t i = 0; i < N_NUMERIC; i++)
        opts[n++] = (struct option){numeric_settings[i].flag, required_argument, NULL,
                                    OPT_NUMERIC + (int)i};
    opts[n] = (struct option){0};

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_LISTEN:
            if (set_listen(cfg, optarg) < 0)
                return -1;
            break;
        case OPT_DATA_DIR:
            if (set_string(cfg->data_dir, sizeof cfg->data_dir, optarg, "--data-dir") < 0)
                return -1;
            break;
        case OPT_DB_URL:
            cfg->database_url = optarg;
            break;
        case OPT_NO_MIGRATE:
            cfg->migrate = false;
            break;
        case OPT_PUBLIC_URL:
            if (set_public_url(cfg, optarg) < 0)
                return -1;
            break;
        case OPT_PRODUCTION:
            cfg->production = true;
            break;
        case OPT_LOG_LEVEL:
            if (set_log_level(cfg, optarg, "--log-level") < 0)
                return -1;
            break;
        case OPT_LOG_FORMAT:
            if (set_log_format(cfg, optarg, "--log-format") < 0)
                return -1;
            break;
        case OPT_CORS:
            if (set_cors_origins(cfg, optarg, "--cors-origins") < 0)
                return -1;
            break;
        case OPT_METRICS_TOKEN:
            cfg->metrics_token = *optarg ? optarg : NULL;
            break;
        case OPT_HELP:
            config_usage(stdout);
            return 1;
        default:
            if (c >= OPT_STRING && c < OPT_STRING + (int)N_STRING) {
                const struct string_setting *s = &string_settings[c - OPT_STRING];
                char flag[64];
                snprintf(flag, sizeof flag, "--%s", s->flag);
                if (set_string((char *)cfg + s->offset, s->cap, optarg, flag) < 0)
                    return -1;
                break;
            }
            if (c >= OPT_NUMERIC && c < OPT_NUMERIC + (int)N_NUMERIC) {
                const struct numeric_setting *s = &numeric_settings[c - OPT_NUMERIC];
                char flag[64];
                snprintf(flag, sizeof flag, "--%s", s->flag);
                if (set_numeric(cfg, s, optarg, flag) < 0)
                    return -1;
                break;
            }
            config_usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "accord serve: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!cfg->database_url || !*cfg->database_url) {
        fprintf(stderr, "accord: DATABASE_URL is not set (or pass --database-url)\n");
        return -1;
    }
    if (check_pooler_settings(cfg) < 0 || export_db_settings(cfg) < 0)
        return -1;
    if (check_badge_settings(cfg) < 0)
        return -1;
    if (check_notify_settings(cfg) < 0)
        return -1;
    if (cfg->session_idle > cfg->session_lifetime) {
        fprintf(stderr, "accord: --session-idle (%ld) is longer than --session-lifetime (%ld)\n",
                cfg->session_idle, cfg->session_lifetime);
        return -1;
    }
    if (cfg->threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = cores > 0 ? (cores > 64 ? 64 : cores) : 1;
    }
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.h - the server's settings: defaults, environment, command-line flags.
 *
 * Every numeric setting has bounds; a value outside them is a usage error, not
 * a silent clamp. Precedence: flag > environment > default.
 */
#ifndef ACCORD_CONFIG_H
#define ACCORD_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

struct config {
    char listen_host[256];
    int listen_port;
    const char *database_url; /* libpq conninfo or URI (not owned) */
    char data_dir[1024];      /* artifact store root */
    char public_url[512];     /* how browsers reach us ("https://accord.example.org"), no trailing
                                 slash; "" until serve derives it from the listening address */
    long lease_seconds;       /* review claim lease */
    long max_body;            /* largest upload body (whole artifact, tus chunk), bytes */
    long max_json_body;       /* largest JSON body, bytes */
    long storage_reserve;     /* bytes kept free on the data directory's disk */
    long quota_bytes;         /* per user: stored artifacts + unfinished uploads, bytes */
    long quota_in_flight;     /* per user: unfinished uploads' announced lengths, bytes */
    long upload_expiry;       /* seconds an untouched unfinished upload is kept */
    long max_connections;     /* client connections, all loops together */
    long max_body_memory;     /* bytes of request bodies held at once, all loops */
    long threads;             /* event loops, one per core by default */
    long db_pool_size;        /* connections per event loop */
    long db_queue_max;        /* queries waiting for a connection, per loop */
    long auth_queue_max;      /* credential lookups waiting, per loop */
    long shutdown_grace;      /* seconds to finish requests in flight */
    long max_releases;        /* reviews given back unscored per assessor per 24 h */
    long random_seed;         /* seed of the database's random draws; -1 = random */
    bool migrate;             /* apply migrations at start */
    /* badges (issue 12): issued only when the public URL was set, not derived */
    bool public_url_set;   /* ACCORD_PUBLIC_URL / --public-url given */
    bool production;       /* ACCORD_PRODUCTION=1: refuse settings fit only for a laptop */
    char key_dir[1024];    /* private signing keys, 0600 files */
    char issuer_name[256]; /* the issuer Profile: name, url (default the public URL), email */
    char issuer_url[512];
    char issuer_email[320];
    long session_idle;     /* seconds a browser session survives unused */
    long session_lifetime; /* seconds a browser session lasts at most */
    /* live updates (issue 14, live.h) */
    long live_streams;          /* open GET /v1/events streams per process */
    long live_streams_per_user; /* ... per person (tabs, devices) */
    long live_heartbeat;        /* seconds between keep-alive comments */
    char public_origin[512]; /* scheme://host[:port] of public_url: where cookie requests come from
                              */
    bool secure_cookies;     /* public_url is https */
    char log_level[16];      /* debug, info, warn, error */
    bool log_json;           /* JSON lines instead of text */
    char cors_origins[4096]; /* comma-separated allowed origins; "" = no CORS */
    const char *metrics_token; /* /metrics wants "Bearer <this>" when set (not owned) */
    /* notifications (issue 14): the outbox's delivery threads, webhooks, mail */
    long outbox_threads;        /* delivery threads of this server (0: delivers nothing) */
    long outbox_attempts;       /* attempts before a delivery is dead */
    long outbox_retry_ms;       /* first retry's back-off; doubles each attempt, with jitter */
    long outbox_retry_max;      /* longest back-off, seconds */
    long webhook_timeout_ms;    /* one webhook attempt */
    long webhook_allow_private; /* 1: webhooks may reach loopback and private addresses */
    long mail_interval;         /* seconds between two mails to one person (the digest) */
    long mail_delay_ms;         /* a notification waits this long for others to join its mail */
    long lease_warn;            /* seconds before a lease ends that its assessor is told */
    long turnaround_hours;      /* submissions waiting longer are reported to leads */
    char smtp_url[512];         /* smtp://host:port or smtps://host:port; "" = no mail */
    char smtp_user[256];
    const char *smtp_password; /* ACCORD_SMTP_PASSWORD only (not a flag: ps shows flags) */
    char smtp_from[320];
    char smtp_tls[16];       /* require (STARTTLS), try, off */
    char smtp_ca_file[1024]; /* CA bundle for the SMTP server's certificate ("" = system) */
    /* scale-out (issue 13): a pooler, a read replica (pooler.h, replica.h) */
    long db_prepared;               /* 1: prepared statements; 0: behind a transaction pooler */
    char direct_database_url[1024]; /* migrations, LISTEN, keys: "" = database_url */
    char replica_url[1024];         /* read-only reports: "" = none */
    long replica_max_lag;           /* seconds a replica may be behind and still serve */
};

/* Where session-bound work goes: --direct-database-url, else --database-url. */
const char *config_direct_url(const struct config *cfg);

/*
 * Fills cfg from defaults and the environment, then from argv (the arguments
 * after "serve"). On error prints a message naming the setting and returns -1;
 * after printing the usage for --help returns 1.
 */
int config_load(struct config *cfg, int argc, char **argv) __attribute__((warn_unused_result));

/* After the port is known: public_url defaults to http://HOST:PORT of --listen. */
void config_set_default_public_url(struct config *cfg, int bound_port);

/* Prints the flags and environment variables with their defaults. */
void config_usage(FILE *out);

/* Whether origin (an Origin header's value) is on the --cors-origins list. */
bool config_cors_allows(const struct config *cfg, const char *origin);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mail.h - one email: a MIME message (plain text and HTML alternatives,
 * RFC 8058 one-click unsubscribe headers) sent over SMTP with libcurl
 * (STARTTLS per --smtp-tls, authentication when a user is set).
 *
 * mail_send BLOCKS: outbox threads only.
 */
#ifndef ACCORD_MAIL_H
#define ACCORD_MAIL_H

#include <stdbool.h>
#include <stddef.h>

struct config;

struct mail_content {
    const char *to;              /* the recipient's address */
    const char *subject;         /* UTF-8, any text: encoded for the header */
    const char *text;            /* UTF-8 plain-text body */
    const char *html;            /* UTF-8 HTML body (already escaped) */
    const char *unsubscribe_url; /* one-click link, or NULL (no List-Unsubscribe) */
};

/*
 * Whether an address can go in an SMTP envelope and a To header as it is:
 * local@domain of printable ASCII, no spaces, quotes, brackets or commas.
 */
bool mail_address_ok(const char *addr);

/* The whole message (headers and body, CRLF lines) in a new buffer, or NULL. */
char *mail_compose(const struct config *cfg, const struct mail_content *m, size_t *len);

/*
 * Sends message to `to` through cfg's SMTP server. curl: a reusable easy
 * handle or NULL. cancel: non-zero aborts (shutdown). Returns true when the
 * server accepted it; else why in err.
 */
bool mail_send(void *curl, const struct config *cfg, const char *to, const char *message,
               size_t len, volatile int *cancel, char *err, size_t err_cap);

#endif

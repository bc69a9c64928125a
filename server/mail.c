/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mail.c - MIME composition and SMTP delivery with libcurl. Every header
 * value that comes from data (the subject) is RFC 2047-encoded, and bodies
 * are base64: nothing a credential title contains can end a header or
 * inject one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "config.h"
#include "mail.h"

bool mail_address_ok(const char *addr)
{
    const char *at;
    size_t len = addr ? strlen(addr) : 0;

    if (len < 3 || len > 320)
        return false;
    at = strchr(addr, '@');
    if (!at || at == addr || !at[1] || strchr(at + 1, '@'))
        return false;
    for (const char *p = addr; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= ' ' || ch >= 0x7f || strchr("\"(),:;<>[\\]", ch))
            return false;
    }
    return true;
}

/* "=?UTF-8?B?...?=" words of at most 45 input bytes, never splitting a character. */
static void put_encoded_header(FILE *f, const char *name, const char *value)
{
    size_t len = strlen(value), pos = 0;
    unsigned char enc[80];

    fprintf(f, "%s:", name);
    if (len == 0)
        fputs(" ", f);
    while (pos < len) {
        size_t n = len - pos > 45 ? 45 : len - pos;
        while (pos + n < len && n > 1 && ((unsigned char)value[pos + n] & 0xc0) == 0x80)
            n--;
        EVP_EncodeBlock(enc, (const unsigned char *)value + pos, (int)n);
        fprintf(f, "%s=?UTF-8?B?%s?=", pos ? "\r\n " : " ", enc);
        pos += n;
    }
    fputs("\r\n", f);
}

/* base64 in lines of 76 characters (RFC 2045). */
static void put_base64(FILE *f, const char *data)
{
    size_t len = strlen(data);
    unsigned char enc[80];

    for (size_t pos = 0; pos < len; pos += 57) {
        size_t n = len - pos > 57 ? 57 : len - pos;
        EVP_EncodeBlock(enc, (const unsigned char *)data + pos, (int)n);
        fprintf(f, "%s\r\n", enc);
    }
}

static int random_hex(char *out, size_t bytes)
{
    unsigned char b[32];
    if (bytes > sizeof b || RAND_bytes(b, (int)bytes) != 1)
        return -1;
    for (size_t i = 0; i < bytes; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    return 0;
}

char *mail_compose(const struct config *cfg, const struct mail_content *m, size_t *len)
{
    char *buf = NULL, boundary[40], msgid[40], date[64];
    const char *domain = strchr(cfg->smtp_from, '@');
    time_t now = time(NULL);
    struct tm tm;
    FILE *f;

    if (random_hex(boundary, 16) < 0 || random_hex(msgid, 16) < 0)
        return NULL;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    f = open_memstream(&buf, len);
    if (!f)
        return NULL;
    fprintf(f, "From: <%s>\r\n", cfg->smtp_from);
    fprintf(f, "To: <%s>\r\n", m->to);
    put_encoded_header(f, "Subject", m->subject);
    fprintf(f, "Date: %s\r\n", date);
    fprintf(f, "Message-ID: <%s%s>\r\n", msgid, domain ? domain : "@accord.invalid");
    fputs("MIME-Version: 1.0\r\n", f);
    fputs("Auto-Submitted: auto-generated\r\n", f);
    if (m->unsubscribe_url) {
        /* RFC 8058: the mail client POSTs "List-Unsubscribe=One-Click" to the URL */
        fprintf(f, "List-Unsubscribe: <%s>\r\n", m->unsubscribe_url);
        fputs("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", f);
    }
    fprintf(f, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", boundary);
    fprintf(f,
            "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n",
            boundary);
    put_base64(f, m->text);
    fprintf(f,
            "--%s\r\nContent-Type: text/html; charset=utf-8\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n",
            boundary);
    put_base64(f, m->html);
    fprintf(f, "--%s--\r\n", boundary);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

struct reader {
    const char *data;
    size_t len, pos;
    volatile int *cancel;
};

static size_t read_message(char *out, size_t size, size_t nmemb, void *arg)
{
    struct reader *r = arg;
    size_t n = size * nmemb;
    if (r->cancel && *r->cancel)
        return CURL_READFUNC_ABORT;
    if (n > r->len - r->pos)
        n = r->len - r->pos;
    memcpy(out, r->data + r->pos, n);
    r->pos += n;
    return n;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct reader *r = arg;
    (void)dt, (void)dn, (void)ut, (void)un;
    return r->cancel && *r->cancel ? 1 : 0;
}

bool mail_send(void *curl, const struct config *cfg, const char *to, const char *message,
               size_t len, volatile int *cancel, char *err, size_t err_cap)
{
    CURL *c = curl ? curl : curl_easy_init();
    struct curl_slist *rcpt = NULL;
    struct reader r = {message, len, 0, cancel};
    char from[340], rcpt_line[340];
    CURLcode rc;
    bool ok = false;

    if (!c || !mail_address_ok(to)) {
        snprintf(err, err_cap, c ? "the address cannot be mailed" : "out of memory");
        goto cleanup;
    }
    snprintf(from, sizeof from, "<%s>", cfg->smtp_from);
    snprintf(rcpt_line, sizeof rcpt_line, "<%s>", to);
    rcpt = curl_slist_append(NULL, rcpt_line);
    if (!rcpt) {
        snprintf(err, err_cap, "out of memory");
        goto cleanup;
    }
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, cfg->smtp_url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_USE_SSL,
                     strcmp(cfg->smtp_tls, "require") == 0 ? CURLUSESSL_ALL
                     : strcmp(cfg->smtp_tls, "try") == 0   ? CURLUSESSL_TRY
                                                           : CURLUSESSL_NONE);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (cfg->smtp_ca_file[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, cfg->smtp_ca_file);
    if (cfg->smtp_user[0]) {
        curl_easy_setopt(c, CURLOPT_USERNAME, cfg->smtp_user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, cfg->smtp_password ? cfg->smtp_password : "");
    }
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_message);
    curl_easy_setopt(c, CURLOPT_READDATA, &r);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &r);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        if (code)
            snprintf(err, err_cap, "%s (SMTP %ld)", curl_easy_strerror(rc), code);
        else
            snprintf(err, err_cap, "%s", curl_easy_strerror(rc));
        goto cleanup;
    }
    ok = true;
cleanup:
    if (c) {
        curl_easy_setopt(c, CURLOPT_MAIL_RCPT, NULL);
        if (!curl)
            curl_easy_cleanup(c);
    }
    curl_slist_free_all(rcpt);
    return ok;
}

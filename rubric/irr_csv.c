/* SPDX-License-Identifier: Apache-2.0 */
/*
 * irr_csv.c - the long CSV format (`unit,rater,score`, one rating a row) into
 * an irr_table, with errors that name the line. Shared by `accord irr` and
 * the benchmark so both measure and report the same thing. No I/O: the
 * caller reads the bytes.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csv.h"
#include "irr_impl.h"

static irr_status load_fail(irr_load_error *err, irr_status st, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static irr_status load_fail(irr_load_error *err, irr_status st, size_t line, const char *fmt, ...)
{
    if (err) {
        err->line = line;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return st;
}

static int field_equals(const csv_field *f, const char *want)
{
    return f->len == strlen(want) && strncasecmp(f->ptr, want, f->len) == 0;
}

/* A score: decimal number, optionally signed, with fraction and exponent,
 * surrounding blanks allowed, any length ("0.1000...0" from a spreadsheet).
 * Integers (the usual rubric level) skip strtod. Returns 0, -1 when it is
 * not a number, -2 when it is one beyond the range of a double (or when
 * there is no memory to read a very long one). */
static int parse_score(const char *s, size_t len, double *out)
{
    while (len && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len == 0)
        return -1;
    size_t i = 0;
    int neg = 0;
    if (s[0] == '-' || s[0] == '+')
        neg = s[i++] == '-';
    if (i < len && len - i <= 9) {
        long v = 0;
        size_t j = i;
        for (; j < len && s[j] >= '0' && s[j] <= '9'; j++)
            v = v * 10 + (s[j] - '0');
        if (j == len) {
            *out = neg ? -(double)v : (double)v;
            return 0;
        }
    }
    /* Only what a decimal number is made of: strtod alone would also take
     * "inf", "nan" and hexadecimal. */
    for (size_t j = 0; j < len; j++) {
        char c = s[j];
        if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'))
            return -1;
    }
    char small[64], *buf = len < sizeof small ? small : malloc(len + 1);
    if (!buf)
        return -2;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    double v = strtod(buf, &end);
    int rc = end != buf + len ? -1 : !isfinite(v) ? -2 : 0;
    if (buf != small)
        free(buf);
    if (rc == 0)
        *out = v;
    return rc;
}

/* Quoted for a message: at most 40 bytes, control characters as '?'. */
static void show(char *dst, size_t cap, const char *s, size_t len)
{
    size_t n = len < 40 ? len : 40, j = 0;
    for (size_t i = 0; i < n && j + 1 < cap; i++)
        dst[j++] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
    if (len > n && j + 4 < cap) {
        memcpy(dst + j, "...", 3);
        j += 3;
    }
    dst[j] = '\0';
}

irr_status irr_load_csv(irr_table *t, char *buf, size_t len, irr_load_error *err)
{
    if (err) {
        err->line = 0;
        err->message[0] = '\0';
    }
    if (!t || (!buf && len))
        return IRR_ERR_ARG;
    csv_reader r;
    csv_field f[3];
    size_t n = 0;
    uint32_t *lines = NULL; /* line of each rating, for the duplicate message */
    size_t lines_cap = 0, base = t->n_ratings;
    irr_status st;

    /* One rating per line, give or take the header: reserve once instead of
     * growing (each growth touches fresh pages, which is most of the cost). */
    size_t n_lines = 0;
    for (const char *p = buf, *end = buf + len; p < end; p++) {
        p = memchr(p, '\n', (size_t)(end - p));
        if (!p)
            break;
        n_lines++;
    }
    if (irr_table_reserve(t, n_lines + 1) == IRR_OK) {
        lines = malloc((n_lines + 1) * sizeof *lines);
        lines_cap = lines ? n_lines + 1 : 0;
    }
    csv_reader_init(&r, buf, len);
    int rc = csv_read_record(&r, f, 3, &n);
    if (rc == CSV_END) {
        st = load_fail(err, IRR_ERR_INPUT, 1, "empty input: expected the header unit,rater,score");
        goto cleanup;
    }
    if (rc == CSV_ERROR || n != 3 || !field_equals(&f[0], "unit") ||
        !field_equals(&f[1], "rater") || !field_equals(&f[2], "score")) {
        st = load_fail(err, IRR_ERR_INPUT, 1, "the header must be unit,rater,score");
        goto cleanup;
    }
    for (;;) {
        rc = csv_read_record(&r, f, 3, &n);
        if (rc == CSV_END)
            break;
        size_t line = r.record_line;
        if (rc == CSV_ERROR) {
            if (strcmp(r.error, "too many fields") == 0)
                st = load_fail(err, IRR_ERR_INPUT, r.error_line,
                               "expected 3 fields (unit,rater,score), found more");
            else
                st = load_fail(err, IRR_ERR_INPUT, r.error_line, "%s", r.error);
            goto cleanup;
        }
        if (n == 1 && f[0].len == 0 && !f[0].quoted)
            continue; /* blank line */
        if (n != 3) {
            st = load_fail(err, IRR_ERR_INPUT, line,
                           "expected 3 fields (unit,rater,score), found %zu", n);
            goto cleanup;
        }
        double score;
        int parsed = parse_score(f[2].ptr, f[2].len, &score);
        if (parsed != 0) {
            char shown[48];
            show(shown, sizeof shown, f[2].ptr, f[2].len);
            st = load_fail(err, IRR_ERR_INPUT, line,
                           parsed == -1 ? "score \"%s\" is not a number"
                                        : "score \"%s\" is beyond the range of a double (1.8e308)",
                           shown);
            goto cleanup;
        }
        st = irr_table_addn(t, f[0].ptr, f[0].len, f[1].ptr, f[1].len, score);
        if (st == IRR_ERR_SCORE) {
            st = load_fail(err, st, line, "score %g is not one of the declared levels", score);
            goto cleanup;
        }
        if (st != IRR_OK) {
            st = load_fail(err, st, line, "%s", irr_status_str(st));
            goto cleanup;
        }
        size_t k = t->n_ratings - base - 1;
        if (k >= lines_cap) {
            size_t cap = lines_cap ? lines_cap * 2 : 4096;
            uint32_t *p = realloc(lines, cap * sizeof *p);
            if (!p) {
                st = load_fail(err, IRR_ERR_NOMEM, 0, "out of memory");
                goto cleanup;
            }
            lines = p;
            lines_cap = cap;
        }
        lines[k] = line > UINT32_MAX ? UINT32_MAX : (uint32_t)line;
    }
    st = irr_table_prepare(t);
    if (st == IRR_ERR_DUPLICATE) {
        size_t idx, first;
        irr_table_duplicate(t, &idx, &first);
        char unit[48], rater[48];
        size_t ulen, rlen;
        const char *u = irr_intern_name(&t->units, t->r_unit[idx], &ulen);
        const char *rt = irr_intern_name(&t->raters, t->r_rater[idx], &rlen);
        show(unit, sizeof unit, u, ulen);
        show(rater, sizeof rater, rt, rlen);
        if (idx >= base && first >= base)
            st = load_fail(err, st, lines[idx - base],
                           "duplicate rating: rater \"%s\" already rated unit \"%s\" on line %u",
                           rater, unit, lines[first - base]);
        else
            st = load_fail(err, st, idx >= base ? lines[idx - base] : 0,
                           "duplicate rating: rater \"%s\" already rated unit \"%s\"", rater, unit);
    } else if (st != IRR_OK) {
        st = load_fail(err, st, 0, "%s", irr_status_str(st));
    }
cleanup:
    free(lines);
    return st;
}

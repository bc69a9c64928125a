/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_csv.c - the RFC 4180 reader: quoting, escapes, line endings, line
 * numbers across quoted line breaks, and the malformed inputs it rejects.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "csv.h"
#include "irr.h"

#define MAXF 8

typedef struct {
    char *buf;
    csv_reader r;
    csv_field f[MAXF];
    size_t n;
} reader;

static void open_text(reader *rd, const char *text)
{
    size_t len = strlen(text);
    rd->buf = malloc(len + 1);
    memcpy(rd->buf, text, len + 1);
    csv_reader_init(&rd->r, rd->buf, len); /* not NUL-terminated as far as it knows */
}

static int next(reader *rd)
{
    return csv_read_record(&rd->r, rd->f, MAXF, &rd->n);
}

static int field_is(const reader *rd, size_t i, const char *want)
{
    return i < rd->n && rd->f[i].len == strlen(want) &&
           memcmp(rd->f[i].ptr, want, rd->f[i].len) == 0;
}

static void test_plain(void)
{
    reader rd;
    open_text(&rd, "unit,rater,score\nu1,A,3\r\nu2,,4");
    CHECK(next(&rd) == CSV_RECORD && rd.n == 3 && field_is(&rd, 2, "score"));
    CHECK(next(&rd) == CSV_RECORD && rd.r.record_line == 2 && field_is(&rd, 2, "3"));
    CHECK(next(&rd) == CSV_RECORD && rd.r.record_line == 3 && field_is(&rd, 1, "") &&
          field_is(&rd, 2, "4"));
    CHECK(next(&rd) == CSV_END);
    free(rd.buf);
}

static void test_quotes(void)
{
    reader rd;
    open_text(&rd, "\xEF\xBB\xBF\"a,b\",\"say \"\"hi\"\"\",\"line\nbreak\"\r\n\"\",x\n");
    CHECK(next(&rd) == CSV_RECORD && rd.n == 3);
    CHECK(field_is(&rd, 0, "a,b"));
    CHECK(field_is(&rd, 1, "say \"hi\""));
    CHECK(field_is(&rd, 2, "line\nbreak"));
    CHECK(rd.f[0].quoted == 1);
    CHECK(next(&rd) == CSV_RECORD && rd.r.record_line == 3 && field_is(&rd, 0, "") &&
          field_is(&rd, 1, "x"));
    CHECK(next(&rd) == CSV_END);
    free(rd.buf);
}

static void test_empty_lines(void)
{
    reader rd;
    open_text(&rd, "a\n\nb\n");
    CHECK(next(&rd) == CSV_RECORD && field_is(&rd, 0, "a"));
    CHECK(next(&rd) == CSV_RECORD && rd.n == 1 && field_is(&rd, 0, ""));
    CHECK(next(&rd) == CSV_RECORD && rd.r.record_line == 3 && field_is(&rd, 0, "b"));
    CHECK(next(&rd) == CSV_END);
    free(rd.buf);
    open_text(&rd, "");
    CHECK(next(&rd) == CSV_END);
    free(rd.buf);
}

static void test_errors(void)
{
    const char *bad[] = {"a,\"open\n", "a,b\"c\n", "\"x\"y,1\n", "1,2,3,4,5,6,7,8,9\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reader rd;
        open_text(&rd, bad[i]);
        CHECK(next(&rd) == CSV_ERROR);
        CHECK(rd.r.error != NULL && rd.r.error_line == 1);
        free(rd.buf);
    }
    reader rd;
    open_text(&rd, "ok\n\"multi\nline\nfield\",1\nbad\"\n");
    CHECK(next(&rd) == CSV_RECORD);
    CHECK(next(&rd) == CSV_RECORD && rd.r.record_line == 2);
    CHECK(next(&rd) == CSV_ERROR && rd.r.error_line == 5);
    free(rd.buf);
}

/* irr_load_csv: the long format, and errors that name the line. */
static irr_status load_text(const char *text, const double *levels, size_t n_levels,
                            irr_load_error *err, size_t *n_ratings)
{
    size_t len = strlen(text);
    char *buf = malloc(len + 1);
    memcpy(buf, text, len + 1);
    irr_table *t = irr_table_new();
    if (levels)
        irr_table_set_levels(t, levels, n_levels);
    irr_status st = irr_load_csv(t, buf, len, err);
    *n_ratings = irr_table_n_ratings(t);
    irr_table_free(t);
    free(buf);
    return st;
}

static void test_load(void)
{
    irr_load_error err;
    size_t n;
    CHECK(load_text("unit,rater,score\r\n\"u,1\",A,3\r\nu2,A, 2.5 \r\n\r\nu2,\"B\",-1e0\r\n", NULL,
                    0, &err, &n) == IRR_OK);
    CHECK(n == 3);
    CHECK(load_text("Unit,Rater,Score\n", NULL, 0, &err, &n) == IRR_OK && n == 0);
    CHECK(load_text("", NULL, 0, &err, &n) == IRR_ERR_INPUT && err.line == 1);
    CHECK(load_text("unit,rater\nu,a\n", NULL, 0, &err, &n) == IRR_ERR_INPUT && err.line == 1);
    CHECK(load_text("unit,rater,score\nu,a,1\nu,b,x\n", NULL, 0, &err, &n) == IRR_ERR_INPUT);
    CHECK(err.line == 3);
    CHECK_STR(err.message, "score \"x\" is not a number");
    CHECK(load_text("unit,rater,score\nu,a,nan\n", NULL, 0, &err, &n) == IRR_ERR_INPUT);
    CHECK(load_text("unit,rater,score\nu,a,0x10\n", NULL, 0, &err, &n) == IRR_ERR_INPUT);
    CHECK(load_text("unit,rater,score\nu,a,\n", NULL, 0, &err, &n) == IRR_ERR_INPUT);
    CHECK(load_text("unit,rater,score\nu,a,1,2\n", NULL, 0, &err, &n) == IRR_ERR_INPUT);
    CHECK(err.line == 2);
    CHECK(load_text("unit,rater,score\nu,a\n", NULL, 0, &err, &n) == IRR_ERR_INPUT);
    CHECK(load_text("unit,rater,score\nu,a,1\nv,a,2\n\"multi\nline\",b,1\nu,a,3\n", NULL, 0, &err,
                    &n) == IRR_ERR_DUPLICATE);
    CHECK(err.line == 6);
    CHECK_STR(err.message, "duplicate rating: rater \"a\" already rated unit \"u\" on line 2");
    double levels[3] = {1, 2, 3};
    CHECK(load_text("unit,rater,score\nu,a,1\nu,b,4\n", levels, 3, &err, &n) == IRR_ERR_SCORE);
    CHECK(err.line == 3);
}

int main(void)
{
    RUN(test_plain);
    RUN(test_quotes);
    RUN(test_empty_lines);
    RUN(test_errors);
    RUN(test_load);
    return check_summary("csv");
}

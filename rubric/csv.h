/* SPDX-License-Identifier: Apache-2.0 */
/*
 * csv.h - an RFC 4180 CSV reader over a buffer in memory. No I/O.
 *
 * Fields are separated by commas, records by CRLF or LF (a lone CR is data).
 * A field may be quoted with '"'; inside quotes commas, CR and LF are data
 * and '""' is one quote. A leading UTF-8 byte order mark is skipped. The
 * reader unescapes quoted fields in place, so it needs a writable buffer;
 * fields point into it and stay valid as long as the buffer does.
 */
#ifndef ACCORD_CSV_H
#define ACCORD_CSV_H

#include <stddef.h>

typedef struct {
    char *data; /* the buffer (modified in place) */
    size_t len, pos;
    size_t line;        /* 1-based line where the next record starts */
    size_t record_line; /* line where the last record returned started */
    const char *error;  /* static message after CSV_ERROR */
    size_t error_line;  /* line where the broken record starts */
} csv_reader;

typedef struct {
    const char *ptr; /* not NUL-terminated */
    size_t len;
    int quoted;
} csv_field;

enum { CSV_RECORD = 1, CSV_END = 0, CSV_ERROR = -1 };

/* Starts reading data[0..len). */
void csv_reader_init(csv_reader *r, char *data, size_t len);

/*
 * Reads the next record into fields[0..*n_fields), at most max_fields.
 * Returns CSV_RECORD, CSV_END after the last record (a final line break does
 * not start an empty record), or CSV_ERROR with r->error and r->error_line
 * set: more than max_fields fields, a quote inside an unquoted field, text
 * after a closing quote, or an unterminated quoted field. An empty line is a
 * record of one empty field.
 */
int csv_read_record(csv_reader *r, csv_field *fields, size_t max_fields, size_t *n_fields);

#endif

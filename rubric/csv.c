/* SPDX-License-Identifier: Apache-2.0 */
/*
 * csv.c - RFC 4180 record reader (see csv.h). One pass, no allocation:
 * unquoted fields are slices of the buffer; quoted fields are unescaped in
 * place, which only ever shortens them.
 */
#include <string.h>

#include "csv.h"

void csv_reader_init(csv_reader *r, char *data, size_t len)
{
    memset(r, 0, sizeof *r);
    r->data = data;
    r->len = len;
    r->line = 1;
    if (len >= 3 && (unsigned char)data[0] == 0xEF && (unsigned char)data[1] == 0xBB &&
        (unsigned char)data[2] == 0xBF)
        r->pos = 3;
}

static int fail(csv_reader *r, const char *msg)
{
    r->error = msg;
    r->error_line = r->record_line; /* where the broken record starts */
    return CSV_ERROR;
}

int csv_read_record(csv_reader *r, csv_field *fields, size_t max_fields, size_t *n_fields)
{
    char *d = r->data;
    size_t len = r->len, p = r->pos, n = 0;
    *n_fields = 0;
    if (p >= len)
        return CSV_END;
    r->record_line = r->line;
    for (;;) {
        csv_field f = {d + p, 0, 0};
        if (p < len && d[p] == '"') {
            /* Quoted: copy down over escape quotes as we go. */
            size_t w = ++p;
            f.ptr = d + w;
            f.quoted = 1;
            for (;;) {
                if (p >= len)
                    return fail(r, "unterminated quoted field");
                char c = d[p];
                if (c == '"') {
                    if (p + 1 < len && d[p + 1] == '"') {
                        d[w++] = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                if (c == '\n')
                    r->line++;
                d[w++] = c;
                p++;
            }
            f.len = w - (size_t)(f.ptr - d);
            if (p < len && d[p] != ',' && d[p] != '\n' &&
                !(d[p] == '\r' && p + 1 < len && d[p + 1] == '\n') &&
                !(d[p] == '\r' && p + 1 == len))
                return fail(r, "text after a closing quote");
        } else {
            /* Unquoted: up to the next comma or line feed. */
            const char *start = d + p;
            size_t q = p;
            while (q < len && d[q] != ',' && d[q] != '\n') {
                if (d[q] == '"')
                    return fail(r, "quote inside an unquoted field");
                q++;
            }
            const char *end = d + q;
            f.len = (size_t)(end - start);
            p += f.len;
            if (p < len && d[p] == '\n' && f.len > 0 && start[f.len - 1] == '\r')
                f.len--; /* CRLF */
            else if (p == len && f.len > 0 && start[f.len - 1] == '\r')
                f.len--;
        }
        if (n >= max_fields)
            return fail(r, "too many fields");
        fields[n++] = f;
        if (p < len && d[p] == ',') {
            p++;
            continue;
        }
        if (p < len && d[p] == '\r')
            p++;
        if (p < len && d[p] == '\n') {
            p++;
            r->line++;
        }
        break;
    }
    r->pos = p;
    *n_fields = n;
    return CSV_RECORD;
}

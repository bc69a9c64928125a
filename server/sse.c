/* SPDX-License-Identifier: Apache-2.0 */
/* sse.c - text/event-stream framing (see sse.h). */
#include <string.h>

#include "sse.h"

#define SSE_MAX_ID 1000000000000000LL

static int plain_name(const char *name)
{
    if (!name || !*name)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || *p == '_'))
            return 0;
    return 1;
}

int sse_event(struct evbuffer *out, long long id, const char *name, const char *data)
{
    const char *p = data ? data : "";

    if (!plain_name(name))
        return -1;
    if (id > 0 && evbuffer_add_printf(out, "id: %lld\n", id) < 0)
        return -1;
    if (evbuffer_add_printf(out, "event: %s\n", name) < 0)
        return -1;
    for (;;) {
        size_t n = strcspn(p, "\r\n");
        if (evbuffer_add(out, "data: ", 6) < 0 || evbuffer_add(out, p, n) < 0 ||
            evbuffer_add(out, "\n", 1) < 0)
            return -1;
        p += n;
        if (!*p)
            break;
        /* CRLF, CR and LF each end a line */
        p += (p[0] == '\r' && p[1] == '\n') ? 2 : 1;
    }
    return evbuffer_add(out, "\n", 1);
}

int sse_comment(struct evbuffer *out, const char *text)
{
    return evbuffer_add_printf(out, ": %.*s\n\n", (int)strcspn(text, "\r\n"), text) < 0 ? -1 : 0;
}

int sse_retry(struct evbuffer *out, int ms)
{
    return evbuffer_add_printf(out, "retry: %d\n\n", ms) < 0 ? -1 : 0;
}

long long sse_parse_last_id(const char *text)
{
    long long v = 0;
    size_t n;

    if (!text)
        return -1;
    n = strlen(text);
    if (n == 0 || n > 16)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        v = v * 10 + (text[i] - '0');
    }
    return v >= 1 && v <= SSE_MAX_ID ? v : -1;
}

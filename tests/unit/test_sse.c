/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_sse.c - server/sse.c: text/event-stream framing as the HTML standard's
 * "Server-sent events" parser reads it, and Last-Event-ID parsing.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "check.h"
#include "sse.h"

/* The buffer's content as a NUL-terminated string (drained). */
static char *take(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    return s;
}

static void test_event_framing(void)
{
    struct evbuffer *b = evbuffer_new();
    char *s;

    CHECK(sse_event(b, 42, "queue", "{\"waiting\":3}") == 0);
    s = take(b);
    CHECK_STR(s, "id: 42\nevent: queue\ndata: {\"waiting\":3}\n\n");
    free(s);

    /* no id: none written (the browser keeps its last one) */
    CHECK(sse_event(b, 0, "end", "{}") == 0);
    s = take(b);
    CHECK_STR(s, "event: end\ndata: {}\n\n");
    free(s);

    /* a line break of any kind in data never ends the event early */
    CHECK(sse_event(b, 7, "x", "a\nb\r\nc\rd") == 0);
    s = take(b);
    CHECK_STR(s, "id: 7\nevent: x\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
    free(s);

    /* an event name that could inject fields is refused, nothing written */
    CHECK(sse_event(b, 1, "queue\ndata: x", "{}") == -1);
    CHECK(sse_event(b, 1, "", "{}") == -1);
    CHECK(sse_event(b, 1, "Queue", "{}") == -1);
    CHECK(evbuffer_get_length(b) == 0);

    CHECK(sse_comment(b, "heartbeat\nevent: x") == 0);
    s = take(b);
    CHECK_STR(s, ": heartbeat\n\n");
    free(s);

    CHECK(sse_retry(b, 3000) == 0);
    s = take(b);
    CHECK_STR(s, "retry: 3000\n\n");
    free(s);
    evbuffer_free(b);
}

static void test_last_event_id(void)
{
    CHECK(sse_parse_last_id(NULL) == -1);
    CHECK(sse_parse_last_id("") == -1);
    CHECK(sse_parse_last_id("0") == -1);
    CHECK(sse_parse_last_id("1") == 1);
    CHECK(sse_parse_last_id("1796040628296") == 1796040628296LL);
    CHECK(sse_parse_last_id("1000000000000000") == 1000000000000000LL);
    CHECK(sse_parse_last_id("1000000000000001") == -1);
    CHECK(sse_parse_last_id("99999999999999999999") == -1); /* no overflow */
    CHECK(sse_parse_last_id("-5") == -1);
    CHECK(sse_parse_last_id("12a") == -1);
    CHECK(sse_parse_last_id(" 12") == -1);
}

int main(void)
{
    RUN(test_event_framing);
    RUN(test_last_event_id);
    return check_summary("sse");
}

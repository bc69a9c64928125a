/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sse.h - the text/event-stream wire format (the HTML standard's "Server-sent
 * events"): framing of events and comments, and the Last-Event-ID a
 * reconnecting browser sends. No I/O: the caller owns the buffer.
 */
#ifndef ACCORD_SSE_H
#define ACCORD_SSE_H

#include <event2/buffer.h>

/*
 * Appends "id: ID\nevent: NAME\ndata: DATA\n\n". A line break inside data
 * starts another data line (the client joins them with "\n"), so any text is
 * framed safely; name must be a plain word. Returns 0, or -1 when out of
 * memory or name is not [a-z_]+.
 */
int sse_event(struct evbuffer *out, long long id, const char *name, const char *data);

/* Appends ": TEXT\n\n" (a comment: keeps the connection alive, shown to nobody). */
int sse_comment(struct evbuffer *out, const char *text);

/* Appends "retry: MS\n\n" (how long a browser waits before reconnecting). */
int sse_retry(struct evbuffer *out, int ms);

/*
 * A Last-Event-ID header's value as an id this server issued (a decimal
 * number from 1 to 10^15), or -1 when absent or anything else.
 */
long long sse_parse_last_id(const char *text);

#endif

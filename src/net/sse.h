/*
 * An incremental Server-Sent Events parser (the WHATWG event-stream rules
 * as api-notes.md §0.1 digests them). Fed arbitrary byte slices as libcurl
 * delivers them; dispatches one event per blank line. Lines end in LF, CR
 * or CRLF (a CR at the end of one slice and an LF at the start of the next
 * are one line end); lines starting with ':' are comments; several data:
 * lines join with '\n'; "field:value" drops one leading space of value;
 * unknown fields are ignored. The parser never interprets the payload
 * (JSON, "[DONE]"): that is the provider's job.
 */
#ifndef MEMCHAT_NET_SSE_H
#define MEMCHAT_NET_SSE_H

#include <stddef.h>

/* One dispatched event; the strings are valid only during the callback. */
struct sse_event {
    const char *event; /* the event: field, or "" */
    const char *data;  /* the joined data: lines, NUL-terminated */
    size_t data_len;
    const char *id; /* the last id: field, or "" */
};

/* Receives one event; a nonzero return stops the parser, and sse_feed()
 * returns that value (use a positive one: negatives are this module's). */
typedef int (*sse_event_fn)(void *ud, const struct sse_event *ev);

struct sse_parser;

/* A parser that holds at most max_event bytes of one event: the pending
 * line (without its line end) plus the data lines kept so far (each value
 * and its '\n'); so one "data: ..." line of exactly max_event bytes fits.
 * Never NULL. Free with sse_free(). */
struct sse_parser *sse_new(size_t max_event, sse_event_fn fn, void *ud);
/* NULL is a no-op. */
void sse_free(struct sse_parser *p);
/* Feeds len bytes. 0 on success; SSE_TOO_BIG when an event passes
 * max_event; SSE_NO_MEM when a buffer cannot grow; otherwise the callback's
 * nonzero value. Any nonzero result is sticky: later feeds return it again
 * without parsing. */
int sse_feed(struct sse_parser *p, const char *data, size_t len);
/* End of stream: an event not closed by a blank line is discarded (the
 * spec's rule); returns 1 when one was pending (data lines, or an
 * unterminated line), else 0. */
int sse_finish(struct sse_parser *p);
/* Comment lines seen so far (pings). */
size_t sse_comments(const struct sse_parser *p);

#define SSE_TOO_BIG (-1)
#define SSE_NO_MEM  (-2)

#endif

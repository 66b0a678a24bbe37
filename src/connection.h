/* connection.h: closing a client connection politely. The last reply (221, 421, +OK) is
 * flushed to the socket, including what a TLS filter has handed to the socket bufferevent
 * below it, and then the owner's free function runs from the event loop, never from inside
 * the caller's own callback. Shared by the SMTP and POP3 glue. */
#ifndef MAILPOPBOX_CONNECTION_H
#define MAILPOPBOX_CONNECTION_H

#include "bounds.h"

#include <stddef.h>

struct bufferevent;
struct event_base;

/* Stops reading from bev; once its output (and its underlying's) is empty, or after
 * CONNECTION_CLOSE_FLUSH_SECONDS, calls free_fn(arg), which frees bev. */
void connection_close_when_flushed(struct event_base *base, struct bufferevent *bev,
	void (*free_fn)(void *arg), void *arg);
/* Octets waiting to be written on bev and on the bufferevent under it (TLS). */
size_t connection_output_pending(struct bufferevent *bev);

#endif

/* inbox.h: hands items from any thread to one event loop: inbox_post() may be called on any
 * thread; the handler runs on the loop's thread, for each item in the order posted. It is how
 * a loop gives the main thread's queue a new spool entry, or asks another loop to shed one of
 * its connections. Needs evthread_use_pthreads() before the loop's event_base was made. */
#ifndef MAILPOPBOX_INBOX_H
#define MAILPOPBOX_INBOX_H

struct event_base;
struct inbox;

typedef void (*inbox_handler_fn)(void *ctx, void *item);

struct inbox *inbox_new(struct event_base *base, inbox_handler_fn handler, void *ctx);
/* Thread-safe. item is the handler's to free. */
void inbox_post(struct inbox *in, void *item);
/* On the loop's thread (or after it ended): items not yet handled go to discard (may be
 * NULL), not to the handler. */
void inbox_free(struct inbox *in, void (*discard)(void *item));

#endif

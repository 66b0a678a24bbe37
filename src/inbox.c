/* inbox.c: a mutex-guarded list and one libevent event made active by the posting thread
 * (libevent's own cross-thread notification wakes the loop: one eventfd write per wakeup,
 * none while the loop has not yet drained the earlier ones). */
#include "inbox.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "alloc.h"
#include "log.h"

struct inbox_node {
	struct inbox_node *next;
	void *item;
};

struct inbox {
	pthread_mutex_t lock; /* guards head and tail */
	struct inbox_node *head, *tail;
	struct event *wake;
	inbox_handler_fn handler;
	void *ctx;
};

static struct inbox_node *take_all(struct inbox *in)
{
	pthread_mutex_lock(&in->lock);
	struct inbox_node *all = in->head;
	in->head = in->tail = NULL;
	pthread_mutex_unlock(&in->lock);
	return all;
}

static void inbox_drain(evutil_socket_t fd, short what, void *arg)
{
	struct inbox *in = arg;

	(void)fd;
	(void)what;
	for (struct inbox_node *node = take_all(in), *next; node; node = next) {
		next = node->next;
		in->handler(in->ctx, node->item);
		free(node);
	}
}

struct inbox *inbox_new(struct event_base *base, inbox_handler_fn handler, void *ctx)
{
	struct inbox *in = xcalloc(1, sizeof(*in));

	pthread_mutex_init(&in->lock, NULL);
	in->wake = event_new(base, -1, 0, inbox_drain, in);
	if (!in->wake)
		fatal("event=inbox_event_failed");
	in->handler = handler;
	in->ctx = ctx;
	return in;
}

void inbox_post(struct inbox *in, void *item)
{
	struct inbox_node *node = xmalloc(sizeof(*node));

	node->next = NULL;
	node->item = item;
	pthread_mutex_lock(&in->lock);
	bool was_empty = in->head == NULL;
	if (in->tail)
		in->tail->next = node;
	else
		in->head = node;
	in->tail = node;
	pthread_mutex_unlock(&in->lock);
	/* A non-empty list already has its wakeup coming: the drain takes every item. */
	if (was_empty)
		event_active(in->wake, EV_TIMEOUT, 0);
}

void inbox_free(struct inbox *in, void (*discard)(void *item))
{
	if (!in)
		return;
	event_free(in->wake);
	for (struct inbox_node *node = take_all(in), *next; node; node = next) {
		next = node->next;
		if (discard)
			discard(node->item);
		free(node);
	}
	pthread_mutex_destroy(&in->lock);
	free(in);
}

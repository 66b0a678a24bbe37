/* queue/queue.h: the outbound queue scheduler. Keeps the spool's entries in memory, starts a
 * delivery run for each entry when it is due, records every recipient's outcome durably
 * before anything else happens, retries temporary failures with exponential backoff until
 * QueueLifetimeSeconds, and puts delivery status notifications (RFC 3464) into the sender's
 * maildrop. At most one run per entry at a time; runs of different entries overlap. */
#ifndef MAILPOPBOX_QUEUE_QUEUE_H
#define MAILPOPBOX_QUEUE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct event_base;
struct worker_pool;
struct queue;

/* Prepares SpoolPath (spool_init, spool_recover) and loads every entry; blocking, at startup.
 * Returns NULL with a message in err when the spool cannot be used. */
struct queue *queue_new(struct event_base *base, const struct config *cfg,
	struct worker_pool *workers, char *err, size_t errsz);
/* A new entry was committed to the spool: load it and try it now. On the queue's thread (the
 * thread of the event_base given to queue_new). */
void queue_add(struct queue *q, const char *id);
/* The same from any thread (an event loop other than the queue's): id is copied and handed
 * to the queue's thread, where queue_add() runs. */
void queue_add_from_any_thread(struct queue *q, const char *id);
/* Makes every entry due now (`mailpopbox queue --flush`, SIGUSR1). */
void queue_flush(struct queue *q);
/* Starts no new run; runs in progress finish. */
void queue_stop(struct queue *q);
/* True when no run is in progress. */
bool queue_idle(const struct queue *q);
void queue_free(struct queue *q);

/* The pid file a running server keeps in SpoolPath, for `mailpopbox queue --flush`. */
#define QUEUE_PID_FILE "mailpopbox.pid"

/* The process id in spool_path's pid file, or 0 with errno (ENOENT: no server running there,
 * EINVAL: the file holds no process id). The process itself may since have ended. */
long queue_pid_file_read(const char *spool_path);

/* `mailpopbox queue CONFIG.json [--flush]`: prints the queue, or signals the server. */
int queue_command(const struct config *cfg, bool flush);

#endif

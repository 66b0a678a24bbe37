/* push/push.h: the push engine (issue 13). One thread per Server with a Destination offers each
 * message of its maildrop to the destination as soon as it is durable (inotify on new/ and
 * .Junk/new; a Junk message goes to the destination's Junk), in arrival order, over one
 * kept-open connection, and removes it (or marks it P with KeepCopy) only after the
 * destination confirmed it. The maildrop is the queue, push/journal.h the
 * record of what was attempted. Started by the daemon after the sandbox and the privilege
 * drop, so its threads inherit both; the daemon's main thread calls everything here. */
#ifndef MAILPOPBOX_PUSH_PUSH_H
#define MAILPOPBOX_PUSH_PUSH_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"

struct push_engine;

/* Starts a push thread for each Server of cfg with a Destination (the engine keeps its own
 * copies of what it needs from cfg). Never NULL; an engine may have no thread. */
struct push_engine *push_engine_start(const struct config *cfg);
/* SIGHUP: a thread whose Destination changed takes the new one between two batches (and
 * reconnects); a removed Destination ends its thread; a new one starts one. */
void push_engine_reload(struct push_engine *e, const struct config *cfg);
/* SIGUSR1 / `mailpopbox queue --flush`: every thread retries now, whatever its backoff. */
void push_engine_flush(struct push_engine *e);
/* SIGTERM: asks every thread to end after its current step (transport calls have their own
 * deadlines). Does not wait. */
void push_engine_stop(struct push_engine *e);
/* Whether every thread has ended. */
bool push_engine_stopped(struct push_engine *e);
/* Joins the threads that have ended and frees the engine; a thread still inside a transport
 * call (the shutdown grace ran out) is left to the process exit. NULL is fine. */
void push_engine_free(struct push_engine *e);

/* `mailpopbox queue`: for each Server with a Destination, the messages waiting to be pushed,
 * with the last error and the next try from the running server's status file. Returns 0. */
int push_queue_command(const struct config *cfg, FILE *out);

#endif

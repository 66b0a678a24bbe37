/* ids.h: short random-looking ids for log lines, Received headers and spool entries, unique
 * within the process whichever thread (event loop) asks. */
#ifndef MAILPOPBOX_IDS_H
#define MAILPOPBOX_IDS_H

#include <stddef.h>

/* Characters of an id, without the NUL. */
#define IDS_LENGTH 15

/* Writes a new id into buf (size at least IDS_LENGTH + 1 for the whole id). Thread-safe. */
void ids_new(char *buf, size_t size);

#endif

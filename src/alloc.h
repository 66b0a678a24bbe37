/* alloc.h: allocation that never returns NULL. Running out of memory is a broken invariant
 * here (every buffer is bounded), so it is fatal rather than a status each caller checks. */
#ifndef MAILPOPBOX_ALLOC_H
#define MAILPOPBOX_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif

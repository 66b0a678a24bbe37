/* strbuf.h: a length-tracked growable byte string, used by the pure protocol cores to hand
 * their replies to the glue without touching sockets. */
#ifndef MAILPOPBOX_STRBUF_H
#define MAILPOPBOX_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
	char *data; /* always NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
};

void strbuf_init(struct strbuf *sb);
void strbuf_free(struct strbuf *sb);
void strbuf_reset(struct strbuf *sb);
void strbuf_append(struct strbuf *sb, const void *data, size_t len);
void strbuf_append_str(struct strbuf *sb, const char *s);
void strbuf_appendf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_vappendf(struct strbuf *sb, const char *fmt, va_list ap)
  __attribute__((format(printf, 2, 0)));

#endif

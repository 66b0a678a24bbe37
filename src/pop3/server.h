/* pop3/server.h: the POP3 session glue: a libevent bufferevent per client (implicit TLS on
 * POP3Port when a certificate exists, plain with STLS on POP3STLSPort), driving the pure core
 * in pop3/session.c and the maildrop store through the worker pool. */
#ifndef MAILPOPBOX_POP3_SERVER_H
#define MAILPOPBOX_POP3_SERVER_H

#include <event2/util.h>
#include <stdbool.h>
#include <sys/socket.h>

struct daemon;

/* POP3Port: implicit TLS when implicit_tls (a certificate exists), else plain POP3. */
void pop3_server_accept(struct daemon *srv, evutil_socket_t fd, const struct sockaddr *addr,
	bool implicit_tls);
/* POP3STLSPort: plain POP3 offering STLS (RFC 2595); no login before TLS. */
void pop3_server_accept_stls(struct daemon *srv, evutil_socket_t fd, const struct sockaddr *addr);

#endif

/* smtp/server.h: the SMTP session glue: a libevent bufferevent per client, driving the pure
 * core in smtp/session.c and the Maildir store. */
#ifndef MAILPOPBOX_SMTP_SERVER_H
#define MAILPOPBOX_SMTP_SERVER_H

#include <event2/util.h>
#include <sys/socket.h>

struct daemon;

void smtp_server_accept(struct daemon *srv, evutil_socket_t fd, const struct sockaddr *addr);

#endif

/* smtp/server.h: the SMTP session glue: a libevent bufferevent per client, driving the pure
 * core in smtp/session.c and the Maildir store. */
#ifndef MAILPOPBOX_SMTP_SERVER_H
#define MAILPOPBOX_SMTP_SERVER_H

#include <event2/util.h>
#include <sys/socket.h>

struct daemon;

enum smtp_listener {
	SMTP_LISTENER_MX,             /* SMTPPort: mail for our domains; AUTH after STARTTLS */
	SMTP_LISTENER_SUBMISSION,     /* SubmissionPort (587): STARTTLS, AUTH before MAIL */
	SMTP_LISTENER_SUBMISSION_TLS, /* SubmissionTLSPort (465): implicit TLS (RFC 8314) */
};

void smtp_server_accept(struct daemon *srv, evutil_socket_t fd, const struct sockaddr *addr,
	enum smtp_listener listener);

#endif

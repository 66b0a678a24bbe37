/* net/conn_private.h: the connection's fields, for the files of net/ only; glues use
 * net/conn.h. */
#ifndef MAILPOPBOX_NET_CONN_PRIVATE_H
#define MAILPOPBOX_NET_CONN_PRIVATE_H

#include <event2/util.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "admission.h"
#include "net/conn.h"
#include "net/line.h"
#include "strbuf.h"

struct bufferevent;
struct event;
struct evbuffer;
struct net_handshake;

/* A raw transfer under way (net/transfer.c). */
struct net_transfer {
	bool active;
	time_t started;
	uint64_t octets;   /* taken so far */
	unsigned min_rate; /* octets per second on average for it to count as progress */
};

/* A file being sent (net/file.c); filter is NULL when none. */
struct net_file {
	int fd;
	uint64_t left; /* octets not read yet, as known (0: unknown) */
	bool (*filter)(void *glue, const void *data, size_t len, struct strbuf *out);
	void (*sent)(struct net_conn *c, void *glue, int error);
};

struct net_conn {
	struct net_conn *prev, *next; /* in its loop's list */
	struct net_loop *loop;
	char ip[INET6_ADDRSTRLEN];
	struct generation *gen;       /* the configuration it started under */
	const struct net_protocol *protocol; /* of the port it came in on */
	time_t connected_at;
	struct admission_slot slot;   /* its place among the connection slots */
	const struct net_handler *handler;
	void *glue;

	/* I/O. A plain socket is read by read_event and written through bev; a TLS one goes
	 * through bev both ways. bev is NULL during a handshake and once the client left. */
	evutil_socket_t fd;           /* the plain socket, else -1 */
	struct bufferevent *bev;
	struct event *read_event;
	struct evbuffer *in;          /* input not yet taken by the glue */
	struct net_line_reader lines;
	struct net_handshake *handshake;
	bool implicit_tls;            /* the handshake at accept has not ended yet */
	bool reading;
	bool output_paused;           /* too much unread output: input waits for write_cb */
	bool (*produce)(struct net_conn *c, void *glue); /* a long reply under way */
	struct strbuf out;            /* replies not yet flushed (net_conn_out) */
	char tls[128];                /* net_conn_tls() */
	struct net_transfer transfer;
	struct net_file file;

	/* Time. */
	unsigned command_seconds, read_idle_seconds, write_seconds;
	struct event *deadline;
	bool deadline_armed;
	struct event *timer;          /* a failed login's delay, or the close-after-flush poll */
	time_t close_deadline;
	bool tls_shutdown_sent;

	/* Work off the loop. */
	int (*work)(void *glue);
	void (*done)(struct net_conn *c, void *glue, int result);
	int job_result;
	bool login;                   /* the running job is the login check */
	bool login_ok;
	bool job_pending;
	bool gone;                    /* the client left while a job was pending */

	/* The end. */
	bool closing;                 /* flushing the output, then freed */
	unsigned depth;               /* glue callbacks on the stack */
	bool free_pending;            /* to be freed when they have returned */
};

/* Plain I/O on fd, or the implicit TLS handshake with ssl (fd and ssl taken over). */
void net_conn_begin(struct net_conn *c, evutil_socket_t fd, SSL *ssl);

/* net/file.c: closes the file being sent, if any (c is being freed). */
void net_file_free(struct net_conn *c);

/* net/loop.c: c leaves its loop's list; the loop may have become empty. */
void net_loop_forget(struct net_loop *loop, struct net_conn *c);
void net_loop_emptied(struct net_loop *loop);

#endif

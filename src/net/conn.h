/* net/conn.h: one client connection, for every protocol glue (the model is OpenSMTPD's
 * ioev.c): the socket with its TLS (implicit, or switched on by STARTTLS/STLS), line framing
 * with the limit at the read, the command and whole-session deadline, back-pressure, worker
 * jobs whose completion is safe when the client has left, the login gate, close-after-flush,
 * shedding and graceful stop. A glue attaches a handler and maps lines to its protocol core
 * and the core's actions to the calls below; it never sees sockets or timers.
 *
 * Plain sockets are read with one recv(2) into the connection's input and written at once
 * when nothing is queued (the fast path); TLS goes through libevent's OpenSSL bufferevent. */
#ifndef MAILPOPBOX_NET_CONN_H
#define MAILPOPBOX_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "bounds.h"
#include "net/line.h"
#include "tls.h"

struct admission_slot;
struct evbuffer;
struct generation;
struct net_loop;
struct queue;
struct strbuf;

struct net_conn;

/* What the layer tells a glue, on the loop thread. */
enum net_event {
	/* The client may be greeted: after accept in clear, or on an implicit TLS port once the
	 * handshake has ended (after NET_EVENT_TLS_READY). */
	NET_EVENT_GREETING,
	NET_EVENT_INPUT,     /* input may be taken (more arrived, or a pause ended) */
	/* A TLS handshake completed (implicit TLS, or after STARTTLS/STLS), and was logged
	 * (event=tls); net_conn_tls() describes the session, net_conn_implicit_tls() says which. */
	NET_EVENT_TLS_READY,
	NET_EVENT_DEADLINE,  /* the deadline (net_conn_deadline) passed; no job, no long reply */
	NET_EVENT_READ_IDLE, /* nothing arrived for the read timeout (net_conn_set_timeouts) */
	NET_EVENT_SHUTDOWN,  /* the server stops; no job is running: finish, or close */
	/* The verdict of net_conn_login: a failure only after the throttle's delay; BLOCKED at
	 * once, without a check, while the client's address is locked out. */
	NET_EVENT_LOGIN_OK,
	NET_EVENT_LOGIN_FAILED,
	NET_EVENT_LOGIN_BLOCKED,
};

/* A glue's part of a connection. */
struct net_handler {
	const char *module; /* for log lines: "smtp", "pop3" */
	void (*event)(struct net_conn *c, void *glue, enum net_event event);
	/* A full house sheds c (it runs no job and is not closing): write the last words into
	 * last. It is logged as "slow_data" during a transfer (net/transfer.h), else "idle". */
	void (*shed)(struct net_conn *c, void *glue, struct strbuf *last);
	/* c ends: free glue, after writing into summary what the session did ("messages=2"),
	 * for the line the layer logs then (event=disconnect client=IP SUMMARY seconds=N). */
	void (*free)(struct net_conn *c, void *glue, char *summary, size_t size);
	/* For net_conn_login: the password check, on a worker; and the log detail of a success
	 * or failure ("user=..."), "" for none. */
	bool (*login_verify)(void *glue);
	void (*login_describe)(void *glue, bool ok, char *buf, size_t size);
};

/* Output queued above this makes net_conn_ready() false until the client has read it down
 * to NET_OUTPUT_LOW (then NET_EVENT_INPUT). */
#define NET_OUTPUT_HIGH SESSION_OUTPUT_BUFFER_MAX
#define NET_OUTPUT_LOW (16 * 1024)
/* A long reply (net_conn_produce) is produced while less than this is queued. */
#define NET_PRODUCE_HIGH (64 * 1024)

/* Called by the protocol's accept function (net/loop.h) before anything else. */
void net_conn_attach(struct net_conn *c, const struct net_handler *handler, void *glue);

/* ---- what the glue reads ---- */
const char *net_conn_ip(const struct net_conn *c);
/* The configuration (and keys) the connection started under, for its whole life. */
struct generation *net_conn_generation(const struct net_conn *c);
struct queue *net_conn_queue(const struct net_conn *c);
/* True on an implicit TLS port from accept until the handshake's NET_EVENT_TLS_READY and
 * NET_EVENT_GREETING have been told. */
bool net_conn_implicit_tls(const struct net_conn *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384", or "" in clear. */
const char *net_conn_tls(const struct net_conn *c);
/* Whether the server is stopping (the reply to a finished job may be the last). */
bool net_conn_stopping(const struct net_conn *c);

/* ---- input ---- */
/* The longest command line (framing) and the seconds a client has for each command line:
 * started when the glue waits for one, not moved by partial input (slowloris). The client
 * has as long to take queued output (the write timeout), and reads have no idle limit; a
 * transfer (net/transfer.h) has its own until it ends. */
void net_conn_set_lines(struct net_conn *c, size_t line_max, unsigned command_seconds);
/* Whether the glue may take input now: not closing, no job, no handshake, the client still
 * there, no long reply being produced, and not too much output unread. */
bool net_conn_ready(struct net_conn *c);
/* The next command line (net/line.h), or NET_LINE_NONE while the glue may not take one
 * (net_conn_ready). A complete line is progress (shedding) and stops the command deadline;
 * no complete line starts it. */
enum net_line_result net_conn_read_line(struct net_conn *c, char *line, size_t *len);
/* Raw input (net/transfer.h): take from the front and drain what was used. */
struct evbuffer *net_conn_input(struct net_conn *c);
/* The connection made progress other than a command line (a transfer keeping its rate). */
void net_conn_touch(struct net_conn *c);

/* ---- output ---- */
/* Where the glue (and its core) writes replies; net_conn_flush sends them, in one write
 * when the socket takes it. Also a long reply's parts go here (net_conn_produce). */
struct strbuf *net_conn_out(struct net_conn *c);
void net_conn_flush(struct net_conn *c);
void net_conn_send(struct net_conn *c, const void *data, size_t len);
/* Octets queued and not yet written (TLS included). */
size_t net_conn_output_pending(const struct net_conn *c);
/* A long reply (LIST; a file is net/file.h), written as the client reads it, not built whole:
 * produce(c, glue) writes the next part into net_conn_out(c), sent after each call, now and
 * whenever the output has drained to NET_OUTPUT_LOW, while less than NET_PRODUCE_HIGH is
 * queued; it returns false once it has written the end. Input waits meanwhile and is offered
 * (NET_EVENT_INPUT) after it. */
void net_conn_produce(struct net_conn *c, bool (*produce)(struct net_conn *c, void *glue));

/* ---- time ---- */
/* read_idle_seconds: NET_EVENT_READ_IDLE after that long without input (0: none);
 * write_seconds: the client has that long to take queued output, else the connection ends
 * (logged event=timeout reason=not_reading). */
void net_conn_set_timeouts(struct net_conn *c, unsigned read_idle_seconds,
	unsigned write_seconds);
/* Starts the deadline (NET_EVENT_DEADLINE) unless it runs already: the command deadline,
 * or a longer one for a whole transfer. */
void net_conn_deadline(struct net_conn *c, unsigned seconds);
void net_conn_deadline_stop(struct net_conn *c);

/* ---- work off the loop ---- */
/* Runs work(glue) on a worker, with reading stopped; then done(c, glue, result) on the loop,
 * result being what work returned. done always runs, also when the client left meanwhile (to
 * log, or hand on what was stored); its output then goes nowhere and c is freed after it.
 * Otherwise reading resumes and buffered input is offered (NET_EVENT_INPUT), unless done
 * started another job or closed. */
void net_conn_job(struct net_conn *c, int (*work)(void *glue),
	void (*done)(struct net_conn *c, void *glue, int result));

/* The login gate, shared by every protocol: checks the password (login_verify) like a job,
 * logs event=login or event=auth_failed (what fail2ban matches), counts a failure against
 * the client's address and holds its reply back; then NET_EVENT_LOGIN_*. */
void net_conn_login(struct net_conn *c);

/* ---- TLS and the end ---- */
/* STARTTLS/STLS, under the port's TLS policy (struct net_protocol): what was sent in clear
 * is written first, then the handshake runs (NET_EVENT_TLS_READY, or the connection ends on
 * failure). Input that arrived in clear after the command is thrown away: it must not be
 * obeyed inside TLS (CVE-2011-0411). When no TLS session can be made, that is logged
 * (event=starttls_failed) and c closed. */
void net_conn_start_tls(struct net_conn *c);
/* Stops reading, flushes what is queued (TLS ended with close_notify), then frees c, or
 * after CONNECTION_CLOSE_FLUSH_SECONDS. */
void net_conn_close(struct net_conn *c);

/* ---- used inside net/ ---- */
struct admission_slot *net_conn_slot(struct net_conn *c);
struct net_conn *net_conn_from_slot(struct admission_slot *slot);
/* A full house sheds c: returns the reason it was shed (c is freed), or NULL (kept). */
const char *net_conn_shed(struct net_conn *c);
/* The server stops: NET_EVENT_SHUTDOWN unless a job runs or c is closing. */
void net_conn_shutdown(struct net_conn *c);
/* After the protocol's accept: NET_EVENT_GREETING, unless TLS comes first. */
void net_conn_greet(struct net_conn *c);

#endif

/* net/file.h: a file sent to the client as the socket drains (POP3 RETR/TOP; IMAP FETCH
 * next), through the glue's filter (dot-stuffing): memory stays bounded whatever the file's
 * size, and a small file goes out in one write with the reply before it. */
#ifndef MAILPOPBOX_NET_FILE_H
#define MAILPOPBOX_NET_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct net_conn;
struct strbuf;

/* Sends the file open on fd (taken over: closed at the end, or when c ends), after what the
 * glue already wrote into net_conn_out(c). size is the octets the file is known to hold (a
 * file that never changes: once they are read, the end is known without one more read), or 0
 * when unknown. Each part read goes through filter(glue, data, len, out), which appends what
 * to send to out and returns false when it wants no more of the file. Then
 * sent(c, glue, error): error 0 once the file has gone through the filter (the glue appends
 * its end to net_conn_out and flushes), else the errno of a failed read. Input waits until
 * then (net_conn_produce). */
void net_conn_send_file(struct net_conn *c, int fd, uint64_t size,
	bool (*filter)(void *glue, const void *data, size_t len, struct strbuf *out),
	void (*sent)(struct net_conn *c, void *glue, int error));

#endif

/* net/file.c: a file sent to the client as the socket drains (net/file.h), a long reply
 * (net_conn_produce) read in bounded parts. */
#include "net/file.h"

#include <errno.h>
#include <unistd.h>

#include "net/conn_private.h"

/* Octets of the file read at a time. */
#define NET_FILE_READ_CHUNK (16 * 1024)

void net_file_free(struct net_conn *c)
{
	if (!c->file.filter)
		return;
	close(c->file.fd);
	c->file.filter = NULL;
}

/* Sends the next part (net_conn_produce); false once the file has all gone. */
static bool file_more(struct net_conn *c, void *glue)
{
	char chunk[NET_FILE_READ_CHUNK]; /* not _Thread_local: see take_data in smtp/server.c */
	struct net_file *f = &c->file;
	ssize_t n;

	while ((n = read(f->fd, chunk, sizeof(chunk))) < 0 && errno == EINTR)
		continue;
	int error = n < 0 ? errno : 0;
	bool more = n > 0 && f->filter(glue, chunk, (size_t)n, &c->out);
	if (more && f->left > 0) {
		f->left = (uint64_t)n < f->left ? f->left - (uint64_t)n : 0;
		more = f->left > 0;
	}
	if (more)
		return true;
	/* The last part goes out with the end that sent appends to it. */
	void (*sent)(struct net_conn *c, void *glue, int error) = f->sent;
	net_file_free(c);
	sent(c, glue, error);
	return false;
}

void net_conn_send_file(struct net_conn *c, int fd, uint64_t size,
	bool (*filter)(void *glue, const void *data, size_t len, struct strbuf *out),
	void (*sent)(struct net_conn *c, void *glue, int error))
{
	c->file = (struct net_file){fd, size, filter, sent};
	net_conn_produce(c, file_more);
}

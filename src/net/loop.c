/* net/loop.c: accepting connections onto one event loop, the loop's list of them, and the
 * graceful stop. */
#include "net/loop.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "alloc.h"
#include "generation.h"
#include "inbox.h"
#include "log.h"
#include "net/conn_private.h"
#include "net/house.h"

/* A shed request, from the loop that admitted a client to the loop of the victim. */
struct shed_post {
	struct admission_shed shed;
	char for_ip[INET6_ADDRSTRLEN];
};

/* On this loop's thread: the named connection, if it is still here, is shed. */
static void shed_posted(void *ctx, void *item)
{
	struct net_loop *loop = ctx;
	struct shed_post *post = item;

	for (struct net_conn *c = loop->conns.first; c; c = c->next) {
		if (c->slot.serial == post->shed.serial) {
			net_house_shed_request(loop->house, c, &post->shed, post->for_ip);
			break;
		}
	}
	free(post);
}

void net_loop_post_shed(struct net_loop *loop, const struct admission_shed *shed,
	const char *for_ip)
{
	struct shed_post *post = xcalloc(1, sizeof(*post));

	post->shed = *shed;
	post->shed.here = NULL; /* a pointer valid on the posting thread only */
	snprintf(post->for_ip, sizeof(post->for_ip), "%s", for_ip);
	inbox_post(loop->sheds, post);
}

void net_loop_init(struct net_loop *loop, struct event_base *base, struct worker_pool *workers,
	struct net_house *house)
{
	memset(loop, 0, sizeof(*loop));
	loop->base = base;
	loop->workers = workers;
	loop->house = house;
	loop->sheds = inbox_new(base, shed_posted, loop);
}

void net_loop_destroy(struct net_loop *loop)
{
	inbox_free(loop->sheds, free);
	loop->sheds = NULL;
}

/* The client's address as logs and the per-IP cap know it. */
static void format_ip(const struct sockaddr *addr, char *ip, size_t size)
{
	if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, (socklen_t)size);
		/* ::ffff:a.b.c.d is the IPv4 client a.b.c.d on a dual-stack socket. */
		if (strncmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.'))
			memmove(ip, ip + 7, strlen(ip + 7) + 1);
	} else if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
		inet_ntop(AF_INET, &sin->sin_addr, ip, (socklen_t)size);
	} else {
		snprintf(ip, size, "unknown");
	}
}

static bool starts_with_tls(const struct net_protocol *protocol, const struct generation *gen)
{
	return protocol->tls_start == NET_TLS_IMPLICIT ||
		(protocol->tls_start == NET_TLS_IMPLICIT_IF_CERT && tls_available(gen->tls));
}

/* The house is full: say so in clear where the client expects clear text, and hang up. */
static void refuse(struct net_loop *loop, const struct net_protocol *protocol,
	evutil_socket_t fd)
{
	struct generation *gen = net_house_generation(loop->house);

	if (!starts_with_tls(protocol, gen) && protocol->busy_reply)
		(void)!send(fd, protocol->busy_reply, strlen(protocol->busy_reply),
			MSG_DONTWAIT | MSG_NOSIGNAL);
	generation_unref(gen);
	evutil_closesocket(fd);
}

void net_loop_accept(struct net_loop *loop, const struct net_protocol *protocol,
	evutil_socket_t fd, const struct sockaddr *addr)
{
	struct net_conn *c = xcalloc(1, sizeof(*c));

	c->loop = loop;
	c->fd = -1;
	c->connected_at = time(NULL);
	format_ip(addr, c->ip, sizeof(c->ip));
	if (loop->stopping || !net_house_admit(loop->house, c, loop, protocol->lane)) {
		refuse(loop, protocol, fd);
		free(c);
		return;
	}
	c->gen = net_house_generation(loop->house);
	c->protocol = protocol;
	c->next = loop->conns.first;
	if (c->next)
		c->next->prev = c;
	loop->conns.first = c;
	loop->conns.count++;
	SSL *ssl = NULL;
	if (starts_with_tls(protocol, c->gen)) {
		ssl = tls_new_session(c->gen->tls, protocol->tls_policy);
		if (!ssl) {
			evutil_closesocket(fd);
			fd = -1;
		}
	}
	net_conn_begin(c, fd, ssl);
	if (fd < 0) { /* no TLS session could be made: nothing was said, nothing to log */
		net_conn_close(c);
		return;
	}
	protocol->accept(c, protocol);
	net_conn_deadline(c, c->command_seconds); /* also bounds an implicit TLS handshake */
	net_conn_greet(c);
}

void net_loop_forget(struct net_loop *loop, struct net_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		loop->conns.first = c->next;
	if (c->next)
		c->next->prev = c->prev;
	loop->conns.count--;
}

void net_loop_emptied(struct net_loop *loop)
{
	if (loop->conns.count == 0 && loop->emptied)
		loop->emptied(loop, loop->emptied_arg);
}

void net_loop_stop(struct net_loop *loop)
{
	loop->stopping = true;
	/* Connections remove themselves from the list as they go. */
	struct net_conn *c = loop->conns.first;
	while (c) {
		struct net_conn *next = c->next;
		net_conn_shutdown(c);
		c = next;
	}
}

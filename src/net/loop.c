/* net/loop.c: accepting connections onto one event loop, the loop's list of them, and the
 * graceful stop. */
#include "net/loop.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "fsutil.h"
#include "generation.h"
#include "log.h"
#include "net/conn_private.h"
#include "net/house.h"

void net_loop_init(struct net_loop *loop, struct event_base *base, struct worker_pool *workers,
	struct net_house *house)
{
	memset(loop, 0, sizeof(*loop));
	loop->base = base;
	loop->workers = workers;
	loop->house = house;
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
	format_ip(addr, c->ip, sizeof(c->ip));
	if (loop->stopping || !net_house_admit(loop->house, c, protocol->lane)) {
		refuse(loop, protocol, fd);
		free(c);
		return;
	}
	c->gen = net_house_generation(loop->house);
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

void net_new_id(char *buf, size_t size)
{
	static atomic_uint counter;
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	unsigned long long usec = (unsigned long long)now.tv_sec * 1000000ULL +
		(unsigned long long)now.tv_nsec / 1000;
	/* 40 bits of microseconds (~12 days of wrap) and 20 bits of a process counter: unique
	 * within a process, and the time part keeps restarts apart. */
	snprintf(buf, size, "%010llX%05X", usec & 0xFFFFFFFFFFULL,
		(atomic_fetch_add(&counter, 1) + (unsigned)fs_process_id()) & 0xFFFFF);
}

/* queue/dns.h: where to deliver a domain's mail, asked of DNS without blocking the loop
 * (c-ares driven by libevent). RFC 5321 5.1: MX records in preference order, each host's
 * IPv6 and IPv4 addresses; no MX record means the domain itself (implicit MX); a null MX
 * (RFC 7505) means the domain takes no mail. */
#ifndef MAILPOPBOX_QUEUE_DNS_H
#define MAILPOPBOX_QUEUE_DNS_H

#include "bounds.h"

#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct dns_resolver;

enum dns_status {
	DNS_OK,
	DNS_TEMPFAIL, /* timeout, SERVFAIL, no address for any host: try again later */
	DNS_PERMFAIL, /* NXDOMAIN, or a null MX (RFC 7505): the mail cannot be delivered */
};

struct dns_host {
	char name[256];
	unsigned preference;
	struct sockaddr_storage addrs[DNS_MAX_ADDRESSES];
	size_t addr_count;
};

struct dns_route {
	enum dns_status status;
	char error[400];       /* for logs and DSNs, e.g. "dns; NXDOMAIN for example.com" */
	const char *status_code; /* RFC 3463 code for a failure, e.g. "5.1.10" */
	struct dns_host hosts[DNS_MAX_HOSTS];
	size_t host_count;     /* hosts that have at least one address, in the order to try */
};

typedef void (*dns_route_cb)(void *arg, const struct dns_route *route);

/* server is "ip:port" ("DNSResolver"), or NULL for the system's resolv.conf. */
struct dns_resolver *dns_resolver_new(struct event_base *base, const char *server, char *err,
	size_t errsz);
/* Cancels outstanding lookups (their callbacks are not run) and frees. */
void dns_resolver_free(struct dns_resolver *r);

/* The mail exchangers of domain, with addresses, in the order to try. */
void dns_resolve_mx(struct dns_resolver *r, const char *domain, int port, dns_route_cb cb,
	void *arg);
/* One named host ("OutboundRelayHost"), as a route of one host; a numeric address needs no
 * lookup. */
void dns_resolve_host(struct dns_resolver *r, const char *host, int port, dns_route_cb cb,
	void *arg);

#endif

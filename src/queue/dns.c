/* queue/dns.c: MX and address lookups with c-ares. c-ares tells us which sockets it wants
 * watched (the sock_state callback); libevent watches them and a timer drives c-ares'
 * retransmissions. A route lookup is one MX query followed by one address lookup per host. */
#include "queue/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

struct dns_watch {
	struct dns_watch *next;
	ares_socket_t fd;
	struct event *event;
};

struct dns_resolver {
	struct event_base *base;
	ares_channel channel;
	struct dns_watch *watches;
	struct event *timer;
	bool destroying;
};

struct dns_lookup;

/* A host whose addresses are being looked up, and the lookup it belongs to. */
struct host_slot {
	struct dns_host host;
	struct dns_lookup *lookup;
};

/* One route lookup in progress. */
struct dns_lookup {
	struct dns_resolver *resolver;
	char domain[256];
	int port;
	dns_route_cb cb;
	void *arg;
	struct dns_route route;
	struct host_slot candidates[DNS_MAX_HOSTS];
	size_t candidate_count;
	size_t pending;       /* address lookups still running */
	bool any_tempfail;
};

static void schedule_timer(struct dns_resolver *r)
{
	struct timeval max = {1, 0}, tv;

	if (r->destroying)
		return;
	struct timeval *next = ares_timeout(r->channel, &max, &tv);
	evtimer_add(r->timer, next);
}

static void socket_ready(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;

	ares_process_fd(r->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
		(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	schedule_timer(r);
}

static void timer_fired(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;

	(void)fd;
	(void)what;
	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	schedule_timer(r);
}

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_resolver *r = data;
	struct dns_watch **p = &r->watches;

	while (*p && (*p)->fd != fd)
		p = &(*p)->next;
	if (*p) {
		event_free((*p)->event);
		if (!readable && !writable) {
			struct dns_watch *dead = *p;
			*p = dead->next;
			free(dead);
			return;
		}
	} else {
		if (!readable && !writable)
			return;
		*p = xcalloc(1, sizeof(**p));
		(*p)->fd = fd;
	}
	short events = EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
	(*p)->event = event_new(r->base, fd, events, socket_ready, r);
	event_add((*p)->event, NULL);
}

struct dns_resolver *dns_resolver_new(struct event_base *base, const char *server, char *err,
	size_t errsz)
{
	struct dns_resolver *r = xcalloc(1, sizeof(*r));
	struct ares_options options;
	int status;

	status = ares_library_init(ARES_LIB_INIT_ALL);
	if (status != ARES_SUCCESS) {
		snprintf(err, errsz, "DNS: %s", ares_strerror(status));
		free(r);
		return NULL;
	}
	memset(&options, 0, sizeof(options));
	options.sock_state_cb = sock_state;
	options.sock_state_cb_data = r;
	options.timeout = 3000; /* ms per try */
	options.tries = 3;
	status = ares_init_options(&r->channel, &options,
		ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (status != ARES_SUCCESS) {
		snprintf(err, errsz, "DNS: %s", ares_strerror(status));
		free(r);
		return NULL;
	}
	if (server) {
		status = ares_set_servers_ports_csv(r->channel, server);
		if (status != ARES_SUCCESS) {
			snprintf(err, errsz, "DNSResolver: %s", ares_strerror(status));
			ares_destroy(r->channel);
			free(r);
			return NULL;
		}
	}
	r->base = base;
	r->timer = evtimer_new(base, timer_fired, r);
	return r;
}

void dns_resolver_free(struct dns_resolver *r)
{
	if (!r)
		return;
	r->destroying = true;
	/* Runs outstanding callbacks with ARES_EDESTRUCTION; they free their lookups only. */
	ares_destroy(r->channel);
	while (r->watches) {
		struct dns_watch *next = r->watches->next;
		event_free(r->watches->event);
		free(r->watches);
		r->watches = next;
	}
	event_free(r->timer);
	ares_library_cleanup();
	free(r);
}

static void finish(struct dns_lookup *l)
{
	struct dns_route *route = &l->route;

	if (!l->resolver->destroying) {
		/* Keep the hosts that resolved, in candidate (preference) order. */
		route->host_count = 0;
		for (size_t i = 0; i < l->candidate_count; i++)
			if (l->candidates[i].host.addr_count > 0)
				route->hosts[route->host_count++] = l->candidates[i].host;
		if (route->status == DNS_OK && route->host_count == 0) {
			/* No host has an address: likely a passing DNS problem (RFC 5321 5.1). */
			route->status = DNS_TEMPFAIL;
			route->status_code = "4.4.4";
			snprintf(route->error, sizeof(route->error),
				"dns; no address for any mail exchanger of %s", l->domain);
		}
		l->cb(l->arg, route);
	}
	free(l);
}

static void address_done(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct host_slot *slot = arg;
	struct dns_host *host = &slot->host;
	struct dns_lookup *l = slot->lookup;

	(void)timeouts;
	if (l->resolver->destroying) {
		if (res)
			ares_freeaddrinfo(res);
		if (--l->pending == 0)
			free(l);
		return;
	}
	if (status == ARES_SUCCESS && res) {
		for (struct ares_addrinfo_node *n = res->nodes; n && host->addr_count < DNS_MAX_ADDRESSES;
		     n = n->ai_next) {
			if (n->ai_family != AF_INET && n->ai_family != AF_INET6)
				continue;
			memcpy(&host->addrs[host->addr_count], n->ai_addr, n->ai_addrlen);
			if (n->ai_family == AF_INET)
				((struct sockaddr_in *)&host->addrs[host->addr_count])->sin_port =
					htons((uint16_t)l->port);
			else
				((struct sockaddr_in6 *)&host->addrs[host->addr_count])->sin6_port =
					htons((uint16_t)l->port);
			host->addr_count++;
		}
	} else if (status != ARES_ENOTFOUND && status != ARES_ENODATA) {
		l->any_tempfail = true;
	}
	if (res)
		ares_freeaddrinfo(res);
	if (--l->pending == 0)
		finish(l);
}

static void resolve_candidates(struct dns_lookup *l)
{
	struct ares_addrinfo_hints hints;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	l->pending = l->candidate_count;
	if (l->pending == 0) {
		finish(l);
		return;
	}
	for (size_t i = 0; i < l->candidate_count; i++) {
		l->candidates[i].lookup = l;
		ares_getaddrinfo(l->resolver->channel, l->candidates[i].host.name, NULL, &hints,
			address_done, &l->candidates[i]);
	}
}

static int compare_preference(const void *a, const void *b)
{
	const struct host_slot *x = a, *y = b;

	return (x->host.preference > y->host.preference) -
		(x->host.preference < y->host.preference);
}

static void mx_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_lookup *l = arg;
	struct dns_route *route = &l->route;
	struct ares_mx_reply *mx = NULL;

	(void)timeouts;
	if (l->resolver->destroying) {
		free(l);
		return;
	}
	if (status == ARES_SUCCESS)
		status = ares_parse_mx_reply(abuf, alen, &mx);
	if (status == ARES_ENODATA || (status == ARES_SUCCESS && !mx)) {
		/* RFC 5321 5.1: no MX record: the domain itself is the mail exchanger. */
		snprintf(l->candidates[0].host.name, sizeof(l->candidates[0].host.name), "%s",
			l->domain);
		l->candidate_count = 1;
	} else if (status == ARES_ENOTFOUND) {
		route->status = DNS_PERMFAIL;
		route->status_code = "5.1.2";
		snprintf(route->error, sizeof(route->error), "dns; NXDOMAIN: %s does not exist",
			l->domain);
	} else if (status != ARES_SUCCESS) {
		route->status = DNS_TEMPFAIL;
		route->status_code = "4.4.3";
		snprintf(route->error, sizeof(route->error), "dns; MX lookup for %s failed: %s",
			l->domain, ares_strerror(status));
	} else {
		for (struct ares_mx_reply *m = mx; m; m = m->next) {
			/* RFC 7505 3: a single MX with the root as host: no mail for this domain. */
			if (m->host[0] == '\0' || strcmp(m->host, ".") == 0) {
				route->status = DNS_PERMFAIL;
				route->status_code = "5.1.10";
				snprintf(route->error, sizeof(route->error),
					"dns; %s publishes a null MX and accepts no mail (RFC 7505)",
					l->domain);
				break;
			}
			if (l->candidate_count == DNS_MAX_HOSTS)
				continue;
			struct dns_host *h = &l->candidates[l->candidate_count++].host;
			snprintf(h->name, sizeof(h->name), "%s", m->host);
			h->preference = m->priority;
		}
		/* qsort is not stable; hosts of equal preference may come in any order, which
		 * RFC 5321 5.1 asks for anyway (spread the load). */
		qsort(l->candidates, l->candidate_count, sizeof(l->candidates[0]),
			compare_preference);
	}
	if (mx)
		ares_free_data(mx);
	if (route->status != DNS_OK) {
		l->candidate_count = 0;
		l->cb(l->arg, route);
		free(l);
		return;
	}
	resolve_candidates(l);
}

static struct dns_lookup *lookup_new(struct dns_resolver *r, const char *domain, int port,
	dns_route_cb cb, void *arg)
{
	struct dns_lookup *l = xcalloc(1, sizeof(*l));

	l->resolver = r;
	snprintf(l->domain, sizeof(l->domain), "%s", domain);
	l->port = port;
	l->cb = cb;
	l->arg = arg;
	l->route.status = DNS_OK;
	return l;
}

void dns_resolve_mx(struct dns_resolver *r, const char *domain, int port, dns_route_cb cb,
	void *arg)
{
	struct dns_lookup *l = lookup_new(r, domain, port, cb, arg);

	ares_query(r->channel, domain, 1 /* C_IN */, 15 /* T_MX */, mx_done, l);
	schedule_timer(r);
}

void dns_resolve_host(struct dns_resolver *r, const char *host, int port, dns_route_cb cb,
	void *arg)
{
	struct dns_lookup *l = lookup_new(r, host, port, cb, arg);

	snprintf(l->candidates[0].host.name, sizeof(l->candidates[0].host.name), "%s", host);
	l->candidate_count = 1;
	resolve_candidates(l);
	schedule_timer(r);
}

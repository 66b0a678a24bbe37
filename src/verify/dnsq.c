/* verify/dnsq.c: blocking DNS for the sender checks. Each worker thread keeps one c-ares
 * channel (rebuilt when DNSResolver changes) and waits for one query at a time with poll();
 * answers, negative ones included, are kept in a small set-associative cache shared by the
 * threads. TTLs are read from the answer's wire form, since c-ares' TXT, MX and PTR parsers
 * do not return them. */
#include "verify/dnsq.h"

#include <ares.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "deadline.h"
#include "bounds.h"
#include "log.h"

/* RFC 2308 5: a negative answer is cached for the SOA's minimum, at most this long, so a
 * record added while we cache its absence is seen within a minute; one without an SOA is not
 * cached at all. */
#define NEGATIVE_TTL_MAX_SECONDS 60
/* Entries a name may occupy in the cache: it is searched in a set of this many slots. */
#define CACHE_WAYS 4
/* RFC 1035 2.3.4: a name is at most 255 octets on the wire, 253 written without the root. */
#define NAME_MAX_LENGTH 253

/* ---- the thread's channel ---- */

struct thread_channel {
	ares_channel channel;
	char *server; /* what it was built for; NULL: /etc/resolv.conf */
};

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static pthread_key_t channel_key;
static int library_status;

static void channel_free(void *p)
{
	struct thread_channel *tc = p;

	if (!tc)
		return;
	ares_destroy(tc->channel);
	free(tc->server);
	free(tc);
}

static void library_init(void)
{
	/* Never cleaned up: the channels of threads that live as long as the process use it. */
	library_status = ares_library_init(ARES_LIB_INIT_ALL);
	if (pthread_key_create(&channel_key, channel_free) != 0)
		fatal("event=dnsq_key_failed");
}

static bool same_server(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The calling thread's channel for server, or NULL (logged) when c-ares refuses it. */
static ares_channel thread_channel(const char *server)
{
	struct thread_channel *tc;
	struct ares_options options;
	int status;

	pthread_once(&library_once, library_init);
	if (library_status != ARES_SUCCESS) {
		log_warn("dnsq", "event=dns_init_failed error=\"%s\"", ares_strerror(library_status));
		return NULL;
	}
	tc = pthread_getspecific(channel_key);
	if (tc && same_server(tc->server, server))
		return tc->channel;
	if (tc) {
		channel_free(tc);
		pthread_setspecific(channel_key, NULL);
	}
	memset(&options, 0, sizeof(options));
	/* Two tries of one server within DNSQ_QUERY_TIMEOUT_MS (c-ares doubles the second). */
	options.timeout = DNSQ_QUERY_TIMEOUT_MS / 3;
	options.tries = 2;
	ares_channel channel;
	status = ares_init_options(&channel, &options, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (status != ARES_SUCCESS) {
		log_warn("dnsq", "event=dns_init_failed error=\"%s\"", ares_strerror(status));
		return NULL;
	}
	/* The same "ip:port" form the queue's resolver takes (queue/dns.c). */
	if (server) {
		status = ares_set_servers_ports_csv(channel, server);
		if (status != ARES_SUCCESS) {
			log_warn("dnsq", "event=dns_init_failed key=DNSResolver error=\"%s\"",
				ares_strerror(status));
			ares_destroy(channel);
			return NULL;
		}
	}
	tc = xcalloc(1, sizeof(*tc));
	tc->channel = channel;
	tc->server = server ? xstrdup(server) : NULL;
	pthread_setspecific(channel_key, tc);
	return channel;
}

/* ---- time ---- */

void dnsq_ctx_init(struct dnsq_ctx *ctx, const char *server, unsigned seconds)
{
	ctx->server = server;
	ctx->deadline = deadline_after_ms((uint64_t)seconds * 1000);
}

/* ---- answers ---- */

static void rr_free(enum dnsq_type type, struct dnsq_rr *rr)
{
	if (type == DNSQ_MX)
		free(rr->u.mx.host);
	else if (type == DNSQ_TXT)
		free(rr->u.txt);
	else if (type == DNSQ_PTR)
		free(rr->u.ptr);
}

void dnsq_answer_free(struct dnsq_answer *a)
{
	for (size_t i = 0; i < a->count; i++)
		rr_free(a->type, &a->rrs[i]);
	free(a->rrs);
	a->rrs = NULL;
	a->count = 0;
}

static void answer_copy(struct dnsq_answer *to, const struct dnsq_answer *from)
{
	*to = *from;
	to->rrs = from->count ? xcalloc(from->count, sizeof(*to->rrs)) : NULL;
	for (size_t i = 0; i < from->count; i++) {
		to->rrs[i] = from->rrs[i];
		if (from->type == DNSQ_MX)
			to->rrs[i].u.mx.host = xstrdup(from->rrs[i].u.mx.host);
		else if (from->type == DNSQ_TXT)
			to->rrs[i].u.txt = xstrdup(from->rrs[i].u.txt);
		else if (from->type == DNSQ_PTR)
			to->rrs[i].u.ptr = xstrdup(from->rrs[i].u.ptr);
	}
}

static struct dnsq_rr *answer_add(struct dnsq_answer *a, size_t *capacity)
{
	if (a->count == *capacity) {
		*capacity = *capacity ? *capacity * 2 : 4;
		a->rrs = xrealloc(a->rrs, *capacity * sizeof(*a->rrs));
	}
	struct dnsq_rr *rr = &a->rrs[a->count++];
	memset(rr, 0, sizeof(*rr));
	return rr;
}

/* ---- the wire form, for TTLs only (c-ares parses the records) ---- */

static unsigned read16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static uint32_t read32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Skips the name at *p; false when it runs past the message. */
static bool skip_name(const unsigned char *abuf, int alen, const unsigned char **p)
{
	char *name;
	long used;

	if (ares_expand_name(*p, abuf, alen, &name, &used) != ARES_SUCCESS)
		return false;
	ares_free_string(name);
	*p += used;
	return *p <= abuf + alen;
}

/* The smallest TTL of the answer section's records (any type: a CNAME on the way counts),
 * and for a negative answer RFC 2308 5's min(SOA TTL, SOA minimum) from the authority
 * section. false when the message is malformed. */
static bool message_ttls(const unsigned char *abuf, int alen, uint32_t *answer_ttl,
	uint32_t *negative_ttl)
{
	const unsigned char *p = abuf + 12, *end = abuf + alen;

	*answer_ttl = UINT32_MAX;
	*negative_ttl = UINT32_MAX;
	if (alen < 12)
		return false;
	unsigned qdcount = read16(abuf + 4), ancount = read16(abuf + 6), nscount = read16(abuf + 8);
	for (unsigned i = 0; i < qdcount; i++) {
		if (!skip_name(abuf, alen, &p) || end - p < 4)
			return false;
		p += 4;
	}
	for (unsigned i = 0; i < ancount + nscount; i++) {
		if (!skip_name(abuf, alen, &p) || end - p < 10)
			return false;
		unsigned type = read16(p);
		uint32_t ttl = read32(p + 4);
		unsigned rdlength = read16(p + 8);
		p += 10;
		if (end - p < (long)rdlength)
			return false;
		/* RFC 2181 8: a TTL with the top bit set is taken as 0. */
		if (ttl > INT32_MAX)
			ttl = 0;
		if (i < ancount) {
			if (ttl < *answer_ttl)
				*answer_ttl = ttl;
		} else if (type == 6 /* SOA */) {
			const unsigned char *q = p;
			if (!skip_name(abuf, alen, &q) || !skip_name(abuf, alen, &q) ||
			    q + 20 > p + rdlength)
				return false;
			uint32_t minimum = read32(q + 16);
			*negative_ttl = ttl < minimum ? ttl : minimum;
		}
		p += rdlength;
	}
	return true;
}

/* ---- parsing one answer ---- */

static int parse_addresses(const unsigned char *abuf, int alen, enum dnsq_type type,
	struct dnsq_answer *out)
{
	/* An address record takes at least 12 octets beside its address and a compressed name:
	 * this many cannot be exceeded within the message. */
	int room = alen / 16 + 1;
	int n = room;
	int status;

	if (type == DNSQ_A) {
		struct ares_addrttl *list = xcalloc((size_t)room, sizeof(*list));
		status = ares_parse_a_reply(abuf, alen, NULL, list, &n);
		if (status == ARES_SUCCESS) {
			out->rrs = n ? xcalloc((size_t)n, sizeof(*out->rrs)) : NULL;
			for (int i = 0; i < n; i++) {
				out->rrs[i].u.a = list[i].ipaddr;
				out->rrs[i].ttl = (uint32_t)(list[i].ttl < 0 ? 0 : list[i].ttl);
			}
			out->count = (size_t)n;
		}
		free(list);
	} else {
		struct ares_addr6ttl *list = xcalloc((size_t)room, sizeof(*list));
		status = ares_parse_aaaa_reply(abuf, alen, NULL, list, &n);
		if (status == ARES_SUCCESS) {
			out->rrs = n ? xcalloc((size_t)n, sizeof(*out->rrs)) : NULL;
			for (int i = 0; i < n; i++) {
				memcpy(&out->rrs[i].u.aaaa, &list[i].ip6addr, sizeof(struct in6_addr));
				out->rrs[i].ttl = (uint32_t)(list[i].ttl < 0 ? 0 : list[i].ttl);
			}
			out->count = (size_t)n;
		}
		free(list);
	}
	return status;
}

static int parse_txt(const unsigned char *abuf, int alen, struct dnsq_answer *out)
{
	struct ares_txt_ext *txt = NULL;
	size_t capacity = 0;
	int status = ares_parse_txt_reply_ext(abuf, alen, &txt);

	if (status != ARES_SUCCESS)
		return status;
	/* RFC 7208 3.3, RFC 6376 3.6.2.2: a record's character-strings are joined without
	 * anything between them. */
	for (struct ares_txt_ext *t = txt; t; t = t->next) {
		struct dnsq_rr *rr;
		if (t->record_start || out->count == 0) {
			rr = answer_add(out, &capacity);
			rr->u.txt = xstrdup("");
		} else {
			rr = &out->rrs[out->count - 1];
		}
		size_t had = strlen(rr->u.txt);
		rr->u.txt = xrealloc(rr->u.txt, had + t->length + 1);
		memcpy(rr->u.txt + had, t->txt, t->length);
		rr->u.txt[had + t->length] = '\0';
	}
	ares_free_data(txt);
	return ARES_SUCCESS;
}

static int parse_mx(const unsigned char *abuf, int alen, struct dnsq_answer *out)
{
	struct ares_mx_reply *mx = NULL;
	size_t capacity = 0;
	int status = ares_parse_mx_reply(abuf, alen, &mx);

	if (status != ARES_SUCCESS)
		return status;
	for (struct ares_mx_reply *m = mx; m; m = m->next) {
		struct dnsq_rr *rr = answer_add(out, &capacity);
		rr->u.mx.preference = m->priority;
		rr->u.mx.host = xstrdup(m->host);
	}
	ares_free_data(mx);
	return ARES_SUCCESS;
}

static int parse_ptr(const unsigned char *abuf, int alen, struct dnsq_answer *out)
{
	static const unsigned char unused_address[16];
	struct hostent *host = NULL;
	size_t capacity = 0;
	/* c-ares copies an address into the hostent it returns; ours is not needed. */
	int status = ares_parse_ptr_reply(abuf, alen, unused_address, 4, AF_INET, &host);

	if (status != ARES_SUCCESS)
		return status;
	/* c-ares gives the first name as h_name and every PTR name in h_aliases. */
	if (host->h_aliases && host->h_aliases[0]) {
		for (char **alias = host->h_aliases; *alias; alias++)
			answer_add(out, &capacity)->u.ptr = xstrdup(*alias);
	} else if (host->h_name) {
		answer_add(out, &capacity)->u.ptr = xstrdup(host->h_name);
	}
	ares_free_hostent(host);
	return out->count ? ARES_SUCCESS : ARES_ENODATA;
}

/* Fills out from one answer message (status DNSQ_OK/NODATA/TEMPFAIL). */
static void parse_answer(const unsigned char *abuf, int alen, struct dnsq_answer *out)
{
	uint32_t answer_ttl, negative_ttl;
	int status;

	if (alen > DNSQ_ANSWER_MAX || !message_ttls(abuf, alen, &answer_ttl, &negative_ttl)) {
		out->status = DNSQ_TEMPFAIL;
		return;
	}
	switch (out->type) {
	case DNSQ_A:
	case DNSQ_AAAA:
		status = parse_addresses(abuf, alen, out->type, out);
		break;
	case DNSQ_TXT:
		status = parse_txt(abuf, alen, out);
		break;
	case DNSQ_MX:
		status = parse_mx(abuf, alen, out);
		break;
	case DNSQ_PTR:
		status = parse_ptr(abuf, alen, out);
		break;
	default:
		status = ARES_ENOTIMP;
		break;
	}
	if (status == ARES_SUCCESS && out->count > 0) {
		out->status = DNSQ_OK;
		for (size_t i = 0; i < out->count; i++)
			if (out->type != DNSQ_A && out->type != DNSQ_AAAA)
				out->rrs[i].ttl = answer_ttl;
		return;
	}
	dnsq_answer_free(out);
	/* An answer with only a CNAME (or other types) on the way has no record of this type. */
	out->status = (status == ARES_SUCCESS || status == ARES_ENODATA) ? DNSQ_NODATA
	                                                                 : DNSQ_TEMPFAIL;
}

/* ---- the cache ---- */

struct cache_entry {
	char *key; /* NULL: free slot */
	time_t expires; /* CLOCK_MONOTONIC seconds */
	struct dnsq_answer answer;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_entry cache[DNSQ_CACHE_ENTRIES];

/* "TYPE server name": answers of different resolvers never mix, names compared without
 * case (RFC 4343). */
static char *cache_key(const char *server, const char *name, enum dnsq_type type)
{
	size_t size = strlen(name) + (server ? strlen(server) : 0) + 16;
	char *key = xmalloc(size);
	int n = snprintf(key, size, "%d %s ", (int)type, server ? server : "-");

	for (const char *c = name; *c; c++)
		key[n++] = (char)tolower((unsigned char)*c);
	key[n] = '\0';
	return key;
}

static size_t cache_set(const char *key)
{
	/* FNV-1a */
	uint64_t h = 14695981039346656037ULL;

	for (const char *c = key; *c; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ULL;
	return (size_t)(h % (DNSQ_CACHE_ENTRIES / CACHE_WAYS)) * CACHE_WAYS;
}

static void entry_clear(struct cache_entry *e)
{
	free(e->key);
	e->key = NULL;
	e->expires = 0;
	dnsq_answer_free(&e->answer);
}

static bool cache_get(const char *key, struct dnsq_answer *out)
{
	size_t set = cache_set(key);
	time_t now = (time_t)(deadline_now_ms() / 1000);
	bool found = false;

	pthread_mutex_lock(&cache_lock);
	for (size_t i = set; i < set + CACHE_WAYS; i++) {
		struct cache_entry *e = &cache[i];
		if (!e->key || strcmp(e->key, key) != 0)
			continue;
		if (e->expires <= now) {
			entry_clear(e);
		} else {
			answer_copy(out, &e->answer);
			found = true;
		}
		break;
	}
	pthread_mutex_unlock(&cache_lock);
	return found;
}

/* How long answer may be kept; 0: not at all. */
static uint32_t cache_ttl(const struct dnsq_answer *a, uint32_t negative_ttl)
{
	uint32_t ttl;

	switch (a->status) {
	case DNSQ_OK:
		ttl = UINT32_MAX;
		for (size_t i = 0; i < a->count; i++)
			if (a->rrs[i].ttl < ttl)
				ttl = a->rrs[i].ttl;
		return ttl < DNSQ_TTL_MAX_SECONDS ? ttl : DNSQ_TTL_MAX_SECONDS;
	case DNSQ_NODATA:
	case DNSQ_NXDOMAIN:
		return negative_ttl < NEGATIVE_TTL_MAX_SECONDS ? negative_ttl
		                                               : NEGATIVE_TTL_MAX_SECONDS;
	default:
		return 0; /* a failure is asked again */
	}
}

static void cache_put(const char *key, const struct dnsq_answer *a, uint32_t ttl)
{
	size_t set = cache_set(key);
	time_t now = (time_t)(deadline_now_ms() / 1000);
	struct cache_entry *slot = NULL;

	if (ttl == 0)
		return;
	pthread_mutex_lock(&cache_lock);
	/* The same key (another thread asked meanwhile), else the slot that expires first: a
	 * free one (expires 0) or an expired one before a live one. */
	for (size_t i = set; i < set + CACHE_WAYS; i++) {
		struct cache_entry *e = &cache[i];
		if (e->key && strcmp(e->key, key) == 0) {
			slot = e;
			break;
		}
		if (!slot || e->expires < slot->expires)
			slot = e;
	}
	entry_clear(slot);
	slot->key = xstrdup(key);
	slot->expires = now + (time_t)ttl;
	answer_copy(&slot->answer, a);
	pthread_mutex_unlock(&cache_lock);
}

void dnsq_cache_clear(void)
{
	pthread_mutex_lock(&cache_lock);
	for (size_t i = 0; i < DNSQ_CACHE_ENTRIES; i++)
		if (cache[i].key)
			entry_clear(&cache[i]);
	pthread_mutex_unlock(&cache_lock);
}

/* ---- one query ---- */

struct query_state {
	bool done;
	uint32_t negative_ttl;
	struct dnsq_answer *out;
};

static void query_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct query_state *q = arg;
	uint32_t answer_ttl;

	(void)timeouts;
	q->done = true;
	q->negative_ttl = 0;
	switch (status) {
	case ARES_SUCCESS:
		parse_answer(abuf, alen, q->out);
		break;
	case ARES_ENODATA:
	case ARES_ENOTFOUND:
		q->out->status = status == ARES_ENOTFOUND ? DNSQ_NXDOMAIN : DNSQ_NODATA;
		/* RFC 2308 5: without an SOA in the authority section, not cached. */
		if (!abuf || !message_ttls(abuf, alen, &answer_ttl, &q->negative_ttl) ||
		    q->negative_ttl == UINT32_MAX)
			q->negative_ttl = 0;
		break;
	case ARES_EBADNAME:
		/* A name no zone can hold (an empty label): it does not exist. */
		q->out->status = DNSQ_NXDOMAIN;
		break;
	default:
		/* ETIMEOUT, ESERVFAIL, EREFUSED, ECONNREFUSED, ECANCELLED (our deadline)... */
		q->out->status = DNSQ_TEMPFAIL;
		break;
	}
}

/* Drives channel until q is answered or the time is up (then the query is cancelled). */
static void wait_for(ares_channel channel, struct query_state *q, uint64_t until)
{
	while (!q->done) {
		int left = deadline_left_ms(until);
		if (left == 0) {
			ares_cancel(channel); /* runs query_done with ARES_ECANCELLED */
			break;
		}
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd fds[ARES_GETSOCK_MAXNUM];
		/* The bits as unsigned: c-ares's ARES_GETSOCK_WRITABLE shifts a signed 1 by up to
		 * 31 places, which UBSan reports. Bit i: socket i readable; bit i + 16: writable. */
		unsigned bits = (unsigned)ares_getsock(channel, socks, ARES_GETSOCK_MAXNUM);
		nfds_t n = 0;
		for (unsigned i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short events = (short)((bits & (1u << i) ? POLLIN : 0) |
				(bits & (1u << (i + ARES_GETSOCK_MAXNUM)) ? POLLOUT : 0));
			if (!events)
				continue;
			fds[n].fd = socks[i];
			fds[n].events = events;
			fds[n].revents = 0;
			n++;
		}
		struct timeval max = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000}, tv;
		struct timeval *next = ares_timeout(channel, &max, &tv);
		int timeout_ms = (int)(next->tv_sec * 1000 + next->tv_usec / 1000);
		if (timeout_ms == 0 && next->tv_usec > 0)
			timeout_ms = 1;
		int ready = poll(fds, n, timeout_ms);
		if (ready < 0 && errno != EINTR) {
			log_warn("dnsq", "event=dns_poll_failed error=\"%s\"", strerror(errno));
			ares_cancel(channel);
			break;
		}
		if (ready <= 0) {
			ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
			continue;
		}
		for (nfds_t i = 0; i < n && !q->done; i++) {
			if (!fds[i].revents)
				continue;
			/* An error or hang-up is handed over as readable: c-ares then sees it. */
			bool readable = fds[i].revents & (POLLIN | POLLERR | POLLHUP);
			bool writable = fds[i].revents & POLLOUT;
			ares_process_fd(channel, readable ? fds[i].fd : ARES_SOCKET_BAD,
				writable ? fds[i].fd : ARES_SOCKET_BAD);
		}
	}
}

void dnsq_lookup(const struct dnsq_ctx *ctx, const char *name, enum dnsq_type type,
	struct dnsq_answer *out)
{
	memset(out, 0, sizeof(*out));
	out->type = type;
	out->status = DNSQ_TEMPFAIL;

	size_t length = strlen(name);
	if (length > 0 && name[length - 1] == '.')
		length--;
	if (length == 0 || length > NAME_MAX_LENGTH) {
		/* No such name can exist (RFC 1035 2.3.4). */
		out->status = DNSQ_NXDOMAIN;
		return;
	}
	char *bare = xstrndup(name, length);
	char *key = cache_key(ctx->server, bare, type);
	if (cache_get(key, out))
		goto done;
	uint64_t until = deadline_after_ms(DNSQ_QUERY_TIMEOUT_MS);
	if (until > ctx->deadline)
		until = ctx->deadline;
	if (deadline_left_ms(until) == 0)
		goto done; /* the message's deadline has passed: TEMPFAIL */
	ares_channel channel = thread_channel(ctx->server);
	if (!channel)
		goto done;
	struct query_state q = {.out = out};
	ares_query(channel, bare, 1 /* C_IN */, (int)type, query_done, &q);
	/* Every way out of wait_for has run query_done (a cancel runs it too). */
	wait_for(channel, &q, until);
	cache_put(key, out, cache_ttl(out, q.negative_ttl));
done:
	free(key);
	free(bare);
}

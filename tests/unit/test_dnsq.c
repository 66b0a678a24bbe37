/* test_dnsq.c: the sender checks' blocking DNS (src/verify/dnsq.c) against a scripted DNS
 * server on a loopback UDP socket of this process: answers parsed (TXT strings of a record
 * joined, TTLs), NXDOMAIN/NODATA/SERVFAIL mapped to the statuses, answers and negative
 * answers cached, failures never cached, a closed port and a passed deadline a TEMPFAIL. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "verify/dnsq.h"

/* ---- the scripted server ---- */

enum { NAMES = 8 };

static const char *const names[NAMES] = {"a.test", "txt.test", "nx.test", "nodata.test",
	"fail.test", "mx.test", "silent.test", "cname.test"};

struct fake_server {
	int fd;
	char address[64]; /* "127.0.0.1:PORT" */
	pthread_t thread;
	atomic_bool stop;
	atomic_int asked[NAMES];
};

static struct fake_server server;

struct packet {
	unsigned char data[1024];
	size_t length;
};

static void put(struct packet *p, const void *bytes, size_t n)
{
	memcpy(p->data + p->length, bytes, n);
	p->length += n;
}

static void put16(struct packet *p, unsigned v)
{
	unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
	put(p, b, 2);
}

static void put32(struct packet *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p, v & 0xffff);
}

/* An answer record whose owner is the question's name (a pointer to offset 12). */
static void put_rr(struct packet *p, unsigned type, uint32_t ttl, const void *rdata,
	size_t rdlength)
{
	put16(p, 0xc00c);
	put16(p, type);
	put16(p, 1);
	put32(p, ttl);
	put16(p, (unsigned)rdlength);
	put(p, rdata, rdlength);
}

/* Builds the reply to query (qlen octets) in r; false: no reply at all. */
static bool reply(const unsigned char *query, size_t qlen, struct packet *r)
{
	char name[256] = "";
	size_t at = 12, n = 0;

	while (at < qlen && query[at] != 0 && n + query[at] + 1 < sizeof(name)) {
		if (n)
			name[n++] = '.';
		memcpy(name + n, query + at + 1, query[at]);
		n += query[at];
		at += 1 + query[at];
	}
	name[n] = '\0';
	size_t question_end = at + 5;
	int which = -1;
	for (int i = 0; i < NAMES; i++)
		if (strcmp(name, names[i]) == 0)
			which = i;
	if (which < 0 || question_end > qlen)
		return false;
	atomic_fetch_add(&server.asked[which], 1);

	unsigned rcode = 0, ancount = 0;
	struct packet answers = {.length = 0};
	const char *w = names[which];
	if (strcmp(w, "a.test") == 0) {
		unsigned char a1[4] = {192, 0, 2, 1}, a2[4] = {192, 0, 2, 2};
		put_rr(&answers, 1, 100, a1, 4);
		put_rr(&answers, 1, 50, a2, 4);
		ancount = 2;
	} else if (strcmp(w, "txt.test") == 0) {
		/* One record of two character-strings, then a record of one. */
		static const unsigned char first[] = "\x07v=spf1 \x04-all";
		static const unsigned char second[] = "\x06second";
		put_rr(&answers, 16, 300, first, sizeof(first) - 1);
		put_rr(&answers, 16, 300, second, sizeof(second) - 1);
		ancount = 2;
	} else if (strcmp(w, "mx.test") == 0) {
		static const unsigned char mx[] = "\x00\x0a\x04mail\x04test";
		put_rr(&answers, 15, 300, mx, sizeof(mx));
		ancount = 1;
	} else if (strcmp(w, "cname.test") == 0) {
		static const unsigned char target[] = "\x05other\x04test";
		put_rr(&answers, 5, 300, target, sizeof(target));
		ancount = 1;
	} else if (strcmp(w, "nx.test") == 0) {
		rcode = 3;
	} else if (strcmp(w, "fail.test") == 0) {
		rcode = 2;
	} else if (strcmp(w, "silent.test") == 0) {
		return false;
	}
	r->length = 0;
	put(r, query, 2);                /* id */
	put16(r, 0x8400 | 0x0100 | rcode); /* QR AA RD */
	put16(r, 1);
	put16(r, ancount);
	put16(r, 0);
	put16(r, 0);
	put(r, query + 12, question_end - 12);
	put(r, answers.data, answers.length);
	return true;
}

static void *serve(void *arg)
{
	(void)arg;
	while (!atomic_load(&server.stop)) {
		struct pollfd pfd = {.fd = server.fd, .events = POLLIN};
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		unsigned char query[512];
		struct sockaddr_storage from;
		socklen_t fromlen = sizeof(from);
		ssize_t n = recvfrom(server.fd, query, sizeof(query), 0, (struct sockaddr *)&from,
			&fromlen);
		struct packet r;
		if (n > 12 && reply(query, (size_t)n, &r))
			sendto(server.fd, r.data, r.length, 0, (struct sockaddr *)&from, fromlen);
	}
	return NULL;
}

static int start_server(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);

	(void)state;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	server.fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (server.fd < 0 || bind(server.fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    getsockname(server.fd, (struct sockaddr *)&sin, &len) != 0)
		return -1;
	snprintf(server.address, sizeof(server.address), "127.0.0.1:%u", ntohs(sin.sin_port));
	return pthread_create(&server.thread, NULL, serve, NULL);
}

static int stop_server(void **state)
{
	(void)state;
	atomic_store(&server.stop, true);
	pthread_join(server.thread, NULL);
	close(server.fd);
	return 0;
}

static int clear_cache(void **state)
{
	(void)state;
	dnsq_cache_clear();
	return 0;
}

static int asked(const char *name)
{
	for (int i = 0; i < NAMES; i++)
		if (strcmp(name, names[i]) == 0)
			return atomic_load(&server.asked[i]);
	return -1;
}

static void lookup(const char *name, enum dnsq_type type, struct dnsq_answer *out)
{
	struct dnsq_ctx ctx;

	dnsq_ctx_init(&ctx, server.address, 20);
	dnsq_lookup(&ctx, name, type, out);
}

/* ---- tests ---- */

static void test_a_records_with_their_ttls(void **state)
{
	struct dnsq_answer a;

	(void)state;
	lookup("a.test", DNSQ_A, &a);
	assert_int_equal(a.status, DNSQ_OK);
	assert_int_equal(a.type, DNSQ_A);
	assert_int_equal(a.count, 2);
	char text[INET_ADDRSTRLEN];
	assert_string_equal(inet_ntop(AF_INET, &a.rrs[0].u.a, text, sizeof(text)), "192.0.2.1");
	assert_int_equal(a.rrs[0].ttl, 100);
	assert_string_equal(inet_ntop(AF_INET, &a.rrs[1].u.a, text, sizeof(text)), "192.0.2.2");
	assert_int_equal(a.rrs[1].ttl, 50);
	dnsq_answer_free(&a);
}

static void test_txt_strings_of_one_record_are_joined(void **state)
{
	struct dnsq_answer a;

	(void)state;
	lookup("txt.test", DNSQ_TXT, &a);
	assert_int_equal(a.status, DNSQ_OK);
	assert_int_equal(a.count, 2);
	assert_string_equal(a.rrs[0].u.txt, "v=spf1 -all");
	assert_string_equal(a.rrs[1].u.txt, "second");
	assert_int_equal(a.rrs[0].ttl, 300);
	dnsq_answer_free(&a);
}

static void test_mx_record(void **state)
{
	struct dnsq_answer a;

	(void)state;
	lookup("mx.test", DNSQ_MX, &a);
	assert_int_equal(a.status, DNSQ_OK);
	assert_int_equal(a.count, 1);
	assert_int_equal(a.rrs[0].u.mx.preference, 10);
	assert_string_equal(a.rrs[0].u.mx.host, "mail.test");
	dnsq_answer_free(&a);
}

static void test_rcode_nxdomain_is_nxdomain(void **state)
{
	struct dnsq_answer a;

	(void)state;
	lookup("nx.test", DNSQ_TXT, &a);
	assert_int_equal(a.status, DNSQ_NXDOMAIN);
	assert_int_equal(a.count, 0);
	dnsq_answer_free(&a);
}

static void test_no_answer_is_nodata(void **state)
{
	struct dnsq_answer a;

	(void)state;
	lookup("nodata.test", DNSQ_A, &a);
	assert_int_equal(a.status, DNSQ_NODATA);
	dnsq_answer_free(&a);
}

static void test_only_a_cname_is_nodata(void **state)
{
	struct dnsq_answer a;

	(void)state;
	lookup("cname.test", DNSQ_TXT, &a);
	assert_int_equal(a.status, DNSQ_NODATA);
	dnsq_answer_free(&a);
}

static void test_servfail_is_tempfail(void **state)
{
	struct dnsq_answer a;

	(void)state;
	lookup("fail.test", DNSQ_A, &a);
	assert_int_equal(a.status, DNSQ_TEMPFAIL);
	dnsq_answer_free(&a);
}

static void test_answers_are_cached(void **state)
{
	struct dnsq_answer a;

	(void)state;
	int before = asked("a.test");
	lookup("a.test", DNSQ_A, &a);
	dnsq_answer_free(&a);
	lookup("A.Test.", DNSQ_A, &a); /* the same name: case and the root's dot do not count */
	assert_int_equal(a.status, DNSQ_OK);
	assert_int_equal(a.count, 2);
	dnsq_answer_free(&a);
	assert_int_equal(asked("a.test"), before + 1);
	/* Another type of the same name is another question. */
	lookup("a.test", DNSQ_TXT, &a);
	dnsq_answer_free(&a);
	assert_int_equal(asked("a.test"), before + 2);
	dnsq_cache_clear();
	lookup("a.test", DNSQ_A, &a);
	dnsq_answer_free(&a);
	assert_int_equal(asked("a.test"), before + 3);
}

static void test_negative_answers_are_cached(void **state)
{
	struct dnsq_answer a;

	(void)state;
	int before = asked("nx.test");
	lookup("nx.test", DNSQ_TXT, &a);
	dnsq_answer_free(&a);
	lookup("nx.test", DNSQ_TXT, &a);
	assert_int_equal(a.status, DNSQ_NXDOMAIN);
	dnsq_answer_free(&a);
	assert_int_equal(asked("nx.test"), before + 1);
	before = asked("nodata.test");
	lookup("nodata.test", DNSQ_A, &a);
	dnsq_answer_free(&a);
	lookup("nodata.test", DNSQ_A, &a);
	assert_int_equal(a.status, DNSQ_NODATA);
	dnsq_answer_free(&a);
	assert_int_equal(asked("nodata.test"), before + 1);
}

static void test_failures_are_not_cached(void **state)
{
	struct dnsq_answer a;

	(void)state;
	lookup("fail.test", DNSQ_A, &a);
	dnsq_answer_free(&a);
	int before = asked("fail.test");
	lookup("fail.test", DNSQ_A, &a);
	assert_int_equal(a.status, DNSQ_TEMPFAIL);
	dnsq_answer_free(&a);
	assert_true(asked("fail.test") > before);
}

static void test_silence_is_tempfail_by_the_deadline(void **state)
{
	struct dnsq_ctx ctx;
	struct dnsq_answer a;

	(void)state;
	dnsq_ctx_init(&ctx, server.address, 1);
	dnsq_lookup(&ctx, "silent.test", DNSQ_TXT, &a);
	assert_int_equal(a.status, DNSQ_TEMPFAIL);
	dnsq_answer_free(&a);
}

static void test_closed_port_is_tempfail(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	char address[64];
	struct dnsq_ctx ctx;
	struct dnsq_answer a;

	(void)state;
	/* A port bound and closed again: nothing listens there now. */
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	snprintf(address, sizeof(address), "127.0.0.1:%u", ntohs(sin.sin_port));
	dnsq_ctx_init(&ctx, address, 5);
	dnsq_lookup(&ctx, "a.test", DNSQ_A, &a);
	assert_int_equal(a.status, DNSQ_TEMPFAIL);
	dnsq_answer_free(&a);
}

static void test_passed_deadline_is_tempfail_without_asking(void **state)
{
	struct dnsq_ctx ctx;
	struct dnsq_answer a;

	(void)state;
	int before = asked("mx.test");
	dnsq_ctx_init(&ctx, server.address, 0);
	dnsq_lookup(&ctx, "mx.test", DNSQ_MX, &a);
	assert_int_equal(a.status, DNSQ_TEMPFAIL);
	dnsq_answer_free(&a);
	assert_int_equal(asked("mx.test"), before);
}

static void test_impossible_names_do_not_exist(void **state)
{
	char name[300];
	struct dnsq_answer a;

	(void)state;
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	lookup(name, DNSQ_A, &a);
	assert_int_equal(a.status, DNSQ_NXDOMAIN);
	dnsq_answer_free(&a);
	lookup("", DNSQ_A, &a);
	assert_int_equal(a.status, DNSQ_NXDOMAIN);
	dnsq_answer_free(&a);
}

static void *lookup_on_thread(void *arg)
{
	struct dnsq_answer *a = arg;

	lookup("txt.test", DNSQ_TXT, a);
	return NULL;
}

static void test_threads_have_their_own_channels(void **state)
{
	pthread_t threads[4];
	struct dnsq_answer answers[4];

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, lookup_on_thread, &answers[i]), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(threads[i], NULL);
		assert_int_equal(answers[i].status, DNSQ_OK);
		assert_string_equal(answers[i].rrs[0].u.txt, "v=spf1 -all");
		dnsq_answer_free(&answers[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_a_records_with_their_ttls, clear_cache),
		cmocka_unit_test_setup(test_txt_strings_of_one_record_are_joined, clear_cache),
		cmocka_unit_test_setup(test_mx_record, clear_cache),
		cmocka_unit_test_setup(test_rcode_nxdomain_is_nxdomain, clear_cache),
		cmocka_unit_test_setup(test_no_answer_is_nodata, clear_cache),
		cmocka_unit_test_setup(test_only_a_cname_is_nodata, clear_cache),
		cmocka_unit_test_setup(test_servfail_is_tempfail, clear_cache),
		cmocka_unit_test_setup(test_answers_are_cached, clear_cache),
		cmocka_unit_test_setup(test_negative_answers_are_cached, clear_cache),
		cmocka_unit_test_setup(test_failures_are_not_cached, clear_cache),
		cmocka_unit_test_setup(test_silence_is_tempfail_by_the_deadline, clear_cache),
		cmocka_unit_test_setup(test_closed_port_is_tempfail, clear_cache),
		cmocka_unit_test_setup(test_passed_deadline_is_tempfail_without_asking, clear_cache),
		cmocka_unit_test_setup(test_impossible_names_do_not_exist, clear_cache),
		cmocka_unit_test_setup(test_threads_have_their_own_channels, clear_cache),
	};

	return cmocka_run_group_tests(tests, start_server, stop_server);
}

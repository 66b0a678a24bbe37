/* dkim_probe.c: a test-only driver of verify/dkim_verify.c and verify/dmarc.c, so the
 * integration tests can verify messages signed by a real signer (python3-dkim) against keys
 * served by a real DNS server (dnsmasq). Usage:
 *   dkim_probe MESSAGE_FILE DNS_SERVER [CHUNK]
 * DNS_SERVER is "ip:port" (the DNSResolver key's form). The message (CRLF line ends, as
 * received) is fed in pieces of CHUNK octets (default 4096; 1 tests every boundary). No SPF is
 * checked: both spf resinfos say none. Prints the Authentication-Results field (authserv-id
 * mx.example.org) and exits 0; 2 on a usage or I/O error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "mail/headers.h"
#include "strbuf.h"
#include "verify/authres.h"
#include "verify/dkim_verify.h"
#include "verify/dmarc.h"
#include "verify/dnsq.h"

static int read_file(const char *path, struct strbuf *out)
{
	char buf[65536];
	size_t n;
	FILE *f = fopen(path, "rb");

	if (!f)
		return -1;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_append(out, buf, n);
	if (ferror(f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	struct strbuf message, field;
	struct dnsq_ctx dns;
	struct authres ar;
	struct verify_dkim *v;
	struct mail_headers h;
	size_t header_len, chunk = 4096;
	char from_domain[AUTHRES_VALUE_MAX] = "";

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: dkim_probe MESSAGE_FILE DNS_SERVER [CHUNK]\n");
		return 2;
	}
	if (argc == 4) {
		chunk = strtoul(argv[3], NULL, 10);
		if (chunk == 0)
			chunk = 1;
	}
	strbuf_init(&message);
	if (read_file(argv[1], &message) != 0) {
		perror(argv[1]);
		return 2;
	}
	if (verify_dkim_init() != 0 || verify_dmarc_init() != 0)
		return 2;
	memset(&ar, 0, sizeof(ar));
	dnsq_ctx_init(&dns, argv[2], VERIFY_DEADLINE_SECONDS);

	v = verify_dkim_new("probe");
	for (size_t off = 0; off < message.len; off += chunk) {
		size_t n = message.len - off < chunk ? message.len - off : chunk;
		verify_dkim_feed(v, message.data + off, n);
	}
	verify_dkim_finish(v, &dns, &ar);
	verify_dkim_free(v);

	if (mail_headers_parse(message.data ? message.data : "", message.len, &h, &header_len) ==
		MAIL_HEADERS_OK) {
		verify_dmarc_from_domain(&h, from_domain, sizeof(from_domain));
		mail_headers_free(&h);
	}
	verify_dmarc(&dns, "127.0.0.1", from_domain, true, &ar);

	strbuf_init(&field);
	authres_write(&ar, "mx.example.org", "\r\n", &field);
	fwrite(field.data, 1, field.len, stdout);
	strbuf_free(&field);
	strbuf_free(&message);
	return 0;
}

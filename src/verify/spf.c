/* verify/spf.c: SPF (RFC 7208) for the MAIL FROM and HELO identities with libspf2. The
 * record is fetched (SPF_server_get_record) and interpreted (SPF_record_interpret) here, as
 * libspf2's SPF_request_query_mailfrom does but without its "localhost is always allowed"
 * exemption, which RFC 7208 does not have. One libspf2 server per check: its state is then
 * never shared between worker threads; its DNS is verify/spf_dns.c over verify/dnsq.c. */
#include "verify/spf.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "verify/spf_dns.h"

/* ---- libspf2's messages ---- */

__attribute__((noreturn)) static void spf_error(const char *file, int line,
	const char *message)
{
	char quoted[256];

	fatal("event=spf_library_error file=%s line=%d error=%s", file, line,
		log_quote(quoted, sizeof(quoted), message, strlen(message)));
}

/* Its warnings are about the records senders publish: worth a debug line, no more. */
static void spf_warning(const char *file, int line, const char *message)
{
	char quoted[256];

	(void)file;
	(void)line;
	log_debug("spf", "event=spf_warning message=%s",
		log_quote(quoted, sizeof(quoted), message, strlen(message)));
}

static void spf_quiet(const char *file, int line, const char *message)
{
	(void)file;
	(void)line;
	(void)message;
}

static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;

static void handlers_init(void)
{
	/* Process-wide pointers, set once before any check runs: stderr is our log. */
	SPF_error_handler = spf_error;
	SPF_warning_handler = spf_warning;
	SPF_info_handler = spf_quiet;
	SPF_debug_handler = spf_quiet;
}

/* ---- identities ---- */

/* RFC 7208 4.3: a domain that is malformed or not multi-label (an address literal, a bare
 * host name) gives "none" without any query. */
static bool domain_checkable(const char *domain)
{
	size_t length = strlen(domain), label = 0, labels = 0;

	if (length > 0 && domain[length - 1] == '.')
		length--;
	if (length == 0 || length > 253)
		return false;
	for (size_t i = 0; i < length; i++) {
		unsigned char c = (unsigned char)domain[i];
		if (c == '.') {
			if (label == 0)
				return false;
			labels++;
			label = 0;
		} else if (c <= ' ' || c == 0x7f || strchr("[]@\\\"()<>,;:", c)) {
			return false;
		} else if (++label > 63) {
			return false;
		}
	}
	return label > 0 && labels >= 1;
}

static enum auth_result result_of(SPF_result_t r)
{
	switch (r) {
	case SPF_RESULT_PASS:
		return AUTH_PASS;
	case SPF_RESULT_FAIL:
		return AUTH_FAIL;
	case SPF_RESULT_SOFTFAIL:
		return AUTH_SOFTFAIL;
	case SPF_RESULT_NEUTRAL:
		return AUTH_NEUTRAL;
	case SPF_RESULT_NONE:
		return AUTH_NONE;
	case SPF_RESULT_TEMPERROR:
		return AUTH_TEMPERROR;
	default:
		/* PERMERROR, and INVALID: a record that did not compile leaves the result unset. */
		return AUTH_PERMERROR;
	}
}

struct client {
	int family;
	struct in_addr v4;
	struct in6_addr v6;
};

static bool client_parse(const char *text, struct client *c)
{
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, text, &c->v4) == 1) {
		c->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, text, &c->v6) != 1)
		return false;
	/* RFC 7208 5: an IPv4-mapped IPv6 client is checked as the IPv4 address it is. */
	if (IN6_IS_ADDR_V4MAPPED(&c->v6)) {
		memcpy(&c->v4, &c->v6.s6_addr[12], 4);
		c->family = AF_INET;
	} else {
		c->family = AF_INET6;
	}
	return true;
}

/* check_host() (RFC 7208 4) for the domain of sender (use_helo false) or for helo. */
static enum auth_result check_host(const struct dnsq_ctx *dns, const struct client *client,
	const char *helo, const char *sender, bool use_helo)
{
	SPF_dns_server_t layer;
	SPF_record_t *record = NULL;

	spf_dns_layer_init(&layer, dns);
	SPF_server_t *server = SPF_server_new_dns(&layer, 0);
	if (!server)
		fatal("event=out_of_memory where=spf");
	SPF_request_t *request = SPF_request_new(server);
	if (!request)
		fatal("event=out_of_memory where=spf");
	if (client->family == AF_INET)
		SPF_request_set_ipv4(request, client->v4);
	else
		SPF_request_set_ipv6(request, client->v6);
	/* %{h} and, for a null sender, postmaster@HELO (RFC 7208 2.4) come from here. */
	if (SPF_request_set_helo_dom(request, helo[0] ? helo : "unknown") != SPF_E_SUCCESS ||
	    SPF_request_set_env_from(request, sender) != SPF_E_SUCCESS)
		fatal("event=out_of_memory where=spf");
	/* What libspf2's static SPF_request_prepare does. */
	request->use_helo = use_helo;
	request->cur_dom = use_helo ? request->helo_dom : request->env_from_dp;

	SPF_response_t *response = SPF_response_new(request);
	if (!response)
		fatal("event=out_of_memory where=spf");
	SPF_errcode_t err = SPF_server_get_record(server, request, response, &record);
	if (err == SPF_E_SUCCESS && record) {
		/* The explanation of a fail is made from this record (its exp= modifier). */
		response->spf_record_exp = record;
		SPF_record_interpret(record, request, response, 0);
	}
	enum auth_result result = result_of(SPF_response_result(response));
	/* libspf2 1.2.10 (Debian 12) returns a failed record lookup without setting the result
	 * (fixed upstream in 2012); our layer's only DNS error is TRY_AGAIN. */
	if (err != SPF_E_SUCCESS && SPF_response_result(response) == SPF_RESULT_INVALID)
		result = err == SPF_E_DNS_ERROR ? AUTH_TEMPERROR : AUTH_PERMERROR;
	SPF_response_free(response);
	if (record)
		SPF_record_free(record);
	SPF_request_free(request);
	SPF_server_free(server);
	return result;
}

void verify_spf(const struct dnsq_ctx *dns, const char *client_ip, const char *helo,
	const char *mail_from, struct authres_spf *mailfrom_out, struct authres_spf *helo_out)
{
	struct client client;

	pthread_once(&handlers_once, handlers_init);
	/* RFC 7208 2.4: a null sender is checked as postmaster@HELO. */
	if (mail_from[0])
		snprintf(mailfrom_out->identity, sizeof(mailfrom_out->identity), "%s", mail_from);
	else
		snprintf(mailfrom_out->identity, sizeof(mailfrom_out->identity), "postmaster@%s",
			helo);
	snprintf(helo_out->identity, sizeof(helo_out->identity), "%s", helo);
	mailfrom_out->result = AUTH_NONE;
	helo_out->result = AUTH_NONE;

	if (!client_parse(client_ip, &client)) {
		/* Our own peer address: cannot happen; say so rather than guess. */
		log_warn("spf", "event=spf_bad_client_address");
		mailfrom_out->result = AUTH_PERMERROR;
		helo_out->result = AUTH_PERMERROR;
		return;
	}
	const char *at = strrchr(mailfrom_out->identity, '@');
	const char *sender_domain = at ? at + 1 : mailfrom_out->identity;
	if (domain_checkable(sender_domain))
		mailfrom_out->result = check_host(dns, &client, helo, mail_from, false);
	if (domain_checkable(helo))
		helo_out->result = check_host(dns, &client, helo, "", true);
}

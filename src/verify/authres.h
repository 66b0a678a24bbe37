/* verify/authres.h: the verdicts of the sender checks and the Authentication-Results header
 * field (RFC 8601) that records them; recognising a field that claims our authserv-id (RFC
 * 8601 5: such fields are removed from received mail, so a sender cannot forge our verdict).
 * Pure: no I/O. */
#ifndef MAILPOPBOX_VERIFY_AUTHRES_H
#define MAILPOPBOX_VERIFY_AUTHRES_H

#include <stdbool.h>
#include <stddef.h>

#include "bounds.h"
#include "strbuf.h"

enum auth_result {
	AUTH_NONE,
	AUTH_PASS,
	AUTH_FAIL,
	AUTH_SOFTFAIL,
	AUTH_NEUTRAL,
	AUTH_TEMPERROR,
	AUTH_PERMERROR,
	AUTH_POLICY,
};

/* "none", "pass", "fail", ... as RFC 8601 and RFC 7208 spell them. */
const char *auth_result_name(enum auth_result r);

struct authres_spf {
	enum auth_result result;
	char identity[AUTHRES_VALUE_MAX]; /* the address checked (MAIL FROM, or postmaster@HELO
	                                   * for a null sender), or the HELO name */
};

struct authres_dkim {
	enum auth_result result;
	char comment[AUTHRES_COMMENT_MAX]; /* why, for fail/permerror/temperror; "" for none */
	char domain[AUTHRES_VALUE_MAX];    /* d= */
	char selector[AUTHRES_VALUE_MAX];  /* s= */
	char b[9];                         /* the first 8 characters of b= (RFC 6008) */
};

enum dmarc_policy {
	DMARC_POLICY_ABSENT, /* no record found */
	DMARC_POLICY_NONE,
	DMARC_POLICY_QUARANTINE,
	DMARC_POLICY_REJECT,
};

struct authres_dmarc {
	enum auth_result result;             /* none, pass, fail, temperror, permerror */
	char from_domain[AUTHRES_VALUE_MAX]; /* the RFC5322.From domain, "" when there is none */
	enum dmarc_policy policy;            /* the record's p= (sp= for a subdomain) */
	enum dmarc_policy disposition;       /* what we did about a fail: none, quarantine, reject */
};

struct authres {
	struct authres_spf spf_mailfrom;
	struct authres_spf spf_helo;
	struct authres_dkim dkim[DKIM_SIGNATURES_MAX];
	size_t dkim_count; /* 0: the message had no DKIM-Signature: "dkim=none" */
	struct authres_dmarc dmarc;
};

/* Appends the whole field, "Authentication-Results: " authserv_id ";" and one folded line
 * per result (CRLF TAB), with newline ("\r\n" or "\n") as the line end, to out. */
void authres_write(const struct authres *ar, const char *authserv_id, const char *newline,
	struct strbuf *out);

/* True when value (len octets: an Authentication-Results field's value, folded or not)
 * begins with authserv_id as its authserv-id (ASCII case ignored; CFWS and a version number
 * after it allowed, RFC 8601 2.2). */
bool authres_claims(const char *value, size_t len, const char *authserv_id);

#endif

/* verify/dmarc.c: DMARC (RFC 7489) on top of libopendmarc: the RFC5322.From domain, the
 * record (looked up here through verify/dnsq.h, never by the library, so the deadline and the
 * cache hold), the alignment of the SPF and DKIM results with the From domain, and the
 * policy we apply. */
/* libopendmarc's header first: it defines DMARC_POLICY_ABSENT, _NONE, _QUARANTINE and _REJECT
 * as macros, the names of our enum dmarc_policy (verify/authres.h). Its values are kept under
 * other names and the macros removed before our headers are read. */
#include <sys/types.h>

#include <netinet/in.h>
#include <opendmarc/dmarc.h>

enum {
	LIB_POLICY_ABSENT = DMARC_POLICY_ABSENT,
	LIB_POLICY_PASS = DMARC_POLICY_PASS,
	LIB_POLICY_REJECT = DMARC_POLICY_REJECT,
	LIB_POLICY_QUARANTINE = DMARC_POLICY_QUARANTINE,
	LIB_POLICY_NONE = DMARC_POLICY_NONE,
};
#undef DMARC_POLICY_ABSENT
#undef DMARC_POLICY_PASS
#undef DMARC_POLICY_REJECT
#undef DMARC_POLICY_QUARANTINE
#undef DMARC_POLICY_NONE

#include "verify/dmarc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "log.h"

/* Debian's publicsuffix package; libopendmarc reads it in the Mozilla format. */
#define PUBLIC_SUFFIX_LIST "/usr/share/publicsuffix/public_suffix_list.dat"
/* RFC 1035 2.3.4. */
#define DOMAIN_NAME_MAX 253

/* Exported by libopendmarc but missing from its header. */
int opendmarc_get_tld(u_char *domain, u_char *tld, size_t tld_len);

static bool library_ready;

int verify_dmarc_init(void)
{
	OPENDMARC_LIB_T lib;
	int status;

	if (library_ready)
		return 0;
	memset(&lib, 0, sizeof(lib));
	lib.tld_type = OPENDMARC_TLD_TYPE_MOZILLA;
	snprintf((char *)lib.tld_source_file, sizeof(lib.tld_source_file), "%s",
		PUBLIC_SUFFIX_LIST);
	status = opendmarc_policy_library_init(&lib);
	if (status != DMARC_PARSE_OKAY) {
		/* The library answers errno for a file it cannot read. */
		log_error("dmarc", "event=dmarc_init_failed file=%s error=\"%s\"", PUBLIC_SUFFIX_LIST,
			status > 0 && status < 200 ? strerror(status) : "unknown");
		return -1;
	}
	library_ready = true;
	return 0;
}

/* ---- the From domain ---- */

static bool domain_char(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.';
}

/* A domain name as DMARC can use it: labels of letters, digits, '-' and '_', no empty label
 * (one final dot allowed, dropped), at most DOMAIN_NAME_MAX octets. Lower-cased into out. */
static bool domain_normalize(const char *s, size_t len, char *out, size_t size)
{
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > DOMAIN_NAME_MAX || len >= size || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!domain_char(c))
			return false;
		if (c == '.' && (i == 0 || s[i - 1] == '.'))
			return false;
		out[i] = (char)tolower(c);
	}
	out[len] = '\0';
	return true;
}

/* The From value with comments removed, runs of white space made one space, quoted-strings
 * and domain-literals kept whole; the top-level ',' (mailbox separators), ':' (groups) and
 * angle brackets counted, the position of the first of each bracket kept. A display name of
 * any length fits (a long one must not turn a DMARC fail into "none"). */
struct from_scan {
	struct strbuf text;
	unsigned commas, colons, opens, closes;
	size_t open_at, close_at;
};

static bool from_scan(const char *s, size_t len, struct from_scan *sc)
{
	size_t i = 0;

	while (i < len) {
		char c = s[i];
		if (c == '(') {
			i = mail_skip_comment(s, len, i);
			if (i == SIZE_MAX)
				return false;
			/* RFC 5322 3.2.2: a comment separates like white space ("e(x)c" is two
			 * words, not "ec"). */
			if (sc->text.len > 0 && sc->text.data[sc->text.len - 1] != ' ')
				strbuf_append_str(&sc->text, " ");
		} else if (c == '"') {
			size_t start = i;
			i = mail_skip_quoted_string(s, len, i);
			if (i == SIZE_MAX)
				return false;
			strbuf_append(&sc->text, &s[start], i - start);
		} else if (c == '[') {
			/* A domain-literal: kept, so the domain check refuses it. */
			size_t start = i;
			while (i < len && s[i] != ']')
				i++;
			if (i >= len)
				return false;
			i++;
			strbuf_append(&sc->text, &s[start], i - start);
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			/* One space: a display name's words must not run into the address. */
			if (sc->text.len > 0 && sc->text.data[sc->text.len - 1] != ' ')
				strbuf_append_str(&sc->text, " ");
			i++;
		} else {
			if (c == ',') {
				sc->commas++;
			} else if (c == ':') {
				sc->colons++;
			} else if (c == '<') {
				if (sc->opens++ == 0)
					sc->open_at = sc->text.len;
			} else if (c == '>') {
				if (sc->closes++ == 0)
					sc->close_at = sc->text.len;
			}
			strbuf_append(&sc->text, &c, 1);
			i++;
		}
	}
	return true;
}

/* The domain of an addr-spec (comments already made spaces): what follows the last '@' that
 * is not inside quotes. RFC 5322 4.4 (obs-local-part, obs-domain) allows CFWS around the
 * dots and the '@', so a space there is dropped; a space between two words means two words,
 * which is not one address. */
static bool addr_spec_domain(const char *spec, size_t len, char *domain, size_t size)
{
	struct strbuf squeezed;
	const char *at = NULL;
	bool quoted = false, ok = false;

	strbuf_init(&squeezed);
	for (size_t i = 0; i < len; i++) {
		char c = spec[i];
		if (c == '"')
			quoted = !quoted;
		if (c == ' ' && !quoted) {
			char before = squeezed.len ? squeezed.data[squeezed.len - 1] : '\0';
			size_t j = i;
			while (j < len && spec[j] == ' ')
				j++;
			char after = j < len ? spec[j] : '\0';
			if (before && after && before != '.' && before != '@' && after != '.' &&
				after != '@')
				goto out;
			continue;
		}
		strbuf_append(&squeezed, &c, 1);
	}
	if (quoted || squeezed.len == 0)
		goto out;
	for (size_t i = 0; i < squeezed.len; i++) {
		if (squeezed.data[i] == '"')
			quoted = !quoted;
		else if (squeezed.data[i] == '@' && !quoted)
			at = &squeezed.data[i];
	}
	if (!at || at == squeezed.data)
		goto out;
	ok = domain_normalize(at + 1, squeezed.len - (size_t)(at + 1 - squeezed.data), domain,
		size);
out:
	strbuf_free(&squeezed);
	return ok;
}

/* RFC 7489 6.6.1: exactly one From field holding exactly one mailbox; its domain. */
bool verify_dmarc_from_domain(const struct mail_headers *h, char *domain, size_t size)
{
	size_t index = mail_headers_index(h, "From", 0);
	struct strbuf value;
	struct from_scan sc;
	bool ok = false;

	if (size > 0)
		domain[0] = '\0';
	if (index == MAIL_HEADERS_NOT_FOUND ||
		mail_headers_index(h, "From", index + 1) != MAIL_HEADERS_NOT_FOUND)
		return false;
	strbuf_init(&value);
	memset(&sc, 0, sizeof(sc));
	strbuf_init(&sc.text);
	mail_field_unfold_value(&h->fields[index], &value);
	if (value.len == 0 || !from_scan(value.data, value.len, &sc) || sc.text.len == 0)
		goto out;
	/* A group or a list is not "exactly one address". */
	if (sc.commas != 0 || sc.colons != 0)
		goto out;
	if (sc.opens == 0 && sc.closes == 0) {
		ok = addr_spec_domain(sc.text.data, sc.text.len, domain, size);
	} else if (sc.opens == 1 && sc.closes == 1 && sc.open_at < sc.close_at) {
		/* name-addr: [display-name] angle-addr, nothing but a space after the '>'. */
		size_t end = sc.text.len;
		if (sc.text.data[end - 1] == ' ')
			end--;
		if (sc.close_at + 1 == end)
			ok = addr_spec_domain(sc.text.data + sc.open_at + 1,
				sc.close_at - sc.open_at - 1, domain, size);
	}
out:
	if (!ok && size > 0)
		domain[0] = '\0';
	strbuf_free(&sc.text);
	strbuf_free(&value);
	return ok;
}

/* ---- organizational domain ---- */

bool verify_dmarc_org_domain(const char *domain, char *out, size_t size)
{
	char lower[DOMAIN_NAME_MAX + 1];
	u_char tld[DOMAIN_NAME_MAX + 2];
	size_t len, tld_len;
	const char *p;

	if (!domain_normalize(domain, strlen(domain), lower, sizeof(lower)))
		return false;
	len = strlen(lower);
	memset(tld, 0, sizeof(tld));
	if (opendmarc_get_tld((u_char *)lower, tld, sizeof(tld)) == 0) {
		tld_len = strnlen((const char *)tld, sizeof(tld));
		/* Only an answer that is the domain itself or a suffix of it at a label boundary:
		 * for a name under no listed suffix the library may leave the buffer as it was. */
		if (tld_len > 0 && tld_len <= len &&
			strcasecmp(lower + len - tld_len, (const char *)tld) == 0 &&
			(tld_len == len || lower[len - tld_len - 1] == '.')) {
			if (tld_len >= size)
				return false;
			memcpy(out, lower + len - tld_len, tld_len + 1);
			for (char *q = out; *q; q++)
				*q = (char)tolower((unsigned char)*q);
			return true;
		}
	}
	/* RFC 7489 3.2 / the list's default rule "*": the public suffix is the last label, so
	 * the organizational domain is the last two. */
	p = strrchr(lower, '.');
	if (p) {
		while (p > lower && p[-1] != '.')
			p--;
	} else {
		p = lower;
	}
	if (strlen(p) >= size)
		return false;
	snprintf(out, size, "%s", p);
	return true;
}

/* ---- evaluation ---- */

static int spf_outcome(enum auth_result r)
{
	switch (r) {
	case AUTH_PASS:
		return DMARC_POLICY_SPF_OUTCOME_PASS;
	case AUTH_NONE:
		return DMARC_POLICY_SPF_OUTCOME_NONE;
	case AUTH_TEMPERROR:
		return DMARC_POLICY_SPF_OUTCOME_TMPFAIL;
	default:
		return DMARC_POLICY_SPF_OUTCOME_FAIL;
	}
}

static int dkim_outcome(enum auth_result r)
{
	switch (r) {
	case AUTH_PASS:
		return DMARC_POLICY_DKIM_OUTCOME_PASS;
	case AUTH_NONE:
		return DMARC_POLICY_DKIM_OUTCOME_NONE;
	case AUTH_TEMPERROR:
		return DMARC_POLICY_DKIM_OUTCOME_TMPFAIL;
	default:
		return DMARC_POLICY_DKIM_OUTCOME_FAIL;
	}
}

static enum dmarc_policy record_policy(int p)
{
	switch (p) {
	case DMARC_RECORD_P_REJECT:
		return DMARC_POLICY_REJECT;
	case DMARC_RECORD_P_QUARANTINE:
		return DMARC_POLICY_QUARANTINE;
	default:
		return DMARC_POLICY_NONE;
	}
}

/* RFC 7489 6.6.4: pct < 100 applies the policy to that share of failing messages; the
 * others get the next less strict one (reject -> quarantine, quarantine -> none). The
 * library leaves this to its caller (its own milter draws at random the same way). */
static enum dmarc_policy apply_pct(enum dmarc_policy policy, int pct)
{
	if (pct >= 100 || policy == DMARC_POLICY_NONE || policy == DMARC_POLICY_ABSENT)
		return policy;
	if (pct > 0 && (int)arc4random_uniform(100) < pct)
		return policy;
	return policy == DMARC_POLICY_REJECT ? DMARC_POLICY_QUARANTINE : DMARC_POLICY_NONE;
}

/* The domain of an SPF identity: what follows the last '@' (a HELO name has none). */
static const char *identity_domain(const char *identity)
{
	const char *at = strrchr(identity, '@');
	return at ? at + 1 : identity;
}

/* RFC 7489 3.1: strict alignment is the same name, relaxed the same organizational domain. */
static bool aligned(const char *domain, const char *from, int mode)
{
	char a[DOMAIN_NAME_MAX + 1], b[DOMAIN_NAME_MAX + 1];

	if (!domain_normalize(domain, strlen(domain), a, sizeof(a)))
		return false;
	if (strcmp(a, from) == 0)
		return true;
	if (mode == DMARC_RECORD_A_STRICT)
		return false;
	if (!verify_dmarc_org_domain(a, a, sizeof(a)) || !verify_dmarc_org_domain(from, b, sizeof(b)))
		return false;
	return strcmp(a, b) == 0;
}

/* A second opinion on the library's pass: its relaxed check also takes a parent of the From
 * domain that is a public suffix ("com" for example.com), which RFC 7489 3.2 does not (a
 * suffix is no organization). A pass needs one passing identifier aligned by the RFC. */
static bool pass_confirmed(const struct authres *ar, const char *from, int adkim, int aspf)
{
	if (ar->spf_mailfrom.result == AUTH_PASS &&
		aligned(identity_domain(ar->spf_mailfrom.identity), from, aspf))
		return true;
	for (size_t i = 0; i < ar->dkim_count && i < DKIM_SIGNATURES_MAX; i++)
		if (ar->dkim[i].result == AUTH_PASS && aligned(ar->dkim[i].domain, from, adkim))
			return true;
	return false;
}

static bool any_temperror(const struct authres *ar)
{
	if (ar->spf_mailfrom.result == AUTH_TEMPERROR)
		return true;
	for (size_t i = 0; i < ar->dkim_count && i < DKIM_SIGNATURES_MAX; i++)
		if (ar->dkim[i].result == AUTH_TEMPERROR)
			return true;
	return false;
}

static void evaluate(const char *client_ip, const char *record, const char *record_domain,
	const char *from_domain, struct authres *ar, bool reject_enabled)
{
	struct authres_dmarc *d = &ar->dmarc;
	DMARC_POLICY_T *pctx;
	char from[DOMAIN_NAME_MAX + 1];
	char spf_domain[DOMAIN_NAME_MAX + 1];
	bool at_org;
	int status, p = 0, sp = 0, pct = 100, adkim = 0, aspf = 0;
	enum dmarc_policy enforce;

	memset(d, 0, sizeof(*d));
	d->result = AUTH_NONE;
	d->policy = DMARC_POLICY_ABSENT;
	d->disposition = DMARC_POLICY_NONE;
	if (!from_domain || !domain_normalize(from_domain, strlen(from_domain), from, sizeof(from)))
		return;
	snprintf(d->from_domain, sizeof(d->from_domain), "%s", from);
	if (!record || !record_domain)
		return;
	at_org = strcasecmp(record_domain, from) != 0;

	pctx = opendmarc_policy_connect_init((u_char *)(client_ip ? client_ip : "0.0.0.0"),
		client_ip && strchr(client_ip, ':') ? DMARC_POLICY_IP_TYPE_IPV6 :
						      DMARC_POLICY_IP_TYPE_IPV4);
	if (!pctx)
		fatal("event=out_of_memory where=opendmarc_policy_connect_init");
	/* The order matters to the library: the From domain first (store_dkim needs it), then the
	 * record (its adkim= decides which DKIM result store_dkim keeps), then the results. */
	if (opendmarc_policy_store_from_domain(pctx, (u_char *)from) != DMARC_PARSE_OKAY) {
		d->result = AUTH_PERMERROR;
		goto done;
	}
	/* organizationaldomain set only for a record found at the organizational domain: that
	 * is what makes the library apply sp= (RFC 7489 6.6.3). */
	status = opendmarc_policy_store_dmarc(pctx, (u_char *)record, (u_char *)from,
		at_org ? (u_char *)record_domain : NULL);
	if (status != DMARC_PARSE_OKAY) {
		d->result = AUTH_PERMERROR;
		goto done;
	}
	if (ar->spf_mailfrom.identity[0] &&
		domain_normalize(identity_domain(ar->spf_mailfrom.identity),
			strlen(identity_domain(ar->spf_mailfrom.identity)), spf_domain,
			sizeof(spf_domain))) {
		/* RFC 7208 2.4: for a null sender the identity is postmaster@HELO; its domain is
		 * the HELO name either way. */
		bool helo = ar->spf_helo.identity[0] &&
			strncasecmp(ar->spf_mailfrom.identity, "postmaster@", 11) == 0 &&
			strcasecmp(spf_domain, ar->spf_helo.identity) == 0;
		(void)opendmarc_policy_store_spf(pctx, (u_char *)spf_domain,
			spf_outcome(ar->spf_mailfrom.result),
			helo ? DMARC_POLICY_SPF_ORIGIN_HELO : DMARC_POLICY_SPF_ORIGIN_MAILFROM, NULL);
	}
	for (size_t i = 0; i < ar->dkim_count && i < DKIM_SIGNATURES_MAX; i++) {
		const struct authres_dkim *k = &ar->dkim[i];
		char dkim_domain[DOMAIN_NAME_MAX + 1];
		if (!domain_normalize(k->domain, strlen(k->domain), dkim_domain, sizeof(dkim_domain)))
			continue;
		(void)opendmarc_policy_store_dkim(pctx, (u_char *)dkim_domain,
			(u_char *)k->selector, dkim_outcome(k->result), NULL);
	}

	status = opendmarc_get_policy_to_enforce(pctx);
	(void)opendmarc_policy_fetch_p(pctx, &p);
	(void)opendmarc_policy_fetch_sp(pctx, &sp);
	(void)opendmarc_policy_fetch_pct(pctx, &pct);
	(void)opendmarc_policy_fetch_adkim(pctx, &adkim);
	(void)opendmarc_policy_fetch_aspf(pctx, &aspf);
	d->policy = record_policy(at_org && sp != DMARC_RECORD_P_UNSPECIFIED ? sp : p);
	if (status == LIB_POLICY_PASS && !pass_confirmed(ar, from, adkim, aspf))
		status = d->policy == DMARC_POLICY_REJECT ? LIB_POLICY_REJECT :
			d->policy == DMARC_POLICY_QUARANTINE ? LIB_POLICY_QUARANTINE : LIB_POLICY_NONE;
	switch (status) {
	case LIB_POLICY_PASS:
		d->result = AUTH_PASS;
		goto done;
	case LIB_POLICY_REJECT:
		enforce = DMARC_POLICY_REJECT;
		break;
	case LIB_POLICY_QUARANTINE:
		enforce = DMARC_POLICY_QUARANTINE;
		break;
	case LIB_POLICY_NONE:
		enforce = DMARC_POLICY_NONE;
		break;
	default:
		d->result = AUTH_PERMERROR;
		d->policy = DMARC_POLICY_ABSENT;
		goto done;
	}
	/* Neither identifier aligned and passed. A lookup that failed temporarily might have
	 * made one pass: temperror, never a rejection on a DNS failure. */
	if (any_temperror(ar)) {
		d->result = AUTH_TEMPERROR;
		goto done;
	}
	d->result = AUTH_FAIL;
	enforce = apply_pct(enforce, pct);
	if (enforce == DMARC_POLICY_REJECT && !reject_enabled)
		enforce = DMARC_POLICY_QUARANTINE;
	d->disposition = enforce;
done:
	opendmarc_policy_connect_shutdown(pctx);
}

void verify_dmarc_evaluate(const char *record, const char *record_domain, const char *from_domain,
	struct authres *ar, bool reject_enabled)
{
	evaluate(NULL, record, record_domain, from_domain, ar, reject_enabled);
}

/* RFC 7489 6.6.3: the TXT records at _dmarc.DOMAIN that begin with "v=DMARC1"; exactly one
 * counts. Returns DNSQ_OK with *record (malloc'd) set, DNSQ_TEMPFAIL, or DNSQ_NODATA (none,
 * or several: no policy). */
static enum dnsq_status lookup_record(const struct dnsq_ctx *dns, const char *domain,
	char **record)
{
	struct dnsq_answer answer;
	char name[DOMAIN_NAME_MAX + 16];
	enum dnsq_status status;
	size_t found = 0;

	*record = NULL;
	snprintf(name, sizeof(name), "_dmarc.%s", domain);
	dnsq_lookup(dns, name, DNSQ_TXT, &answer);
	status = answer.status;
	if (status == DNSQ_OK) {
		for (size_t i = 0; i < answer.count; i++) {
			const char *txt = answer.rrs[i].u.txt;
			if (!txt || strncmp(txt, "v=DMARC1", 8) != 0)
				continue;
			if (txt[8] != '\0' && txt[8] != ';' && txt[8] != ' ' && txt[8] != '\t')
				continue;
			if (found++ == 0)
				*record = xstrdup(txt);
		}
		if (found != 1) {
			free(*record);
			*record = NULL;
			status = DNSQ_NODATA;
		}
	} else if (status == DNSQ_NXDOMAIN) {
		status = DNSQ_NODATA;
	}
	dnsq_answer_free(&answer);
	return status;
}

void verify_dmarc(const struct dnsq_ctx *dns, const char *client_ip, const char *from_domain,
	bool reject_enabled, struct authres *ar)
{
	char from[DOMAIN_NAME_MAX + 1];
	char org[DOMAIN_NAME_MAX + 1];
	char *record = NULL;
	const char *record_domain = from;
	enum dnsq_status status;

	if (!from_domain || !domain_normalize(from_domain, strlen(from_domain), from, sizeof(from))) {
		evaluate(client_ip, NULL, NULL, NULL, ar, reject_enabled);
		return;
	}
	status = lookup_record(dns, from, &record);
	/* RFC 7489 6.6.3: no record at the From domain: the organizational domain's. */
	if (status == DNSQ_NODATA && verify_dmarc_org_domain(from, org, sizeof(org)) &&
		strcmp(org, from) != 0) {
		record_domain = org;
		status = lookup_record(dns, org, &record);
	}
	if (status == DNSQ_TEMPFAIL) {
		evaluate(client_ip, NULL, NULL, from, ar, reject_enabled);
		ar->dmarc.result = AUTH_TEMPERROR;
		return;
	}
	evaluate(client_ip, record, record ? record_domain : NULL, from, ar, reject_enabled);
	free(record);
}

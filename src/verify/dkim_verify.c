/* verify/dkim_verify.c: DKIM verification (RFC 6376) of received mail with libopendkim. The
 * message is hashed as it streams (verify_dkim_feed, on the event loop: no DNS there); at the
 * end, on a worker, the keys are looked up through verify/dnsq.h by the library's key lookup
 * callback and each signature's result is mapped to an RFC 8601 resinfo. */
#include "verify/dkim_verify.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <opendkim/dkim.h>

#include "alloc.h"
#include "bounds.h"
#include "log.h"

/* One library handle for every message: libopendkim allows the handles of one DKIM_LIB on
 * several threads at once, each handle used by one thread at a time (the opendkim milter
 * works so). It is configured once, then only read. */
static DKIM_LIB *verify_lib;
static pthread_once_t verify_lib_once = PTHREAD_ONCE_INIT;

struct verify_dkim {
	DKIM *dkim;            /* NULL when the library could not start: dkim=temperror */
	DKIM_STAT feed_status; /* the first status other than OK: feeding stopped there */
	char queue_id[64];
	const struct dnsq_ctx *dns; /* set for the duration of verify_dkim_finish */
	/* The signatures whose key lookup failed temporarily: the callback answers "not
	 * found" so the library goes on with the others, and this list makes them temperror. */
	DKIM_SIGINFO *tempfailed[DKIM_SIGNATURES_MAX];
	size_t tempfailed_count;
	size_t signatures_seen; /* before the limit: for the log */
	/* The header section is held in memory by libopendkim until its end: at most
	 * MAIL_HEADER_SECTION_MAX octets of it are fed (header_octets counts them; line_octets,
	 * those of the current line but CR, finds the blank line). */
	bool in_header;
	bool header_too_big;
	size_t header_octets;
	size_t line_octets;
};

/* RFC 6376 3.6.2.1: the key is the TXT record at SELECTOR._domainkey.DOMAIN. */
static DKIM_CBSTAT key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	struct verify_dkim *v = dkim_get_user_context(dkim);
	const char *domain = (const char *)dkim_sig_getdomain(sig);
	const char *selector = (const char *)dkim_sig_getselector(sig);
	struct dnsq_answer answer;
	char name[600];
	int n;
	DKIM_CBSTAT status = DKIM_CBSTAT_NOTFOUND;

	if (!v || !v->dns || !domain || !selector || !domain[0] || !selector[0])
		return DKIM_CBSTAT_NOTFOUND;
	n = snprintf(name, sizeof(name), "%s._domainkey.%s", selector, domain);
	if (n < 0 || (size_t)n >= sizeof(name))
		return DKIM_CBSTAT_NOTFOUND;
	dnsq_lookup(v->dns, name, DNSQ_TXT, &answer);
	switch (answer.status) {
	case DNSQ_OK:
		/* RFC 6376 3.6.2.2: several records make the result undefined; the first one
		 * that fits is as good a choice as any. */
		for (size_t i = 0; i < answer.count; i++) {
			const char *txt = answer.rrs[i].u.txt;
			size_t len = txt ? strlen(txt) : 0;
			if (len == 0 || len >= buflen)
				continue;
			memcpy(buf, txt, len + 1);
			status = DKIM_CBSTAT_CONTINUE;
			break;
		}
		break;
	case DNSQ_NODATA:
	case DNSQ_NXDOMAIN:
		break;
	case DNSQ_TEMPFAIL:
		if (v->tempfailed_count < DKIM_SIGNATURES_MAX)
			v->tempfailed[v->tempfailed_count++] = sig;
		break;
	}
	dnsq_answer_free(&answer);
	return status;
}

/* Called at the end of the header section, before any hashing of the body: signatures past
 * DKIM_SIGNATURES_MAX are ignored, so a message cannot make us hash its body (and look up
 * keys) without bound. */
static DKIM_CBSTAT prescreen(DKIM *dkim, DKIM_SIGINFO **sigs, int nsigs)
{
	struct verify_dkim *v = dkim_get_user_context(dkim);

	if (v && nsigs > 0)
		v->signatures_seen = (size_t)nsigs;
	for (int i = DKIM_SIGNATURES_MAX; i < nsigs; i++)
		dkim_sig_ignore(sigs[i]);
	return DKIM_CBSTAT_CONTINUE;
}

static void verify_lib_start(void)
{
	/* DELAYSIGPROC: the keys are looked up (and the header hashes checked) at dkim_eom(), on
	 * the worker, not at the end of the header section, which dkim_chunk() reaches on the
	 * event loop. BADSIGHANDLES: a signature with bad syntax is still listed, so it gets its
	 * permerror rather than vanishing. */
	unsigned int flags = DKIM_LIBFLAGS_DELAYSIGPROC | DKIM_LIBFLAGS_BADSIGHANDLES;
	/* RFC 8301 3.2: verifiers must not accept RSA keys under 1024 bits. */
	unsigned int min_key_bits = 1024;
	DKIM_LIB *lib = dkim_init(NULL, NULL);

	if (!lib) {
		log_error("dkim", "event=dkim_init_failed");
		return;
	}
	if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) !=
			DKIM_STAT_OK ||
		dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS, &min_key_bits,
			sizeof(min_key_bits)) != DKIM_STAT_OK ||
		dkim_set_key_lookup(lib, key_lookup) != DKIM_STAT_OK ||
		dkim_set_prescreen(lib, prescreen) != DKIM_STAT_OK) {
		log_error("dkim", "event=dkim_init_failed where=options");
		dkim_close(lib);
		return;
	}
	verify_lib = lib;
}

int verify_dkim_init(void)
{
	pthread_once(&verify_lib_once, verify_lib_start);
	return verify_lib ? 0 : -1;
}

struct verify_dkim *verify_dkim_new(const char *queue_id)
{
	struct verify_dkim *v;
	DKIM_STAT status = DKIM_STAT_OK;

	pthread_once(&verify_lib_once, verify_lib_start);
	v = xcalloc(1, sizeof(*v));
	v->in_header = true;
	snprintf(v->queue_id, sizeof(v->queue_id), "%s", queue_id ? queue_id : "-");
	if (!verify_lib)
		return v;
	v->dkim = dkim_verify(verify_lib, (const unsigned char *)v->queue_id, NULL, &status);
	if (!v->dkim) {
		log_error("dkim", "event=dkim_verify_failed id=%s status=%s", v->queue_id,
			dkim_getresultstr(status));
		return v;
	}
	dkim_set_user_context(v->dkim, v);
	return v;
}

/* How many octets of data (len) belong to the header section, blank line included; len
 * when it goes on past data. */
static size_t header_part(struct verify_dkim *v, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n') {
			/* A line end closing an empty line (CRLF or a bare LF): the blank line. */
			if (v->line_octets == 0) {
				v->in_header = false;
				return i + 1;
			}
			v->line_octets = 0;
		} else if (data[i] != '\r') {
			v->line_octets++;
		}
	}
	return len;
}

void verify_dkim_feed(struct verify_dkim *v, const char *data, size_t len)
{
	DKIM_STAT status;

	if (!v->dkim || v->feed_status != DKIM_STAT_OK || len == 0)
		return;
	if (v->in_header) {
		size_t part = header_part(v, data, len);
		v->header_octets += part;
		if (v->header_octets > MAIL_HEADER_SECTION_MAX) {
			v->header_too_big = true;
			v->feed_status = DKIM_STAT_SYNTAX;
			return;
		}
	}
	/* dkim_chunk() does not write to the buffer; its prototype is just not const. */
	status = dkim_chunk(v->dkim, (u_char *)(uintptr_t)data, len);
	if (status != DKIM_STAT_OK)
		v->feed_status = status; /* NOSIG at the end of the header: nothing to verify */
}

static void copy_string(char *dst, size_t size, const unsigned char *src)
{
	snprintf(dst, size, "%s", src ? (const char *)src : "");
}

static bool was_tempfailed(const struct verify_dkim *v, const DKIM_SIGINFO *sig)
{
	for (size_t i = 0; i < v->tempfailed_count; i++)
		if (v->tempfailed[i] == sig)
			return true;
	return false;
}

static void sig_result(const struct verify_dkim *v, DKIM_SIGINFO *sig, struct authres_dkim *out)
{
	unsigned int flags = dkim_sig_getflags(sig);
	int error = dkim_sig_geterror(sig);
	const unsigned char *b = dkim_sig_gettagvalue(sig, false, (u_char *)"b");

	memset(out, 0, sizeof(*out));
	copy_string(out->domain, sizeof(out->domain), dkim_sig_getdomain(sig));
	copy_string(out->selector, sizeof(out->selector), dkim_sig_getselector(sig));
	if (b) {
		/* RFC 6008 2: the first octets of the b= value, its folding white space removed. */
		size_t n = 0;
		for (; *b && n < sizeof(out->b) - 1; b++)
			if (*b != ' ' && *b != '\t' && *b != '\r' && *b != '\n')
				out->b[n++] = (char)*b;
		out->b[n] = '\0';
	}

	if (was_tempfailed(v, sig)) {
		out->result = AUTH_TEMPERROR;
		snprintf(out->comment, sizeof(out->comment), "key lookup failed");
		return;
	}
	if ((flags & DKIM_SIGFLAG_PASSED) != 0 && dkim_sig_getbh(sig) == DKIM_SIGBH_MATCH) {
		/* RFC 8301 3.1: verifiers must not consider rsa-sha1 signatures valid. */
		dkim_alg_t alg = DKIM_SIGN_UNKNOWN;
		if (dkim_sig_getsignalg(sig, &alg) == DKIM_STAT_OK && alg == DKIM_SIGN_RSASHA1) {
			out->result = AUTH_PERMERROR;
			snprintf(out->comment, sizeof(out->comment), "rsa-sha1 not accepted");
			return;
		}
		out->result = AUTH_PASS;
		return;
	}
	if ((flags & DKIM_SIGFLAG_PROCESSED) == 0 && error == DKIM_SIGERROR_UNKNOWN) {
		/* Never processed (the library stopped before it): no verdict. */
		out->result = AUTH_TEMPERROR;
		snprintf(out->comment, sizeof(out->comment), "not verified");
		return;
	}
	switch (error) {
	case DKIM_SIGERROR_OK:
	case DKIM_SIGERROR_UNKNOWN:
	case DKIM_SIGERROR_BADSIG:
		out->result = AUTH_FAIL;
		if (dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH)
			snprintf(out->comment, sizeof(out->comment), "body hash did not verify");
		else
			snprintf(out->comment, sizeof(out->comment), "signature did not verify");
		return;
	case DKIM_SIGERROR_KEYFAIL:
		out->result = AUTH_TEMPERROR;
		snprintf(out->comment, sizeof(out->comment), "key lookup failed");
		return;
	case DKIM_SIGERROR_NOKEY:
		out->result = AUTH_PERMERROR;
		snprintf(out->comment, sizeof(out->comment), "no key");
		return;
	default:
		/* Syntax of the signature or the key, expired, revoked, key too small... */
		out->result = AUTH_PERMERROR;
		copy_string(out->comment, sizeof(out->comment),
			(const unsigned char *)dkim_sig_geterrorstr(error));
		return;
	}
}

void verify_dkim_finish(struct verify_dkim *v, const struct dnsq_ctx *dns, struct authres *ar)
{
	DKIM_SIGINFO **sigs = NULL;
	int nsigs = 0;
	DKIM_STAT status;
	bool testkey = false;

	ar->dkim_count = 0;
	if (!v->dkim) {
		ar->dkim_count = 1;
		memset(&ar->dkim[0], 0, sizeof(ar->dkim[0]));
		ar->dkim[0].result = AUTH_TEMPERROR;
		snprintf(ar->dkim[0].comment, sizeof(ar->dkim[0].comment), "verifier unavailable");
		return;
	}
	if (v->header_too_big) {
		/* Its signatures were never all seen: none can be verified. */
		ar->dkim_count = 1;
		memset(&ar->dkim[0], 0, sizeof(ar->dkim[0]));
		ar->dkim[0].result = AUTH_PERMERROR;
		snprintf(ar->dkim[0].comment, sizeof(ar->dkim[0].comment), "header section too big");
		return;
	}
	v->dns = dns;
	status = v->feed_status;
	if (status == DKIM_STAT_OK)
		status = dkim_chunk(v->dkim, NULL, 0); /* the end: a header-only message */
	if (status == DKIM_STAT_OK)
		status = dkim_eom(v->dkim, &testkey);
	v->dns = NULL;
	if (status == DKIM_STAT_NOSIG)
		return;
	if (dkim_getsiglist(v->dkim, &sigs, &nsigs) != DKIM_STAT_OK || nsigs <= 0) {
		/* A header section libopendkim could not read, or signatures all unusable. */
		if (status != DKIM_STAT_OK && status != DKIM_STAT_BADSIG &&
			status != DKIM_STAT_CANTVRFY && status != DKIM_STAT_NOKEY) {
			log_info("dkim", "event=dkim_unverified id=%s status=%s", v->queue_id,
				dkim_getresultstr(status));
		}
		return;
	}
	if (v->signatures_seen > DKIM_SIGNATURES_MAX)
		log_info("dkim", "event=dkim_too_many_signatures id=%s count=%zu verified=%d",
			v->queue_id, v->signatures_seen, DKIM_SIGNATURES_MAX);
	for (int i = 0; i < nsigs && ar->dkim_count < DKIM_SIGNATURES_MAX; i++) {
		if ((dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_IGNORE) != 0)
			continue;
		sig_result(v, sigs[i], &ar->dkim[ar->dkim_count++]);
	}
}

void verify_dkim_free(struct verify_dkim *v)
{
	if (!v)
		return;
	if (v->dkim)
		dkim_free(v->dkim);
	free(v);
}

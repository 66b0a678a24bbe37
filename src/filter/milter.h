/* filter/milter.h: a client of the Sendmail milter protocol, version 6 (as Postfix speaks it),
 * so the owner can plug in rspamd (its proxy worker's milter mode), spamass-milter or any
 * other filter. One connection per message, made on a worker at the end of DATA; the whole
 * conversation bounded by one deadline. */
#ifndef MAILPOPBOX_FILTER_MILTER_H
#define MAILPOPBOX_FILTER_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "bounds.h"

enum milter_verdict {
	MILTER_ACCEPT,   /* continue/accept: deliver (with the changes below) */
	MILTER_REJECT,   /* 5xx: reply holds the milter's reply, or "550 5.7.1 Message rejected" */
	MILTER_TEMPFAIL, /* 4xx: reply as above, or "451 4.7.1 Try again later" */
	MILTER_DISCARD,  /* accept and keep nothing */
	MILTER_FAILED,   /* could not connect, protocol error, or the deadline: error says why */
};

enum milter_change_kind {
	MILTER_ADD_HEADER,    /* SMFIR_ADDHEADER: append at the end of the header section */
	MILTER_INSERT_HEADER, /* SMFIR_INSHEADER: insert at index (0 = first) */
	MILTER_CHANGE_HEADER, /* SMFIR_CHGHEADER: the index-th (1-based) field named name; an
	                       * empty value removes it */
};

struct milter_change {
	enum milter_change_kind kind;
	unsigned index;
	char *name;
	char *value; /* as the milter sent it (may contain folding: "\n\t" or "\r\n\t") */
};

struct milter_result {
	enum milter_verdict verdict;
	char reply[MILTER_SMTP_REPLY_MAX]; /* reject/tempfail: the SMTP reply, without the final
	                                    * CRLF (multi-line replies keep their inner CRLFs) */
	bool quarantine;                   /* SMFIR_QUARANTINE: deliver into Junk */
	char quarantine_reason[256];
	struct milter_change *changes;     /* in the order received, at most MILTER_CHANGES_MAX */
	size_t change_count;
	char error[256];                   /* MILTER_FAILED: for the log */
};

struct milter_envelope {
	const char *client_ip;
	const char *client_name;  /* "[ip]" when there is no verified name */
	unsigned client_port;
	const char *helo;
	const char *mail_from;    /* without <>, "" for a null sender */
	const char *const *rcpts; /* without <> */
	size_t rcpt_count;
	const char *queue_id;     /* macro {i} */
	const char *hostname;     /* macro j: our Hostname */
	const char *tls_version;  /* macro {tls_version}, NULL in clear */
};

/* Blocking (a worker). spec is "inet:HOST:PORT" (an IPv6 HOST in brackets) or "unix:PATH".
 * The message is lead (lead_len octets: fields we add, e.g. Authentication-Results) followed
 * by the content of fd from offset to its end: header section, blank line, body, CRLF line
 * ends. Fills *out (free with milter_result_free) whatever happens. */
void milter_check(const char *spec, unsigned timeout_seconds, const struct milter_envelope *env,
	const char *lead, size_t lead_len, int fd, off_t offset, struct milter_result *out);
void milter_result_free(struct milter_result *r);

/* Whether spec is a usable "inet:HOST:PORT" or "unix:PATH" (config check); err says why not. */
bool milter_spec_valid(const char *spec, char *err, size_t errsz);

#endif

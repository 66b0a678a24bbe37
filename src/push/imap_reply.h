/* push/imap_reply.h: a pure parser of one IMAP server response line (RFC 9051 7, RFC 3501 7):
 * tagged, untagged or continuation; its status, response code and the data push delivery
 * needs (capabilities, APPENDUID, SEARCH results). No I/O: push/imap_client.c reads the lines
 * and skips the literals this parser points out. */
#ifndef MAILPOPBOX_PUSH_IMAP_REPLY_H
#define MAILPOPBOX_PUSH_IMAP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"

enum imap_reply_kind {
	IMAP_REPLY_TAGGED,       /* "A1 OK ..." */
	IMAP_REPLY_UNTAGGED,     /* "* ..." */
	IMAP_REPLY_CONTINUATION, /* "+ ..." */
};

enum imap_reply_status {
	IMAP_STATUS_NONE, /* untagged data (CAPABILITY, SEARCH, EXISTS...) or a continuation */
	IMAP_STATUS_OK,
	IMAP_STATUS_NO,
	IMAP_STATUS_BAD,
	IMAP_STATUS_BYE,
	IMAP_STATUS_PREAUTH,
};

/* The response codes push delivery acts on (RFC 9051 7.1, RFC 5530, RFC 4315, RFC 7889). */
enum imap_reply_code {
	IMAP_CODE_NONE,
	IMAP_CODE_OTHER,                /* a code we do not act on ([ALERT], [READ-ONLY]...) */
	IMAP_CODE_CAPABILITY,           /* the capabilities are filled in */
	IMAP_CODE_APPENDUID,            /* uidvalidity and uid are filled in */
	IMAP_CODE_TOOBIG,               /* RFC 7889 / RFC 4469: refused for good */
	IMAP_CODE_PARSE,                /* RFC 5530: the message could not be parsed */
	IMAP_CODE_CANNOT,               /* RFC 5530: the operation can never succeed */
	IMAP_CODE_LIMIT,                /* RFC 5530 */
	IMAP_CODE_OVERQUOTA,            /* RFC 5530 */
	IMAP_CODE_TRYCREATE,            /* RFC 9051 7.1: the mailbox does not exist */
	IMAP_CODE_NONEXISTENT,          /* RFC 5530: the mailbox does not exist (SELECT/EXAMINE) */
	IMAP_CODE_ALREADYEXISTS,        /* RFC 5530: CREATE of a mailbox that exists */
	IMAP_CODE_AUTHENTICATIONFAILED, /* RFC 5530 */
	IMAP_CODE_AUTHORIZATIONFAILED,  /* RFC 5530 */
	IMAP_CODE_EXPIRED,              /* RFC 5530: the credentials expired */
	IMAP_CODE_UNAVAILABLE,          /* RFC 5530: try again later */
	IMAP_CODE_ALERT,                /* RFC 9051 7.1: to be shown to the operator */
};

/* What the server said it can do (RFC 9051 7.2.2); each new CAPABILITY replaces the old. */
struct imap_capabilities {
	bool imap4rev1, imap4rev2;
	bool starttls, logindisabled, sasl_ir;
	bool auth_plain, auth_xoauth2, auth_oauthbearer;
	bool literal_plus, literal_minus; /* RFC 7888 */
	bool uidplus, multiappend;
	bool appendlimit_global;          /* RFC 7889 "APPENDLIMIT=N": appendlimit holds N */
	uint64_t appendlimit;
};

/* Untagged data responses push delivery reads. */
enum imap_reply_data {
	IMAP_DATA_NONE,       /* a status response, a continuation, or data we ignore */
	IMAP_DATA_CAPABILITY, /* "* CAPABILITY ...": the capabilities are filled in */
	IMAP_DATA_SEARCH,     /* "* SEARCH n n n": search_count and search_first */
	IMAP_DATA_LIST,       /* "* LIST (...) "/" name": a mailbox that exists */
};

struct imap_reply {
	enum imap_reply_kind kind;
	char tag[PUSH_IMAP_TAG_MAX + 1]; /* for IMAP_REPLY_TAGGED */
	enum imap_reply_status status;
	enum imap_reply_code code;
	enum imap_reply_data data;
	struct imap_capabilities capabilities; /* with IMAP_CODE_CAPABILITY/IMAP_DATA_CAPABILITY */
	uint32_t uidvalidity, uid;             /* with IMAP_CODE_APPENDUID: uid is the first */
	/* The whole uid-set of a MULTIAPPEND's APPENDUID ("7:9" or "7,9,12"), for
	 * imap_uid_set_nth; "" when it was longer than the buffer (uid still holds the first). */
	char uid_set[PUSH_IMAP_UID_SET_MAX + 1];
	size_t search_count;                   /* with IMAP_DATA_SEARCH */
	uint32_t search_first;
	/* The human-readable text of a status response or a continuation (after the code), with
	 * control characters replaced by '?', truncated: for logs and push_item.detail. */
	char text[PUSH_DETAIL_MAX + 1];
	/* The line ends with a literal's announcement "{N}" (RFC 9051 4.3) in untagged data:
	 * N octets follow, then the rest of the response on a further line. */
	bool literal;
	uint64_t literal_size;
};

/* Parses one response line (without its CRLF). False when it is not a response at all
 * (empty, no tag, a tagged response without a status...): a protocol error. */
bool imap_reply_parse(const char *line, size_t len, struct imap_reply *reply);

/* For a further line of a response whose previous piece ended with a literal: whether this
 * piece ends with another literal announcement, and its size. */
bool imap_reply_trailing_literal(const char *line, size_t len, uint64_t *size);

/* The nth (from 0) UID of an APPENDUID uid-set (RFC 4315 3: in the order the messages were
 * appended): false when the set is garbled or shorter. */
bool imap_uid_set_nth(const char *set, size_t n, uint32_t *uid);

/* Reads a CAPABILITY list (the atoms after "CAPABILITY", space-separated) into caps, which it
 * resets first. Unknown atoms are ignored; at most PUSH_IMAP_CAPABILITIES_MAX are read. */
void imap_capabilities_parse(const char *list, size_t len, struct imap_capabilities *caps);

#endif

/* filter/milter_codec.h: the pure part of the milter client (filter/milter.c): encoding the
 * commands of the Sendmail milter protocol version 6, framing and parsing the filter's
 * replies, and folding the replies sent after the end of the body into a milter_result.
 * Bytes in, bytes out: no sockets, so unit tests and the fuzz target drive it directly.
 * Wire format (libmilter's, as Postfix's src/milter/milter8.c speaks it): every packet is a
 * 4-octet big-endian length, then a command octet and length - 1 octets of data; strings are
 * NUL-terminated, numbers 4-octet (port: 2-octet) big-endian. */
#ifndef MAILPOPBOX_FILTER_MILTER_CODEC_H
#define MAILPOPBOX_FILTER_MILTER_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filter/milter.h"
#include "strbuf.h"

#define MILTER_PROTOCOL_VERSION 6
/* SMFIC_BODY chunks: libmilter's MILTER_CHUNK_SIZE. */
#define MILTER_BODY_CHUNK_MAX 65535

/* Commands (MTA -> filter). */
#define SMFIC_ABORT 'A'
#define SMFIC_BODY 'B'
#define SMFIC_CONNECT 'C'
#define SMFIC_MACRO 'D'
#define SMFIC_BODYEOB 'E'
#define SMFIC_HELO 'H'
#define SMFIC_HEADER 'L'
#define SMFIC_MAIL 'M'
#define SMFIC_EOH 'N'
#define SMFIC_OPTNEG 'O'
#define SMFIC_QUIT 'Q'
#define SMFIC_RCPT 'R'
#define SMFIC_DATA 'T'

/* Replies (filter -> MTA). */
#define SMFIR_ADDRCPT '+'
#define SMFIR_DELRCPT '-'
#define SMFIR_ADDRCPT_PAR '2'
#define SMFIR_SHUTDOWN '4'
#define SMFIR_ACCEPT 'a'
#define SMFIR_REPLBODY 'b'
#define SMFIR_CONTINUE 'c'
#define SMFIR_DISCARD 'd'
#define SMFIR_CHGFROM 'e'
#define SMFIR_CONN_FAIL 'f'
#define SMFIR_ADDHEADER 'h'
#define SMFIR_INSHEADER 'i'
#define SMFIR_SETSYMLIST 'l'
#define SMFIR_CHGHEADER 'm'
#define SMFIR_PROGRESS 'p'
#define SMFIR_QUARANTINE 'q'
#define SMFIR_REJECT 'r'
#define SMFIR_SKIP 's'
#define SMFIR_TEMPFAIL 't'
#define SMFIR_REPLYCODE 'y'

/* Actions (SMFIC_OPTNEG): what the filter may do after the body. We offer header changes and
 * quarantine only: no body replacement, no envelope changes (the maildrop is chosen already). */
#define SMFIF_ADDHDRS 0x01u
#define SMFIF_CHGBODY 0x02u
#define SMFIF_ADDRCPT 0x04u
#define SMFIF_DELRCPT 0x08u
#define SMFIF_CHGHDRS 0x10u
#define SMFIF_QUARANTINE 0x20u
#define SMFIF_CHGFROM 0x40u
#define MILTER_ACTIONS_OFFERED (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE)

/* Protocol flags (SMFIC_OPTNEG): steps the filter asks us not to send (NO*) or not to wait a
 * reply for (NR_*), and SMFIP_SKIP (it may answer SMFIR_SKIP to a body chunk). */
#define SMFIP_NOCONNECT 0x01u
#define SMFIP_NOHELO 0x02u
#define SMFIP_NOMAIL 0x04u
#define SMFIP_NORCPT 0x08u
#define SMFIP_NOBODY 0x10u
#define SMFIP_NOHDRS 0x20u
#define SMFIP_NOEOH 0x40u
#define SMFIP_NR_HDR 0x80u
#define SMFIP_NOUNKNOWN 0x100u
#define SMFIP_NODATA 0x200u
#define SMFIP_SKIP 0x400u
#define SMFIP_RCPT_REJ 0x800u
#define SMFIP_NR_CONN 0x1000u
#define SMFIP_NR_HELO 0x2000u
#define SMFIP_NR_MAIL 0x4000u
#define SMFIP_NR_RCPT 0x8000u
#define SMFIP_NR_DATA 0x10000u
#define SMFIP_NR_UNKN 0x20000u
#define SMFIP_NR_EOH 0x40000u
#define SMFIP_NR_BODY 0x80000u
#define SMFIP_HDR_LEADSPC 0x100000u
/* Everything but SMFIP_RCPT_REJ (we send only recipients we accepted) and SMFIP_HDR_LEADSPC
 * (values are sent and taken back without their leading space, as Postfix does by default). */
#define MILTER_PROTOCOL_OFFERED \
	(SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT | SMFIP_NOBODY | \
	 SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NR_HDR | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_SKIP | \
	 SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_DATA | \
	 SMFIP_NR_UNKN | SMFIP_NR_EOH | SMFIP_NR_BODY)

/* ---- encoding: each appends one whole packet to out ---- */

void milter_encode_optneg(struct strbuf *out, uint32_t version, uint32_t actions,
	uint32_t protocol);
/* SMFIC_MACRO for the command stage (SMFIC_CONNECT, ...): names[i] = values[i] for i < count;
 * a NULL value leaves that macro out. */
void milter_encode_macros(struct strbuf *out, char stage, const char *const *names,
	const char *const *values, size_t count);
/* family '4' or '6', address the client IP as text; family 'U' (unknown): hostname only. */
void milter_encode_connect(struct strbuf *out, const char *hostname, char family,
	unsigned port, const char *address);
void milter_encode_helo(struct strbuf *out, const char *helo);
/* address without <>: sent as "<address>". */
void milter_encode_mail(struct strbuf *out, const char *address);
void milter_encode_rcpt(struct strbuf *out, const char *address);
/* name (name_len octets) and value (value_len octets) as they go on the wire; callers
 * prepare the value with milter_header_value(). */
void milter_encode_header(struct strbuf *out, const char *name, size_t name_len,
	const char *value, size_t value_len);
void milter_encode_body(struct strbuf *out, const char *data, size_t len);
/* SMFIC_DATA, SMFIC_EOH, SMFIC_BODYEOB, SMFIC_QUIT, SMFIC_ABORT: no data. */
void milter_encode_empty(struct strbuf *out, char command);

/* Appends to out the value of a raw header field (the octets after its colon, line end
 * included) as a filter sees it with Postfix: leading SP/HTAB removed, the final line end
 * removed, inner folding kept with a bare LF ("\r\n\t" -> "\n\t"). NUL octets become SP: a
 * value is a C string on the wire. */
void milter_header_value(const char *raw, size_t len, struct strbuf *out);

/* ---- replies ---- */

enum milter_frame_status {
	MILTER_FRAME_INCOMPLETE, /* fewer octets than the packet: read more */
	MILTER_FRAME_OK,         /* *packet_len octets (4 of length included) are one packet */
	MILTER_FRAME_BAD,        /* length 0 or over MILTER_PACKET_MAX */
};

/* Whether buf (len octets received) starts with a whole packet. */
enum milter_frame_status milter_frame(const unsigned char *buf, size_t len, size_t *packet_len);

struct milter_reply {
	char command;           /* an SMFIR_ value (or any octet: parsed as far as it is known) */
	uint32_t version;       /* SMFIC_OPTNEG */
	uint32_t actions;
	uint32_t protocol;
	uint32_t index;         /* SMFIR_INSHEADER, SMFIR_CHGHEADER */
	const char *name;       /* SMFIR_*HEADER */
	const char *value;      /* SMFIR_*HEADER, SMFIR_REPLYCODE, SMFIR_QUARANTINE */
};

/* Parses one packet's payload (the command octet and its data, len >= 1), as cut by
 * milter_frame(). The strings point into data; a reply whose strings are not NUL-terminated
 * within len, or whose numbers are short, is false (a protocol error). Commands this client
 * does not know parse as true with nothing but command set. */
bool milter_reply_parse(const char *data, size_t len, struct milter_reply *out);

/* The SMTP reply of SMFIR_REPLYCODE text into reply (size MILTER_SMTP_REPLY_MAX): a 4xx or 5xx
 * code on every line, lines separated by CRLF (a bare LF is taken as one), '-' after the code
 * of every line but the last. Too long: cut after the last whole line that fits (or inside
 * the first one). Control characters become SP. False (a protocol error) when the text is
 * not such a reply; *verdict is then untouched. */
bool milter_replycode_parse(const char *text, char reply[MILTER_SMTP_REPLY_MAX],
	enum milter_verdict *verdict);

enum milter_eom_step {
	MILTER_EOM_MORE,  /* a modification (or one ignored): read the next reply */
	MILTER_EOM_FINAL, /* r->verdict and r->reply hold the verdict */
	MILTER_EOM_ERROR, /* a protocol error: r->error says which */
};

/* Folds one reply received after SMFIC_BODYEOB into r (r->changes grows, at most
 * MILTER_CHANGES_MAX: later ones are dropped and counted in *dropped). actions are the
 * negotiated ones: a modification that was not negotiated is ignored (logged). */
enum milter_eom_step milter_result_apply_eom(struct milter_result *r,
	const struct milter_reply *reply, uint32_t actions, unsigned *dropped);

/* A reply that ends the conversation (SMFIR_ACCEPT, _REJECT, _TEMPFAIL, _DISCARD,
 * _REPLYCODE): its verdict into r, MILTER_EOM_FINAL (or _ERROR for a malformed REPLYCODE);
 * any other reply: MILTER_EOM_MORE, r untouched. */
enum milter_eom_step milter_result_set_final(struct milter_result *r,
	const struct milter_reply *reply);

void milter_result_init(struct milter_result *r);
const char *milter_verdict_name(enum milter_verdict v);

#endif

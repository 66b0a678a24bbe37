/* mail/sendas.h: send-as for mail the owner submits. A Subject containing "[sendas:NAME]"
 * makes NAME@DOMAIN the From address and the envelope sender, and the tag leaves the Subject,
 * so a reply to shop@example.org comes from shop@example.org. Pure: works on parsed headers.
 *
 * The tag: "[" "sendas" ":" *WSP NAME *WSP "]", "sendas" in any case, WSP being SP or HTAB,
 * NAME 1 to 64 letters, digits, '.', '-', '_' (RFC 5321 4.5.3.1.1), no leading, trailing or
 * doubled '.' (RFC 5322 3.4.1 dot-atom), kept as written (not lowercased). Only the first
 * "[sendas:" of the Subject counts: when it is not a valid tag ("[sendas:a b]",
 * "[sendas:x@y]") nothing changes and later tags are not looked at.
 *
 * Where the tag is found: anywhere in the first Subject field, on its first line or on a
 * continuation line (a tag cut by a fold is not recognised), or inside RFC 2047 encoded-words.
 * Adjacent encoded-words in the same charset with only whitespace between them are decoded as
 * one text (RFC 2047 6.2), so a tag split across them is found. Only charsets in which an
 * ASCII octet always means that ASCII character are decoded: UTF-8, US-ASCII, ISO-8859-*,
 * Windows-125x, KOI8-R/U, EUC-*, GB2312 (not ISO-2022-*, Shift_JIS, Big5, UTF-16/7, ...,
 * where "[sendas:" could be part of another character).
 *
 * What changes when the tag is valid and the message has a From field:
 *  - the tag and one space next to it (the one after it, else the one before it) leave the
 *    Subject: "Re: [sendas:shop] hello" -> "Re: hello", "[sendas:shop]" -> an empty Subject.
 *    In encoded-words, the words holding the tag are decoded, the tag removed the same way,
 *    and the rest written back as plain text when it is printable ASCII, else as encoded-words
 *    in the same charset and encoding (B or Q), at most 75 octets each (RFC 2047 2), cut only
 *    between characters (RFC 2047 5), folded. Every other octet of the Subject is kept,
 *    but for a continuation line the removal leaves empty, which goes with its line end.
 *  - in every From field, the address of the first mailbox becomes NAME@DOMAIN and the rest
 *    (display name, comments, quoting) is kept: "Alice <mailbox@d>" -> "Alice <shop@d>",
 *    "mailbox@d (Alice)" -> "shop@d (Alice)". A From that cannot be read as a mailbox
 *    (unterminated quote or comment, "<" without ">", a group) becomes just "NAME@DOMAIN".
 *  - the Sender field, if any, is left alone.
 * A message with the tag but without From is not changed at all (not even the Subject): the
 * owner then sees the tag in the sent message and knows send-as did not happen. */
#ifndef MAILPOPBOX_MAIL_SENDAS_H
#define MAILPOPBOX_MAIL_SENDAS_H

#include "bounds.h"
#include "mail/headers.h"

enum sendas_result {
	SENDAS_NONE,        /* no Subject or no "[sendas:" in it: unchanged */
	SENDAS_APPLIED,     /* Subject and From rewritten, new_sender set */
	SENDAS_INVALID_TAG, /* the first "[sendas:" is not a valid tag, or NAME@DOMAIN would be
	                     * longer than an SMTP path allows (RFC 5321 4.5.3.1.3): unchanged */
	SENDAS_NO_FROM,     /* a valid tag but no From field: unchanged */
};

/* Applies send-as to h for mail submitted by the owner of domain (the configured domain, as
 * it should appear in addresses). On SENDAS_APPLIED, new_sender holds "NAME@DOMAIN" (no angle
 * brackets, NUL-terminated): the glue uses it as the envelope sender (MAIL FROM) instead of
 * the one given. On any other result h and new_sender are untouched. Call it before DKIM
 * signing, which must see the final From and Subject. */
enum sendas_result sendas_apply(struct mail_headers *h, const char *domain,
	char new_sender[SMTP_PATH_MAX + 1]);

#endif

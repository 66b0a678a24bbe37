/* verify/spf.h: SPF (RFC 7208) with libspf2, for the MAIL FROM identity and the HELO
 * identity. The record is fetched and interpreted through the library's record functions
 * (SPF_server_get_record + SPF_record_interpret), not its query functions, which answer
 * "pass" for any 127.x client without reading the record; every DNS query goes through
 * verify/dnsq.h (a libspf2 DNS layer of our own). Blocking: a worker. */
#ifndef MAILPOPBOX_VERIFY_SPF_H
#define MAILPOPBOX_VERIFY_SPF_H

#include "verify/authres.h"
#include "verify/dnsq.h"

/* client_ip: the SMTP client's address (IPv4 or IPv6 text); helo: its HELO/EHLO argument;
 * mail_from: the MAIL FROM address without <>, "" for a null sender (then the MAIL FROM
 * identity is postmaster@helo, RFC 7208 2.4). Fills both results; never fails (errors are
 * temperror or permerror). */
void verify_spf(const struct dnsq_ctx *dns, const char *client_ip, const char *helo,
	const char *mail_from, struct authres_spf *mailfrom_out, struct authres_spf *helo_out);

#endif

/* verify/dkim_verify.h: DKIM verification (RFC 6376) of every signature of a received
 * message with libopendkim: fed the message as received while DATA streams (hashing only, on
 * the event loop), finished on a worker, where the keys are looked up through verify/dnsq.h
 * (the library's key lookup callback). At most DKIM_SIGNATURES_MAX signatures are verified. */
#ifndef MAILPOPBOX_VERIFY_DKIM_VERIFY_H
#define MAILPOPBOX_VERIFY_DKIM_VERIFY_H

#include <stddef.h>

#include "verify/authres.h"
#include "verify/dnsq.h"

struct verify_dkim;

/* Once at startup, before the sandbox: starts the library handle every message shares (the
 * first message would otherwise, after the sandbox is in place). Returns 0, or -1 (logged):
 * every message is then "dkim=temperror". */
int verify_dkim_init(void);

/* Returns NULL when libopendkim cannot start (logged); the message is then "dkim=temperror". */
struct verify_dkim *verify_dkim_new(const char *queue_id);
/* The message as received (CRLF line ends, not dot-stuffed), in any chunks. */
void verify_dkim_feed(struct verify_dkim *v, const char *data, size_t len);
/* Blocking. Fills ar->dkim[] and ar->dkim_count (0 when the message had no signature). */
void verify_dkim_finish(struct verify_dkim *v, const struct dnsq_ctx *dns, struct authres *ar);
void verify_dkim_free(struct verify_dkim *v);

#endif

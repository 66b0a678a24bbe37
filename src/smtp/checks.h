/* smtp/checks.h: the MX port's checks of the client at connect: its address looked up in the
 * DNSBLZones (verify/dnsbl.h) on a worker; a listing is handed to the SMTP core, which then
 * refuses every recipient but postmaster (smtp_session_set_dnsbl). */
#ifndef MAILPOPBOX_SMTP_CHECKS_H
#define MAILPOPBOX_SMTP_CHECKS_H

#include "config.h"

struct smtp_dnsbl_check;
struct smtp_session;

/* On the loop, at connect: NULL when cfg has no DNSBLZones (nothing to do). */
struct smtp_dnsbl_check *smtp_dnsbl_check_new(const struct config *cfg, const char *client_ip);
/* Blocking (a worker): every zone asked in order, bounded by DNSBL_DEADLINE_SECONDS. */
void smtp_dnsbl_check_run(struct smtp_dnsbl_check *c);
/* On the loop: a listing goes to session and the log (event=dnsbl_listed); c is freed. */
void smtp_dnsbl_check_finish(struct smtp_dnsbl_check *c, struct smtp_session *session);

#endif

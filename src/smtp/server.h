/* smtp/server.h: SMTP in (RFC 5321) on the connection layer: one listening port each for the
 * MX, submission with STARTTLS (RFC 6409) and submission over implicit TLS (RFC 8314). */
#ifndef MAILPOPBOX_SMTP_SERVER_H
#define MAILPOPBOX_SMTP_SERVER_H

#include "net/loop.h"

extern const struct net_protocol smtp_server_mx;          /* SMTPPort: mail for our domains */
extern const struct net_protocol smtp_server_submission;  /* SubmissionPort: AUTH before MAIL */
extern const struct net_protocol smtp_server_submissions; /* SubmissionTLSPort */

#endif

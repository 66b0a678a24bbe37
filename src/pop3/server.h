/* pop3/server.h: POP3 (RFC 1939) on the connection layer: POP3Port (implicit TLS when a
 * certificate exists, else plain) and POP3STLSPort (plain, offering STLS, RFC 2595). */
#ifndef MAILPOPBOX_POP3_SERVER_H
#define MAILPOPBOX_POP3_SERVER_H

#include "net/loop.h"

extern const struct net_protocol pop3_server_pop3; /* POP3Port */
extern const struct net_protocol pop3_server_stls; /* POP3STLSPort: no login before TLS */

#endif

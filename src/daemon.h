/* daemon.h: the process around the protocol sessions: configuration generations (SIGHUP),
 * the listening sockets of the protocols it is handed, the event loop with its connections
 * (net/), the outbound queue, graceful stop (SIGTERM) and privilege drop. It knows protocols
 * only through their struct net_protocol entries (net/loop.h). */
#ifndef MAILPOPBOX_DAEMON_H
#define MAILPOPBOX_DAEMON_H

#include <netinet/in.h>
#include <stddef.h>

#include "config.h"

struct net_protocol;

/* Runs the server until SIGTERM/SIGINT, taking over cfg (loaded from config_path, which
 * SIGHUP re-reads), listening on the port of each protocol entry (a NULL-terminated list,
 * in the order the ports are opened). Returns the process exit status. */
int daemon_run(struct config *cfg, const char *config_path,
	const struct net_protocol *const *protocols);

/* The address a listener binds for port: ListenAddress, or all addresses of family
 * (AF_INET6 means dual-stack). Shared with `mailpopbox check`. */
socklen_t daemon_listen_address(const struct config *cfg, int family, int port,
	struct sockaddr_storage *ss);

/* Where the queue lives when SpoolPath is not set and its default cannot be made or written
 * (an original config run without root): inside the first maildrop. Newly allocated. Shared
 * with `mailpopbox check`. */
char *daemon_fallback_spool_path(const struct config *cfg);

#endif

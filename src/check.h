/* check.h: "mailpopbox check CONFIG.json": what would stop the server, its reloads or its mail,
 * found without starting it (User valid; the config, certificates and keys readable by the
 * user the server runs as, certificates matching keys and names, directories writable by it,
 * DKIM keys loadable, ports free or held by the running server itself, a push Destination's
 * OAuth and CA files usable by that user and its hosts resolvable; nothing is sent). */
#ifndef MAILPOPBOX_CHECK_H
#define MAILPOPBOX_CHECK_H

#include <stdio.h>

#include "config.h"

/* Loads path (reporting a load error like "serve" does) and checks it against this machine,
 * writing one "error: ..." or "warning: ..." line per problem to out (and a "note: ..." when
 * the running server holds the ports), then "config OK" or "N problem(s)". Returns the exit
 * status: 0 when there is no error. */
int check_command(const char *path, FILE *out);

#endif

/* check.h: "mailpopbox check CONFIG.json": what would stop the server or its mail, found
 * without starting it (files readable, certificates matching keys and names, directories
 * writable, DKIM keys loadable, ports free). */
#ifndef MAILPOPBOX_CHECK_H
#define MAILPOPBOX_CHECK_H

#include <stdio.h>

#include "config.h"

/* Checks a loaded config against this machine, writing one "error: ..." or "warning: ..." line
 * per problem to out. Returns the number of errors (warnings are not counted). */
int check_config(const struct config *cfg, FILE *out);

/* Loads path (reporting a load error like "serve" does) and checks it, then ends with
 * "config OK" or "N problem(s)". Returns the exit status: 0 when there is no error. */
int check_command(const char *path, FILE *out);

#endif

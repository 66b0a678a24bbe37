/* privileges.h: dropping root. Started as root with "User" (and optionally "Group") set, the
 * server binds its ports and reads its keys as root, hands the directories it writes to that
 * user, then becomes that user for good before serving anyone. */
#ifndef MAILPOPBOX_PRIVILEGES_H
#define MAILPOPBOX_PRIVILEGES_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/* Does what the config asks for the current process: nothing when not root (logs a note if
 * User is set), a warning when root without User, otherwise chowns the maildrops and the
 * spool to User and drops to it (setgroups, setgid, setuid, then checks root cannot be
 * regained). Returns 0, or -1 with a message in err. */
int privileges_drop(const struct config *cfg, char *err, size_t errsz);

/* The user and group the server becomes when started as root with User set (cfg->user not
 * NULL): User's uid, and Group's gid or else User's own. Returns 0, or -1 with a message in
 * err when a name is unknown or User is root (a server that drops "to root" drops nothing). */
int privileges_resolve(const struct config *cfg, uid_t *uid, gid_t *gid, char *err,
	size_t errsz);

/* Becomes uid:gid for good, named user in messages: gid as the only supplementary group, then
 * gid, then uid, then checks that root cannot be regained. Returns 0, or -1 with err. */
int privileges_switch(const char *user, uid_t uid, gid_t gid, char *err, size_t errsz);

#endif

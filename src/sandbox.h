/* sandbox.h: Landlock file-system confinement (Linux 5.13+). Once applied, the process may
 * write only beneath its maildrops and its spool (and a push Destination's OAuth token
 * directory), and read only the directories holding its config, certificates, DKIM keys and a
 * Destination's OAuth client and CA files, plus the system files it needs (/etc for the CA
 * store and resolv.conf, /usr, /proc for sanitizers). Where the kernel has no Landlock it logs that and carries on. */
#ifndef MAILPOPBOX_SANDBOX_H
#define MAILPOPBOX_SANDBOX_H

#include "config.h"

/* Must run before any thread is started: Landlock confines the calling thread and the threads
 * and processes it creates afterwards. Creates the maildrops and spool first (rules need
 * existing paths). Returns 0 (also when Landlock is unavailable), or -1 after logging. */
int sandbox_apply(const struct config *cfg, const char *config_path);

#endif

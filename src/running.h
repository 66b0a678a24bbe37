/* running.h: finding the server that is already running with a configuration (from the pid
 * file in its SpoolPath) and the listening sockets it holds, so `mailpopbox check` can tell the
 * running server's own ports from ports some other program took. Linux /proc only. */
#ifndef MAILPOPBOX_RUNNING_H
#define MAILPOPBOX_RUNNING_H

/* The pid named by spool_path's pid file when that process is alive and is a mailpopbox
 * (its /proc/PID/comm), else 0: no pid file, a stale one, or a pid reused by another program. */
long running_server_pid(const char *spool_path);

/* Whether process pid holds a listening TCP socket (IPv4 or IPv6) on port: 1 yes, 0 no, -1
 * with errno when its descriptors cannot be seen (EACCES: another user's process, and we are
 * not root). */
int running_server_listens_on(long pid, int port);

#endif

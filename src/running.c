/* running.c: the running server behind a pid file, and whether it holds a port. A socket's
 * inode links the two halves of /proc: /proc/net/tcp{,6} lists each listening socket with its
 * port and inode, and /proc/PID/fd holds a "socket:[INODE]" link for each socket a process
 * has open. Comparing inodes names the holder exactly; a port number alone cannot (another
 * program may hold the same port on another address). */
#include "running.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "queue/queue.h"

/* /proc/net/tcp's "st" column for a listening socket (TCP_LISTEN in the kernel's tcp_states.h). */
#define PROC_NET_TCP_LISTEN 0x0A

long running_server_pid(const char *spool_path)
{
	long pid = queue_pid_file_read(spool_path);
	char path[64], comm[32] = "";

	if (pid == 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0; /* not alive */
	bool ours = fgets(comm, sizeof(comm), f) && strcmp(comm, "mailpopbox\n") == 0;
	fclose(f);
	return ours ? pid : 0;
}

/* Whether pid has the socket with this inode open: 1, 0, or -1 with errno. */
static int process_has_socket(long pid, unsigned long inode)
{
	char path[64], want[64], link[64];
	struct dirent *de;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	DIR *dir = opendir(path);
	if (!dir)
		return -1;
	while (!found && (de = readdir(dir)) != NULL) {
		ssize_t n = readlinkat(dirfd(dir), de->d_name, link, sizeof(link) - 1);
		if (n < 0)
			continue; /* "." and "..", or a descriptor closed meanwhile */
		link[n] = '\0';
		found = strcmp(link, want) == 0;
	}
	closedir(dir);
	return found;
}

/* Looks through one /proc/net table for listening sockets on port that pid holds. */
static int table_listens(const char *table, long pid, int port)
{
	FILE *f = fopen(table, "r");
	char line[512];
	int result = 0;

	if (!f)
		return errno == ENOENT ? 0 : -1; /* no IPv6 in this kernel: no tcp6 table */
	/* "sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout
	 * inode ...", addresses as HEX_ADDRESS:HEX_PORT, the first line a heading. */
	while (result == 0 && fgets(line, sizeof(line), f)) {
		unsigned local_port, state;
		unsigned long inode;
		if (sscanf(line, " %*u: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x %*x:%*x %*x:%*x %*x "
			"%*u %*u %lu", &local_port, &state, &inode) != 3)
			continue;
		if (state == PROC_NET_TCP_LISTEN && local_port == (unsigned)port && inode != 0)
			result = process_has_socket(pid, inode);
	}
	int saved = errno;
	fclose(f);
	errno = saved;
	return result;
}

int running_server_listens_on(long pid, int port)
{
	int result = table_listens("/proc/net/tcp", pid, port);

	if (result == 0)
		result = table_listens("/proc/net/tcp6", pid, port);
	return result;
}

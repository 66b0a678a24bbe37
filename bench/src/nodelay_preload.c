/* nodelay_preload: a diagnostic LD_PRELOAD library for bench/profile, never used by bench/run.
 * It sets TCP_NODELAY on every socket the process accepts, to measure what mailpopbox would
 * gain from disabling Nagle's algorithm without touching its source.
 *
 *   LD_PRELOAD=bench/work/bin/nodelay_preload.so mailpopbox config.json
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void nodelay(int fd)
{
	int one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	static int (*real)(int, struct sockaddr *, socklen_t *);
	int c;

	if (!real)
		real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
	c = real(fd, addr, len);
	nodelay(c);
	return c;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	static int (*real)(int, struct sockaddr *, socklen_t *, int);
	int c;

	if (!real)
		real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
	c = real(fd, addr, len, flags);
	nodelay(c);
	return c;
}

/* tlsconn.h: shared helpers of the benchmark's C clients: TCP connect to a loopback port, a TLS
 * client context that never resumes sessions, and a buffered line reader over SSL. */
#ifndef BENCH_TLSCONN_H
#define BENCH_TLSCONN_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static inline double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A connected TCP socket with send/receive timeouts, or -1. */
static inline int bench_connect(const char *host, int port, int timeout_seconds)
{
	struct sockaddr_in sa;
	struct timeval tv = {.tv_sec = timeout_seconds};
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Full handshakes only: no session cache, no tickets. No certificate verification (the
 * servers use the same self-signed test certificate). */
static inline SSL_CTX *bench_tls_context(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		return NULL;
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

struct bench_reader {
	SSL *ssl;
	char buf[65536];
	size_t start, end;
};

/* Reads one line ending in LF into *line (not NUL-terminated; includes the CRLF) and its
 * length into *len. The line stays valid until the next call. Lines longer than the buffer
 * are returned in pieces. Returns 1, or 0 at EOF/error. */
static inline int bench_read_line(struct bench_reader *r, const char **line, size_t *len)
{
	for (;;) {
		char *nl = r->end > r->start ? memchr(r->buf + r->start, '\n', r->end - r->start)
					     : NULL;
		int n;

		if (nl) {
			*line = r->buf + r->start;
			*len = (size_t)(nl - (r->buf + r->start)) + 1;
			r->start += *len;
			return 1;
		}
		if (r->start > 0) {
			memmove(r->buf, r->buf + r->start, r->end - r->start);
			r->end -= r->start;
			r->start = 0;
		}
		if (r->end == sizeof(r->buf)) {
			*line = r->buf;
			*len = r->end;
			r->start = r->end;
			return 1;
		}
		n = SSL_read(r->ssl, r->buf + r->end, (int)(sizeof(r->buf) - r->end));
		if (n <= 0)
			return 0;
		r->end += (size_t)n;
	}
}

static inline int bench_write_all(SSL *ssl, const char *s, size_t len)
{
	while (len > 0) {
		int n = SSL_write(ssl, s, (int)len);

		if (n <= 0)
			return -1;
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

#endif

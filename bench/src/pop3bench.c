/* pop3bench: one POP3-over-TLS (implicit TLS) session that logs in with USER/PASS and does
 * STAT, LIST, UIDL and RETR of every message, then QUIT (nothing is deleted). Prints one
 * key=value line: messages, octets retrieved, wall time (connect to QUIT reply) and this
 * client's own CPU time (getrusage), so it is visible that the client is not the bottleneck.
 *
 *   pop3bench HOST PORT USER PASSWORD [TIMEOUT_SECONDS]
 */
#include "tlsconn.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>

static struct bench_reader reader;

static void die(const char *what, const char *line, size_t len)
{
	fprintf(stderr, "pop3bench: %s", what);
	if (line)
		fprintf(stderr, ": %.*s", (int)len, line);
	fputc('\n', stderr);
	exit(1);
}

/* Sends CMD and reads the status line; dies unless it is +OK. */
static void command(SSL *ssl, const char *cmd, const char **line, size_t *len)
{
	if (bench_write_all(ssl, cmd, strlen(cmd)) < 0)
		die("write failed", cmd, strlen(cmd));
	if (!bench_read_line(&reader, line, len))
		die("connection closed after", cmd, strlen(cmd));
	if (*len < 3 || memcmp(*line, "+OK", 3) != 0)
		die("unexpected reply", *line, *len);
}

/* Reads a multi-line body up to the terminating ".". Returns the octets of the content
 * (dot-stuffing removed, CRLFs counted) and the number of lines in *lines. */
static unsigned long long read_multiline(unsigned long *lines)
{
	unsigned long long octets = 0;
	const char *line;
	size_t len;
	int at_line_start = 1;

	*lines = 0;
	for (;;) {
		if (!bench_read_line(&reader, &line, &len))
			die("connection closed in multi-line reply", NULL, 0);
		if (at_line_start && len == 3 && memcmp(line, ".\r\n", 3) == 0)
			return octets;
		if (at_line_start && len >= 2 && line[0] == '.')
			octets--; /* dot-stuffed */
		octets += len;
		at_line_start = line[len - 1] == '\n';
		if (at_line_start)
			(*lines)++;
	}
}

int main(int argc, char **argv)
{
	const char *host, *user, *pass;
	int port, timeout, fd;
	SSL_CTX *ctx;
	SSL *ssl;
	const char *line;
	size_t len;
	char cmd[512];
	unsigned long n = 0, lines;
	unsigned long long stat_octets = 0, octets = 0;
	double start, wall;
	struct rusage ru;

	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: pop3bench HOST PORT USER PASSWORD [TIMEOUT_SECONDS]\n");
		return 2;
	}
	host = argv[1];
	port = atoi(argv[2]);
	user = argv[3];
	pass = argv[4];
	timeout = argc == 6 ? atoi(argv[5]) : 600;
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)timeout); /* the whole session is bounded in time */

	ctx = bench_tls_context();
	start = bench_now();
	fd = bench_connect(host, port, 60);
	if (fd < 0 || !ctx)
		die("connect failed", NULL, 0);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "mx.example.org");
	if (SSL_connect(ssl) != 1) {
		ERR_print_errors_fp(stderr);
		die("TLS handshake failed", NULL, 0);
	}
	reader.ssl = ssl;
	if (!bench_read_line(&reader, &line, &len) || len < 3 || memcmp(line, "+OK", 3) != 0)
		die("no greeting", NULL, 0);

	snprintf(cmd, sizeof(cmd), "USER %s\r\n", user);
	command(ssl, cmd, &line, &len);
	snprintf(cmd, sizeof(cmd), "PASS %s\r\n", pass);
	command(ssl, cmd, &line, &len);
	command(ssl, "STAT\r\n", &line, &len);
	if (sscanf(line, "+OK %lu %llu", &n, &stat_octets) != 2)
		die("bad STAT reply", line, len);
	command(ssl, "LIST\r\n", &line, &len);
	read_multiline(&lines);
	if (lines != n)
		die("LIST line count differs from STAT", NULL, 0);
	command(ssl, "UIDL\r\n", &line, &len);
	read_multiline(&lines);
	if (lines != n)
		die("UIDL line count differs from STAT", NULL, 0);
	for (unsigned long i = 1; i <= n; i++) {
		snprintf(cmd, sizeof(cmd), "RETR %lu\r\n", i);
		command(ssl, cmd, &line, &len);
		octets += read_multiline(&lines);
	}
	command(ssl, "QUIT\r\n", &line, &len);
	wall = bench_now() - start;
	SSL_shutdown(ssl);
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);

	getrusage(RUSAGE_SELF, &ru);
	printf("messages=%lu octets=%llu stat_octets=%llu wall=%.4f cpu_user=%.4f cpu_sys=%.4f "
	       "mb_per_s=%.1f\n",
		n, octets, stat_octets, wall,
		(double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
		(double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
		(double)octets / 1e6 / wall);
	return 0;
}

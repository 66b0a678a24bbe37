/* tlsrate: full TLS handshakes per second against an implicit-TLS POP3 port. THREADS clients in
 * parallel each loop: TCP connect, TLS handshake (no resumption, no tickets), read the +OK
 * greeting (so the server has finished its side), close. Bounded by SECONDS and by MAXCOUNT
 * handshakes in all. Prints one key=value line, including this client's CPU time.
 *
 *   tlsrate HOST PORT THREADS SECONDS MAXCOUNT
 */
#include "tlsconn.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>

static const char *host;
static int port;
static double deadline;
static long maxcount;
static SSL_CTX *ctx;
static atomic_long started, ok, failed;

static int one_handshake(void)
{
	struct bench_reader *r;
	const char *line;
	size_t len;
	int fd = bench_connect(host, port, 10), result = -1;
	SSL *ssl;

	if (fd < 0)
		return -1;
	ssl = SSL_new(ctx);
	r = malloc(sizeof(*r));
	if (!ssl || !r)
		goto out;
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "mx.example.org");
	if (SSL_connect(ssl) != 1)
		goto out;
	r->ssl = ssl;
	r->start = r->end = 0;
	if (bench_read_line(r, &line, &len) && len >= 3 && memcmp(line, "+OK", 3) == 0)
		result = 0;
	SSL_shutdown(ssl);
out:
	free(r);
	SSL_free(ssl);
	close(fd);
	return result;
}

static void *worker(void *arg)
{
	(void)arg;
	while (bench_now() < deadline && atomic_fetch_add(&started, 1) < maxcount) {
		if (one_handshake() == 0) {
			atomic_fetch_add(&ok, 1);
		} else {
			ERR_clear_error();
			/* A refusing server must not turn this into a busy loop. */
			if (atomic_fetch_add(&failed, 1) > maxcount / 10 + 100)
				break;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int threads;
	double seconds, start, elapsed;
	pthread_t *tids;
	struct rusage ru;

	if (argc != 6) {
		fprintf(stderr, "usage: tlsrate HOST PORT THREADS SECONDS MAXCOUNT\n");
		return 2;
	}
	host = argv[1];
	port = atoi(argv[2]);
	threads = atoi(argv[3]);
	seconds = atof(argv[4]);
	maxcount = atol(argv[5]);
	if (threads < 1 || threads > 1024 || seconds <= 0 || maxcount < 1) {
		fprintf(stderr, "tlsrate: bad arguments\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	ctx = bench_tls_context();
	if (!ctx)
		return 1;
	tids = calloc((size_t)threads, sizeof(*tids));
	start = bench_now();
	deadline = start + seconds;
	for (int t = 0; t < threads; t++)
		if (pthread_create(&tids[t], NULL, worker, NULL) != 0) {
			perror("pthread_create");
			return 1;
		}
	for (int t = 0; t < threads; t++)
		pthread_join(tids[t], NULL);
	elapsed = bench_now() - start;
	getrusage(RUSAGE_SELF, &ru);
	printf("handshakes=%ld failed=%ld seconds=%.3f rate=%.1f cpu_user=%.3f cpu_sys=%.3f\n",
		atomic_load(&ok), atomic_load(&failed), elapsed, (double)atomic_load(&ok) / elapsed,
		(double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
		(double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
	return atomic_load(&ok) > 0 ? 0 : 1;
}

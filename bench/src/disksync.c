/* disksync: the disk's own limit for durable Maildir delivery.
 *
 * THREADS threads together create COUNT files of SIZE bytes, each the way a durable Maildir
 * deliverer does it: open DIR/tmp/NAME (O_EXCL), write, fsync, close, rename to DIR/new/NAME,
 * fsync DIR/new. Prints one key=value line with the rate. Bounded by COUNT and by SECONDS.
 * With MODE rwf_sync the write and the file's fsync are one pwritev2(RWF_SYNC), as the server
 * writes a message that fits its buffer (fs_durable_sync_content); fsync (the default) is a
 * write then an fsync.
 *
 *   disksync DIR THREADS COUNT SIZE SECONDS [fsync|rwf_sync]
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static const char *dir;
static long count;
static size_t size;
static double deadline;
static char *payload;
static atomic_long next_index;
static atomic_long done;
static atomic_int failed;
static bool rwf_sync;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int one_file(long i)
{
	char tmp[4096], dst[4096], newdir[4096];
	int fd, dfd;
	size_t off = 0;

	snprintf(tmp, sizeof(tmp), "%s/tmp/%ld.P%ld.disksync", dir, i, (long)getpid());
	snprintf(dst, sizeof(dst), "%s/new/%ld.P%ld.disksync", dir, i, (long)getpid());
	snprintf(newdir, sizeof(newdir), "%s/new", dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	while (off < size) {
		struct iovec iov = {payload + off, size - off};
		ssize_t n = rwf_sync ? pwritev2(fd, &iov, 1, -1, RWF_SYNC) : write(fd, iov.iov_base,
			iov.iov_len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	if ((!rwf_sync && fsync(fd) < 0) || close(fd) < 0)
		return -1;
	if (rename(tmp, dst) < 0)
		return -1;
	dfd = open(newdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	if (fsync(dfd) < 0) {
		close(dfd);
		return -1;
	}
	close(dfd);
	return 0;
}

static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		long i = atomic_fetch_add(&next_index, 1);

		if (i >= count || now() > deadline)
			break;
		if (one_file(i) < 0) {
			perror("disksync");
			atomic_store(&failed, 1);
			break;
		}
		atomic_fetch_add(&done, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	char path[4096];
	int threads;
	double seconds, start, elapsed;
	pthread_t *tids;

	if ((argc != 6 && argc != 7) ||
	    (argc == 7 && strcmp(argv[6], "fsync") != 0 && strcmp(argv[6], "rwf_sync") != 0)) {
		fprintf(stderr, "usage: disksync DIR THREADS COUNT SIZE SECONDS [fsync|rwf_sync]\n");
		return 2;
	}
	rwf_sync = argc == 7 && strcmp(argv[6], "rwf_sync") == 0;
	dir = argv[1];
	threads = atoi(argv[2]);
	count = atol(argv[3]);
	size = (size_t)atol(argv[4]);
	seconds = atof(argv[5]);
	if (threads < 1 || threads > 1024 || count < 1 || seconds <= 0) {
		fprintf(stderr, "disksync: bad arguments\n");
		return 2;
	}
	payload = malloc(size ? size : 1);
	for (size_t i = 0; i < size; i++)
		payload[i] = (i % 78 == 76) ? '\r' : (i % 78 == 77) ? '\n' : (char)('a' + i % 26);
	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/tmp", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/new", dir);
	mkdir(path, 0700);

	tids = calloc((size_t)threads, sizeof(*tids));
	start = now();
	deadline = start + seconds;
	for (int t = 0; t < threads; t++)
		if (pthread_create(&tids[t], NULL, worker, NULL) != 0) {
			perror("pthread_create");
			return 1;
		}
	for (int t = 0; t < threads; t++)
		pthread_join(tids[t], NULL);
	elapsed = now() - start;
	printf("files=%ld seconds=%.3f rate=%.1f threads=%d size=%zu mode=%s\n",
		atomic_load(&done), elapsed, (double)atomic_load(&done) / elapsed, threads, size,
		rwf_sync ? "rwf_sync" : "fsync");
	return atomic_load(&failed) ? 1 : 0;
}

/* worker.h: a small thread pool for blocking work (fsync, rename, directory scans, password
 * hashing) so the event loop never waits on the disk. A job's work function runs on a worker
 * thread; its done function then runs on the event loop thread, in completion order.
 * One pool per event loop: its functions are called on that loop's thread only, and its
 * done functions run there. (Measured against fewer threads in all: two loops with four
 * threads each commit 1,143-1,559 fsync'd 4 KB messages/s, two loops with two each or one
 * loop with four 724-1,033/s; fsyncs in flight together are what counts, and separate pools
 * share no lock.) */
#ifndef MAILPOPBOX_WORKER_H
#define MAILPOPBOX_WORKER_H

struct event_base;
struct worker_pool;

typedef void (*worker_work_fn)(void *arg);
typedef void (*worker_done_fn)(void *arg);

/* threads: the most threads the pool starts (at least 1); each is started when a job would
 * otherwise wait for a busy thread. */
struct worker_pool *worker_pool_new(struct event_base *base, unsigned threads);
void worker_pool_submit(struct worker_pool *pool, worker_work_fn work, worker_done_fn done,
	void *arg);
/* Threads started so far: none until the first job, never more than the maximum given. */
unsigned worker_pool_threads(const struct worker_pool *pool);
/* Jobs submitted and not yet completed (their done function has not run). */
unsigned worker_pool_pending(const struct worker_pool *pool);
/* Finishes the queued jobs (their done functions are not run), joins the threads, frees. */
void worker_pool_free(struct worker_pool *pool);

#endif

/* worker.c: the thread pool. Jobs go in a FIFO guarded by a mutex; finished jobs go in a
 * second list and a byte on a pipe wakes the event loop, which runs their done functions.
 * Threads are started when a job would otherwise wait, up to the pool's maximum, and then
 * stay: an idle server has none (nor their stacks and malloc arenas). */
#include "worker.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"

struct worker_job {
	worker_work_fn work;
	worker_done_fn done;
	void *arg;
	struct worker_job *next;
};

struct job_list {
	struct worker_job *head, *tail;
};

struct worker_pool {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job_list queued;
	unsigned queued_count;
	struct job_list finished;
	bool stopping;
	unsigned pending;
	pthread_t *threads;
	unsigned thread_count;  /* started */
	unsigned thread_max;
	unsigned idle_threads;  /* waiting for a job */
	int pipe_fds[2];
	struct event *pipe_event;
};

static void list_push(struct job_list *l, struct worker_job *job)
{
	job->next = NULL;
	if (l->tail)
		l->tail->next = job;
	else
		l->head = job;
	l->tail = job;
}

static struct worker_job *list_pop(struct job_list *l)
{
	struct worker_job *job = l->head;

	if (job) {
		l->head = job->next;
		if (!l->head)
			l->tail = NULL;
	}
	return job;
}

static void *worker_main(void *arg)
{
	struct worker_pool *pool = arg;

	pthread_mutex_lock(&pool->lock);
	for (;;) {
		struct worker_job *job = list_pop(&pool->queued);
		if (!job) {
			if (pool->stopping)
				break;
			pool->idle_threads++;
			pthread_cond_wait(&pool->wake, &pool->lock);
			pool->idle_threads--;
			continue;
		}
		pool->queued_count--;
		pthread_mutex_unlock(&pool->lock);
		job->work(job->arg);
		pthread_mutex_lock(&pool->lock);
		bool was_empty = pool->finished.head == NULL;
		list_push(&pool->finished, job);
		if (was_empty) {
			char byte = 1;
			/* The pipe is non-blocking; a full pipe already means "wake up". */
			while (write(pool->pipe_fds[1], &byte, 1) < 0 && errno == EINTR)
				;
		}
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

static void worker_pool_drain(evutil_socket_t fd, short what, void *arg)
{
	struct worker_pool *pool = arg;
	char buf[64];
	struct job_list done;

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&pool->lock);
	done = pool->finished;
	pool->finished.head = pool->finished.tail = NULL;
	pthread_mutex_unlock(&pool->lock);
	struct worker_job *job;
	while ((job = list_pop(&done)) != NULL) {
		pool->pending--;
		if (job->done)
			job->done(job->arg);
		free(job);
	}
}

struct worker_pool *worker_pool_new(struct event_base *base, unsigned threads)
{
	struct worker_pool *pool = xcalloc(1, sizeof(*pool));

	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->wake, NULL);
	if (pipe2(pool->pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0)
		fatal("event=pipe_failed errno=%d", errno);
	pool->pipe_event = event_new(base, pool->pipe_fds[0], EV_READ | EV_PERSIST,
		worker_pool_drain, pool);
	if (!pool->pipe_event || event_add(pool->pipe_event, NULL) != 0)
		fatal("event=worker_event_failed");
	if (threads == 0)
		fatal("event=worker_pool_without_threads");
	pool->threads = xcalloc(threads, sizeof(*pool->threads));
	pool->thread_max = threads;
	return pool;
}

void worker_pool_submit(struct worker_pool *pool, worker_work_fn work, worker_done_fn done,
	void *arg)
{
	struct worker_job *job = xmalloc(sizeof(*job));

	job->work = work;
	job->done = done;
	job->arg = arg;
	pthread_mutex_lock(&pool->lock);
	list_push(&pool->queued, job);
	pool->queued_count++;
	pool->pending++;
	/* Only the event loop thread submits and starts threads, so thread_count is stable
	 * here; the workers only read it under the lock. */
	if (pool->queued_count > pool->idle_threads && pool->thread_count < pool->thread_max) {
		int rc = pthread_create(&pool->threads[pool->thread_count], NULL, worker_main, pool);
		if (rc == 0)
			pool->thread_count++;
		else if (pool->thread_count == 0) /* with one thread at least, jobs still run */
			fatal("event=thread_create_failed errno=%d", rc);
	}
	pthread_cond_signal(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
}

unsigned worker_pool_threads(const struct worker_pool *pool)
{
	return pool->thread_count;
}

unsigned worker_pool_pending(const struct worker_pool *pool)
{
	return pool->pending;
}

void worker_pool_free(struct worker_pool *pool)
{
	struct worker_job *job;

	if (!pool)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->thread_count; i++)
		pthread_join(pool->threads[i], NULL);
	while ((job = list_pop(&pool->finished)) != NULL)
		free(job);
	event_free(pool->pipe_event);
	close(pool->pipe_fds[0]);
	close(pool->pipe_fds[1]);
	pthread_cond_destroy(&pool->wake);
	pthread_mutex_destroy(&pool->lock);
	free(pool->threads);
	free(pool);
}

/* worker.c: the thread pool. Jobs go in a FIFO guarded by a mutex; finished jobs go in a
 * second list and an eventfd wakes the event loop, which runs their done functions (one
 * read(2) takes every wake-up written meanwhile, where a pipe needed a second to hear it
 * was empty).
 * Threads are started when a job would otherwise wait, up to the pool's maximum, and then
 * stay: an idle server has none (nor their stacks and malloc arenas). */
#include "worker.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
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
	/* Idle threads wait on a semaphore, not a condition variable: glibc's
	 * pthread_cond_wait takes the mutex back marked as contended, so every wake-up cost a
	 * third futex(2) at the next unlock. sem_post wakes one waiter; wakes_pending counts
	 * the posts not yet taken, so a job never posts for a thread another job woke. */
	sem_t wake;
	unsigned wakes_pending;
	struct job_list queued;
	unsigned queued_count;
	struct job_list finished;
	bool stopping;
	unsigned pending;
	pthread_t *threads;
	unsigned thread_count;  /* started */
	unsigned thread_max;
	unsigned idle_threads;  /* waiting for a job */
	int wake_fd;                /* eventfd: finished jobs wait for the loop */
	struct event *wake_event;
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
			pthread_mutex_unlock(&pool->lock);
			while (sem_wait(&pool->wake) != 0 && errno == EINTR)
				;
			pthread_mutex_lock(&pool->lock);
			pool->idle_threads--;
			pool->wakes_pending--;
			continue;
		}
		pool->queued_count--;
		pthread_mutex_unlock(&pool->lock);
		job->work(job->arg);
		pthread_mutex_lock(&pool->lock);
		bool was_empty = pool->finished.head == NULL;
		list_push(&pool->finished, job);
		/* Under the lock: the loop's drain then waits until this thread is idle again, so
		 * a job submitted from the done function finds it idle, not a reason to start
		 * another thread. */
		if (was_empty) {
			uint64_t one = 1;
			/* Non-blocking; a counter at its maximum already means "wake up". */
			while (write(pool->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
				;
		}
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

static void worker_pool_drain(evutil_socket_t fd, short what, void *arg)
{
	struct worker_pool *pool = arg;
	uint64_t count;
	struct job_list done;

	(void)what;
	/* Resets the counter: every wake-up written so far is heard (EAGAIN: none left). */
	while (read(fd, &count, sizeof(count)) < 0 && errno == EINTR)
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
	if (sem_init(&pool->wake, 0, 0) != 0)
		fatal("event=sem_init_failed errno=%d", errno);
	pool->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pool->wake_fd < 0)
		fatal("event=eventfd_failed errno=%d", errno);
	pool->wake_event = event_new(base, pool->wake_fd, EV_READ | EV_PERSIST,
		worker_pool_drain, pool);
	if (!pool->wake_event || event_add(pool->wake_event, NULL) != 0)
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
	bool wake = pool->idle_threads > pool->wakes_pending;
	if (wake)
		pool->wakes_pending++;
	pthread_mutex_unlock(&pool->lock);
	/* After the unlock: the woken thread's first step is to take the lock. */
	if (wake)
		sem_post(&pool->wake);
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
	unsigned waiting = pool->idle_threads - pool->wakes_pending;
	pool->wakes_pending = pool->idle_threads;
	pthread_mutex_unlock(&pool->lock);
	while (waiting-- > 0)
		sem_post(&pool->wake);
	for (unsigned i = 0; i < pool->thread_count; i++)
		pthread_join(pool->threads[i], NULL);
	while ((job = list_pop(&pool->finished)) != NULL)
		free(job);
	event_free(pool->wake_event);
	close(pool->wake_fd);
	sem_destroy(&pool->wake);
	pthread_mutex_destroy(&pool->lock);
	free(pool->threads);
	free(pool);
}

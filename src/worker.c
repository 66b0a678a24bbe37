/* worker.c: the thread pool. Jobs go in a FIFO guarded by a mutex; finished jobs go in a
 * second list and an eventfd wakes the event loop, which runs their done functions (one
 * read(2) takes every wake-up written meanwhile, where a pipe needed a second to hear it
 * was empty).
 * Threads are started when a job would otherwise wait, up to the pool's maximum, and end
 * after WORKER_IDLE_EXIT_MS without a job: an idle server has none, nor their stacks, their
 * malloc caches and OpenSSL's per-thread state, so the daemon's malloc_trim after a burst
 * can give their arenas back (each pool of each loop otherwise kept about 250 KiB). */
#include "worker.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"

struct worker_job {
	worker_work_fn work;
	worker_done_fn done;
	void *arg;
	struct worker_job *next;
};

/* A thread idle this long ends; the next job that would wait starts one again (a few
 * system calls, against the resident memory of a thread kept for nothing). Shorter than
 * MEMORY_TRIM_IDLE_SECONDS, so the trim after the last connection finds them gone. */
#define WORKER_IDLE_EXIT_MS 5000

struct worker_thread {
	pthread_t id;
	bool started;           /* to be joined */
	bool exited;            /* ended idle: its slot is free once joined */
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
	struct worker_thread *threads;
	atomic_uint thread_count; /* running: started and not ended idle */
	unsigned thread_max;
	unsigned idle_exit_ms;
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

/* Waits for a post; false when none came within ms. */
static bool idle_wait(struct worker_pool *pool, unsigned ms)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	for (;;) {
		if (sem_clockwait(&pool->wake, CLOCK_MONOTONIC, &until) == 0)
			return true;
		if (errno != EINTR)
			return false;
	}
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
			bool woken;
			for (;;) {
				unsigned ms = pool->idle_exit_ms;
				pthread_mutex_unlock(&pool->lock);
				woken = idle_wait(pool, ms);
				pthread_mutex_lock(&pool->lock);
				if (woken) {
					pool->wakes_pending--;
					break;
				}
				/* Idle for long enough, unless a post is owed to an idle thread
				 * (the submitter may not have made it yet): then one must wait. */
				if (pool->wakes_pending == 0)
					break;
			}
			pool->idle_threads--;
			if (woken || pool->queued.head || pool->stopping)
				continue;
			for (unsigned i = 0; i < pool->thread_max; i++)
				if (pool->threads[i].started && pthread_equal(pool->threads[i].id,
				    pthread_self()))
					pool->threads[i].exited = true;
			atomic_fetch_sub(&pool->thread_count, 1);
			break;
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
	pool->idle_exit_ms = WORKER_IDLE_EXIT_MS;
	return pool;
}

void worker_pool_set_idle_exit(struct worker_pool *pool, unsigned ms)
{
	pthread_mutex_lock(&pool->lock);
	pool->idle_exit_ms = ms;
	pthread_mutex_unlock(&pool->lock);
}

/* A slot for a new thread, under the lock; an ended thread there is joined first (it has
 * left worker_main or is about to). NULL when all threads run. */
static struct worker_thread *free_slot(struct worker_pool *pool)
{
	for (unsigned i = 0; i < pool->thread_max; i++) {
		struct worker_thread *t = &pool->threads[i];
		if (t->started && t->exited) {
			pthread_join(t->id, NULL);
			t->started = t->exited = false;
		}
		if (!t->started)
			return t;
	}
	return NULL;
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
	/* Only the event loop thread submits and starts threads; a worker that ends idle
	 * changes thread_count under the lock, held here. */
	struct worker_thread *slot;
	if (pool->queued_count > pool->idle_threads && (slot = free_slot(pool)) != NULL) {
		int rc = pthread_create(&slot->id, NULL, worker_main, pool);
		if (rc == 0) {
			slot->started = true;
			atomic_fetch_add(&pool->thread_count, 1);
		} else if (atomic_load(&pool->thread_count) == 0) {
			/* with one thread at least, jobs still run */
			fatal("event=thread_create_failed errno=%d", rc);
		}
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
	return atomic_load(&pool->thread_count);
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
	for (unsigned i = 0; i < pool->thread_max; i++)
		if (pool->threads[i].started)
			pthread_join(pool->threads[i].id, NULL);
	while ((job = list_pop(&pool->finished)) != NULL)
		free(job);
	event_free(pool->wake_event);
	close(pool->wake_fd);
	sem_destroy(&pool->wake);
	pthread_mutex_destroy(&pool->lock);
	free(pool->threads);
	free(pool);
}

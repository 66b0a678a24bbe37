/* dirsync.c: group commit of directory syncs (leader/follower), in a fixed table of slots. */
#include "dirsync.h"

#include <errno.h>
#include <string.h>

void dirsync_init(struct dirsync *s, dirsync_fn fn)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->sync_fn = fn;
	for (size_t i = 0; i < DIRSYNC_SLOTS; i++)
		pthread_cond_init(&s->slots[i].done, NULL);
}

void dirsync_destroy(struct dirsync *s)
{
	for (size_t i = 0; i < DIRSYNC_SLOTS; i++)
		pthread_cond_destroy(&s->slots[i].done);
	pthread_mutex_destroy(&s->lock);
}

/* The slot of path, or NULL when path has none. Called with the lock held. */
static struct dirsync_slot *slot_find(struct dirsync *s, const char *path)
{
	for (size_t i = 0; i < DIRSYNC_SLOTS; i++)
		if (s->slots[i].users > 0 && strcmp(s->slots[i].path, path) == 0)
			return &s->slots[i];
	return NULL;
}

/* The slot of path, given one if it has none; NULL when the table is full. Lock held. */
static struct dirsync_slot *slot_claim(struct dirsync *s, const char *path, size_t len)
{
	struct dirsync_slot *slot = slot_find(s, path);

	for (size_t i = 0; !slot && i < DIRSYNC_SLOTS; i++) {
		if (s->slots[i].users > 0)
			continue;
		slot = &s->slots[i];
		/* A free slot starts its numbering again: no one is waiting on its old syncs. */
		memcpy(slot->path, path, len + 1);
		slot->started = slot->finished = slot->failed = 0;
		slot->failed_errno = 0;
		slot->running = 0;
	}
	return slot;
}

/* Runs sync number slot->started + 1 as its leader: the lock is dropped around the sync itself
 * so that followers can queue up for the next one meanwhile. Lock held on entry and return. */
static void lead_sync(struct dirsync *s, struct dirsync_slot *slot)
{
	uint64_t number = ++slot->started;
	int r, error;

	slot->running = 1;
	pthread_mutex_unlock(&s->lock);
	r = s->sync_fn(slot->path);
	error = errno;
	pthread_mutex_lock(&s->lock);
	slot->running = 0;
	slot->finished = number;
	if (r < 0) {
		slot->failed = number;
		slot->failed_errno = error;
	}
	pthread_cond_broadcast(&slot->done);
}

int dirsync_sync(struct dirsync *s, const char *path)
{
	size_t len = strlen(path);
	struct dirsync_slot *slot = NULL;
	uint64_t wanted;
	int r = 0, error = 0;

	pthread_mutex_lock(&s->lock);
	if (len < DIRSYNC_PATH_MAX)
		slot = slot_claim(s, path, len);
	if (!slot) {
		/* Table full (or path too long): sync alone, sharing with no one. */
		pthread_mutex_unlock(&s->lock);
		return s->sync_fn(path);
	}
	slot->users++;
	/* A sync running now may have begun before the caller's rename: only the next one to
	 * begin is sure to cover it. Syncs of a slot never overlap, so that is sync
	 * started + 1, and it begins no earlier than now. */
	wanted = slot->started + 1;
	while (slot->finished < wanted) {
		if (slot->running)
			pthread_cond_wait(&slot->done, &s->lock);
		else
			lead_sync(s, slot);
	}
	/* Any failure of a sync that covered the caller fails it too: a later sync's success
	 * does not prove the earlier one's changes reached the disk (a write-back error is
	 * reported once). */
	if (slot->failed >= wanted) {
		r = -1;
		error = slot->failed_errno;
	}
	slot->users--;
	if (slot->users == 0)
		slot->path[0] = '\0';
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		errno = error;
	return r;
}

unsigned dirsync_users(struct dirsync *s, const char *path)
{
	struct dirsync_slot *slot;
	unsigned users;

	pthread_mutex_lock(&s->lock);
	slot = slot_find(s, path);
	users = slot ? slot->users : 0;
	pthread_mutex_unlock(&s->lock);
	return users;
}

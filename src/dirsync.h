/* dirsync.h: group commit of directory syncs. A rename or unlink only survives a crash once
 * its directory is fsync'd, and an fsync of a directory that *began* after the rename returned
 * covers it. So when several threads publish into one directory at once (worker threads
 * delivering to the same Maildir new/), one of them (the leader) syncs on behalf of all who
 * arrived before its sync began, and the others (followers) wait for that sync's result.
 *
 * Bounded: a small fixed table of directories being synced right now, keyed by path; a
 * directory gets a slot while someone needs it synced and gives it back when no one waits.
 * When the table is full, or the path is longer than a slot holds, the caller syncs alone.
 * No allocation, no project dependencies (bench/src/disksync.c measures this very file). */
#ifndef MAILPOPBOX_DIRSYNC_H
#define MAILPOPBOX_DIRSYNC_H

#include <pthread.h>
#include <stdint.h>

/* Directories synced at the same moment: the maildrops and spool directories a burst of
 * deliveries publishes into. A further one is synced without sharing. */
#define DIRSYNC_SLOTS 16
/* The longest directory path a slot keeps, terminating NUL included. */
#define DIRSYNC_PATH_MAX 512

/* The sync itself: returns 0, or -1 with errno. */
typedef int (*dirsync_fn)(const char *path);

struct dirsync_slot {
	char path[DIRSYNC_PATH_MAX]; /* "" when the slot is free */
	unsigned users;              /* threads between arrival and return */
	uint64_t started;            /* syncs begun (numbered 1, 2, ...) */
	uint64_t finished;           /* the number of the last sync that returned */
	uint64_t failed;             /* the number of the last sync that failed, 0 if none */
	int failed_errno;
	int running;                 /* a leader is inside sync_fn */
	pthread_cond_t done;         /* broadcast when a sync returns */
};

struct dirsync {
	pthread_mutex_t lock;
	dirsync_fn sync_fn;
	struct dirsync_slot slots[DIRSYNC_SLOTS];
};

/* Sets up s to sync with fn. */
void dirsync_init(struct dirsync *s, dirsync_fn fn);
/* Only once no thread is inside dirsync_sync. */
void dirsync_destroy(struct dirsync *s);
/* Returns once a sync of path that began after this call began has returned: 0 when it (or
 * every such sync this caller waited through) succeeded, else -1 with the errno of the failed
 * one. Blocking. */
int dirsync_sync(struct dirsync *s, const char *path);
/* Threads inside dirsync_sync for path right now (leader and followers); 0 when path has no
 * slot. For tests and diagnostics. */
unsigned dirsync_users(struct dirsync *s, const char *path);

#endif

/* fsutil.h: the file-system steps every durable write here is made of: a name created,
 * renamed or removed only survives a crash once its directory is fsync'd. Shared by the
 * maildrop store, the outbound spool and startup code. All blocking. */
#ifndef MAILPOPBOX_FSUTIL_H
#define MAILPOPBOX_FSUTIL_H

#include <stddef.h>

/* A newly allocated path from a printf format (never NULL). */
char *fs_path_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2), nonnull(1)));
/* fsync(2) of a directory. Returns 0, or -1 with errno. */
int fs_fsync_directory(const char *path);
/* The directory part of path ("." for a bare name), newly allocated. */
char *fs_parent_directory(const char *path);
/* mkdir -p with mode 0700, fsync'ing the parent of each directory it creates. An existing
 * directory is fine; an existing non-directory is ENOTDIR. Returns 0, or -1 with errno. */
int fs_make_directories(const char *path);
/* write(2) until done, retrying on EINTR. Returns 0, or -1 with errno. */
int fs_write_all(int fd, const void *data, size_t len);
/* fsync(2) then close(2) of a file written for a durable rename: the data must be on disk
 * before a name points at it, and close() can report a deferred write error (NFS), so it is
 * checked too (EINTR from close is not an error: the descriptor is gone either way). *fd is
 * closed and set to -1 whatever happens. Returns 0, or -1 with errno. */
int fs_sync_and_close(int *fd);
/* getpid(), asked of the kernel once: unique file names use it on every delivery. */
long fs_process_id(void);

#endif

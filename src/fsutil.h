/* fsutil.h: the file-system steps every durable write here is made of: a name created,
 * renamed or removed only survives a crash once its directory is fsync'd. The one durable-file
 * writer (struct fs_durable_file) serves the maildrop store, the outbound spool, the queue's
 * pid file and dkim-keygen. All blocking. */
#ifndef MAILPOPBOX_FSUTIL_H
#define MAILPOPBOX_FSUTIL_H

#include <stdbool.h>
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
/* A file written durably in two phases, so that several files can be made ready first and
 * then all published (or none):
 *   create   open a new staging file (O_EXCL, mode 0600) at a given path;
 *   write    fs_write_all(f.fd, ...) as often as needed (callers keep their own write error);
 *   sync     fsync + close: the data is on disk, nothing is visible under the final name yet;
 *   publish  rename the staging file to its final name and fsync that name's directory;
 *   discard  close and unlink the staging file, if it is still there (never fails). */
struct fs_durable_file {
	int fd;       /* open for writing; -1 once synced or discarded */
	char *path;   /* the staging file's name (owned), NULL when nothing was created */
	bool synced;  /* fsync'd and closed, waiting to be published */
};

/* Creates path exclusively (never shares a file with another writer, never follows a symlink
 * at the last component) with mode 0600. Returns 0, or -1 with errno (f then holds nothing:
 * fd -1, path NULL). */
int fs_durable_create(struct fs_durable_file *f, const char *path);
/* fsync and close the staging file (the data must be on disk before a name points at it).
 * write_error is the first error the caller's writes met (0 if none): the file is then
 * discarded and the sync fails with it. Returns 0 (also when already synced), or -1 with
 * errno and the staging file removed (EBADF: it was already discarded). */
int fs_durable_sync(struct fs_durable_file *f, int write_error);
/* The sync phase for a file whose whole content is data (nothing was written to it before):
 * data is written with the per-call O_SYNC flag (pwritev2 RWF_SYNC: the data and the
 * metadata that finds it are on disk when the call returns, what fsync promises), one system
 * call instead of write + fsync; a kernel without the flag gets write + fsync. Then closed.
 * Returns as fs_durable_sync (write_error likewise; a failure removes the staging file). */
int fs_durable_sync_content(struct fs_durable_file *f, const void *data, size_t len,
	int write_error);
/* (sync, if not done) + rename(2) to final_path + fsync of final_path's directory; with
 * final_path NULL the file keeps its name and only its directory is fsync'd. *renamed (may be
 * NULL) tells whether final_path now names the file, even when the directory fsync failed
 * (-1): the caller decides whether to take it back. When the rename itself fails the staging
 * file is left for a retry or fs_durable_discard. Returns 0, or -1 with errno. */
int fs_durable_publish(struct fs_durable_file *f, const char *final_path, bool *renamed);
/* Closes and unlinks the staging file unless it was published; logs (as module) a failure to
 * unlink. errno is kept. */
void fs_durable_discard(struct fs_durable_file *f, const char *module);
/* discard, then frees the path. */
void fs_durable_free(struct fs_durable_file *f, const char *module);
/* The whole sequence for a small file: data written to tmp_path, published as final_path.
 * Returns 0, or -1 with errno and *renamed (may be NULL) as fs_durable_publish says; on a
 * failure before the rename nothing is left at tmp_path. */
int fs_durable_write_file(const char *tmp_path, const char *final_path, const void *data,
	size_t len, bool *renamed);

/* getpid(), asked of the kernel once: unique file names use it on every delivery. */
long fs_process_id(void);

#endif

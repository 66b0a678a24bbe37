/* fuzz_journal.c: the push journal's line parser (src/push/journal.c, reached through
 * push_journal_open, as after a crash) on arbitrary file contents. Reading never fails, counts
 * every complete line and never more keys than lines; opened for writing, a torn last line is
 * dropped without losing a key; a key of arbitrary octets (taken from the input) recorded and
 * compacted reads back with its state, whatever it holds ('%', spaces, line ends, 8-bit).
 * The files live in a private directory, removed at exit, under TMPDIR or else /dev/shm: the
 * journal fsyncs, which costs ten times the executions on a disk. */
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "push/journal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256];
static char file[300];

static void check(bool ok)
{
	if (!ok)
		abort();
}

static void remove_dir(void)
{
	char tmp[320];

	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	unlink(tmp);
	unlink(file);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = getenv("TMPDIR");

	(void)argc;
	(void)argv;
	if (base == NULL || base[0] == '\0')
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof(dir), "%s/mailpopbox-fuzz-journal.XXXXXX", base);
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(file, sizeof(file), "%s/%s", dir, PUSH_JOURNAL_NAME);
	atexit(remove_dir);
	return 0;
}

static void write_journal(const uint8_t *data, size_t size)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	check(fd >= 0);
	while (size > 0) {
		ssize_t n = write(fd, data, size);
		check(n > 0);
		data += n;
		size -= (size_t)n;
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[300];
	size_t newlines = 0;
	char key[41];
	size_t k = 0;

	for (size_t i = 0; i < size; i++)
		newlines += data[i] == '\n';
	/* A key of the input's last octets (NUL cannot be in a file name). */
	for (size_t i = size > 40 ? size - 40 : 0; i < size; i++)
		if (data[i] != '\0')
			key[k++] = (char)data[i];
	if (k == 0)
		key[k++] = 'k';
	key[k] = '\0';

	write_journal(data, size);
	struct push_journal *j = push_journal_open(dir, false, err, sizeof(err));
	check(j != NULL);
	size_t keys = push_journal_keys(j);
	check(push_journal_lines(j) == newlines && keys <= newlines);
	enum push_journal_state before = push_journal_state(j, key);
	push_journal_close(j);

	j = push_journal_open(dir, true, err, sizeof(err));
	check(j != NULL);
	check(push_journal_keys(j) == keys && push_journal_state(j, key) == before);
	check(push_journal_record(j, key, PUSH_JOURNAL_CONFIRMED) == 0);
	check(push_journal_keys(j) == keys + (before == PUSH_JOURNAL_NONE));
	check(push_journal_compact(j, true) == 0);
	check(push_journal_keys(j) == 1 && push_journal_lines(j) == 1);
	push_journal_close(j);

	j = push_journal_open(dir, false, err, sizeof(err));
	check(j != NULL);
	check(push_journal_keys(j) == 1 && push_journal_lines(j) == 1);
	check(push_journal_state(j, key) == PUSH_JOURNAL_CONFIRMED);
	push_journal_close(j);
	return 0;
}

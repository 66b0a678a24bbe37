/* test_maildrop.c: the Maildir store on a real file system under /tmp: durable delivery into
 * new/, listing in arrival order with exact sizes, stable RFC 1939 unique-ids, locking and
 * deletion, including the original Go server's flat "*.msg" files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "store/maildrop.h"
#include "remove_tree.h"

struct fixture {
	char root[64];   /* mkdtemp directory, removed by teardown */
	char path[128];  /* MaildropPath inside it, not created yet */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test_maildrop.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->path, sizeof(f->path), "%s/example.org", f->root);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	remove_tree(f->root);
	free(f);
	return 0;
}

static char *join(const char *a, const char *b)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", a, b) >= 0);
	return p;
}

/* Names in dir except "." and ".." (dotfiles included), sorted; returns how many. */
static size_t list_names(const char *dir_path, char names[][512], size_t max)
{
	DIR *dir = opendir(dir_path);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(dir);
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		assert_true(n < max);
		snprintf(names[n++], 512, "%s", de->d_name);
	}
	closedir(dir);
	qsort(names, n, 512, (int (*)(const void *, const void *))strcmp);
	return n;
}

static size_t count_entries(const char *maildrop_path, const char *sub)
{
	char names[64][512];
	char *dir = join(maildrop_path, sub);
	size_t n = list_names(dir, names, 64);

	free(dir);
	return n;
}

static void write_file(const char *dir, const char *name, const char *content, time_t mtime)
{
	char *path = join(dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	struct timespec times[2] = {{mtime, 0}, {mtime, 0}};

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
	free(path);
}

static char *read_whole_file(const char *path)
{
	static char buf[4096];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static void deliver(const char *maildrop_path, const char *content)
{
	struct maildrop_delivery d;

	assert_int_equal(maildrop_delivery_begin(&d, maildrop_path), 0);
	assert_int_equal(maildrop_delivery_write(&d, content, strlen(content)), 0);
	assert_int_equal(maildrop_delivery_commit(&d), 0);
	maildrop_delivery_release(&d);
}

/* Lays out a Maildir by hand, as the original server or another MDA would have left it. */
static char *make_maildir(const char *maildrop_path, const char *sub)
{
	char *dir = join(maildrop_path, sub);

	mkdir(maildrop_path, 0700);
	assert_true(mkdir(dir, 0700) == 0 || errno == EEXIST);
	return dir;
}

/* ---- delivery ---- */

static void test_delivery_creates_maildir_and_stores_exact_bytes_in_new_with_size_suffix(
	void **state)
{
	struct fixture *f = *state;
	const char *message = "Subject: hi\r\n\r\nbody\r\n";
	struct maildrop_delivery d;
	char names[4][512], expected[600];
	struct stat st;
	char *path;

	assert_int_equal(maildrop_delivery_begin(&d, f->path), 0);
	assert_int_equal(maildrop_delivery_write(&d, message, 9), 0);
	assert_int_equal(maildrop_delivery_write(&d, message + 9, strlen(message) - 9), 0);
	assert_int_equal(d.written, strlen(message));
	assert_int_equal(maildrop_delivery_commit(&d), 0);

	const char *subs[] = {"", "tmp", "new", "cur"};
	for (size_t i = 0; i < 4; i++) {
		char *dir = join(f->path, subs[i]);

		assert_int_equal(stat(dir, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 0777, 0700);
		free(dir);
	}
	path = join(f->path, "new");
	assert_int_equal(list_names(path, names, 4), 1);
	snprintf(expected, sizeof(expected), "%s,S=%zu", d.unique, strlen(message));
	assert_string_equal(names[0], expected);
	free(path);
	path = join(f->path, "new");
	char *file = join(path, names[0]);
	assert_string_equal(read_whole_file(file), message);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(file);
	free(path);
	maildrop_delivery_release(&d);
}

static void test_delivery_commit_leaves_tmp_empty(void **state)
{
	struct fixture *f = *state;

	deliver(f->path, "a\r\n");
	assert_int_equal(count_entries(f->path, "tmp"), 0);
	assert_int_equal(count_entries(f->path, "new"), 1);
}

static void test_delivery_abort_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct maildrop_delivery d;

	assert_int_equal(maildrop_delivery_begin(&d, f->path), 0);
	assert_int_equal(count_entries(f->path, "tmp"), 1);
	assert_int_equal(maildrop_delivery_write(&d, "partial", 7), 0);
	maildrop_delivery_abort(&d);
	maildrop_delivery_release(&d);
	assert_int_equal(count_entries(f->path, "tmp"), 0);
	assert_int_equal(count_entries(f->path, "new"), 0);
	assert_int_equal(count_entries(f->path, "cur"), 0);
}

static void test_delivery_commit_after_write_error_fails_and_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct maildrop_delivery d;

	assert_int_equal(maildrop_delivery_begin(&d, f->path), 0);
	assert_int_equal(maildrop_delivery_write(&d, "data", 4), 0);
	d.error = EIO; /* as if the disk had failed mid-message */
	errno = 0;
	assert_int_equal(maildrop_delivery_commit(&d), -1);
	assert_int_equal(errno, EIO);
	maildrop_delivery_release(&d);
	assert_int_equal(count_entries(f->path, "tmp"), 0);
	assert_int_equal(count_entries(f->path, "new"), 0);
	assert_int_equal(count_entries(f->path, "cur"), 0);
}

static void test_delivery_write_after_error_is_skipped(void **state)
{
	struct fixture *f = *state;
	struct maildrop_delivery d;

	assert_int_equal(maildrop_delivery_begin(&d, f->path), 0);
	d.error = ENOSPC;
	assert_int_equal(maildrop_delivery_write(&d, "more", 4), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(d.written, 0);
	assert_int_equal(d.error, ENOSPC);
	maildrop_delivery_abort(&d);
	maildrop_delivery_release(&d);
}

static void test_delivery_begin_fails_when_maildrop_parent_is_missing(void **state)
{
	struct fixture *f = *state;
	struct maildrop_delivery d = {.file = {.fd = -1}};
	char *path = join(f->path, "deeper");

	/* Only MaildropPath itself is created: a missing parent is a configuration mistake
	 * (or an unmounted disk) that must not be papered over. */
	assert_int_equal(maildrop_delivery_begin(&d, path), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(d.file.fd, -1);
	assert_null(d.unique);
	free(path);
}

static void test_two_deliveries_get_different_names(void **state)
{
	struct fixture *f = *state;
	struct maildrop_delivery a, b;

	assert_int_equal(maildrop_delivery_begin(&a, f->path), 0);
	assert_int_equal(maildrop_delivery_begin(&b, f->path), 0);
	assert_string_not_equal(a.unique, b.unique);
	assert_int_equal(maildrop_delivery_commit(&a), 0);
	assert_int_equal(maildrop_delivery_commit(&b), 0);
	maildrop_delivery_release(&a);
	maildrop_delivery_release(&b);
	assert_int_equal(count_entries(f->path, "new"), 2);
}

static void test_unique_name_has_maildir_form_without_slash_or_colon(void **state)
{
	struct fixture *f = *state;
	struct maildrop_delivery d;
	long long sec;
	long usec, pid;
	unsigned long counter;
	int consumed = 0;

	assert_int_equal(maildrop_delivery_begin(&d, f->path), 0);
	/* "<sec>.M<usec>P<pid>Q<counter>.<hostname>" (Maildir spec, Dovecot's fields) */
	assert_int_equal(sscanf(d.unique, "%lld.M%ldP%ldQ%lu.%n", &sec, &usec, &pid, &counter,
				 &consumed),
		4);
	assert_true(consumed > 0 && d.unique[consumed] != '\0');
	assert_true(usec >= 0 && usec < 1000000);
	assert_int_equal(pid, (long)getpid());
	assert_null(strchr(d.unique, '/'));
	assert_null(strchr(d.unique, ':'));
	maildrop_delivery_abort(&d);
	maildrop_delivery_release(&d);
}

#define THREADS 8
#define DELIVERIES_PER_THREAD 25

static void *deliver_many(void *arg)
{
	for (int i = 0; i < DELIVERIES_PER_THREAD; i++)
		deliver(arg, "x\r\n");
	return NULL;
}

static void test_concurrent_deliveries_get_unique_names(void **state)
{
	struct fixture *f = *state;
	pthread_t threads[THREADS];
	struct maildrop md;

	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, deliver_many, f->path), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(threads[i], NULL);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, THREADS * DELIVERIES_PER_THREAD);
	maildrop_close(&md);
}

/* ---- listing ---- */

static void test_open_lists_maildir_and_legacy_files_in_arrival_order_with_exact_sizes(
	void **state)
{
	struct fixture *f = *state;
	char *new_dir = make_maildir(f->path, "new");
	char *cur_dir = make_maildir(f->path, "cur");
	struct maildrop md;

	write_file(cur_dir, "1700000300.M1P1Q1.host,S=999:2,S", "third\r\n", 1700000300);
	write_file(f->path, "0b9f2a4c-1111-2222-3333-444455556666.msg", "first, legacy\r\n",
		1600000000);
	write_file(new_dir, "1700000400.M1P1Q1.host,S=5", "fourth!\r\n", 1700000400);
	write_file(f->path, "7e1d-legacy.msg", "second\r\n", 1700000000);

	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 4);
	assert_string_equal(md.messages[0].uidl, "0b9f2a4c-1111-2222-3333-444455556666");
	assert_string_equal(md.messages[1].uidl, "7e1d-legacy");
	assert_string_equal(md.messages[2].uidl, "1700000300.M1P1Q1.host");
	assert_string_equal(md.messages[3].uidl, "1700000400.M1P1Q1.host");
	/* The size is the file's, never the (here wrong) S= hint. */
	assert_int_equal(md.messages[0].size, strlen("first, legacy\r\n"));
	assert_int_equal(md.messages[1].size, strlen("second\r\n"));
	assert_int_equal(md.messages[2].size, strlen("third\r\n"));
	assert_int_equal(md.messages[3].size, strlen("fourth!\r\n"));
	assert_string_equal(read_whole_file(md.messages[2].path), "third\r\n");
	maildrop_close(&md);
	free(new_dir);
	free(cur_dir);
}

static void test_open_orders_same_mtime_by_numbers_in_maildir_name(void **state)
{
	struct fixture *f = *state;
	char *new_dir = make_maildir(f->path, "new");
	struct maildrop md;

	/* Bytewise "M10" < "M9"; by value the 9 microseconds came first. */
	write_file(new_dir, "1700000000.M10P7Q1.host", "b", 1700000000);
	write_file(new_dir, "1700000000.M9P7Q2.host", "a", 1700000000);
	write_file(new_dir, "1700000000.M10P7Q10.host", "d", 1700000000);
	write_file(new_dir, "1700000000.M10P7Q9.host", "c", 1700000000);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 4);
	assert_string_equal(md.messages[0].uidl, "1700000000.M9P7Q2.host");
	assert_string_equal(md.messages[1].uidl, "1700000000.M10P7Q1.host");
	assert_string_equal(md.messages[2].uidl, "1700000000.M10P7Q9.host");
	assert_string_equal(md.messages[3].uidl, "1700000000.M10P7Q10.host");
	maildrop_close(&md);
	free(new_dir);
}

static void test_open_skips_dotfiles_lock_file_directories_and_non_msg_root_files(void **state)
{
	struct fixture *f = *state;
	char *new_dir = make_maildir(f->path, "new");
	char *cur_dir = make_maildir(f->path, "cur");
	char *tmp_dir = make_maildir(f->path, "tmp");
	char *subdir = join(new_dir, "subdir");
	char *link_path = join(cur_dir, "1700000000.M1P1Q1.symlink");
	struct maildrop md;

	write_file(new_dir, ".hidden", "x", 1700000000);
	write_file(cur_dir, ".hidden", "x", 1700000000);
	write_file(f->path, ".hidden.msg", "x", 1700000000);
	write_file(f->path, "dovecot-uidlist", "x", 1700000000);
	write_file(f->path, "notes.txt", "x", 1700000000);
	write_file(tmp_dir, "1700000000.M1P1Q1.inflight", "x", 1700000000);
	assert_int_equal(mkdir(subdir, 0700), 0);
	assert_int_equal(symlink("/etc/passwd", link_path), 0);
	write_file(new_dir, "1700000001.M1P1Q1.real", "real", 1700000001);

	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 1);
	assert_string_equal(md.messages[0].uidl, "1700000001.M1P1Q1.real");
	maildrop_close(&md);
	/* The lock file exists and is still not a message. */
	char *lock = join(f->path, ".mailpopbox.lock");
	assert_int_equal(access(lock, F_OK), 0);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 1);
	maildrop_close(&md);
	free(lock);
	free(new_dir);
	free(cur_dir);
	free(tmp_dir);
	free(subdir);
	free(link_path);
}

static void test_open_creates_missing_maildir_and_lists_nothing(void **state)
{
	struct fixture *f = *state;
	struct maildrop md;

	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 0);
	assert_int_equal(count_entries(f->path, "new"), 0);
	assert_int_equal(count_entries(f->path, "cur"), 0);
	assert_int_equal(count_entries(f->path, "tmp"), 0);
	maildrop_close(&md);
}

static void test_delivered_message_is_listed_with_its_size(void **state)
{
	struct fixture *f = *state;
	struct maildrop md;

	deliver(f->path, "Subject: x\r\n\r\nhello\r\n");
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 1);
	assert_int_equal(md.messages[0].size, strlen("Subject: x\r\n\r\nhello\r\n"));
	assert_null(strstr(md.messages[0].uidl, ",S="));
	maildrop_close(&md);
}

/* RFC 1939 5 (LIST) and 11: the size is the octets RETR sends before byte-stuffing. The
 * original server's LF line ends go out as CRLF: one octet more per line. */
static void test_open_sizes_legacy_lf_file_as_sent_with_crlf(void **state)
{
	struct fixture *f = *state;
	static const char body[] = "From: a@example.com\nSubject: lf\n\nline one\n.\nline three\n";
	struct maildrop md;

	mkdir(f->path, 0700);
	write_file(f->path, "lf.msg", body, 1700000000);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 1);
	assert_int_equal(md.messages[0].size, strlen(body) + 6);
	maildrop_close(&md);
}

static void test_open_sizes_legacy_file_without_final_line_end_with_its_crlf(void **state)
{
	struct fixture *f = *state;
	struct maildrop md;

	mkdir(f->path, 0700);
	write_file(f->path, "a.msg", "Subject: x\r\n\r\nlast line", 1700000000);
	write_file(f->path, "b.msg", "Subject: y\n\nends in CR\r", 1700000001);
	write_file(f->path, "c.msg", "", 1700000002);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 3);
	assert_int_equal(md.messages[0].size, strlen("Subject: x\r\n\r\nlast line\r\n"));
	/* A trailing CR only needs its LF; a bare CR inside a line is content. */
	assert_int_equal(md.messages[1].size, strlen("Subject: y\r\n\r\nends in CR\r\n"));
	assert_int_equal(md.messages[2].size, 0);
	maildrop_close(&md);
}

/* The count carries a CR across read() chunks: a CRLF split between them is one line end. */
static void test_open_sizes_large_legacy_file_across_read_chunks(void **state)
{
	struct fixture *f = *state;
	size_t len = 100000;
	char *body = malloc(len + 1);
	size_t lines = 0;
	struct maildrop md;

	assert_non_null(body);
	memset(body, 'x', len);
	body[len] = '\0';
	/* CRLF straddling every 16 KiB boundary, and bare LFs in between. */
	for (size_t at = 16384; at < len; at += 16384) {
		body[at - 1] = '\r';
		body[at] = '\n';
	}
	for (size_t at = 1000; at < len; at += 3000)
		if (body[at] == 'x' && body[at - 1] == 'x') {
			body[at] = '\n';
			lines++;
		}
	mkdir(f->path, 0700);
	write_file(f->path, "big.msg", body, 1700000000);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 1);
	/* Each bare LF gains a CR; the last line ("x...x") gains a CRLF. */
	assert_int_equal(md.messages[0].size, len + lines + 2);
	maildrop_close(&md);
	free(body);
}

/* Maildir files are stored with CRLF (ours, and as received): the listing only stats them. */
static void test_open_sizes_maildir_file_by_its_length(void **state)
{
	struct fixture *f = *state;
	char *new_dir = make_maildir(f->path, "new");
	struct maildrop md;

	write_file(new_dir, "1700000000.M1P1Q1.host", "A: b\r\n\r\nbody", 1700000000);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 1);
	assert_int_equal(md.messages[0].size, strlen("A: b\r\n\r\nbody"));
	maildrop_close(&md);
	free(new_dir);
}

/* ---- opening a message for RETR/TOP ---- */

static char *read_fd(int fd)
{
	static char buf[4096];
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static void test_message_open_reads_listed_file(void **state)
{
	struct fixture *f = *state;
	struct maildrop md;

	deliver(f->path, "one\r\n");
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_string_equal(read_fd(maildrop_message_open(&md, &md.messages[0])), "one\r\n");
	maildrop_close(&md);
}

static void test_message_open_finds_message_moved_to_cur(void **state)
{
	struct fixture *f = *state;
	struct maildrop md;
	char *moved, *reflagged;

	deliver(f->path, "moved\r\n");
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	/* Another Maildir reader marks it seen, then replied, while our session is open. */
	assert_true(asprintf(&moved, "%s/cur/%s:2,S", f->path, strrchr(md.messages[0].path, '/') + 1)
		>= 0);
	assert_int_equal(rename(md.messages[0].path, moved), 0);
	assert_string_equal(read_fd(maildrop_message_open(&md, &md.messages[0])), "moved\r\n");
	assert_true(asprintf(&reflagged, "%s/cur/%s:2,RS", f->path,
		strrchr(md.messages[0].path, '/') + 1) >= 0);
	assert_int_equal(rename(moved, reflagged), 0);
	assert_string_equal(read_fd(maildrop_message_open(&md, &md.messages[0])), "moved\r\n");
	maildrop_close(&md);
	free(moved);
	free(reflagged);
}

static void test_message_open_of_removed_message_fails_with_enoent(void **state)
{
	struct fixture *f = *state;
	struct maildrop md;

	deliver(f->path, "x\r\n");
	deliver(f->path, "y\r\n");
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(unlink(md.messages[0].path), 0);
	errno = 0;
	assert_int_equal(maildrop_message_open(&md, &md.messages[0]), -1);
	assert_int_equal(errno, ENOENT);
	maildrop_close(&md);
}

/* A legacy "X.msg" never moves; a Maildir "X" is another message that only shares the id. */
static void test_message_open_of_removed_legacy_file_does_not_serve_maildir_namesake(
	void **state)
{
	struct fixture *f = *state;
	char *new_dir = make_maildir(f->path, "new");
	struct maildrop md;

	write_file(f->path, "same-id.msg", "legacy\n", 1700000000);
	write_file(new_dir, "same-id", "maildir\r\n", 1700000001);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 1);
	assert_int_equal(unlink(md.messages[0].path), 0);
	errno = 0;
	assert_int_equal(maildrop_message_open(&md, &md.messages[0]), -1);
	assert_int_equal(errno, ENOENT);
	maildrop_close(&md);
	free(new_dir);
}

/* ---- unique-ids (RFC 1939 7) ---- */

static void test_uidl_of_legacy_file_is_name_without_msg(void **state)
{
	struct fixture *f = *state;
	struct maildrop md;

	mkdir(f->path, 0700);
	write_file(f->path, "5f8c1f2e-9a4b-4d3c-8e2f-0123456789ab.msg", "x", 1700000000);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 1);
	assert_string_equal(md.messages[0].uidl, "5f8c1f2e-9a4b-4d3c-8e2f-0123456789ab");
	maildrop_close(&md);
}

static void test_uidl_strips_size_and_virtual_size_suffixes_and_flags(void **state)
{
	struct fixture *f = *state;
	char *cur_dir = make_maildir(f->path, "cur");
	struct maildrop md;

	write_file(cur_dir, "1700000000.M1P2Q3.host,S=10,W=12:2,RS", "x", 1700000000);
	/* A comma in the unique part that is not a size field stays. */
	write_file(cur_dir, "1700000001.M1P2Q3.host,X=1:2,", "x", 1700000001);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 2);
	assert_string_equal(md.messages[0].uidl, "1700000000.M1P2Q3.host");
	assert_string_equal(md.messages[1].uidl, "1700000001.M1P2Q3.host,X=1");
	maildrop_close(&md);
	free(cur_dir);
}

static void test_uidl_stable_when_message_moves_from_new_to_cur(void **state)
{
	struct fixture *f = *state;
	struct maildrop md;
	char uidl[POP3_UIDL_MAX + 1];
	char *moved;

	deliver(f->path, "x\r\n");
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 1);
	snprintf(uidl, sizeof(uidl), "%s", md.messages[0].uidl);
	/* What a Maildir reader does once it has seen the message (Maildir spec: cur/, ":2,S"). */
	assert_true(asprintf(&moved, "%s/cur/%s:2,S", f->path, strrchr(md.messages[0].path, '/') + 1)
		>= 0);
	assert_int_equal(rename(md.messages[0].path, moved), 0);
	maildrop_close(&md);

	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 1);
	assert_string_equal(md.messages[0].path, moved);
	assert_string_equal(md.messages[0].uidl, uidl);
	maildrop_close(&md);
	free(moved);
}

static void expect_sha256_hex(const char *uidl, const char *base)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	char hex[2 * SHA256_DIGEST_LENGTH + 1];

	SHA256((const unsigned char *)base, strlen(base), digest);
	for (size_t i = 0; i < sizeof(digest); i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	assert_int_equal(strlen(uidl), 64);
	assert_string_equal(uidl, hex);
}

static void test_uidl_of_long_name_is_sha256_hex(void **state)
{
	struct fixture *f = *state;
	char *new_dir = make_maildir(f->path, "new");
	char base[101], name[160];
	struct maildrop md;

	memset(base, 'a', 100);
	base[100] = '\0';
	snprintf(name, sizeof(name), "%s,S=1", base);
	write_file(new_dir, name, "x", 1700000000);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 1);
	expect_sha256_hex(md.messages[0].uidl, base);
	maildrop_close(&md);
	free(new_dir);
}

static void test_uidl_of_name_with_non_ascii_is_sha256_hex(void **state)
{
	struct fixture *f = *state;
	struct maildrop md;

	mkdir(f->path, 0700);
	write_file(f->path, "caf\xc3\xa9 au lait.msg", "x", 1700000000);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 1);
	expect_sha256_hex(md.messages[0].uidl, "caf\xc3\xa9 au lait");
	maildrop_close(&md);
}

static void test_uidl_of_seventy_char_name_is_kept(void **state)
{
	struct fixture *f = *state;
	char name[80];
	struct maildrop md;

	mkdir(f->path, 0700);
	memset(name, 'b', 70);
	memcpy(name + 70, ".msg", 5);
	write_file(f->path, name, "x", 1700000000);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(strlen(md.messages[0].uidl), 70);
	assert_memory_equal(md.messages[0].uidl, name, 70);
	maildrop_close(&md);
}

static void test_duplicate_uidl_is_listed_once(void **state)
{
	struct fixture *f = *state;
	char *new_dir = make_maildir(f->path, "new");
	char *cur_dir = make_maildir(f->path, "cur");
	struct maildrop md;

	/* Seen mid-rename by another Maildir reader: one message, two names. */
	write_file(new_dir, "1700000000.M1P1Q1.host,S=1", "x", 1700000000);
	write_file(cur_dir, "1700000000.M1P1Q1.host,S=1:2,S", "x", 1700000000);
	write_file(new_dir, "1700000001.M1P1Q1.host", "y", 1700000001);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 2);
	assert_string_equal(md.messages[0].uidl, "1700000000.M1P1Q1.host");
	assert_string_equal(md.messages[1].uidl, "1700000001.M1P1Q1.host");
	maildrop_close(&md);
	free(new_dir);
	free(cur_dir);
}

/* ---- locking ---- */

static void test_second_open_while_locked_is_refused(void **state)
{
	struct fixture *f = *state;
	struct maildrop first, second;

	assert_int_equal(maildrop_open(&first, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(maildrop_open(&second, f->path), MAILDROP_OPEN_LOCKED);
	maildrop_close(&first);
}

static void test_open_after_close_succeeds(void **state)
{
	struct fixture *f = *state;
	struct maildrop md;

	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	maildrop_close(&md);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	maildrop_close(&md);
}

static void test_delivery_works_while_maildrop_is_locked(void **state)
{
	struct fixture *f = *state;
	struct maildrop md;

	/* SMTP keeps accepting mail while a POP3 session is open; the session does not see it. */
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	deliver(f->path, "late\r\n");
	assert_int_equal(md.count, 0);
	maildrop_close(&md);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 1);
	maildrop_close(&md);
}

/* ---- deletion ---- */

static void test_commit_deletions_removes_only_marked_messages(void **state)
{
	struct fixture *f = *state;
	char *new_dir = make_maildir(f->path, "new");
	char *cur_dir = make_maildir(f->path, "cur");
	struct maildrop md;

	write_file(f->path, "legacy-keep.msg", "1", 1700000000);
	write_file(f->path, "legacy-drop.msg", "2", 1700000001);
	write_file(new_dir, "1700000002.M1P1Q1.keep", "3", 1700000002);
	write_file(new_dir, "1700000003.M1P1Q1.drop", "4", 1700000003);
	write_file(cur_dir, "1700000004.M1P1Q1.keep:2,S", "5", 1700000004);
	write_file(cur_dir, "1700000005.M1P1Q1.drop:2,S", "6", 1700000005);

	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 6);
	size_t drop[6], drop_count = 0;
	for (size_t i = 0; i < md.count; i++)
		if (strstr(md.messages[i].uidl, "drop") != NULL)
			drop[drop_count++] = i;
	assert_int_equal(drop_count, 3);
	assert_int_equal(maildrop_commit_deletions(&md, drop, drop_count), 0);
	maildrop_close(&md);

	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 3);
	assert_string_equal(md.messages[0].uidl, "legacy-keep");
	assert_string_equal(md.messages[1].uidl, "1700000002.M1P1Q1.keep");
	assert_string_equal(md.messages[2].uidl, "1700000004.M1P1Q1.keep");
	maildrop_close(&md);
	free(new_dir);
	free(cur_dir);
}

static void test_commit_deletions_of_already_removed_file_succeeds(void **state)
{
	struct fixture *f = *state;
	struct maildrop md;

	mkdir(f->path, 0700);
	write_file(f->path, "gone.msg", "x", 1700000000);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 1);
	assert_int_equal(unlink(md.messages[0].path), 0);
	assert_int_equal(maildrop_commit_deletions(&md, (const size_t[]){0}, 1), 0);
	maildrop_close(&md);
}

static void test_commit_deletions_follows_message_moved_to_cur(void **state)
{
	struct fixture *f = *state;
	struct maildrop md;
	char *moved;

	deliver(f->path, "x\r\n");
	deliver(f->path, "y\r\n");
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 2);
	/* Another Maildir reader marks the message seen while our session is open. */
	assert_true(asprintf(&moved, "%s/cur/%s:2,S", f->path, strrchr(md.messages[0].path, '/') + 1)
		>= 0);
	assert_int_equal(rename(md.messages[0].path, moved), 0);
	assert_int_equal(maildrop_commit_deletions(&md, (const size_t[]){0}, 1), 0);
	maildrop_close(&md);
	assert_int_equal(access(moved, F_OK), -1);
	assert_int_equal(count_entries(f->path, "cur"), 0);
	assert_int_equal(count_entries(f->path, "new"), 1);
	free(moved);
}

static void test_close_without_commit_deletes_nothing(void **state)
{
	struct fixture *f = *state;
	struct maildrop md;

	deliver(f->path, "x\r\n");
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	maildrop_close(&md);
	assert_int_equal(count_entries(f->path, "new"), 1);
}

/* ---- scale ---- */

static void test_open_10000_messages(void **state)
{
	struct fixture *f = *state;
	char *new_dir = make_maildir(f->path, "new");
	struct timespec start, end;
	struct maildrop md;
	char name[128];
	double ms;

	for (int i = 0; i < 10000; i++) {
		int fd;

		snprintf(name, sizeof(name), "%s/%d.M%dP4242Q%d.host.example,S=16", new_dir,
			1700000000 + i / 7, i % 1000000, i);
		fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "Subject: m\r\n\r\n.\r\n", 16), 16);
		close(fd);
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	clock_gettime(CLOCK_MONOTONIC, &end);
	ms = (double)(end.tv_sec - start.tv_sec) * 1e3 + (double)(end.tv_nsec - start.tv_nsec) / 1e6;
	print_message("maildrop_open of 10000 messages: %.2f ms\n", ms);
	assert_int_equal(md.count, 10000);
	for (size_t i = 0; i < md.count; i++)
		assert_int_equal(md.messages[i].size, 16);
	maildrop_close(&md);
	free(new_dir);
}

static void test_delivery_stores_large_message_written_in_odd_pieces_exactly(void **state)
{
	struct fixture *f = *state;
	struct maildrop_delivery d;
	size_t total = 200 * 1024 + 7;
	char *message = malloc(total);

	assert_non_null(message);
	for (size_t i = 0; i < total; i++)
		message[i] = (char)('a' + i * 7 % 26);
	assert_int_equal(maildrop_delivery_begin(&d, f->path), 0);
	/* Pieces below, at and above the write buffer, so every path of the buffering runs. */
	size_t pieces[] = {1, 999, 32 * 1024, 5, 40 * 1024, 32 * 1024 - 1, 17};
	size_t off = 0;
	for (size_t k = 0; off < total; k = (k + 1) % (sizeof(pieces) / sizeof(pieces[0]))) {
		size_t n = pieces[k] < total - off ? pieces[k] : total - off;
		assert_int_equal(maildrop_delivery_write(&d, message + off, n), 0);
		off += n;
	}
	assert_true(d.written == total);
	assert_int_equal(maildrop_delivery_commit(&d), 0);
	maildrop_delivery_release(&d);
	char names[4][512];
	char *new_dir = join(f->path, "new");
	assert_int_equal(list_names(new_dir, names, 4), 1);
	char *path = join(new_dir, names[0]);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	char *back = malloc(total + 1);
	assert_non_null(back);
	ssize_t got = 0, n;
	while ((n = read(fd, back + got, total + 1 - (size_t)got)) > 0)
		got += n;
	close(fd);
	assert_int_equal(got, (ssize_t)total);
	assert_memory_equal(back, message, total);
	free(back);
	free(path);
	free(new_dir);
	free(message);
}

static void test_delivery_remakes_a_missing_tmp_dir(void **state)
{
	struct fixture *f = *state;
	char *tmp = join(f->path, "tmp");

	deliver(f->path, "first\r\n");
	assert_int_equal(rmdir(tmp), 0);
	deliver(f->path, "second\r\n");
	assert_int_equal(count_entries(f->path, "new"), 2);
	assert_int_equal(count_entries(f->path, "tmp"), 0);
	free(tmp);
}

static void test_delivery_remakes_new_dir_removed_while_writing(void **state)
{
	struct fixture *f = *state;
	struct maildrop_delivery d;
	char *new_dir = join(f->path, "new");

	deliver(f->path, "first\r\n");
	assert_int_equal(maildrop_delivery_begin(&d, f->path), 0);
	assert_int_equal(maildrop_delivery_write(&d, "x\r\n", 3), 0);
	/* Someone empties and removes new/ meanwhile: the rename finds it gone. */
	char names[4][512];
	assert_int_equal(list_names(new_dir, names, 4), 1);
	char *only = join(new_dir, names[0]);
	assert_int_equal(unlink(only), 0);
	assert_int_equal(rmdir(new_dir), 0);
	assert_int_equal(maildrop_delivery_commit(&d), 0);
	maildrop_delivery_release(&d);
	assert_int_equal(count_entries(f->path, "new"), 1);
	free(only);
	free(new_dir);
}

static void test_clean_tmp_removes_only_files_untouched_for_36_hours(void **state)
{
	struct fixture *f = *state;
	time_t now = time(NULL);
	char *tmp = make_maildir(f->path, "tmp");
	char *new_dir = make_maildir(f->path, "new");
	char *sub = join(tmp, "a-directory");

	write_file(tmp, "1700000000.M1P1Q1.host", "dead delivery", now - 40 * 3600);
	write_file(tmp, "1700000001.M1P1Q2.host", "another", now);
	write_file(new_dir, "1700000000.M2P1Q1.host", "delivered", now - 40 * 3600);
	assert_int_equal(mkdir(sub, 0700), 0);
	/* Every file was changed (ctime) just now: 35 h 59 min from now none is stale yet. */
	maildrop_clean_tmp(f->path, now + 36 * 3600 - 60);
	assert_int_equal(count_entries(f->path, "tmp"), 3);
	/* Past 36 h all three times are old: the files go, the directory and new/ stay. */
	maildrop_clean_tmp(f->path, now + 36 * 3600 + 60);
	assert_int_equal(count_entries(f->path, "tmp"), 1);
	assert_int_equal(count_entries(f->path, "new"), 1);
	free(sub);
	free(tmp);
	free(new_dir);
}

static void test_open_keeps_a_delivery_being_written(void **state)
{
	struct fixture *f = *state;
	struct maildrop_delivery d;
	struct maildrop md;

	assert_int_equal(maildrop_delivery_begin(&d, f->path), 0);
	assert_int_equal(maildrop_delivery_write(&d, "in progress\r\n", 13), 0);
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 0);
	maildrop_close(&md);
	assert_int_equal(count_entries(f->path, "tmp"), 1);
	assert_int_equal(maildrop_delivery_commit(&d), 0);
	maildrop_delivery_release(&d);
	assert_int_equal(count_entries(f->path, "new"), 1);
}

/* ---- one message for several maildrops: all or none ---- */

/* Begins a delivery of content to each of the count maildrops. */
static void begin_all(struct maildrop_delivery *ds, char *const *paths, size_t count,
	const char *content)
{
	for (size_t i = 0; i < count; i++) {
		assert_int_equal(maildrop_delivery_begin(&ds[i], paths[i]), 0);
		assert_int_equal(maildrop_delivery_write(&ds[i], content, strlen(content)), 0);
	}
}

static void test_deliveries_commit_stores_one_copy_in_each_maildrop(void **state)
{
	struct fixture *f = *state;
	char *paths[2] = {f->path, join(f->root, "example.net")};
	struct maildrop_delivery ds[2];

	begin_all(ds, paths, 2, "both\r\n");
	assert_int_equal(maildrop_deliveries_commit(ds, 2), 0);
	for (size_t i = 0; i < 2; i++) {
		maildrop_delivery_release(&ds[i]);
		assert_int_equal(count_entries(paths[i], "new"), 1);
		assert_int_equal(count_entries(paths[i], "tmp"), 0);
	}
	free(paths[1]);
}

static void test_deliveries_commit_takes_back_the_first_copy_when_the_second_fails(
	void **state)
{
	struct fixture *f = *state;
	char *paths[2] = {f->path, join(f->root, "example.net")};
	struct maildrop_delivery ds[2];
	char *second_new = join(paths[1], "new");

	begin_all(ds, paths, 2, "all or nothing\r\n");
	/* The second maildrop's new/ is not a directory: its rename fails after the first
	 * copy is already in new/. */
	assert_int_equal(rmdir(second_new), 0);
	write_file(paths[1], "new", "in the way", time(NULL));
	assert_int_equal(maildrop_deliveries_commit(ds, 2), -1);
	assert_int_equal(errno, ENOTDIR);
	for (size_t i = 0; i < 2; i++)
		maildrop_delivery_release(&ds[i]);
	assert_int_equal(count_entries(paths[0], "new"), 0);
	assert_int_equal(count_entries(paths[0], "tmp"), 0);
	assert_int_equal(count_entries(paths[1], "tmp"), 0);
	free(second_new);
	free(paths[1]);
}

static void test_deliveries_commit_failing_to_prepare_publishes_nothing(void **state)
{
	struct fixture *f = *state;
	char *paths[2] = {f->path, join(f->root, "example.net")};
	struct maildrop_delivery ds[2];

	begin_all(ds, paths, 2, "never seen\r\n");
	ds[1].error = ENOSPC; /* as maildrop_delivery_write records a full disk */
	assert_int_equal(maildrop_deliveries_commit(ds, 2), -1);
	assert_int_equal(errno, ENOSPC);
	for (size_t i = 0; i < 2; i++) {
		maildrop_delivery_release(&ds[i]);
		assert_int_equal(count_entries(paths[i], "new"), 0);
		assert_int_equal(count_entries(paths[i], "tmp"), 0);
	}
	free(paths[1]);
}

static void test_unpublish_takes_a_published_message_back(void **state)
{
	struct fixture *f = *state;
	struct maildrop_delivery d;

	assert_int_equal(maildrop_delivery_begin(&d, f->path), 0);
	assert_int_equal(maildrop_delivery_write(&d, "x\r\n", 3), 0);
	assert_int_equal(maildrop_delivery_prepare(&d), 0);
	assert_int_equal(count_entries(f->path, "new"), 0);
	assert_int_equal(maildrop_delivery_publish(&d), 0);
	assert_int_equal(count_entries(f->path, "new"), 1);
	assert_int_equal(maildrop_delivery_unpublish(&d), 0);
	maildrop_delivery_release(&d);
	assert_int_equal(count_entries(f->path, "new"), 0);
	assert_int_equal(count_entries(f->path, "tmp"), 0);
}

/* ---- tmp/ at start ---- */

/* This host's part of a unique name, as maildir_unique_name writes it. */
static void escaped_host(char *out, size_t size)
{
	char host[256];
	size_t o = 0;

	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	for (const char *h = host; *h && o + 5 < size; h++) {
		if (*h == '/' || *h == ':') {
			o += (size_t)snprintf(out + o, size - o, *h == '/' ? "\\057" : "\\072");
			continue;
		}
		out[o++] = *h;
	}
	out[o] = '\0';
}

static void test_recover_tmp_removes_our_dead_deliveries_and_keeps_the_rest(void **state)
{
	struct fixture *f = *state;
	char *tmp = make_maildir(f->path, "tmp");
	char host[1100], name[1200], names[8][512];
	time_t now = time(NULL);
	pid_t child = fork();

	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	assert_int_equal(waitpid(child, NULL, 0), child); /* reaped: its pid is dead */
	escaped_host(host, sizeof(host));
	snprintf(name, sizeof(name), "%lld.M1P%ldQ1.%s", (long long)now, (long)child, host);
	write_file(tmp, name, "killed delivery", now);
	/* Our own pid: at start no delivery of this process can be under way. */
	snprintf(name, sizeof(name), "%lld.M2P%ldQ7.%s", (long long)now, (long)getpid(), host);
	write_file(tmp, name, "same pid, earlier boot", now);
	/* pid 1 runs: a writer that may still be at work keeps its file. */
	snprintf(name, sizeof(name), "%lld.M3P1Q1.%s", (long long)now, host);
	write_file(tmp, name, "live writer", now);
	snprintf(name, sizeof(name), "%lld.M4P%ldQ1.another-host", (long long)now, (long)child);
	write_file(tmp, name, "another host", now);
	write_file(tmp, "1700000000.12345_1.courier.example", "another program", now);
	write_file(tmp, "notes", "not a Maildir name", now);
	assert_int_equal(maildrop_recover_tmp(f->path), 2);
	assert_int_equal(list_names(tmp, names, 8), 4);
	snprintf(name, sizeof(name), "%lld.M3P1Q1.%s", (long long)now, host);
	assert_string_equal(names[0], "1700000000.12345_1.courier.example");
	assert_string_equal(names[1], name);
	assert_string_equal(names[3], "notes");
	assert_int_equal(maildrop_recover_tmp(f->path), 0);
	free(tmp);
}

static void test_recover_tmp_of_a_missing_maildrop_removes_nothing(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(maildrop_recover_tmp(f->path), 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

/* ---- the head rewrite and the Junk folder (sender checks) ---- */

/* The one file in dir, its name in name (512 octets), its content. */
static char *only_file(const char *dir, char *name)
{
	char names[4][512];
	char *path;

	assert_int_equal(list_names(dir, names, 4), 1);
	snprintf(name, 512, "%s", names[0]);
	path = join(dir, names[0]);
	return path;
}

static void test_replace_head_in_buffer_keeps_size_in_name(void **state)
{
	struct fixture *f = *state;
	const char *message = "Received: x\r\nSubject: hi\r\n\r\nbody\r\n";
	const char *head = "Authentication-Results: mx; none\r\nReceived: x\r\nSubject: hi\r\n\r\n";
	struct maildrop_delivery d;
	char head_read[64], name[512], expected[600];

	assert_int_equal(maildrop_delivery_begin(&d, f->path), 0);
	assert_int_equal(maildrop_delivery_write(&d, message, strlen(message)), 0);
	assert_int_equal(maildrop_delivery_read_head(&d, head_read, 11), 11);
	assert_memory_equal(head_read, "Received: x", 11);
	assert_int_equal(maildrop_delivery_replace_head(&d, 28, head, strlen(head)), 0);
	assert_int_equal(d.written, strlen(head) + 6);
	assert_int_equal(maildrop_delivery_commit(&d), 0);
	char *dir = join(f->path, "new");
	char *path = only_file(dir, name);
	snprintf(expected, sizeof(expected), "%s,S=%zu", d.unique, strlen(head) + 6);
	assert_string_equal(name, expected);
	snprintf(expected, sizeof(expected), "%sbody\r\n", head);
	assert_string_equal(read_whole_file(path), expected);
	free(path);
	free(dir);
	maildrop_delivery_release(&d);
}

/* A message already partly in the file (over MAILDROP_WRITE_BUFFER): a new tmp file with the
 * new head and the old rest; the old one is gone, nothing else is left in tmp/. */
static void test_replace_head_in_file_copies_the_rest(void **state)
{
	struct fixture *f = *state;
	size_t body_len = 3 * MAILDROP_WRITE_BUFFER + 17;
	char *body = malloc(body_len);
	const char *head = "A: 1\r\nB: 2\r\n\r\n";
	struct maildrop_delivery d;
	char head_read[32], name[512];
	struct stat st;

	assert_non_null(body);
	for (size_t i = 0; i < body_len; i++)
		body[i] = (char)('a' + i % 26);
	assert_int_equal(maildrop_delivery_begin(&d, f->path), 0);
	assert_int_equal(maildrop_delivery_write(&d, "B: 2\r\n\r\n", 8), 0);
	for (size_t off = 0; off < body_len; off += 1000)
		assert_int_equal(maildrop_delivery_write(&d, body + off,
			body_len - off < 1000 ? body_len - off : 1000), 0);
	assert_int_equal(maildrop_delivery_flush(&d), 0);
	assert_int_equal(maildrop_delivery_read_head(&d, head_read, 8), 8);
	assert_memory_equal(head_read, "B: 2\r\n\r\n", 8);
	assert_int_equal(maildrop_delivery_replace_head(&d, 8, head, strlen(head)), 0);
	assert_int_equal(count_entries(f->path, "tmp"), 1);
	assert_int_equal(maildrop_delivery_commit(&d), 0);
	assert_int_equal(count_entries(f->path, "tmp"), 0);
	char *dir = join(f->path, "new");
	char *path = only_file(dir, name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal((size_t)st.st_size, strlen(head) + body_len);
	assert_int_equal(d.written, strlen(head) + body_len);
	int fd = open(path, O_RDONLY);
	char *got = malloc(st.st_size);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, got, st.st_size), st.st_size);
	close(fd);
	assert_memory_equal(got, head, strlen(head));
	assert_memory_equal(got + strlen(head), body, body_len);
	free(got);
	free(path);
	free(dir);
	free(body);
	maildrop_delivery_release(&d);
}

static void test_junk_folder_is_made_on_first_use(void **state)
{
	struct fixture *f = *state;
	struct maildrop_delivery d;
	char name[512];
	struct stat st;

	for (int round = 0; round < 2; round++) {
		assert_int_equal(maildrop_delivery_begin(&d, f->path), 0);
		d.folder = ".Junk";
		assert_int_equal(maildrop_delivery_write(&d, "S: x\r\n\r\n", 8), 0);
		assert_int_equal(maildrop_delivery_commit(&d), 0);
		maildrop_delivery_release(&d);
	}
	assert_int_equal(count_entries(f->path, "new"), 0);
	char *junk = join(f->path, ".Junk");
	assert_int_equal(count_entries(junk, "new"), 2);
	assert_int_equal(count_entries(junk, "tmp"), 0);
	assert_int_equal(count_entries(junk, "cur"), 0);
	char *marker = join(junk, "maildirfolder");
	assert_int_equal(stat(marker, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	free(marker);
	/* POP3 lists INBOX only. */
	struct maildrop md;
	assert_int_equal(maildrop_open(&md, f->path), MAILDROP_OPEN_OK);
	assert_int_equal(md.count, 0);
	maildrop_close(&md);
	(void)name;
	free(junk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_delivery_creates_maildir_and_stores_exact_bytes_in_new_with_size_suffix),
		T(test_delivery_commit_leaves_tmp_empty),
		T(test_replace_head_in_buffer_keeps_size_in_name),
		T(test_replace_head_in_file_copies_the_rest),
		T(test_junk_folder_is_made_on_first_use),
		T(test_delivery_stores_large_message_written_in_odd_pieces_exactly),
		T(test_delivery_remakes_a_missing_tmp_dir),
		T(test_delivery_remakes_new_dir_removed_while_writing),
		T(test_clean_tmp_removes_only_files_untouched_for_36_hours),
		T(test_open_keeps_a_delivery_being_written),
		T(test_deliveries_commit_stores_one_copy_in_each_maildrop),
		T(test_deliveries_commit_takes_back_the_first_copy_when_the_second_fails),
		T(test_deliveries_commit_failing_to_prepare_publishes_nothing),
		T(test_unpublish_takes_a_published_message_back),
		T(test_recover_tmp_removes_our_dead_deliveries_and_keeps_the_rest),
		T(test_recover_tmp_of_a_missing_maildrop_removes_nothing),
		T(test_delivery_abort_leaves_nothing),
		T(test_delivery_commit_after_write_error_fails_and_leaves_nothing),
		T(test_delivery_write_after_error_is_skipped),
		T(test_delivery_begin_fails_when_maildrop_parent_is_missing),
		T(test_two_deliveries_get_different_names),
		T(test_unique_name_has_maildir_form_without_slash_or_colon),
		T(test_concurrent_deliveries_get_unique_names),
		T(test_open_lists_maildir_and_legacy_files_in_arrival_order_with_exact_sizes),
		T(test_open_orders_same_mtime_by_numbers_in_maildir_name),
		T(test_open_skips_dotfiles_lock_file_directories_and_non_msg_root_files),
		T(test_open_creates_missing_maildir_and_lists_nothing),
		T(test_delivered_message_is_listed_with_its_size),
		T(test_open_sizes_legacy_lf_file_as_sent_with_crlf),
		T(test_open_sizes_legacy_file_without_final_line_end_with_its_crlf),
		T(test_open_sizes_large_legacy_file_across_read_chunks),
		T(test_open_sizes_maildir_file_by_its_length),
		T(test_message_open_reads_listed_file),
		T(test_message_open_finds_message_moved_to_cur),
		T(test_message_open_of_removed_message_fails_with_enoent),
		T(test_message_open_of_removed_legacy_file_does_not_serve_maildir_namesake),
		T(test_uidl_of_legacy_file_is_name_without_msg),
		T(test_uidl_strips_size_and_virtual_size_suffixes_and_flags),
		T(test_uidl_stable_when_message_moves_from_new_to_cur),
		T(test_uidl_of_long_name_is_sha256_hex),
		T(test_uidl_of_name_with_non_ascii_is_sha256_hex),
		T(test_uidl_of_seventy_char_name_is_kept),
		T(test_duplicate_uidl_is_listed_once),
		T(test_second_open_while_locked_is_refused),
		T(test_open_after_close_succeeds),
		T(test_delivery_works_while_maildrop_is_locked),
		T(test_commit_deletions_removes_only_marked_messages),
		T(test_commit_deletions_of_already_removed_file_succeeds),
		T(test_commit_deletions_follows_message_moved_to_cur),
		T(test_close_without_commit_deletes_nothing),
		T(test_open_10000_messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

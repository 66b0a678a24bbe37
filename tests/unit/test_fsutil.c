/* test_fsutil.c: the durable-file writer (src/fsutil.c): create, write, sync (also the one-step
 * write and sync of a whole content), publish and discard, and what each leaves on disk when a
 * step fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

struct fixture {
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_fsutil.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char *cmd = fs_path_printf("rm -rf '%s'", f->dir);

	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f);
	return 0;
}

static bool exists(const char *dir, const char *name)
{
	char *path = fs_path_printf("%s/%s", dir, name);
	struct stat st;
	bool r = lstat(path, &st) == 0;

	free(path);
	return r;
}

static char *read_all(const char *dir, const char *name)
{
	char *path = fs_path_printf("%s/%s", dir, name);
	char *buf = calloc(1, 256);
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_true(read(fd, buf, 255) >= 0);
	close(fd);
	free(path);
	return buf;
}

static void test_published_file_has_its_data_under_the_final_name_only(void **state)
{
	struct fixture *f = *state;
	char *tmp = fs_path_printf("%s/tmp", f->dir), *final = fs_path_printf("%s/final", f->dir);
	struct fs_durable_file d;
	struct stat st;
	bool renamed = false;

	assert_int_equal(fs_durable_create(&d, tmp), 0);
	assert_int_equal(fstat(d.fd, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(fs_write_all(d.fd, "hello", 5), 0);
	assert_int_equal(fs_durable_sync(&d, 0), 0);
	assert_int_equal(d.fd, -1);
	assert_false(exists(f->dir, "final"));
	assert_int_equal(fs_durable_publish(&d, final, &renamed), 0);
	assert_true(renamed);
	fs_durable_free(&d, "test");
	assert_false(exists(f->dir, "tmp"));
	char *got = read_all(f->dir, "final");
	assert_string_equal(got, "hello");
	free(got);
	free(tmp);
	free(final);
}

static void test_create_never_shares_or_follows_an_existing_name(void **state)
{
	struct fixture *f = *state;
	char *tmp = fs_path_printf("%s/tmp", f->dir), *link = fs_path_printf("%s/link", f->dir);
	struct fs_durable_file d, again;

	assert_int_equal(fs_durable_create(&d, tmp), 0);
	assert_int_equal(fs_durable_create(&again, tmp), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(again.fd, -1);
	assert_null(again.path);
	assert_int_equal(symlink(tmp, link), 0);
	assert_int_equal(fs_durable_create(&again, link), -1);
	fs_durable_free(&d, "test");
	free(tmp);
	free(link);
}

static void test_discard_removes_the_staging_file_at_every_stage(void **state)
{
	struct fixture *f = *state;
	char *tmp = fs_path_printf("%s/tmp", f->dir);
	struct fs_durable_file d;

	assert_int_equal(fs_durable_create(&d, tmp), 0);
	fs_durable_discard(&d, "test");
	assert_false(exists(f->dir, "tmp"));
	fs_durable_free(&d, "test");
	assert_int_equal(fs_durable_create(&d, tmp), 0);
	assert_int_equal(fs_durable_sync(&d, 0), 0);
	assert_true(exists(f->dir, "tmp"));
	fs_durable_free(&d, "test");
	assert_false(exists(f->dir, "tmp"));
	free(tmp);
}

static void test_a_write_error_fails_the_sync_and_removes_the_file(void **state)
{
	struct fixture *f = *state;
	char *tmp = fs_path_printf("%s/tmp", f->dir);
	struct fs_durable_file d;

	assert_int_equal(fs_durable_create(&d, tmp), 0);
	assert_int_equal(fs_durable_sync(&d, ENOSPC), -1);
	assert_int_equal(errno, ENOSPC);
	assert_false(exists(f->dir, "tmp"));
	assert_int_equal(fs_durable_sync(&d, 0), -1);
	assert_int_equal(errno, EBADF);
	fs_durable_free(&d, "test");
	free(tmp);
}

static void test_failed_rename_leaves_the_staging_file_for_a_retry(void **state)
{
	struct fixture *f = *state;
	char *tmp = fs_path_printf("%s/tmp", f->dir);
	char *missing = fs_path_printf("%s/nodir/final", f->dir);
	char *dir = fs_path_printf("%s/nodir", f->dir);
	struct fs_durable_file d;
	bool renamed = true;

	assert_int_equal(fs_durable_create(&d, tmp), 0);
	assert_int_equal(fs_durable_publish(&d, missing, &renamed), -1);
	assert_int_equal(errno, ENOENT);
	assert_false(renamed);
	assert_true(exists(f->dir, "tmp"));
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(fs_durable_publish(&d, missing, &renamed), 0);
	assert_true(renamed);
	fs_durable_free(&d, "test");
	assert_true(exists(f->dir, "nodir/final"));
	free(tmp);
	free(missing);
	free(dir);
}

static void test_publish_in_place_keeps_the_name(void **state)
{
	struct fixture *f = *state;
	char *key = fs_path_printf("%s/key", f->dir);
	struct fs_durable_file d;
	bool renamed = true;

	assert_int_equal(fs_durable_create(&d, key), 0);
	assert_int_equal(fs_write_all(d.fd, "k", 1), 0);
	assert_int_equal(fs_durable_publish(&d, NULL, &renamed), 0);
	assert_false(renamed);
	fs_durable_free(&d, "test");
	assert_true(exists(f->dir, "key"));
	free(key);
}

static void test_write_file_replaces_the_final_file_whole(void **state)
{
	struct fixture *f = *state;
	char *tmp = fs_path_printf("%s/tmp", f->dir), *final = fs_path_printf("%s/env", f->dir);
	bool renamed = false;
	char *got;

	assert_int_equal(fs_durable_write_file(tmp, final, "old", 3, &renamed), 0);
	assert_true(renamed);
	assert_int_equal(fs_durable_write_file(tmp, final, "new!", 4, NULL), 0);
	got = read_all(f->dir, "env");
	assert_string_equal(got, "new!");
	free(got);
	assert_false(exists(f->dir, "tmp"));
	/* A staging name already taken: nothing is written, nothing replaced. */
	assert_int_equal(fs_durable_write_file(final, final, "x", 1, &renamed), -1);
	assert_int_equal(errno, EEXIST);
	assert_false(renamed);
	free(tmp);
	free(final);
}

static void test_content_synced_in_one_step_is_published_whole(void **state)
{
	struct fixture *f = *state;
	char *tmp = fs_path_printf("%s/tmp", f->dir), *final = fs_path_printf("%s/msg", f->dir);
	struct fs_durable_file d;
	struct stat st;
	char *got;

	assert_int_equal(fs_durable_create(&d, tmp), 0);
	assert_int_equal(fs_durable_sync_content(&d, "whole message", 13, 0), 0);
	assert_int_equal(d.fd, -1);
	assert_true(d.synced);
	assert_false(exists(f->dir, "msg"));
	assert_int_equal(stat(tmp, &st), 0);
	assert_int_equal(st.st_size, 13);
	assert_int_equal(fs_durable_publish(&d, final, NULL), 0);
	fs_durable_free(&d, "test");
	got = read_all(f->dir, "msg");
	assert_string_equal(got, "whole message");
	free(got);
	assert_false(exists(f->dir, "tmp"));
	free(tmp);
	free(final);
}

static void test_content_sync_with_a_write_error_removes_the_file(void **state)
{
	struct fixture *f = *state;
	char *tmp = fs_path_printf("%s/tmp", f->dir);
	struct fs_durable_file d;

	assert_int_equal(fs_durable_create(&d, tmp), 0);
	assert_int_equal(fs_durable_sync_content(&d, "x", 1, EIO), -1);
	assert_int_equal(errno, EIO);
	assert_false(exists(f->dir, "tmp"));
	fs_durable_free(&d, "test");
	/* Empty content: nothing to write, the file is still synced and kept. */
	assert_int_equal(fs_durable_create(&d, tmp), 0);
	assert_int_equal(fs_durable_sync_content(&d, "", 0, 0), 0);
	assert_true(d.synced);
	assert_true(exists(f->dir, "tmp"));
	fs_durable_free(&d, "test");
	free(tmp);
}

static void test_content_sync_that_cannot_write_it_all_removes_the_file(void **state)
{
	struct fixture *f = *state;
	char *tmp = fs_path_printf("%s/tmp", f->dir);
	struct fs_durable_file d;
	struct rlimit saved, small;
	void (*old_handler)(int);
	int r, error;

	/* A file size limit of 4 octets: the first write takes 4, the next fails with EFBIG. */
	assert_int_equal(fs_durable_create(&d, tmp), 0);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	small = saved;
	small.rlim_cur = 4;
	old_handler = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	r = fs_durable_sync_content(&d, "0123456789", 10, 0);
	error = errno;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	signal(SIGXFSZ, old_handler);
	assert_int_equal(r, -1);
	assert_int_equal(error, EFBIG);
	assert_int_equal(d.fd, -1);
	assert_false(d.synced);
	assert_false(exists(f->dir, "tmp"));
	fs_durable_free(&d, "test");
	free(tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_published_file_has_its_data_under_the_final_name_only, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_create_never_shares_or_follows_an_existing_name, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_discard_removes_the_staging_file_at_every_stage, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_a_write_error_fails_the_sync_and_removes_the_file, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_failed_rename_leaves_the_staging_file_for_a_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publish_in_place_keeps_the_name, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_write_file_replaces_the_final_file_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_content_synced_in_one_step_is_published_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_content_sync_with_a_write_error_removes_the_file, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_content_sync_that_cannot_write_it_all_removes_the_file, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_push_journal.c: the maildrop as the push queue (push/journal.h), on a real file system
 * under /tmp: pending messages in arrival order, attempts and outcomes surviving a reopen
 * (a restart), in-doubt detection, a torn last line, compaction, and the Maildir change a
 * confirmed push makes (removed, or marked P with KeepCopy), under the POP3 lock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "push/journal.h"
#include "push/transport.h"
#include "remove_tree.h"

struct fixture {
	char root[64];
	char path[128]; /* MaildropPath, with new/ cur/ tmp/ */
};

static void make_dir(const char *a, const char *b)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", a, b);
	assert_int_equal(mkdir(p, 0700), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test_push_journal.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->path, sizeof(f->path), "%s/example.org", f->root);
	assert_int_equal(mkdir(f->path, 0700), 0);
	make_dir(f->path, "new");
	make_dir(f->path, "cur");
	make_dir(f->path, "tmp");
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

/* A message file at MaildropPath/sub/name with an mtime of `when` seconds. */
static void put_message(const struct fixture *f, const char *sub, const char *name, time_t when)
{
	char p[512];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%s/%s", f->path, sub, name);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fprintf(fp, "Message-ID: <%s@example.org>\r\nSubject: x\r\n\r\nbody\r\n", name);
	fclose(fp);
	struct timespec times[2] = {{when, 0}, {when, 0}};
	assert_int_equal(utimensat(AT_FDCWD, p, times, 0), 0);
}

static bool exists(const struct fixture *f, const char *sub, const char *name)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s/%s", f->path, sub, name);
	return access(p, F_OK) == 0;
}

static struct push_journal *open_journal(const struct fixture *f)
{
	char err[256];
	struct push_journal *j = push_journal_open(f->path, true, err, sizeof(err));

	if (!j)
		fail_msg("push_journal_open: %s", err);
	return j;
}

static void test_pending_listed_in_arrival_order(void **state)
{
	struct fixture *f = *state;
	struct push_listing l;

	put_message(f, "new", "1700000002.M10P1Q1.host", 1700000002);
	put_message(f, "new", "1700000001.M9P1Q2.host", 1700000001);
	put_message(f, "cur", "1700000001.M10P1Q1.host:2,S", 1700000001);
	put_message(f, "new", "1700000000.M1P1Q1.host", 1700000000);
	assert_int_equal(push_pending_list(f->path, NULL, 100, false, &l), 0);
	assert_int_equal(l.count, 4);
	assert_string_equal(l.items[0].key, "1700000000.M1P1Q1.host");
	/* Same second: microseconds compared by value (9 before 10). */
	assert_string_equal(l.items[1].key, "1700000001.M9P1Q2.host");
	assert_string_equal(l.items[2].key, "1700000001.M10P1Q1.host");
	assert_string_equal(l.items[3].key, "1700000002.M10P1Q1.host");
	for (size_t i = 0; i < l.count; i++)
		assert_int_equal(l.items[i].state, PUSH_JOURNAL_NONE);
	push_listing_free(&l);
}

static void test_passed_flag_and_dotfiles_and_legacy_are_not_pending(void **state)
{
	struct fixture *f = *state;
	struct push_listing l;

	put_message(f, "cur", "1.M1P1Q1.host:2,PS", 1);
	put_message(f, "new", ".hidden", 2);
	put_message(f, "new", "3.M1P1Q1.host", 3);
	put_message(f, ".", "abcd.msg", 4);
	assert_int_equal(push_pending_list(f->path, NULL, 100, false, &l), 0);
	assert_int_equal(l.count, 1);
	assert_string_equal(l.items[0].key, "3.M1P1Q1.host");
	assert_int_equal(l.legacy, 1);
	push_listing_free(&l);
}

static void test_listing_keeps_the_oldest_up_to_max(void **state)
{
	struct fixture *f = *state;
	struct push_listing l;
	char name[64];

	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "%d.M1P1Q1.host", 100 + i);
		put_message(f, "new", name, 100 + i);
	}
	assert_int_equal(push_pending_list(f->path, NULL, 3, false, &l), 0);
	assert_int_equal(l.count, 3);
	assert_int_equal(l.left_out, 2);
	assert_string_equal(l.items[0].key, "100.M1P1Q1.host");
	assert_string_equal(l.items[2].key, "102.M1P1Q1.host");
	push_listing_free(&l);
}

/* A huge maildrop (a long outage's backlog): the listing keeps only the oldest max, whatever
 * the directory order, counts the rest, and still marks every waiting message's journal
 * record live so that compaction keeps the records of those left for a later listing. */
static void test_huge_maildrop_listed_up_to_max_oldest_first(void **state)
{
	struct fixture *f = *state;
	struct push_listing l;
	struct push_journal *j = open_journal(f);
	char name[64];
	enum { TOTAL = 12000, MAX = 50 };

	/* Created newest first, half in cur/: the directory order says nothing. */
	for (int i = TOTAL - 1; i >= 0; i--) {
		snprintf(name, sizeof(name), i % 2 ? "%d.M1P1Q1.host:2,S" : "%d.M1P1Q1.host",
			1000000 + i);
		put_message(f, i % 2 ? "cur" : "new", name, 1000000 + i);
	}
	snprintf(name, sizeof(name), "%d.M1P1Q1.host", 1000000 + TOTAL - 2);
	assert_int_equal(push_journal_record(j, name, PUSH_JOURNAL_ATTEMPT), 0);
	assert_int_equal(push_journal_record(j, "gone.M1P1Q1.host", PUSH_JOURNAL_ATTEMPT), 0);
	assert_int_equal(push_pending_list(f->path, j, MAX, false, &l), 0);
	assert_int_equal(l.count, MAX);
	assert_int_equal(l.left_out, TOTAL - MAX);
	for (int i = 0; i < MAX; i++) {
		snprintf(name, sizeof(name), "%d.M1P1Q1.host", 1000000 + i);
		assert_string_equal(l.items[i].key, name);
	}
	push_listing_free(&l);
	assert_int_equal(push_journal_compact(j, true), 0);
	push_journal_close(j);
	j = open_journal(f);
	snprintf(name, sizeof(name), "%d.M1P1Q1.host", 1000000 + TOTAL - 2);
	assert_int_equal(push_journal_state(j, name), PUSH_JOURNAL_ATTEMPT);
	assert_int_equal(push_journal_state(j, "gone.M1P1Q1.host"), PUSH_JOURNAL_NONE);
	push_journal_close(j);
}

static void test_attempt_without_outcome_is_in_doubt_after_reopen(void **state)
{
	struct fixture *f = *state;
	struct push_journal *j = open_journal(f);
	struct push_listing l;

	put_message(f, "new", "1.M1P1Q1.host", 1);
	put_message(f, "new", "2.M1P1Q1.host", 2);
	put_message(f, "new", "3.M1P1Q1.host", 3);
	assert_int_equal(push_journal_record(j, "1.M1P1Q1.host", PUSH_JOURNAL_ATTEMPT), 0);
	assert_int_equal(push_journal_record(j, "2.M1P1Q1.host", PUSH_JOURNAL_ATTEMPT), 0);
	assert_int_equal(push_journal_record(j, "2.M1P1Q1.host", PUSH_JOURNAL_REFUSED), 0);
	assert_int_equal(push_journal_sync(j), 0);
	push_journal_close(j); /* as a kill -9 would: nothing more written */

	j = open_journal(f);
	assert_int_equal(push_journal_state(j, "1.M1P1Q1.host"), PUSH_JOURNAL_ATTEMPT);
	assert_int_equal(push_journal_state(j, "2.M1P1Q1.host"), PUSH_JOURNAL_REFUSED);
	assert_int_equal(push_journal_state(j, "3.M1P1Q1.host"), PUSH_JOURNAL_NONE);
	assert_int_equal(push_pending_list(f->path, j, 100, false, &l), 0);
	/* The refused one is not offered again, but counted. */
	assert_int_equal(l.count, 2);
	assert_int_equal(l.refused, 1);
	assert_string_equal(l.items[0].key, "1.M1P1Q1.host");
	assert_int_equal(l.items[0].state, PUSH_JOURNAL_ATTEMPT);
	assert_int_equal(l.items[1].state, PUSH_JOURNAL_NONE);
	push_listing_free(&l);
	assert_int_equal(push_pending_list(f->path, j, 100, true, &l), 0);
	assert_int_equal(l.count, 3);
	push_listing_free(&l);
	push_journal_close(j);
}

/* An attempt the destination answered with a failure (a tagged NO) is no longer in doubt: no
 * lookup by Message-ID next time, which could find another message's copy. */
static void test_answered_failure_is_not_in_doubt_after_reopen(void **state)
{
	struct fixture *f = *state;
	struct push_journal *j = open_journal(f);

	assert_int_equal(push_journal_record(j, "k1", PUSH_JOURNAL_ATTEMPT), 0);
	assert_int_equal(push_journal_record(j, "k2", PUSH_JOURNAL_ATTEMPT), 0);
	assert_int_equal(push_journal_record(j, "k1", PUSH_JOURNAL_NONE), 0);
	assert_int_equal(push_journal_sync(j), 0);
	assert_int_equal(push_journal_state(j, "k1"), PUSH_JOURNAL_NONE);
	push_journal_close(j);
	j = open_journal(f);
	assert_int_equal(push_journal_state(j, "k1"), PUSH_JOURNAL_NONE);
	assert_int_equal(push_journal_state(j, "k2"), PUSH_JOURNAL_ATTEMPT);
	/* Tried again later: in doubt again until answered. */
	assert_int_equal(push_journal_record(j, "k1", PUSH_JOURNAL_ATTEMPT), 0);
	push_journal_close(j);
	j = open_journal(f);
	assert_int_equal(push_journal_state(j, "k1"), PUSH_JOURNAL_ATTEMPT);
	push_journal_close(j);
}

/* A journal replaced by a rename (a restore, rsync) or removed is noticed: appending to the
 * old file would hide the attempts from a restart. */
static void test_replaced_or_removed_journal_is_noticed(void **state)
{
	struct fixture *f = *state;
	struct push_journal *j = open_journal(f);
	char path[256], other[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", f->path, PUSH_JOURNAL_NAME);
	snprintf(other, sizeof(other), "%s/restored", f->path);
	assert_false(push_journal_moved(j));
	/* Compaction replaces the file too, and follows it. */
	assert_int_equal(push_journal_record(j, "k1", PUSH_JOURNAL_ATTEMPT), 0);
	assert_int_equal(push_journal_compact(j, true), 0);
	assert_false(push_journal_moved(j));
	fp = fopen(other, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(rename(other, path), 0);
	assert_true(push_journal_moved(j));
	push_journal_close(j);
	j = open_journal(f);
	assert_false(push_journal_moved(j));
	assert_int_equal(unlink(path), 0);
	assert_true(push_journal_moved(j));
	push_journal_close(j);
}

/* A record written only in part (the disk filled up: here the file size limit) is cut back,
 * so the next record is not glued to the half line and lost with it. */
static void test_failed_append_leaves_no_half_record(void **state)
{
	struct fixture *f = *state;
	struct push_journal *j = open_journal(f);
	char path[256];
	struct stat st;
	struct rlimit old, small;

	snprintf(path, sizeof(path), "%s/%s", f->path, PUSH_JOURNAL_NAME);
	assert_int_equal(push_journal_record(j, "k1", PUSH_JOURNAL_ATTEMPT), 0);
	assert_int_equal(stat(path, &st), 0);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = (rlim_t)st.st_size + 4;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	int r = push_journal_record(j, "a-longer-key-that-does-not-fit", PUSH_JOURNAL_ATTEMPT);
	int saved = errno;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(r, -1);
	assert_int_equal(saved, EFBIG);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 5); /* "A k1\n" only */
	assert_int_equal(push_journal_record(j, "k2", PUSH_JOURNAL_ATTEMPT), 0);
	push_journal_close(j);
	j = open_journal(f);
	assert_int_equal(push_journal_state(j, "k1"), PUSH_JOURNAL_ATTEMPT);
	assert_int_equal(push_journal_state(j, "k2"), PUSH_JOURNAL_ATTEMPT);
	push_journal_close(j);
}

/* Two records glued by an append after a torn line parse as no key, not as a bogus one. */
static void test_glued_records_are_not_a_key(void **state)
{
	struct fixture *f = *state;
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", f->path, PUSH_JOURNAL_NAME);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("A k1\nA halA k2\nA k3\n", fp);
	fclose(fp);
	struct push_journal *j = open_journal(f);
	assert_int_equal(push_journal_keys(j), 2);
	assert_int_equal(push_journal_state(j, "k1"), PUSH_JOURNAL_ATTEMPT);
	assert_int_equal(push_journal_state(j, "k3"), PUSH_JOURNAL_ATTEMPT);
	push_journal_close(j);
}

static void test_torn_last_line_is_dropped(void **state)
{
	struct fixture *f = *state;
	struct push_journal *j = open_journal(f);
	char p[256];

	assert_int_equal(push_journal_record(j, "1.M1P1Q1.host", PUSH_JOURNAL_ATTEMPT), 0);
	push_journal_close(j);
	snprintf(p, sizeof(p), "%s/%s", f->path, PUSH_JOURNAL_NAME);
	int fd = open(p, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "C 1.M1P1", 8), 8); /* a crash mid-write */
	close(fd);

	j = open_journal(f);
	assert_int_equal(push_journal_state(j, "1.M1P1Q1.host"), PUSH_JOURNAL_ATTEMPT);
	assert_int_equal(push_journal_state(j, "1.M1P1"), PUSH_JOURNAL_NONE);
	/* Appending after the rewrite makes a whole line, not one glued to the torn one. */
	assert_int_equal(push_journal_record(j, "2.M1P1Q1.host", PUSH_JOURNAL_ATTEMPT), 0);
	push_journal_close(j);
	j = open_journal(f);
	assert_int_equal(push_journal_state(j, "2.M1P1Q1.host"), PUSH_JOURNAL_ATTEMPT);
	assert_int_equal(push_journal_lines(j), 2);
	push_journal_close(j);
}

static void test_garbage_lines_are_skipped(void **state)
{
	struct fixture *f = *state;
	char p[256];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%s", f->path, PUSH_JOURNAL_NAME);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fprintf(fp, "X nonsense\nA\n\nA ok.key\nA bad%%zz\n");
	for (int i = 0; i < PUSH_JOURNAL_LINE_MAX + 10; i++)
		fputc('a', fp);
	fprintf(fp, "\nR sp%%20ace\n");
	fclose(fp);
	struct push_journal *j = open_journal(f);
	assert_int_equal(push_journal_keys(j), 2);
	assert_int_equal(push_journal_state(j, "ok.key"), PUSH_JOURNAL_ATTEMPT);
	assert_int_equal(push_journal_state(j, "sp ace"), PUSH_JOURNAL_REFUSED);
	push_journal_close(j);
}

static void test_keys_with_odd_bytes_round_trip(void **state)
{
	struct fixture *f = *state;
	struct push_journal *j = open_journal(f);
	const char *key = "a b%c\td\xc3\xa9";

	assert_int_equal(push_journal_record(j, key, PUSH_JOURNAL_REFUSED), 0);
	push_journal_close(j);
	j = open_journal(f);
	assert_int_equal(push_journal_state(j, key), PUSH_JOURNAL_REFUSED);
	assert_int_equal(push_journal_lines(j), 1);
	push_journal_close(j);
}

static void test_compaction_keeps_only_live_records(void **state)
{
	struct fixture *f = *state;
	struct push_journal *j = open_journal(f);
	struct push_listing l;
	char key[64];

	put_message(f, "new", "live-attempt", 1);
	put_message(f, "new", "live-refused", 2);
	/* Many pushes whose files are gone (pushed and removed). */
	for (int i = 0; i < PUSH_JOURNAL_COMPACT_LINES; i++) {
		snprintf(key, sizeof(key), "gone-%d", i);
		assert_int_equal(push_journal_record(j, key, PUSH_JOURNAL_ATTEMPT), 0);
	}
	assert_int_equal(push_journal_record(j, "live-attempt", PUSH_JOURNAL_ATTEMPT), 0);
	assert_int_equal(push_journal_record(j, "live-refused", PUSH_JOURNAL_REFUSED), 0);
	assert_int_equal(push_pending_list(f->path, j, 100, false, &l), 0);
	push_listing_free(&l);
	assert_int_equal(push_journal_compact(j, false), 0);
	assert_int_equal(push_journal_lines(j), 2);
	assert_int_equal(push_journal_keys(j), 2);
	/* Still appendable, and the rewritten file is what a restart reads. */
	assert_int_equal(push_journal_record(j, "live-attempt", PUSH_JOURNAL_CONFIRMED), 0);
	push_journal_close(j);
	j = open_journal(f);
	assert_int_equal(push_journal_lines(j), 3);
	assert_int_equal(push_journal_state(j, "live-attempt"), PUSH_JOURNAL_CONFIRMED);
	assert_int_equal(push_journal_state(j, "live-refused"), PUSH_JOURNAL_REFUSED);
	assert_int_equal(push_journal_state(j, "gone-1"), PUSH_JOURNAL_NONE);
	push_journal_close(j);
}

static void test_small_journal_is_not_compacted(void **state)
{
	struct fixture *f = *state;
	struct push_journal *j = open_journal(f);
	struct push_listing l;

	assert_int_equal(push_journal_record(j, "gone", PUSH_JOURNAL_ATTEMPT), 0);
	assert_int_equal(push_pending_list(f->path, j, 100, false, &l), 0);
	push_listing_free(&l);
	assert_int_equal(push_journal_compact(j, false), 0);
	assert_int_equal(push_journal_lines(j), 1);
	assert_int_equal(push_journal_compact(j, true), 0);
	assert_int_equal(push_journal_lines(j), 0);
	push_journal_close(j);
}

static void test_confirmed_without_keep_copy_removes_the_file(void **state)
{
	struct fixture *f = *state;
	struct push_listing l;

	put_message(f, "new", "1.M1P1Q1.host", 1);
	assert_int_equal(push_pending_list(f->path, NULL, 100, false, &l), 0);
	int lock = push_maildrop_trylock(f->path);
	assert_true(lock >= 0);
	assert_int_equal(push_maildrop_finalise(f->path, &l.items[0], false), 0);
	assert_int_equal(push_maildrop_sync(f->path, true, false), 0);
	close(lock);
	assert_false(exists(f, "new", "1.M1P1Q1.host"));
	push_listing_free(&l);
	assert_int_equal(push_pending_list(f->path, NULL, 100, false, &l), 0);
	assert_int_equal(l.count, 0);
	push_listing_free(&l);
}

static void test_confirmed_with_keep_copy_adds_passed_flag(void **state)
{
	struct fixture *f = *state;
	struct push_listing l;

	put_message(f, "new", "1.M1P1Q1.host", 1);
	put_message(f, "cur", "2.M1P1Q1.host:2,RS", 2);
	assert_int_equal(push_pending_list(f->path, NULL, 100, false, &l), 0);
	assert_int_equal(l.count, 2);
	assert_int_equal(push_maildrop_finalise(f->path, &l.items[0], true), 0);
	assert_int_equal(push_maildrop_finalise(f->path, &l.items[1], true), 0);
	assert_true(exists(f, "cur", "1.M1P1Q1.host:2,P"));
	/* Flags stay in ASCII order. */
	assert_true(exists(f, "cur", "2.M1P1Q1.host:2,PRS"));
	push_listing_free(&l);
	assert_int_equal(push_pending_list(f->path, NULL, 100, false, &l), 0);
	assert_int_equal(l.count, 0);
	push_listing_free(&l);
}

static void test_finalise_finds_a_file_another_reader_moved(void **state)
{
	struct fixture *f = *state;
	struct push_listing l;
	char from[512], to[512];

	put_message(f, "new", "1.M1P1Q1.host", 1);
	assert_int_equal(push_pending_list(f->path, NULL, 100, false, &l), 0);
	snprintf(from, sizeof(from), "%s/new/1.M1P1Q1.host", f->path);
	snprintf(to, sizeof(to), "%s/cur/1.M1P1Q1.host:2,S", f->path);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(push_maildrop_finalise(f->path, &l.items[0], true), 0);
	assert_true(exists(f, "cur", "1.M1P1Q1.host:2,PS"));
	assert_int_equal(push_maildrop_finalise(f->path, &l.items[0], false), 0);
	assert_false(exists(f, "cur", "1.M1P1Q1.host:2,PS"));
	/* Already gone (POP3 DELE): nothing to do, no error. */
	assert_int_equal(push_maildrop_finalise(f->path, &l.items[0], false), 0);
	push_listing_free(&l);
}

/* The Maildir++ Junk folder (issue 14), as the SMTP side makes it on first use. */
static void make_junk_folder(const struct fixture *f)
{
	make_dir(f->path, ".Junk");
	make_dir(f->path, ".Junk/new");
	make_dir(f->path, ".Junk/cur");
	make_dir(f->path, ".Junk/tmp");
	put_message(f, ".Junk", "maildirfolder", 1);
}

static void test_junk_folder_is_listed_with_its_own_keys(void **state)
{
	struct fixture *f = *state;
	struct push_listing l;

	/* No Junk folder at all: INBOX only, no error. */
	put_message(f, "new", "2.M1P1Q1.host", 2);
	assert_int_equal(push_pending_list(f->path, NULL, 100, false, &l), 0);
	assert_int_equal(l.count, 1);
	assert_false(l.items[0].junk);
	push_listing_free(&l);
	make_junk_folder(f);
	put_message(f, ".Junk/new", "1.M1P1Q1.host", 1);
	put_message(f, ".Junk/cur", "3.M1P1Q1.host:2,S", 3);
	put_message(f, ".Junk/cur", "4.M1P1Q1.host:2,PS", 4); /* pushed already (KeepCopy) */
	/* The same unique name in both folders (a tool moved a copy): two messages. */
	put_message(f, "new", "5.M1P1Q1.host", 5);
	put_message(f, ".Junk/new", "5.M1P1Q1.host", 5);
	assert_int_equal(push_pending_list(f->path, NULL, 100, false, &l), 0);
	assert_int_equal(l.count, 5);
	/* One arrival order across both folders. */
	assert_string_equal(l.items[0].key, ".Junk/1.M1P1Q1.host");
	assert_true(l.items[0].junk);
	assert_string_equal(l.items[1].key, "2.M1P1Q1.host");
	assert_false(l.items[1].junk);
	assert_string_equal(l.items[2].key, ".Junk/3.M1P1Q1.host");
	assert_true(l.items[2].junk);
	assert_int_equal(l.items[3].key[0] == '.', l.items[3].junk);
	assert_int_equal(l.items[4].key[0] == '.', l.items[4].junk);
	assert_true(l.items[3].junk != l.items[4].junk);
	push_listing_free(&l);
}

static void test_junk_journal_keys_survive_a_reopen(void **state)
{
	struct fixture *f = *state;
	struct push_listing l;
	struct push_journal *j;

	make_junk_folder(f);
	put_message(f, "new", "1.M1P1Q1.host", 1);
	put_message(f, ".Junk/new", "1.M1P1Q1.host", 2);
	j = open_journal(f);
	assert_int_equal(push_journal_record(j, ".Junk/1.M1P1Q1.host", PUSH_JOURNAL_ATTEMPT), 0);
	assert_int_equal(push_journal_sync(j), 0);
	push_journal_close(j);
	j = open_journal(f);
	assert_int_equal(push_pending_list(f->path, j, 100, false, &l), 0);
	assert_int_equal(l.count, 2);
	/* In doubt: the Junk copy only. */
	assert_string_equal(l.items[0].key, "1.M1P1Q1.host");
	assert_int_equal(l.items[0].state, PUSH_JOURNAL_NONE);
	assert_string_equal(l.items[1].key, ".Junk/1.M1P1Q1.host");
	assert_int_equal(l.items[1].state, PUSH_JOURNAL_ATTEMPT);
	push_listing_free(&l);
	/* Compaction keeps the live Junk key. */
	assert_int_equal(push_pending_list(f->path, j, 100, false, &l), 0);
	assert_int_equal(push_journal_compact(j, true), 0);
	push_listing_free(&l);
	push_journal_close(j);
	j = open_journal(f);
	assert_int_equal(push_journal_state(j, ".Junk/1.M1P1Q1.host"), PUSH_JOURNAL_ATTEMPT);
	assert_int_equal(push_journal_state(j, "1.M1P1Q1.host"), PUSH_JOURNAL_NONE);
	push_journal_close(j);
}

static void test_junk_confirmed_is_finalised_in_its_folder(void **state)
{
	struct fixture *f = *state;
	struct push_listing l;
	char from[512], to[512];

	make_junk_folder(f);
	put_message(f, ".Junk/new", "1.M1P1Q1.host", 1);
	put_message(f, ".Junk/cur", "2.M1P1Q1.host:2,S", 2);
	put_message(f, ".Junk/new", "3.M1P1Q1.host", 3);
	assert_int_equal(push_pending_list(f->path, NULL, 100, false, &l), 0);
	assert_int_equal(l.count, 3);
	int lock = push_maildrop_trylock(f->path);
	assert_true(lock >= 0);
	/* KeepCopy: renamed into .Junk/cur with P, not into INBOX's cur/. */
	assert_int_equal(push_maildrop_finalise(f->path, &l.items[0], true), 0);
	assert_int_equal(push_maildrop_finalise(f->path, &l.items[1], true), 0);
	assert_true(exists(f, ".Junk/cur", "1.M1P1Q1.host:2,P"));
	assert_true(exists(f, ".Junk/cur", "2.M1P1Q1.host:2,PS"));
	assert_false(exists(f, "cur", "1.M1P1Q1.host:2,P"));
	/* Moved by a mail client meanwhile: found in its folder; then removed (no KeepCopy). */
	snprintf(from, sizeof(from), "%s/.Junk/new/3.M1P1Q1.host", f->path);
	snprintf(to, sizeof(to), "%s/.Junk/cur/3.M1P1Q1.host:2,S", f->path);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(push_maildrop_finalise(f->path, &l.items[2], false), 0);
	assert_false(exists(f, ".Junk/cur", "3.M1P1Q1.host:2,S"));
	assert_int_equal(push_maildrop_sync(f->path, false, true), 0);
	assert_int_equal(push_maildrop_sync(f->path, true, true), 0);
	close(lock);
	push_listing_free(&l);
	assert_int_equal(push_pending_list(f->path, NULL, 100, false, &l), 0);
	assert_int_equal(l.count, 0);
	push_listing_free(&l);
}

static void test_sync_without_a_junk_folder_is_fine(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(push_maildrop_sync(f->path, true, true), 0);
}

static void test_trylock_reports_pop3_holding_the_lock(void **state)
{
	struct fixture *f = *state;
	char p[256];

	snprintf(p, sizeof(p), "%s/.mailpopbox.lock", f->path);
	int pop3 = open(p, O_RDWR | O_CREAT, 0600);
	assert_true(pop3 >= 0);
	assert_int_equal(flock(pop3, LOCK_EX | LOCK_NB), 0);
	assert_int_equal(push_maildrop_trylock(f->path), -2);
	close(pop3);
	int lock = push_maildrop_trylock(f->path);
	assert_true(lock >= 0);
	close(lock);
}

static void test_flags_are_read_from_the_info_part(void **state)
{
	(void)state;
	assert_string_equal(push_maildir_flags("1.M1P1Q1.host:2,PS"), "PS");
	assert_string_equal(push_maildir_flags("1.M1P1Q1.host"), "");
	assert_string_equal(push_maildir_flags("1.M1P1Q1.host:1,xyz"), "");
}

static void test_status_names(void **state)
{
	(void)state;
	assert_string_equal(push_status_name(PUSH_OK), "ok");
	assert_string_equal(push_status_name(PUSH_TEMPORARY), "temporary");
	assert_string_equal(push_status_name(PUSH_AUTH), "auth");
	assert_string_equal(push_status_name(PUSH_REFUSED), "refused");
}

/* Escapes written by hand in lower case read as the engine's upper case ones; a journal
 * opened read-only (push status) takes no record, sync or compaction. */
static void test_lower_case_escapes_and_read_only_journal(void **state)
{
	struct fixture *f = *state;
	char p[256], err[256];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%s", f->path, PUSH_JOURNAL_NAME);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fprintf(fp, "C a%%2fb%%3A\nA %%ff\nR x%%4\n");
	fclose(fp);
	struct push_journal *j = push_journal_open(f->path, false, err, sizeof(err));
	assert_non_null(j);
	assert_int_equal(push_journal_lines(j), 3);
	assert_int_equal(push_journal_keys(j), 2);
	assert_int_equal(push_journal_state(j, "a/b:"), PUSH_JOURNAL_CONFIRMED);
	assert_int_equal(push_journal_state(j, "\xff"), PUSH_JOURNAL_ATTEMPT);
	errno = 0;
	assert_int_equal(push_journal_record(j, "k", PUSH_JOURNAL_ATTEMPT), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(push_journal_sync(j), -1);
	assert_int_equal(push_journal_compact(j, true), -1);
	assert_int_equal(push_journal_state(j, "k"), PUSH_JOURNAL_NONE);
	push_journal_close(j);

	/* NONE is a record too ("N": attempted, answered with a failure): it reads back. */
	j = open_journal(f);
	assert_int_equal(push_journal_record(j, "k", PUSH_JOURNAL_NONE), 0);
	assert_int_equal(push_journal_state(j, "k"), PUSH_JOURNAL_NONE);
	push_journal_close(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pending_listed_in_arrival_order, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_passed_flag_and_dotfiles_and_legacy_are_not_pending,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_listing_keeps_the_oldest_up_to_max, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_huge_maildrop_listed_up_to_max_oldest_first,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_attempt_without_outcome_is_in_doubt_after_reopen,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_answered_failure_is_not_in_doubt_after_reopen,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_replaced_or_removed_journal_is_noticed, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_failed_append_leaves_no_half_record, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_glued_records_are_not_a_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_last_line_is_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_lines_are_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_with_odd_bytes_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction_keeps_only_live_records, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_small_journal_is_not_compacted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_confirmed_without_keep_copy_removes_the_file,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_confirmed_with_keep_copy_adds_passed_flag, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_finalise_finds_a_file_another_reader_moved,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_junk_folder_is_listed_with_its_own_keys, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_junk_journal_keys_survive_a_reopen, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_junk_confirmed_is_finalised_in_its_folder, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_sync_without_a_junk_folder_is_fine, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_trylock_reports_pop3_holding_the_lock, setup,
			teardown),
		cmocka_unit_test(test_flags_are_read_from_the_info_part),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test_setup_teardown(test_lower_case_escapes_and_read_only_journal, setup,
			teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

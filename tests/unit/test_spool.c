/* test_spool.c: the outbound spool on a real file system under /tmp: directory creation, durable
 * commit of message + envelope, envelope round trips (every field, nulls, NOTIFY absent vs
 * FAILURE), listing, removal, crash recovery, corrupt envelopes and failed commits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/spool.h"
#include "remove_tree.h"

struct fixture {
	char root[64];   /* mkdtemp directory, removed by teardown */
	char spool[128]; /* SpoolPath inside it, created by setup with spool_init */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test_spool.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->spool, sizeof(f->spool), "%s/spool", f->root);
	assert_int_equal(spool_init(f->spool, err, sizeof(err)), 0);
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

static bool exists(const char *dir, const char *name)
{
	char *p = join(dir, name);
	struct stat st;
	bool r = lstat(p, &st) == 0;

	free(p);
	return r;
}

/* Names in SpoolPath/sub except "." and "..". */
static size_t count_names(const char *spool, const char *sub)
{
	char *p = join(spool, sub);
	DIR *dir = opendir(p);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(dir);
	while ((de = readdir(dir)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(dir);
	free(p);
	return n;
}

static char *read_file(const char *dir, const char *name)
{
	char *p = join(dir, name);
	FILE *fp = fopen(p, "rb");
	char *data;
	long len;

	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	len = ftell(fp);
	rewind(fp);
	data = malloc((size_t)len + 1);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, (size_t)len, fp), (size_t)len);
	data[len] = '\0';
	fclose(fp);
	free(p);
	return data;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char *p = join(dir, name);
	FILE *fp = fopen(p, "wb");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	free(p);
}

/* Receives "Subject: ID from SENDER" as message id and commits it with an envelope for
 * entry_id (normally the same id) with one recipient per address in rcpts (NULL-terminated).
 * Returns what commit returned, errno kept. */
static int commit_message(const char *spool, const char *id, const char *entry_id,
	const char *sender, const char *const *rcpts)
{
	struct spool_message m;
	struct spool_entry e;
	char body[128];
	int r, saved;

	snprintf(body, sizeof(body), "Subject: %s from %s\r\n\r\nbody\r\n", id, sender);
	assert_int_equal(spool_message_begin(&m, spool, id), 0);
	assert_int_equal(spool_message_write(&m, body, strlen(body)), 0);
	spool_entry_init(&e, entry_id, sender, 1700000000);
	for (size_t i = 0; rcpts[i]; i++)
		spool_entry_add_recipient(&e, rcpts[i], NULL, 0);
	r = spool_message_commit(&m, &e);
	saved = errno;
	/* Commit closes the file whatever happens. */
	assert_int_equal(m.file.fd, -1);
	spool_message_release(&m);
	spool_entry_free(&e);
	errno = saved;
	return r;
}

static void queue_message(const char *spool, const char *id, const char *sender,
	const char *const *rcpts)
{
	assert_int_equal(commit_message(spool, id, id, sender, rcpts), 0);
}

/* Nothing of a failed commit may be left in the spool. */
static void assert_spool_empty(const char *spool)
{
	assert_int_equal(count_names(spool, "tmp"), 0);
	assert_int_equal(count_names(spool, "msg"), 0);
	assert_int_equal(count_names(spool, "env"), 0);
}

static const char *const one_rcpt[] = {"x@example.com", NULL};

static void test_init_creates_missing_directories_private(void **state)
{
	struct fixture *f = *state;
	char *deep = join(f->root, "a/b/spool");
	char err[256];
	struct stat st;

	assert_int_equal(spool_init(deep, err, sizeof(err)), 0);
	for (size_t i = 0; i < 3; i++) {
		static const char *const subs[] = {"tmp", "msg", "env"};
		char *p = join(deep, subs[i]);

		assert_int_equal(stat(p, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 0777, 0700);
		free(p);
	}
	/* Running again over an existing spool is fine. */
	assert_int_equal(spool_init(deep, err, sizeof(err)), 0);
	free(deep);
}

static void test_init_reports_a_path_that_is_a_file(void **state)
{
	struct fixture *f = *state;
	char *path = join(f->root, "plain");
	char err[256] = "";

	write_file(f->root, "plain", "x");
	assert_int_equal(spool_init(path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	free(path);
}

static const char expected_new_envelope[] =
	"{\n"
	"  \"version\": 1,\n"
	"  \"id\": \"0123456789ABCDE\",\n"
	"  \"created\": 1700000000,\n"
	"  \"sender\": \"shop@example.org\",\n"
	"  \"sender_domain\": \"example.org\",\n"
	"  \"ret\": null,\n"
	"  \"envid\": null,\n"
	"  \"size\": 22,\n"
	"  \"body_8bit\": false,\n"
	"  \"smtputf8\": false,\n"
	"  \"attempts\": 0,\n"
	"  \"next_attempt\": 1700000000,\n"
	"  \"last_attempt\": null,\n"
	"  \"recipients\": [\n"
	"    {\n"
	"      \"address\": \"alice@example.com\",\n"
	"      \"orcpt\": \"rfc822;alice@example.com\",\n"
	"      \"notify\": [\n"
	"        \"SUCCESS\",\n"
	"        \"DELAY\"\n"
	"      ],\n"
	"      \"state\": \"PENDING\",\n"
	"      \"reported\": false,\n"
	"      \"delay_reported\": false,\n"
	"      \"remote_dsn\": false,\n"
	"      \"last_error\": null,\n"
	"      \"status\": null,\n"
	"      \"remote_mta\": null,\n"
	"      \"last_attempt\": null\n"
	"    },\n"
	"    {\n"
	"      \"address\": \"bob@example.net\",\n"
	"      \"orcpt\": null,\n"
	"      \"notify\": null,\n"
	"      \"state\": \"PENDING\",\n"
	"      \"reported\": false,\n"
	"      \"delay_reported\": false,\n"
	"      \"remote_dsn\": false,\n"
	"      \"last_error\": null,\n"
	"      \"status\": null,\n"
	"      \"remote_mta\": null,\n"
	"      \"last_attempt\": null\n"
	"    }\n"
	"  ]\n"
	"}\n";

static void test_commit_writes_message_then_envelope_exactly(void **state)
{
	struct fixture *f = *state;
	static const char body[] = "Subject: hi\r\n\r\nhello\r\n";
	char *msg_dir = join(f->spool, "msg"), *env_dir = join(f->spool, "env");
	struct spool_message m;
	struct spool_entry e;
	char *text;

	assert_int_equal(spool_message_begin(&m, f->spool, "0123456789ABCDE"), 0);
	assert_true(exists(f->spool, "tmp/0123456789ABCDE"));
	assert_int_equal(spool_message_write(&m, body, 10), 0);
	assert_int_equal(spool_message_write(&m, body + 10, strlen(body) - 10), 0);
	spool_entry_init(&e, "0123456789ABCDE", "shop@example.org", 1700000000);
	spool_entry_add_recipient(&e, "alice@example.com", "rfc822;alice@example.com",
		SPOOL_NOTIFY_SUCCESS | SPOOL_NOTIFY_DELAY);
	spool_entry_add_recipient(&e, "bob@example.net", NULL, 0);
	e.size = 999; /* the written size wins */
	assert_int_equal(spool_message_commit(&m, &e), 0);
	assert_int_equal(m.file.fd, -1);
	spool_message_release(&m);

	text = read_file(msg_dir, "0123456789ABCDE");
	assert_string_equal(text, body);
	free(text);
	text = read_file(env_dir, "0123456789ABCDE");
	assert_string_equal(text, expected_new_envelope);
	free(text);
	assert_int_equal(count_names(f->spool, "tmp"), 0);
	spool_entry_free(&e);
	free(msg_dir);
	free(env_dir);
}

static void test_commit_of_an_id_already_queued_is_refused(void **state)
{
	struct fixture *f = *state;
	char *msg_dir = join(f->spool, "msg");
	char *text;

	queue_message(f->spool, "Q1", "s@example.org", one_rcpt);
	assert_int_equal(commit_message(f->spool, "Q1", "Q1", "other@example.org", one_rcpt), -1);
	assert_int_equal(errno, EEXIST);
	/* The queued message is untouched and no tmp file is left. */
	text = read_file(msg_dir, "Q1");
	assert_string_equal(text, "Subject: Q1 from s@example.org\r\n\r\nbody\r\n");
	free(text);
	assert_int_equal(count_names(f->spool, "tmp"), 0);
	free(msg_dir);
}

/* A fully populated entry: every field away from its default, every state, nulls and not. */
static void fill_entry(struct spool_entry *e)
{
	struct spool_recipient *r;

	spool_entry_init(e, "RT1", "owner@example.org", 1700000000);
	e->ret = SPOOL_RET_HDRS;
	spool_set_string(&e->envid, "QQ314159");
	e->body_8bit = true;
	e->smtputf8 = true;
	e->attempts = 7;
	e->next_attempt = 1700003600;
	e->last_attempt = 1700001800;

	r = spool_entry_add_recipient(e, "pending@example.com", NULL, 0);
	spool_set_string(&r->last_error, "smtp; 451 4.3.0 try later");
	spool_set_string(&r->status, "4.3.0");
	spool_set_string(&r->remote_mta, "mx1.example.com");
	r->last_attempt = 1700001800;
	r->delay_reported = true;

	r = spool_entry_add_recipient(e, "done@example.com", "rfc822;Done@Example.com",
		SPOOL_NOTIFY_SUCCESS);
	r->state = SPOOL_RCPT_DELIVERED;
	r->remote_dsn = true;
	r->reported = true;
	spool_set_string(&r->status, "2.0.0");

	r = spool_entry_add_recipient(e, "gone@example.net", NULL,
		SPOOL_NOTIFY_FAILURE | SPOOL_NOTIFY_DELAY);
	r->state = SPOOL_RCPT_FAILED;
	spool_set_string(&r->last_error, "smtp; 550 5.1.1 no such user");
	spool_set_string(&r->status, "5.1.1");
	spool_set_string(&r->remote_mta, "mx.example.net");

	r = spool_entry_add_recipient(e, "late@example.net", NULL, SPOOL_NOTIFY_NEVER);
	r->state = SPOOL_RCPT_EXPIRED;
	spool_set_string(&r->last_error, "dns; NXDOMAIN");
	spool_set_string(&r->status, "4.4.3");
	r->reported = true;

	spool_entry_add_recipient(e, "\xc3\xbc@example.de", "utf-8;\xc3\xbc@example.de",
		SPOOL_NOTIFY_FAILURE);
}

static void assert_same_string(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void assert_entries_equal(const struct spool_entry *a, const struct spool_entry *b)
{
	assert_string_equal(a->id, b->id);
	assert_int_equal(a->created, b->created);
	assert_string_equal(a->sender, b->sender);
	assert_string_equal(a->sender_domain, b->sender_domain);
	assert_int_equal(a->ret, b->ret);
	assert_same_string(a->envid, b->envid);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->body_8bit, b->body_8bit);
	assert_int_equal(a->smtputf8, b->smtputf8);
	assert_int_equal(a->attempts, b->attempts);
	assert_int_equal(a->next_attempt, b->next_attempt);
	assert_int_equal(a->last_attempt, b->last_attempt);
	assert_int_equal(a->recipient_count, b->recipient_count);
	for (size_t i = 0; i < a->recipient_count; i++) {
		const struct spool_recipient *x = &a->recipients[i], *y = &b->recipients[i];

		assert_string_equal(x->address, y->address);
		assert_same_string(x->orcpt, y->orcpt);
		assert_int_equal(x->notify, y->notify);
		assert_int_equal(x->state, y->state);
		assert_int_equal(x->reported, y->reported);
		assert_int_equal(x->delay_reported, y->delay_reported);
		assert_int_equal(x->remote_dsn, y->remote_dsn);
		assert_same_string(x->last_error, y->last_error);
		assert_same_string(x->status, y->status);
		assert_same_string(x->remote_mta, y->remote_mta);
		assert_int_equal(x->last_attempt, y->last_attempt);
	}
}

static void test_save_then_load_round_trips_every_field(void **state)
{
	struct fixture *f = *state;
	struct spool_entry e, loaded;
	char err[256];

	queue_message(f->spool, "RT1", "owner@example.org", one_rcpt);
	fill_entry(&e);
	e.size = 21;
	assert_int_equal(spool_save(f->spool, &e), 0);
	assert_int_equal(spool_load(f->spool, "RT1", &loaded, err, sizeof(err)), 0);
	assert_entries_equal(&e, &loaded);
	assert_int_equal(count_names(f->spool, "tmp"), 0);
	spool_entry_free(&loaded);

	/* And again after a second save: replace, not append. */
	e.attempts = 8;
	e.recipients[0].state = SPOOL_RCPT_DELIVERED;
	assert_int_equal(spool_save(f->spool, &e), 0);
	assert_int_equal(spool_load(f->spool, "RT1", &loaded, err, sizeof(err)), 0);
	assert_entries_equal(&e, &loaded);
	spool_entry_free(&loaded);
	spool_entry_free(&e);
}

static void test_null_sender_round_trips_as_empty(void **state)
{
	struct fixture *f = *state;
	struct spool_entry loaded;
	char err[256];

	queue_message(f->spool, "NULL1", "", one_rcpt);
	assert_int_equal(spool_load(f->spool, "NULL1", &loaded, err, sizeof(err)), 0);
	assert_string_equal(loaded.sender, "");
	assert_string_equal(loaded.sender_domain, "");
	assert_int_equal(loaded.ret, SPOOL_RET_ABSENT);
	assert_null(loaded.envid);
	assert_int_equal(loaded.last_attempt, 0);
	spool_entry_free(&loaded);
}

static void test_notify_absent_stays_distinct_from_failure(void **state)
{
	struct fixture *f = *state;
	struct spool_entry e, loaded;
	char err[256];

	queue_message(f->spool, "N1", "s@example.org", one_rcpt);
	spool_entry_init(&e, "N1", "s@example.org", 1);
	spool_entry_add_recipient(&e, "absent@example.com", NULL, 0);
	spool_entry_add_recipient(&e, "failure@example.com", NULL, SPOOL_NOTIFY_FAILURE);
	assert_int_equal(spool_save(f->spool, &e), 0);
	assert_int_equal(spool_load(f->spool, "N1", &loaded, err, sizeof(err)), 0);
	assert_int_equal(loaded.recipients[0].notify, 0);
	assert_int_equal(loaded.recipients[1].notify, SPOOL_NOTIFY_FAILURE);
	/* RFC 3461 4.1: both mean "report failures" here. */
	assert_true(spool_notify_wants(&loaded.recipients[0], SPOOL_NOTIFY_FAILURE));
	assert_true(spool_notify_wants(&loaded.recipients[1], SPOOL_NOTIFY_FAILURE));
	spool_entry_free(&loaded);
	spool_entry_free(&e);
}

static void test_notify_wants_follows_rfc3461(void **state)
{
	struct spool_recipient r = {0};

	(void)state;
	r.notify = 0;
	assert_true(spool_notify_wants(&r, SPOOL_NOTIFY_FAILURE));
	assert_false(spool_notify_wants(&r, SPOOL_NOTIFY_DELAY));
	assert_false(spool_notify_wants(&r, SPOOL_NOTIFY_SUCCESS));
	r.notify = SPOOL_NOTIFY_NEVER;
	assert_false(spool_notify_wants(&r, SPOOL_NOTIFY_FAILURE));
	r.notify = SPOOL_NOTIFY_NEVER | SPOOL_NOTIFY_FAILURE;
	assert_false(spool_notify_wants(&r, SPOOL_NOTIFY_FAILURE));
	r.notify = SPOOL_NOTIFY_SUCCESS | SPOOL_NOTIFY_DELAY;
	assert_true(spool_notify_wants(&r, SPOOL_NOTIFY_SUCCESS));
	assert_true(spool_notify_wants(&r, SPOOL_NOTIFY_DELAY));
	assert_false(spool_notify_wants(&r, SPOOL_NOTIFY_FAILURE));
}

static void test_free_text_with_invalid_utf8_is_stored_with_question_marks(void **state)
{
	struct fixture *f = *state;
	struct spool_entry e, loaded;
	char err[256];

	queue_message(f->spool, "U1", "s@example.org", one_rcpt);
	spool_entry_init(&e, "U1", "s@example.org", 1);
	spool_entry_add_recipient(&e, "x@example.com", NULL, 0);
	spool_set_string(&e.recipients[0].last_error, "smtp; 550 caf\xe9 \xc3\xa9 \x01");
	assert_int_equal(spool_save(f->spool, &e), 0);
	assert_int_equal(spool_load(f->spool, "U1", &loaded, err, sizeof(err)), 0);
	assert_string_equal(loaded.recipients[0].last_error, "smtp; 550 caf? \xc3\xa9 \x01");
	spool_entry_free(&loaded);

	/* An address is never altered: it is refused. */
	spool_set_string(&e.recipients[0].address, "caf\xe9@example.com");
	assert_int_equal(spool_save(f->spool, &e), -1);
	assert_int_equal(errno, EINVAL);
	spool_entry_free(&e);
}

static void test_list_returns_only_committed_entries_sorted(void **state)
{
	struct fixture *f = *state;
	char *env_dir = join(f->spool, "env"), *msg_dir = join(f->spool, "msg");
	struct spool_message open_msg;
	char **ids;
	size_t count;

	queue_message(f->spool, "B2", "s@example.org", one_rcpt);
	queue_message(f->spool, "A1", "s@example.org", one_rcpt);
	queue_message(f->spool, "C3", "s@example.org", one_rcpt);
	/* Not entries: a message still being received, an orphan message, foreign names. */
	assert_int_equal(spool_message_begin(&open_msg, f->spool, "D4"), 0);
	write_file(msg_dir, "E5", "orphan");
	write_file(env_dir, ".hidden", "{}");
	{
		char *sub = join(env_dir, "F6");

		assert_int_equal(mkdir(sub, 0700), 0);
		free(sub);
	}
	assert_int_equal(spool_list(f->spool, &ids, &count), 0);
	assert_int_equal(count, 3);
	assert_string_equal(ids[0], "A1");
	assert_string_equal(ids[1], "B2");
	assert_string_equal(ids[2], "C3");
	spool_list_free(ids, count);
	spool_message_release(&open_msg);
	free(env_dir);
	free(msg_dir);
}

static void test_list_of_an_empty_spool_is_empty(void **state)
{
	struct fixture *f = *state;
	char **ids = (char **)1;
	size_t count = 99;

	assert_int_equal(spool_list(f->spool, &ids, &count), 0);
	assert_int_equal(count, 0);
	spool_list_free(ids, count);
}

static void test_remove_deletes_envelope_and_message(void **state)
{
	struct fixture *f = *state;
	struct spool_entry loaded;
	char err[256];

	queue_message(f->spool, "R1", "s@example.org", one_rcpt);
	queue_message(f->spool, "R2", "s@example.org", one_rcpt);
	assert_int_equal(spool_remove(f->spool, "R1"), 0);
	assert_false(exists(f->spool, "env/R1"));
	assert_false(exists(f->spool, "msg/R1"));
	assert_true(exists(f->spool, "env/R2"));
	assert_true(exists(f->spool, "msg/R2"));
	assert_int_equal(spool_load(f->spool, "R1", &loaded, err, sizeof(err)), -1);
	assert_int_equal(errno, ENOENT);
	/* Removing again is not an error; a bad id is. */
	assert_int_equal(spool_remove(f->spool, "R1"), 0);
	assert_int_equal(spool_remove(f->spool, "../R2"), -1);
	assert_int_equal(errno, EINVAL);
}

static void test_save_of_a_removed_entry_does_not_resurrect_it(void **state)
{
	struct fixture *f = *state;
	struct spool_entry e;

	queue_message(f->spool, "S1", "s@example.org", one_rcpt);
	assert_int_equal(spool_remove(f->spool, "S1"), 0);
	spool_entry_init(&e, "S1", "s@example.org", 1);
	spool_entry_add_recipient(&e, "x@example.com", NULL, 0);
	assert_int_equal(spool_save(f->spool, &e), -1);
	assert_int_equal(errno, ENOENT);
	assert_false(exists(f->spool, "env/S1"));
	spool_entry_free(&e);
}

static void test_recover_removes_tmp_leftovers_and_orphan_messages(void **state)
{
	struct fixture *f = *state;
	char *tmp_dir = join(f->spool, "tmp"), *msg_dir = join(f->spool, "msg");
	char *env_dir = join(f->spool, "env");
	struct spool_message half;

	queue_message(f->spool, "KEEP", "s@example.org", one_rcpt);
	/* A crash while receiving, while saving an envelope, and between the two renames. */
	assert_int_equal(spool_message_begin(&half, f->spool, "HALF"), 0);
	assert_int_equal(spool_message_write(&half, "partial", 7), 0);
	close(half.file.fd);
	half.file.fd = -1;
	write_file(tmp_dir, "KEEP.env.1.1", "{\"trunc");
	write_file(msg_dir, "ORPHAN", "Subject: lost\r\n\r\n");
	/* An envelope without its message is reported, not deleted. */
	write_file(env_dir, "NOMSG", "{}");

	assert_int_equal(spool_recover(f->spool), 3);
	assert_int_equal(count_names(f->spool, "tmp"), 0);
	assert_false(exists(f->spool, "msg/ORPHAN"));
	assert_true(exists(f->spool, "msg/KEEP"));
	assert_true(exists(f->spool, "env/KEEP"));
	assert_true(exists(f->spool, "env/NOMSG"));
	/* Nothing left to do the second time. */
	assert_int_equal(spool_recover(f->spool), 0);
	spool_message_release(&half);
	free(tmp_dir);
	free(msg_dir);
	free(env_dir);
}

static void assert_load_fails(const char *spool, const char *id, const char *content,
	const char *why)
{
	char *env_dir = join(spool, "env");
	char *file = join(env_dir, id);
	struct spool_entry e;
	char err[512] = "";

	write_file(env_dir, id, content);
	memset(&e, 0x5a, sizeof(e));
	assert_int_equal(spool_load(spool, id, &e, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	/* The message names the file, and says what is wrong. */
	if (!strstr(err, file) || !strstr(err, why))
		fail_msg("error \"%s\" should name %s and say \"%s\"", err, file, why);
	/* e untouched on failure. */
	for (size_t i = 0; i < sizeof(e); i++)
		assert_int_equal(((unsigned char *)&e)[i], 0x5a);
	free(file);
	free(env_dir);
}

static void test_corrupt_envelope_is_an_error_naming_the_file(void **state)
{
	struct fixture *f = *state;
	char *env_dir = join(f->spool, "env");
	char *good, *mangled;

	assert_load_fails(f->spool, "C1", "", "line");
	assert_load_fails(f->spool, "C1", "not json", "line 1");
	assert_load_fails(f->spool, "C1", "[1, 2]", "top level");
	assert_load_fails(f->spool, "C1", "{\"version\": 1}", "id: missing");
	assert_load_fails(f->spool, "C1", "{\"version\": 2}", "version");
	assert_load_fails(f->spool, "C1", "{\"a\": 1, \"a\": 2}", "duplicate");
	assert_load_fails(f->spool, "C1", "{\"x\": \"\\u0000\"}", "line");

	/* Damage a real envelope in one place at a time. */
	queue_message(f->spool, "GOOD", "s@example.org", one_rcpt);
	good = read_file(env_dir, "GOOD");
	assert_load_fails(f->spool, "OTHER", good, "id: does not match the file name");
	{
		static const struct {
			const char *from, *to, *why;
		} damage[] = {
			{"\"state\": \"PENDING\"", "\"state\": \"LOST\"", "recipients[0].state"},
			{"\"state\": \"PENDING\"", "\"state\": 3", "wrong type"},
			{"\"notify\": null", "\"notify\": [\"SOMETIMES\"]", "notify: unknown keyword"},
			{"\"notify\": null", "\"notify\": []", "notify: empty"},
			{"\"size\": ", "\"size\": -", "size: out of range"},
			{"\"attempts\": 0", "\"attempts\": 1e3", "attempts: wrong type"},
			{"\"ret\": null", "\"ret\": \"SOME\"", "ret"},
			{"\"sender\": \"s@example.org\"", "\"sender\": null", "sender: must not be null"},
			{"\"reported\": false", "\"reported\": \"no\"", "reported: wrong type"},
			{"\"recipients\": [", "\"recipients\": [7, ", "recipients[0]: not an object"},
			{"\"address\": \"x@example.com\",", "", "address: missing"},
		};

		for (size_t i = 0; i < sizeof(damage) / sizeof(damage[0]); i++) {
			char *at = strstr(good, damage[i].from);
			size_t head, from_len = strlen(damage[i].from);

			assert_non_null(at);
			head = (size_t)(at - good);
			assert_true(asprintf(&mangled, "%.*s%s%s", (int)head, good, damage[i].to,
				at + from_len) >= 0);
			assert_load_fails(f->spool, "GOOD", mangled, damage[i].why);
			free(mangled);
		}
	}
	/* Truncated at every length: an error each time, never a crash. */
	for (size_t len = 0; len < strlen(good); len += 7) {
		mangled = strndup(good, len);
		assert_load_fails(f->spool, "GOOD", mangled, "GOOD");
		free(mangled);
	}
	free(good);
	free(env_dir);
}

static void test_envelope_that_is_a_directory_is_an_error(void **state)
{
	struct fixture *f = *state;
	char *dir = join(f->spool, "env/D1");
	struct spool_entry e;
	char err[256] = "";

	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(spool_load(f->spool, "D1", &e, err, sizeof(err)), -1);
	assert_non_null(strstr(err, dir));
	assert_int_equal(spool_load(f->spool, "../x", &e, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	free(dir);
}

/* Replaces SpoolPath/sub by a plain file, so a rename into it fails (ENOTDIR, even for
 * root, unlike a chmod), and commits a message; returns what the commit returned. */
static int commit_with_directory_replaced(const char *spool, const char *sub, const char *id)
{
	char *dir = join(spool, sub);

	assert_int_equal(rmdir(dir), 0);
	write_file(spool, sub, "not a directory");
	free(dir);
	return commit_message(spool, id, id, "s@example.org", one_rcpt);
}

/* A commit that fails at the envelope must take the message back out of msg/. */
static void test_commit_failure_at_the_envelope_leaves_nothing(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(commit_with_directory_replaced(f->spool, "env", "F1"), -1);
	assert_int_equal(errno, ENOTDIR);
	assert_int_equal(count_names(f->spool, "tmp"), 0);
	assert_int_equal(count_names(f->spool, "msg"), 0);
}

static void test_commit_failure_at_the_message_rename_leaves_nothing(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(commit_with_directory_replaced(f->spool, "msg", "F2"), -1);
	assert_int_equal(errno, ENOTDIR);
	assert_int_equal(count_names(f->spool, "tmp"), 0);
	assert_int_equal(count_names(f->spool, "env"), 0);
}

static void test_commit_with_an_unstorable_entry_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	static const char *const bad_rcpt[] = {"\xff@example.com", NULL};

	assert_int_equal(commit_message(f->spool, "F3", "F3", "s@example.org", bad_rcpt), -1);
	assert_int_equal(errno, EINVAL);
	/* An entry for another id is a caller bug, refused the same way. */
	assert_int_equal(commit_message(f->spool, "F4", "F5", "s@example.org", one_rcpt), -1);
	assert_int_equal(errno, EINVAL);
	assert_spool_empty(f->spool);
}

static void test_abort_removes_the_tmp_file(void **state)
{
	struct fixture *f = *state;
	struct spool_message m;

	assert_int_equal(spool_message_begin(&m, f->spool, "AB1"), 0);
	assert_int_equal(spool_message_write(&m, "x", 1), 0);
	spool_message_abort(&m);
	assert_int_equal(count_names(f->spool, "tmp"), 0);
	/* Writes after abort fail and commit says so. */
	assert_int_equal(spool_message_write(&m, "x", 1), -1);
	spool_message_release(&m);
}

/* Prepared (synced, closed) but never committed: release still takes the tmp file away, and
 * a prepared message commits like one that was not. */
static void test_prepared_message_is_removed_by_abort_and_commits_otherwise(void **state)
{
	struct fixture *f = *state;
	struct spool_message m;
	struct spool_entry e;

	assert_int_equal(spool_message_begin(&m, f->spool, "PR1"), 0);
	assert_int_equal(spool_message_write(&m, "x\r\n", 3), 0);
	assert_int_equal(spool_message_prepare(&m), 0);
	assert_int_equal(m.file.fd, -1);
	assert_int_equal(count_names(f->spool, "tmp"), 1);
	spool_message_release(&m);
	assert_spool_empty(f->spool);

	assert_int_equal(spool_message_begin(&m, f->spool, "PR2"), 0);
	assert_int_equal(spool_message_write(&m, "x\r\n", 3), 0);
	assert_int_equal(spool_message_prepare(&m), 0);
	spool_entry_init(&e, "PR2", "s@example.org", 1700000000);
	spool_entry_add_recipient(&e, "x@example.com", NULL, 0);
	assert_int_equal(spool_message_commit(&m, &e), 0);
	spool_message_release(&m);
	spool_entry_free(&e);
	assert_int_equal(count_names(f->spool, "tmp"), 0);
	assert_int_equal(count_names(f->spool, "msg"), 1);
	assert_int_equal(count_names(f->spool, "env"), 1);
}

static void test_prepare_after_a_write_error_fails_and_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct spool_message m;

	assert_int_equal(spool_message_begin(&m, f->spool, "PR3"), 0);
	m.error = ENOSPC; /* as spool_message_write records a full disk */
	assert_int_equal(spool_message_prepare(&m), -1);
	assert_int_equal(errno, ENOSPC);
	spool_message_release(&m);
	assert_spool_empty(f->spool);
}

static void test_invalid_ids_are_refused(void **state)
{
	struct fixture *f = *state;
	struct spool_message m;

	assert_false(spool_id_valid(""));
	assert_false(spool_id_valid("."));
	assert_false(spool_id_valid(".hidden"));
	assert_false(spool_id_valid("a/b"));
	assert_false(spool_id_valid("../etc"));
	assert_false(spool_id_valid("a b"));
	assert_false(spool_id_valid(
		"0123456789012345678901234567890123456789012345678901234567890123456789"));
	assert_true(spool_id_valid("0123456789ABCDE"));
	assert_true(spool_id_valid("a.b-c_d"));
	assert_int_equal(spool_message_begin(&m, f->spool, "../escape"), -1);
	assert_int_equal(errno, EINVAL);
}

static void test_message_path_names_the_msg_file(void **state)
{
	char *p = spool_message_path("/var/spool/mailpopbox", "ABC");

	(void)state;
	assert_string_equal(p, "/var/spool/mailpopbox/msg/ABC");
	free(p);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_init_creates_missing_directories_private),
		T(test_init_reports_a_path_that_is_a_file),
		T(test_commit_writes_message_then_envelope_exactly),
		T(test_commit_of_an_id_already_queued_is_refused),
		T(test_save_then_load_round_trips_every_field),
		T(test_null_sender_round_trips_as_empty),
		T(test_notify_absent_stays_distinct_from_failure),
		T(test_notify_wants_follows_rfc3461),
		T(test_free_text_with_invalid_utf8_is_stored_with_question_marks),
		T(test_list_returns_only_committed_entries_sorted),
		T(test_list_of_an_empty_spool_is_empty),
		T(test_remove_deletes_envelope_and_message),
		T(test_save_of_a_removed_entry_does_not_resurrect_it),
		T(test_recover_removes_tmp_leftovers_and_orphan_messages),
		T(test_corrupt_envelope_is_an_error_naming_the_file),
		T(test_envelope_that_is_a_directory_is_an_error),
		T(test_commit_failure_at_the_envelope_leaves_nothing),
		T(test_commit_failure_at_the_message_rename_leaves_nothing),
		T(test_commit_with_an_unstorable_entry_leaves_nothing),
		T(test_abort_removes_the_tmp_file),
		T(test_prepared_message_is_removed_by_abort_and_commits_otherwise),
		T(test_prepare_after_a_write_error_fails_and_leaves_nothing),
		T(test_invalid_ids_are_refused),
		T(test_message_path_names_the_msg_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

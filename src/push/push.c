/* push/push.c: the push engine: a thread per Destination that lists its maildrop (journal.c),
 * sends batches through the destination's transport (imap_client.c, or gmail.c with oauth.c),
 * records attempts before sending and applies confirmed pushes to the Maildir, backs off on
 * failures, and writes the status file `mailpopbox queue` reads. */
#include "push/push.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "bounds.h"
#include "fsutil.h"
#include "log.h"
#include "mail/headers.h"
#include "push/gmail.h"
#include "push/imap_client.h"
#include "push/journal.h"
#include "push/oauth.h"
#include "push/transport.h"
#include "store/maildrop_delivery.h"
#include "strbuf.h"

/* A message's last error, for the status file. */
struct item_error {
	char *key;
	char detail[PUSH_DETAIL_MAX + 1];
};

/* The directories the thread watches (watch_maildrop). */
enum watch {
	WATCH_NEW,      /* new/: a delivery */
	WATCH_MAILDROP, /* the maildrop itself: moved or removed; the Junk folder made */
	WATCH_JUNK,     /* .Junk: its new/ made */
	WATCH_JUNK_NEW, /* .Junk/new: a quarantined delivery */
	WATCHES
};

struct push_worker {
	struct push_engine *engine;
	char *domain;
	char *maildrop_path;
	struct destination_config *posted; /* main thread: the Destination last handed over */
	pthread_t thread;
	bool started;
	bool removed;                      /* main thread: told to end by a reload */
	int wake_fd;                       /* eventfd: stop, reload, flush */
	atomic_bool stop;
	atomic_bool flush;
	atomic_bool ended;
	pthread_mutex_t lock;              /* guards next_dest */
	struct destination_config *next_dest; /* a reload's Destination, taken by the thread */

	/* The thread's own. */
	struct destination_config *dest;
	char description[300];             /* "imap:host:port" or "gmail", for logs */
	struct push_journal *journal;
	int inotify_fd;
	int watches[WATCHES];              /* enum watch, -1: none */
	bool maildrop_missing;             /* new/ was not there at the last look */
	struct imap_client *imap;
	struct oauth_session *oauth;
	struct gmail_client *gmail;
	struct push_listing listing;
	size_t next_index;
	bool dirty;                        /* the maildrop changed since the listing */
	bool deferred;                     /* confirmed pushes wait for the POP3 lock */
	bool legacy_logged;
	bool progress;                     /* the last batch had messages to offer */
	unsigned failures;
	time_t next_try;
	time_t settle_until;               /* in-doubt lookups wait until then (a break's aftermath) */
	enum push_status last_status;
	char last_error[PUSH_DETAIL_MAX + 1];
	struct item_error errors[PUSH_STATUS_ERRORS_MAX];
	size_t error_count;
	char *last_status_json;
	/* One batch's messages (too big for the thread's stack together). */
	struct push_item items[PUSH_BATCH_MAX];
	struct push_item to_send[PUSH_BATCH_MAX];
	char message_ids[PUSH_BATCH_MAX][PUSH_MESSAGE_ID_MAX + 1];
	struct push_pending *batch[PUSH_BATCH_MAX];
	struct push_worker *next;
};

struct push_engine {
	struct push_worker *workers;
};

/* ---- Destination copies ---- */

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static struct destination_config *destination_copy(const struct destination_config *d)
{
	struct destination_config *c = xcalloc(1, sizeof(*c));

	*c = *d;
	c->host = dup_or_null(d->host);
	c->username = dup_or_null(d->username);
	c->password = dup_or_null(d->password);
	c->oauth_client_file = dup_or_null(d->oauth_client_file);
	c->oauth_token_file = dup_or_null(d->oauth_token_file);
	c->mailbox = dup_or_null(d->mailbox);
	c->junk_mailbox = dup_or_null(d->junk_mailbox);
	c->gmail_api_url = dup_or_null(d->gmail_api_url);
	c->tls_ca_file = dup_or_null(d->tls_ca_file);
	return c;
}

static void destination_free(struct destination_config *d)
{
	if (!d)
		return;
	free(d->host);
	free(d->username);
	if (d->password) {
		explicit_bzero(d->password, strlen(d->password));
		free(d->password);
	}
	free(d->oauth_client_file);
	free(d->oauth_token_file);
	free(d->mailbox);
	free(d->junk_mailbox);
	free(d->gmail_api_url);
	free(d->tls_ca_file);
	free(d);
}

static bool strings_equal(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool destination_equal(const struct destination_config *a,
	const struct destination_config *b)
{
	return a->type == b->type && strings_equal(a->host, b->host) && a->port == b->port &&
		a->tls == b->tls && strings_equal(a->username, b->username) &&
		strings_equal(a->password, b->password) &&
		strings_equal(a->oauth_client_file, b->oauth_client_file) &&
		strings_equal(a->oauth_token_file, b->oauth_token_file) &&
		strings_equal(a->mailbox, b->mailbox) &&
		strings_equal(a->junk_mailbox, b->junk_mailbox) &&
		strings_equal(a->gmail_api_url, b->gmail_api_url) &&
		strings_equal(a->tls_ca_file, b->tls_ca_file) && a->keep_copy == b->keep_copy;
}

static void describe(const struct destination_config *d, char *out, size_t outsz)
{
	if (d->type == DESTINATION_GMAIL)
		snprintf(out, outsz, "gmail");
	else
		snprintf(out, outsz, "imap:%s:%d", d->host ? d->host : "", d->port);
}

/* The operator's next step for an authentication failure. */
static const char *auth_action(const struct destination_config *d)
{
	if (d->type == DESTINATION_IMAP && d->password)
		return "check Destination.Username and Destination.Password (an app password), "
		       "then reload";
	return "run mailpopbox authorize CONFIG DOMAIN, then reload";
}

/* ---- the transport ---- */

static void transport_close(struct push_worker *w)
{
	if (w->imap)
		imap_client_free(w->imap);
	w->imap = NULL;
	gmail_client_free(w->gmail);
	w->gmail = NULL;
	oauth_session_free(w->oauth);
	w->oauth = NULL;
}

static enum push_status oauth_ready(struct push_worker *w, char *err, size_t errsz)
{
	if (w->oauth)
		return PUSH_OK;
	w->oauth = oauth_session_new(w->dest->oauth_client_file, w->dest->oauth_token_file,
		w->dest->tls_ca_file, err, errsz);
	/* A garbled or unreadable client or token file needs the operator, like a revoked
	 * token. */
	return w->oauth ? PUSH_OK : PUSH_AUTH;
}

/* Connected and logged in (IMAP), or ready to call the API (Gmail). */
static enum push_status transport_ready(struct push_worker *w, char *err, size_t errsz)
{
	const struct destination_config *d = w->dest;
	enum push_status st;

	if (d->type == DESTINATION_GMAIL) {
		st = oauth_ready(w, err, errsz);
		if (st == PUSH_OK && !w->gmail)
			w->gmail = gmail_client_new(d->gmail_api_url, d->tls_ca_file);
		return st;
	}
	if (w->imap && imap_client_connected(w->imap))
		return PUSH_OK;
	if (w->imap)
		imap_client_free(w->imap);
	w->imap = NULL;
	char *token = NULL;
	if (!d->password) {
		st = oauth_ready(w, err, errsz);
		if (st != PUSH_OK)
			return st;
		token = xmalloc(OAUTH_ACCESS_TOKEN_MAX);
		st = oauth_access_token(w->oauth, token, OAUTH_ACCESS_TOKEN_MAX, err, errsz);
		if (st != PUSH_OK) {
			explicit_bzero(token, OAUTH_ACCESS_TOKEN_MAX);
			free(token);
			return st;
		}
	}
	struct imap_client_options options = {
		.host = d->host,
		.port = d->port,
		.tls = d->tls,
		.ca_file = d->tls_ca_file,
		.username = d->username,
		.password = d->password,
		.mailbox = d->mailbox ? d->mailbox : "INBOX",
		.junk_mailbox = d->junk_mailbox ? d->junk_mailbox : "Junk",
	};
	w->imap = imap_client_new(&options);
	st = imap_client_login(w->imap, token, err, errsz);
	if (token) {
		explicit_bzero(token, OAUTH_ACCESS_TOKEN_MAX);
		free(token);
	}
	if (st == PUSH_AUTH && w->oauth)
		oauth_forget_access_token(w->oauth);
	if (st != PUSH_OK) {
		imap_client_free(w->imap);
		w->imap = NULL;
	}
	return st;
}

/* Sends items; each item's status says what became of it (PUSH_TEMPORARY until answered).
 * *offered: how many of them (the first ones) may have reached the destination; the rest
 * surely did not. */
static enum push_status transport_send(struct push_worker *w, struct push_item *items,
	size_t count, size_t *offered, char *err, size_t errsz)
{
	*offered = count; /* IMAP: pipelined, any of them may have gone out */
	if (w->dest->type == DESTINATION_IMAP)
		return imap_client_append(w->imap, items, count, err, errsz);
	for (size_t i = 0; i < count; i++) {
		enum push_status st = gmail_import(w->gmail, w->oauth, &items[i], err, errsz);
		items[i].status = st;
		if (st != PUSH_OK && st != PUSH_REFUSED) {
			snprintf(items[i].detail, sizeof(items[i].detail), "%s", err);
			*offered = i + 1;
			return st;
		}
	}
	return PUSH_OK;
}

/* Looks an in-doubt message up (a Junk message in the Junk mailbox; Gmail's lookup includes
 * spam). *possible false: this destination cannot tell (Gmail with the insert scope only), so
 * the message is sent again (docs: the one caveat). */
static enum push_status transport_find(struct push_worker *w, const char *message_id,
	bool junk, bool *found, bool *possible, char *err, size_t errsz)
{
	*found = false;
	*possible = true;
	if (w->dest->type == DESTINATION_IMAP)
		return imap_client_find(w->imap, message_id, junk, found, err, errsz);
	if (!oauth_has_scope(w->oauth, GMAIL_SCOPE_READ)) {
		*possible = false;
		return PUSH_OK;
	}
	return gmail_find(w->gmail, w->oauth, message_id, found, err, errsz);
}

/* ---- reading a message's headers ---- */

/* The first <...> of a Message-ID field's value, if it can be searched for safely: printable
 * ASCII, no quote or backslash (IMAP quoted strings, Gmail's query), a bounded length. */
static bool extract_message_id(const char *value, char *out, size_t outsz)
{
	const char *open = strchr(value, '<');
	const char *close = open ? strchr(open, '>') : NULL;

	if (!close)
		return false;
	size_t len = (size_t)(close - open) + 1;
	if (len < 3 || len > PUSH_MESSAGE_ID_MAX || len >= outsz)
		return false;
	for (const char *p = open; p <= close; p++)
		if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')
			return false;
	memcpy(out, open, len);
	out[len] = '\0';
	return true;
}

/* Reads the header section (at most PUSH_HEADER_READ_MAX octets) for the Message-ID and the
 * Date. *message_id is "" when there is none we can use; *date stays as given (the mtime)
 * without a readable Date. */
static void read_headers(int fd, uint64_t size, char *message_id, size_t idsz, time_t *date)
{
	size_t want = size < PUSH_HEADER_READ_MAX ? (size_t)size : PUSH_HEADER_READ_MAX;
	char *buf = xmalloc(want + 1);
	size_t have = 0;

	message_id[0] = '\0';
	while (have < want) {
		size_t chunk = want - have < 16384 ? want - have : 16384;
		ssize_t n = pread(fd, buf + have, chunk, (off_t)have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		/* Stop at the blank line that ends the header section. */
		size_t from = have >= 3 ? have - 3 : 0;
		have += (size_t)n;
		buf[have] = '\0';
		if (memmem(buf + from, have - from, "\n\r\n", 3) ||
		    memmem(buf + from, have - from, "\n\n", 2))
			break;
	}
	struct mail_headers h;
	size_t header_len;
	if (mail_headers_parse(buf, have, &h, &header_len) == MAIL_HEADERS_OK) {
		struct strbuf value;
		const struct mail_field *f = mail_headers_find(&h, "Message-ID");
		strbuf_init(&value);
		if (f) {
			mail_field_unfold_value(f, &value);
			if (!value.data || !extract_message_id(value.data, message_id, idsz))
				message_id[0] = '\0';
		}
		f = mail_headers_find(&h, "Date");
		if (f) {
			strbuf_reset(&value);
			mail_field_unfold_value(f, &value);
			/* RFC 5322 3.3 dates, the format curl's HTTP date parser reads. */
			time_t t = value.data ? curl_getdate(value.data, NULL) : -1;
			if (t > 0)
				*date = t;
		}
		strbuf_free(&value);
		mail_headers_free(&h);
	}
	free(buf);
}

/* Maildir names written by other tools and the destination's ids may hold anything: quoted
 * then (and when empty), bare when they are one printable word, as our own names are. */
static const char *quote_key(char *out, size_t outsz, const char *key)
{
	size_t len = strlen(key);
	bool bare = len > 0 && len < outsz;

	for (size_t i = 0; i < len && bare; i++)
		bare = key[i] > 0x20 && key[i] < 0x7f && key[i] != '"' && key[i] != '\\';
	if (!bare)
		return log_quote(out, outsz, key, len);
	memcpy(out, key, len + 1);
	return out;
}

/* ---- status, errors, backoff ---- */

static void errors_clear(struct push_worker *w)
{
	for (size_t i = 0; i < w->error_count; i++)
		free(w->errors[i].key);
	w->error_count = 0;
}

static void errors_add(struct push_worker *w, const char *key, const char *detail)
{
	if (w->error_count == PUSH_STATUS_ERRORS_MAX)
		return;
	w->errors[w->error_count].key = xstrdup(key);
	snprintf(w->errors[w->error_count].detail, sizeof(w->errors[0].detail), "%s", detail);
	w->error_count++;
}

/* MaildropPath/.mailpopbox-push-status for `mailpopbox queue`: a hint, not state, so it is
 * replaced atomically (tmp + rename) but not fsync'd, and only when it changed. */
static void status_write(struct push_worker *w)
{
	size_t pending = w->listing.left_out, in_doubt = 0, junk = 0;
	json_t *root = json_object(), *errors = json_object();

	for (size_t i = 0; i < w->listing.count; i++) {
		if (w->listing.items[i].state == PUSH_JOURNAL_CONFIRMED)
			continue;
		pending++;
		in_doubt += w->listing.items[i].state == PUSH_JOURNAL_ATTEMPT;
		junk += w->listing.items[i].junk;
	}
	json_object_set_new(root, "domain", json_string(w->domain));
	json_object_set_new(root, "destination", json_string(w->description));
	json_object_set_new(root, "pending", json_integer((json_int_t)pending));
	json_object_set_new(root, "in_doubt", json_integer((json_int_t)in_doubt));
	/* Of the pending, those of the Junk folder (their keys start ".Junk/"). */
	json_object_set_new(root, "junk_pending", json_integer((json_int_t)junk));
	json_object_set_new(root, "refused", json_integer((json_int_t)w->listing.refused));
	json_object_set_new(root, "failures", json_integer(w->failures));
	json_object_set_new(root, "last_status", json_string(w->failures ?
		push_status_name(w->last_status) : "ok"));
	json_object_set_new(root, "last_error", json_string(w->failures ? w->last_error : ""));
	json_object_set_new(root, "next_try", json_integer((json_int_t)(w->failures ?
		w->next_try : 0)));
	json_object_set_new(root, "pid", json_integer((json_int_t)fs_process_id()));
	for (size_t i = 0; i < w->error_count; i++)
		json_object_set_new(errors, w->errors[i].key, json_string(w->errors[i].detail));
	json_object_set_new(root, "errors", errors);
	char *text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(root);
	if (!text)
		return;
	if (w->last_status_json && strcmp(text, w->last_status_json) == 0) {
		free(text);
		return;
	}
	char *path = fs_path_printf("%s/%s", w->maildrop_path, PUSH_STATUS_NAME);
	char *tmp = fs_path_printf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	bool ok = fd >= 0 && fs_write_all(fd, text, strlen(text)) == 0;
	if (fd >= 0)
		ok = close(fd) == 0 && ok;
	if (ok && rename(tmp, path) == 0) {
		free(w->last_status_json);
		w->last_status_json = text;
		text = NULL;
	} else {
		log_warn("push", "event=status_write_failed file=%s error=\"%s\"", path,
			strerror(errno));
		unlink(tmp);
	}
	free(text);
	free(tmp);
	free(path);
}

static unsigned backoff_seconds(unsigned failures)
{
	unsigned delay = PUSH_RETRY_FIRST_SECONDS;

	for (unsigned i = 1; i < failures && delay < PUSH_RETRY_CAP_SECONDS; i++)
		delay *= 2;
	return delay < PUSH_RETRY_CAP_SECONDS ? delay : PUSH_RETRY_CAP_SECONDS;
}

/* A failed step: wait (doubling up to the cap), list again afterwards. Logged once per step;
 * an authentication failure as an error with the operator's action. */
static void failure(struct push_worker *w, enum push_status st, const char *err)
{
	char quoted[PUSH_DETAIL_MAX + 16];
	unsigned delay;

	w->failures++;
	delay = backoff_seconds(w->failures);
	w->next_try = time(NULL) + delay;
	w->settle_until = time(NULL) + PUSH_IN_DOUBT_SETTLE_SECONDS;
	w->last_status = st;
	snprintf(w->last_error, sizeof(w->last_error), "%s", err && *err ? err : "unknown error");
	log_quote(quoted, sizeof(quoted), w->last_error, strlen(w->last_error));
	if (st == PUSH_AUTH)
		log_error("push", "event=push_failed domain=%s destination=%s status=auth error=%s "
			"action=\"%s\" retry_in=%u", w->domain, w->description, quoted,
			auth_action(w->dest), delay);
	else
		log_warn("push", "event=push_failed domain=%s destination=%s status=%s error=%s "
			"retry_in=%u", w->domain, w->description, push_status_name(st), quoted, delay);
	status_write(w); /* with the listing's counts, before it is dropped */
	push_listing_free(&w->listing);
	w->next_index = 0;
	w->dirty = true;
}

static void success(struct push_worker *w)
{
	if (w->failures > 0)
		log_info("push", "event=push_recovered domain=%s destination=%s failures=%u",
			w->domain, w->description, w->failures);
	w->failures = 0;
	w->next_try = 0;
	w->last_error[0] = '\0';
	errors_clear(w);
}

/* ---- waiting ---- */

static void drain_fd(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* Whether an inotify event says there may be something new to push. The maildrop's and the
 * Junk folder's own watches take creations only to see the Junk folder and its new/ appear
 * (they may not exist at start): their other entries (our journal and status files, tmp/,
 * cur/) are no news. */
static bool event_matters(const struct push_worker *w, const struct inotify_event *ev)
{
	int which = -1;

	if (ev->mask & IN_Q_OVERFLOW)
		return true; /* events were lost: list again */
	for (int i = 0; i < WATCHES && which < 0; i++)
		if (w->watches[i] >= 0 && ev->wd == w->watches[i])
			which = i;
	if (which < 0)
		return false; /* a watch already replaced (its IN_IGNORED) */
	if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
		return true;
	if (which == WATCH_MAILDROP)
		return ev->len > 0 && strcmp(ev->name, PUSH_JUNK_FOLDER) == 0;
	if (which == WATCH_JUNK)
		return ev->len > 0 && strcmp(ev->name, "new") == 0;
	return true;
}

/* Reads every queued inotify event; whether one of them matters. */
static bool take_inotify_events(struct push_worker *w)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool matters = false;
	ssize_t n;

	if (w->inotify_fd < 0)
		return false;
	while ((n = read(w->inotify_fd, buf, sizeof(buf))) > 0) {
		for (size_t at = 0; at + sizeof(struct inotify_event) <= (size_t)n;) {
			const struct inotify_event *ev = (const struct inotify_event *)(buf + at);
			matters |= event_matters(w, ev);
			at += sizeof(*ev) + ev->len;
		}
	}
	return matters;
}

static int64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps until an inotify event that matters (the maildrop changed), a wake-up (stop, reload,
 * flush) or timeout_ms (-1: none). */
static void wait_events(struct push_worker *w, int timeout_ms)
{
	struct pollfd fds[2] = {{w->wake_fd, POLLIN, 0}, {w->inotify_fd, POLLIN, 0}};
	nfds_t n = w->inotify_fd >= 0 ? 2 : 1;
	int64_t deadline = timeout_ms < 0 ? -1 : monotonic_ms() + timeout_ms;

	for (;;) {
		int wait_ms = -1;
		if (deadline >= 0) {
			int64_t left = deadline - monotonic_ms();
			wait_ms = left > 0 ? (int)left : 0;
		}
		if (poll(fds, n, wait_ms) <= 0)
			return;
		bool woken = fds[0].revents != 0;
		if (woken)
			drain_fd(w->wake_fd);
		if (n == 2 && fds[1].revents && take_inotify_events(w)) {
			w->dirty = true;
			woken = true;
		}
		if (woken || wait_ms == 0)
			return;
	}
}

static void poll_inotify(struct push_worker *w)
{
	if (take_inotify_events(w))
		w->dirty = true;
}

/* ---- applying confirmed pushes ---- */

/* Removes (or marks P) the confirmed messages under the maildrop lock; if POP3 holds it, the
 * confirmations are journalled and applied once it is free. */
static void apply_confirmed(struct push_worker *w, struct push_pending **done, size_t count)
{
	int lock_fd;

	if (count == 0)
		return;
	lock_fd = push_maildrop_trylock(w->maildrop_path);
	if (lock_fd < 0) {
		for (size_t i = 0; i < count; i++)
			if (done[i]->state != PUSH_JOURNAL_CONFIRMED &&
			    push_journal_record(w->journal, done[i]->key, PUSH_JOURNAL_CONFIRMED) == 0)
				done[i]->state = PUSH_JOURNAL_CONFIRMED;
		if (push_journal_sync(w->journal) < 0)
			log_error("push", "event=journal_sync_failed domain=%s error=\"%s\"", w->domain,
				strerror(errno));
		if (lock_fd == -1)
			log_warn("push", "event=lock_failed domain=%s error=\"%s\"", w->domain,
				strerror(errno));
		w->deferred = true;
		return;
	}
	bool failed = false, inbox = false, junk = false;
	for (size_t i = 0; i < count; i++) {
		inbox |= !done[i]->junk;
		junk |= done[i]->junk;
	}
	for (size_t i = 0; i < count; i++)
		if (push_maildrop_finalise(w->maildrop_path, done[i], w->dest->keep_copy) < 0) {
			char file[PUSH_JOURNAL_LINE_MAX];
			log_error("push", "event=finalise_failed domain=%s file=%s error=\"%s\"",
				w->domain, quote_key(file, sizeof(file), done[i]->key),
				strerror(errno));
			/* Confirmed all the same: the next listing tries again, without a lookup. */
			if (push_journal_record(w->journal, done[i]->key,
				PUSH_JOURNAL_CONFIRMED) == 0)
				done[i]->state = PUSH_JOURNAL_CONFIRMED;
			failed = true;
		}
	if (push_maildrop_sync(w->maildrop_path, inbox, junk) < 0) {
		log_error("push", "event=fsync_failed domain=%s error=\"%s\"", w->domain,
			strerror(errno));
		failed = true;
	}
	close(lock_fd);
	if (failed) {
		push_journal_sync(w->journal);
		w->deferred = true;
	}
}

/* ---- one batch ---- */

static void log_pushed(struct push_worker *w, const struct push_item *item, const char *key,
	const char *how)
{
	char file[PUSH_JOURNAL_LINE_MAX], id[PUSH_REMOTE_ID_MAX * 4 + 8];

	log_info("push", "event=pushed domain=%s file=%s destination=%s remote_id=%s%s",
		w->domain, quote_key(file, sizeof(file), key), w->description,
		quote_key(id, sizeof(id), item->remote_id), how);
}

/* Sends the next messages of the listing. Returns PUSH_OK when the batch went through (some
 * messages may have been refused for good), else the failure to back off on, in err. */
/* Waits until settle_until, or until the thread is told to stop (false). */
static bool settle(struct push_worker *w)
{
	time_t now = time(NULL);

	if (now < w->settle_until)
		log_info("push", "event=push_in_doubt_settle domain=%s seconds=%lld", w->domain,
			(long long)(w->settle_until - now));
	while (!atomic_load(&w->stop) && (now = time(NULL)) < w->settle_until)
		wait_events(w, (int)(w->settle_until - now) * 1000);
	return !atomic_load(&w->stop);
}

static enum push_status run_batch(struct push_worker *w, char *err, size_t errsz)
{
	struct push_item *items = w->items, *to_send = w->to_send;
	struct push_pending **batch = w->batch;
	struct push_pending *done[PUSH_BATCH_MAX];
	size_t send_index[PUSH_BATCH_MAX];
	size_t count = 0, done_count = 0, send_count = 0, index = w->next_index;
	char file[PUSH_JOURNAL_LINE_MAX];
	uint64_t octets = 0;
	enum push_status st;

	st = transport_ready(w, err, errsz);
	if (st != PUSH_OK)
		return st;
	/* The batch: the next messages in arrival order, bounded in count and octets. */
	while (index < w->listing.count && count < PUSH_BATCH_MAX) {
		struct push_pending *p = &w->listing.items[index];
		if (p->state == PUSH_JOURNAL_CONFIRMED) {
			index++; /* waits for the POP3 lock, not for the destination */
			continue;
		}
		if (count > 0 && octets + p->size > PUSH_BATCH_OCTETS_MAX)
			break;
		index++;
		int fd;
		do
			fd = open(p->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		while (fd < 0 && errno == EINTR);
		struct stat st_file;
		if (fd < 0 || fstat(fd, &st_file) < 0) {
			int error = errno;
			if (fd >= 0)
				close(fd);
			if (error == ENOENT) {
				/* Removed by POP3, or renamed by another reader: the next listing
				 * sees. */
				w->dirty = true;
				continue;
			}
			/* Unreadable (another tool's file mode): skipped, not retried in a loop;
			 * the periodic listing tries again. */
			log_warn("push", "event=message_unreadable domain=%s file=%s error=\"%s\"",
				w->domain, quote_key(file, sizeof(file), p->key), strerror(error));
			continue;
		}
		struct push_item *item = &items[count];
		memset(item, 0, sizeof(*item));
		item->fd = fd;
		item->size = (uint64_t)st_file.st_size;
		item->internal_date = st_file.st_mtim.tv_sec;
		item->status = PUSH_TEMPORARY;
		item->junk = p->junk;
		batch[count] = p;
		read_headers(fd, item->size, w->message_ids[count], sizeof(w->message_ids[count]),
			&item->internal_date);
		item->message_id = w->message_ids[count][0] ? w->message_ids[count] : NULL;
		octets += item->size;
		count++;
	}
	w->next_index = index;
	w->progress = count > 0;

	/* In doubt (attempted, no outcome): the destination may have it already, or may still be
	 * storing it on the broken connection's side; look only once that has had time. */
	st = PUSH_OK;
	for (size_t i = 0; i < count; i++)
		if (batch[i]->state == PUSH_JOURNAL_ATTEMPT && items[i].message_id) {
			if (!settle(w))
				goto out; /* stopping: they stay in doubt */
			break;
		}
	for (size_t i = 0; i < count && st == PUSH_OK; i++) {
		struct push_pending *p = batch[i];
		bool found = false, possible = false, shared = false;
		if (p->state == PUSH_JOURNAL_ATTEMPT && items[i].message_id) {
			st = transport_find(w, items[i].message_id, p->junk, &found, &possible, err,
				errsz);
			if (st != PUSH_OK)
				break;
			/* Two messages in doubt with one Message-ID (a list's copies, one mail to two
			 * addresses here): the lookup says only that one copy is there, which the
			 * first took. The second is sent again: a possible second copy rather than a
			 * message dropped unsent. */
			for (size_t k = 0; k < i && found; k++)
				if (items[k].status == PUSH_OK && items[k].message_id &&
				    strcmp(items[k].message_id, items[i].message_id) == 0) {
					found = false;
					shared = true;
				}
		}
		if (found) {
			items[i].status = PUSH_OK;
			log_pushed(w, &items[i], p->key, " in_doubt=found");
			done[done_count++] = p;
			continue;
		}
		if (p->state == PUSH_JOURNAL_ATTEMPT)
			log_info("push", "event=push_in_doubt domain=%s file=%s action=%s", w->domain,
				quote_key(file, sizeof(file), p->key), !items[i].message_id ?
				"no_message_id_sending" : shared ? "message_id_shared_sending" :
				possible ? "not_found_sending" : "no_lookup_sending");
		to_send[send_count] = items[i];
		send_index[send_count++] = i;
	}
	if (st != PUSH_OK)
		goto out;

	/* Record the attempts durably before a byte goes out: a crash from here on leaves them
	 * in doubt, never silently lost or sent twice. One fdatasync per batch. */
	for (size_t i = 0; i < send_count; i++) {
		struct push_pending *p = batch[send_index[i]];
		if (p->state == PUSH_JOURNAL_ATTEMPT)
			continue;
		if (push_journal_record(w->journal, p->key, PUSH_JOURNAL_ATTEMPT) < 0) {
			snprintf(err, errsz, "cannot write the push journal: %s", strerror(errno));
			st = PUSH_TEMPORARY;
			goto out;
		}
		p->state = PUSH_JOURNAL_ATTEMPT;
	}
	if (send_count > 0 && push_journal_sync(w->journal) < 0) {
		snprintf(err, errsz, "cannot sync the push journal: %s", strerror(errno));
		st = PUSH_TEMPORARY;
		goto out;
	}
	enum push_status send_st = PUSH_OK;
	size_t offered = 0;
	if (send_count > 0)
		st = send_st = transport_send(w, to_send, send_count, &offered, err, errsz);

	bool refused = false, item_failed = false, answered_failure = false;
	if (send_count > 0)
		errors_clear(w); /* the errors shown are this batch's */
	for (size_t i = 0; i < send_count; i++) {
		struct push_item *item = &to_send[i];
		struct push_pending *p = batch[send_index[i]];
		char quoted[PUSH_DETAIL_MAX + 16];
		switch (item->status) {
		case PUSH_OK:
			log_pushed(w, item, p->key, "");
			done[done_count++] = p;
			break;
		case PUSH_REFUSED:
			log_quote(quoted, sizeof(quoted), item->detail, strlen(item->detail));
			log_warn("push", "event=push_refused domain=%s file=%s destination=%s "
				"error=%s kept=pop3", w->domain, quote_key(file, sizeof(file), p->key),
				w->description, quoted);
			if (push_journal_record(w->journal, p->key, PUSH_JOURNAL_REFUSED) == 0)
				p->state = PUSH_JOURNAL_REFUSED;
			refused = true;
			break;
		case PUSH_TEMPORARY:
		case PUSH_AUTH:
			if (!item_failed && st == PUSH_OK && item->detail[0]) {
				snprintf(err, errsz, "%s", item->detail);
				st = item->status;
			}
			item_failed = true;
			errors_add(w, p->key, item->detail[0] ? item->detail : err);
			/* The IMAP connection is still usable, so every APPEND was answered: this
			 * one with a tagged NO/BAD, and the destination does not have it. Not in
			 * doubt any more: otherwise the next try would look its Message-ID up and
			 * could find another message with the same one (a mailing list's copy, a
			 * message sent by the owner) and drop this one unsent.
			 * The same for a message not sent at all (Gmail: one at a time, and an
			 * earlier one failed). */
			if (((w->dest->type == DESTINATION_IMAP && send_st == PUSH_OK) ||
			     i >= offered) &&
			    push_journal_record(w->journal, p->key, PUSH_JOURNAL_NONE) == 0) {
				p->state = PUSH_JOURNAL_NONE;
				answered_failure = true;
			}
			break;
		}
	}
	if ((refused || answered_failure) && push_journal_sync(w->journal) < 0)
		log_error("push", "event=journal_sync_failed domain=%s error=\"%s\"", w->domain,
			strerror(errno));
	if (st == PUSH_OK && item_failed) {
		st = PUSH_TEMPORARY;
		if (!err[0])
			snprintf(err, errsz, "a message was not accepted");
	}
out:
	apply_confirmed(w, done, done_count);
	for (size_t i = 0; i < count; i++)
		close(items[i].fd);
	return st;
}

/* ---- the thread ---- */

/* Watches MaildropPath/new, MaildropPath itself, and the Junk folder's .Junk and .Junk/new,
 * the directories there now: after the maildrop was moved away, removed or replaced, the old
 * watches follow the old directories (or end with IN_IGNORED) and new mail would wait for the
 * periodic listing. The maildrop's own watch takes its moving or removal and the Junk
 * folder's creation; .Junk's, the creation of its new/ (event_matters filters the rest: our
 * own status and journal files). The Junk folder is made by the first quarantined delivery,
 * so it is usually missing at start: each listing (which its creation triggers) tries again.
 * Adding a watch for the same directory again returns the same descriptor, so this is cheap
 * at every listing. A missing maildrop is not made again here (an owner's rm -rf would race
 * with it): the next delivery makes it, and the loop looks for it every
 * PUSH_RETRY_FIRST_SECONDS meanwhile. */
static void watch_maildrop(struct push_worker *w)
{
	static const uint32_t masks[WATCHES] = {
		[WATCH_NEW] = IN_MOVED_TO | IN_CREATE | IN_ONLYDIR | IN_DELETE_SELF | IN_MOVE_SELF,
		[WATCH_MAILDROP] = IN_MOVED_TO | IN_CREATE | IN_ONLYDIR | IN_DELETE_SELF |
			IN_MOVE_SELF,
		[WATCH_JUNK] = IN_MOVED_TO | IN_CREATE | IN_ONLYDIR | IN_DELETE_SELF | IN_MOVE_SELF,
		[WATCH_JUNK_NEW] = IN_MOVED_TO | IN_CREATE | IN_ONLYDIR | IN_DELETE_SELF |
			IN_MOVE_SELF,
	};
	static const char *const dirs[WATCHES] = {
		[WATCH_NEW] = "/new",
		[WATCH_MAILDROP] = "",
		[WATCH_JUNK] = "/" PUSH_JUNK_FOLDER,
		[WATCH_JUNK_NEW] = "/" PUSH_JUNK_FOLDER "/new",
	};

	if (w->inotify_fd < 0)
		return;
	for (size_t i = 0; i < WATCHES; i++) {
		char *dir = fs_path_printf("%s%s", w->maildrop_path, dirs[i]);
		int wd = inotify_add_watch(w->inotify_fd, dir, masks[i]);
		bool junk = i == WATCH_JUNK || i == WATCH_JUNK_NEW;
		if (wd < 0 && errno == ENOENT && !junk)
			w->maildrop_missing = true;
		else if (wd < 0 && errno != ENOENT && w->watches[i] >= 0)
			log_warn("push", "event=inotify_failed domain=%s dir=%s error=\"%s\" "
				"rescan_every=%d", w->domain, dir, strerror(errno), PUSH_RESCAN_SECONDS);
		/* The old directory's watch (gone already when it was removed: EINVAL). */
		if (w->watches[i] >= 0 && wd != w->watches[i])
			inotify_rm_watch(w->inotify_fd, w->watches[i]);
		w->watches[i] = wd;
		free(dir);
	}
}

/* A new listing of the maildrop: what waits, confirmed pushes still to apply, compaction. */
static int relist(struct push_worker *w, char *err, size_t errsz)
{
	struct push_pending *confirmed[PUSH_BATCH_MAX];
	size_t n = 0;

	push_listing_free(&w->listing);
	w->next_index = 0;
	w->maildrop_missing = false;
	watch_maildrop(w);
	/* The maildrop was replaced under us: the journal must be the one in MaildropPath, or
	 * the attempts recorded from now on would be lost to a restart (and sent twice). The
	 * loop opens it again (or waits for the maildrop to be made again). */
	if (push_journal_moved(w->journal)) {
		log_warn("push", "event=journal_reopened domain=%s reason=\"the maildrop or its "
			"journal was moved or removed\"", w->domain);
		push_journal_close(w->journal);
		w->journal = NULL;
		w->dirty = true;
		return 0;
	}
	push_listing_free(&w->listing);
	w->next_index = 0;
	w->dirty = false;
	if (push_pending_list(w->maildrop_path, w->journal, PUSH_LISTING_MAX, false,
		&w->listing) < 0) {
		snprintf(err, errsz, "cannot list %s: %s", w->maildrop_path, strerror(errno));
		return -1;
	}
	if (w->listing.legacy > 0 && !w->legacy_logged) {
		log_warn("push", "event=legacy_not_pushed domain=%s count=%zu reason=\"the original "
			"server's *.msg files are served by POP3 only\"", w->domain, w->listing.legacy);
		w->legacy_logged = true;
	}
	if (push_journal_compact(w->journal, false) < 0)
		log_warn("push", "event=journal_compact_failed domain=%s error=\"%s\"", w->domain,
			strerror(errno));
	w->deferred = false;
	for (size_t i = 0; i < w->listing.count; i++) {
		if (w->listing.items[i].state != PUSH_JOURNAL_CONFIRMED)
			continue;
		confirmed[n++] = &w->listing.items[i];
		if (n == PUSH_BATCH_MAX) {
			apply_confirmed(w, confirmed, n);
			n = 0;
		}
	}
	apply_confirmed(w, confirmed, n);
	status_write(w);
	return 0;
}

static void take_reload(struct push_worker *w)
{
	struct destination_config *next;

	pthread_mutex_lock(&w->lock);
	next = w->next_dest;
	w->next_dest = NULL;
	pthread_mutex_unlock(&w->lock);
	if (!next)
		return;
	transport_close(w);
	destination_free(w->dest);
	w->dest = next;
	describe(w->dest, w->description, sizeof(w->description));
	w->failures = 0;
	w->next_try = 0;
	w->dirty = true;
	errors_clear(w);
	push_listing_free(&w->listing);
	w->next_index = 0;
	log_info("push", "event=destination_reloaded domain=%s destination=%s", w->domain,
		w->description);
}

static bool listing_has_work(const struct push_worker *w)
{
	for (size_t i = w->next_index; i < w->listing.count; i++)
		if (w->listing.items[i].state != PUSH_JOURNAL_CONFIRMED)
			return true;
	return false;
}

/* Sleeps PUSH_COALESCE_MILLISECONDS unless woken (stop, reload, flush; left to be drained). */
static void pause_for_company(struct push_worker *w)
{
	struct pollfd fd = {w->wake_fd, POLLIN, 0};

	poll(&fd, 1, PUSH_COALESCE_MILLISECONDS);
}

static void worker_loop(struct push_worker *w)
{
	char err[PUSH_DETAIL_MAX + 1];

	/* What was in doubt at start may still be being stored by the destination for the
	 * connection the previous process left (kill -9, power cut). */
	w->settle_until = time(NULL) + PUSH_IN_DOUBT_SETTLE_SECONDS;
	while (!atomic_load(&w->stop)) {
		take_reload(w);
		if (atomic_exchange(&w->flush, false)) {
			w->next_try = 0;
			w->dirty = true;
		}
		time_t now = time(NULL);
		if (w->next_try > now) {
			long wait = (long)(w->next_try - now);
			wait_events(w, (int)(wait > 3600 ? 3600000 : wait * 1000));
			continue;
		}
		err[0] = '\0';
		if (!w->journal) {
			w->journal = push_journal_open(w->maildrop_path, true, err, sizeof(err));
			if (!w->journal && errno == ENOENT) {
				/* The maildrop was moved away or removed: nothing to push until a
				 * delivery makes it again. */
				w->maildrop_missing = true;
				wait_events(w, PUSH_RETRY_FIRST_SECONDS * 1000);
				continue;
			}
			if (!w->journal) {
				failure(w, PUSH_TEMPORARY, err);
				continue;
			}
		}
		poll_inotify(w);
		if (!listing_has_work(w)) {
			if (!w->dirty && !w->deferred) {
				/* Nothing to do: sleep until the maildrop changes (new/ missing:
				 * nothing to watch, look for it again soon). */
				wait_events(w, (w->maildrop_missing ? PUSH_RETRY_FIRST_SECONDS :
					PUSH_RESCAN_SECONDS) * 1000);
				/* A delivery: the messages arriving with it gather for one batch. */
				if (w->dirty)
					pause_for_company(w);
				/* An event, the periodic look, or a wake-up: list again. */
				w->dirty = true;
				continue;
			}
			if (w->deferred && !w->dirty)
				wait_events(w, 1000); /* POP3 holds the lock: try again shortly */
			if (relist(w, err, sizeof(err)) < 0)
				failure(w, PUSH_TEMPORARY, err);
			continue;
		}
		enum push_status st = run_batch(w, err, sizeof(err));
		if (st != PUSH_OK) {
			failure(w, st, err);
			continue;
		}
		success(w);
		/* List again for what arrived meanwhile and for the status file; not after a batch
		 * that could send nothing, which would only list the same files again. */
		if (!listing_has_work(w) && w->progress)
			w->dirty = true;
	}
}

static void *worker_main(void *arg)
{
	struct push_worker *w = arg;
	char *new_dir = fs_path_printf("%s/new", w->maildrop_path);

	pthread_setname_np(pthread_self(), "push");
	/* new/ must exist to be watched; a first delivery would make it anyway. */
	if (maildrop_create(w->maildrop_path) < 0)
		log_warn("push", "event=maildrop_create_failed domain=%s path=%s error=\"%s\"",
			w->domain, w->maildrop_path, strerror(errno));
	w->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->inotify_fd >= 0)
		watch_maildrop(w);
	if (w->inotify_fd < 0 || w->watches[WATCH_NEW] < 0) {
		/* Still pushes, found by the periodic listing instead of at once. */
		log_warn("push", "event=inotify_failed domain=%s dir=%s error=\"%s\" rescan_every=%d",
			w->domain, new_dir, strerror(errno), PUSH_RESCAN_SECONDS);
	}
	free(new_dir);
	log_info("push", "event=push_started domain=%s destination=%s keep_copy=%s", w->domain,
		w->description, w->dest->keep_copy ? "yes" : "no");
	w->dirty = true;
	worker_loop(w);
	transport_close(w);
	status_write(w);
	push_listing_free(&w->listing);
	push_journal_close(w->journal);
	w->journal = NULL;
	if (w->inotify_fd >= 0)
		close(w->inotify_fd);
	w->inotify_fd = -1;
	log_info("push", "event=push_stopped domain=%s", w->domain);
	atomic_store(&w->ended, true);
	return NULL;
}

static void wake(struct push_worker *w)
{
	uint64_t one = 1;

	if (write(w->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("push", "event=wake_failed domain=%s error=\"%s\"", w->domain,
			strerror(errno));
}

static struct push_worker *worker_start(struct push_engine *e, const struct server_config *s)
{
	struct push_worker *w = xcalloc(1, sizeof(*w));
	sigset_t all, old;

	w->engine = e;
	w->domain = xstrdup(s->domain);
	w->maildrop_path = xstrdup(s->maildrop_path);
	w->posted = destination_copy(s->destination);
	w->dest = destination_copy(s->destination);
	describe(w->dest, w->description, sizeof(w->description));
	w->inotify_fd = -1;
	for (size_t i = 0; i < WATCHES; i++)
		w->watches[i] = -1;
	atomic_init(&w->stop, false);
	atomic_init(&w->flush, false);
	atomic_init(&w->ended, false);
	pthread_mutex_init(&w->lock, NULL);
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wake_fd < 0)
		fatal("event=eventfd_failed error=\"%s\"", strerror(errno));
	/* Signals stay with the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int err = pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0)
		fatal("event=thread_failed error=\"%s\"", strerror(err));
	w->started = true;
	w->next = e->workers;
	e->workers = w;
	return w;
}

static void worker_free(struct push_worker *w)
{
	free(w->domain);
	free(w->maildrop_path);
	destination_free(w->posted);
	destination_free(w->dest);
	destination_free(w->next_dest);
	errors_clear(w);
	free(w->last_status_json);
	close(w->wake_fd);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

struct push_engine *push_engine_start(const struct config *cfg)
{
	struct push_engine *e = xcalloc(1, sizeof(*e));

	for (size_t i = 0; i < cfg->server_count; i++)
		if (cfg->servers[i].destination)
			worker_start(e, &cfg->servers[i]);
	return e;
}

void push_engine_reload(struct push_engine *e, const struct config *cfg)
{
	if (!e)
		return;
	for (struct push_worker *w = e->workers; w; w = w->next) {
		const struct server_config *s = NULL;
		if (w->removed)
			continue;
		for (size_t i = 0; i < cfg->server_count && !s; i++)
			if (strcmp(cfg->servers[i].maildrop_path, w->maildrop_path) == 0 &&
			    cfg->servers[i].destination)
				s = &cfg->servers[i];
		if (!s) {
			log_info("push", "event=destination_removed domain=%s", w->domain);
			w->removed = true;
			atomic_store(&w->stop, true);
			wake(w);
			continue;
		}
		if (destination_equal(w->posted, s->destination))
			continue;
		destination_free(w->posted);
		w->posted = destination_copy(s->destination);
		pthread_mutex_lock(&w->lock);
		destination_free(w->next_dest);
		w->next_dest = destination_copy(s->destination);
		pthread_mutex_unlock(&w->lock);
		wake(w);
	}
	for (size_t i = 0; i < cfg->server_count; i++) {
		const struct server_config *s = &cfg->servers[i];
		bool running = false;
		if (!s->destination)
			continue;
		for (struct push_worker *w = e->workers; w && !running; w = w->next)
			running = !w->removed && strcmp(w->maildrop_path, s->maildrop_path) == 0;
		if (!running)
			worker_start(e, s);
	}
}

void push_engine_flush(struct push_engine *e)
{
	if (!e)
		return;
	for (struct push_worker *w = e->workers; w; w = w->next) {
		atomic_store(&w->flush, true);
		wake(w);
	}
}

void push_engine_stop(struct push_engine *e)
{
	if (!e)
		return;
	for (struct push_worker *w = e->workers; w; w = w->next) {
		atomic_store(&w->stop, true);
		wake(w);
	}
}

bool push_engine_stopped(struct push_engine *e)
{
	if (!e)
		return true;
	for (struct push_worker *w = e->workers; w; w = w->next)
		if (!atomic_load(&w->ended))
			return false;
	return true;
}

void push_engine_free(struct push_engine *e)
{
	struct push_worker *w, *next;

	if (!e)
		return;
	push_engine_stop(e);
	for (w = e->workers; w; w = next) {
		next = w->next;
		if (!atomic_load(&w->ended)) {
			/* Inside a transport call past the grace: the process exit ends it; its
			 * memory stays valid until then. */
			log_warn("push", "event=push_thread_abandoned domain=%s", w->domain);
			pthread_detach(w->thread);
			continue;
		}
		pthread_join(w->thread, NULL);
		worker_free(w);
	}
	free(e);
}

/* ---- mailpopbox queue ---- */

static void print_age(long long seconds, char *out, size_t outsz)
{
	if (seconds < 0)
		seconds = 0;
	if (seconds < 120)
		snprintf(out, outsz, "%llds", seconds);
	else if (seconds < 7200)
		snprintf(out, outsz, "%lldm", seconds / 60);
	else if (seconds < 172800)
		snprintf(out, outsz, "%lldh", seconds / 3600);
	else
		snprintf(out, outsz, "%lldd", seconds / 86400);
}

static json_t *status_read(const char *maildrop_path)
{
	char *path = fs_path_printf("%s/%s", maildrop_path, PUSH_STATUS_NAME);
	json_t *root = json_load_file(path, 0, NULL);

	free(path);
	if (root && !json_is_object(root)) {
		json_decref(root);
		root = NULL;
	}
	return root;
}

static void queue_list_server(const struct server_config *s, FILE *out)
{
	char err[512], dest[300], age[32];
	struct push_listing listing;
	time_t now = time(NULL);

	describe(s->destination, dest, sizeof(dest));
	struct push_journal *j = push_journal_open(s->maildrop_path, false, err, sizeof(err));
	if (!j) {
		fprintf(out, "push %s -> %s: %s\n", s->domain, dest, err);
		return;
	}
	if (push_pending_list(s->maildrop_path, j, PUSH_LISTING_MAX, true, &listing) < 0) {
		fprintf(out, "push %s -> %s: cannot list %s: %s\n", s->domain, dest,
			s->maildrop_path, strerror(errno));
		push_journal_close(j);
		return;
	}
	json_t *status = status_read(s->maildrop_path);
	json_t *errors = status ? json_object_get(status, "errors") : NULL;
	const char *last_error = status ? json_string_value(json_object_get(status,
		"last_error")) : NULL;
	json_int_t next_try = status ? json_integer_value(json_object_get(status, "next_try")) : 0;
	size_t pending = listing.left_out, junk = 0;
	for (size_t i = 0; i < listing.count; i++) {
		pending += listing.items[i].state != PUSH_JOURNAL_REFUSED;
		junk += listing.items[i].state != PUSH_JOURNAL_REFUSED && listing.items[i].junk;
	}
	fprintf(out, "push %s -> %s: %zu pending", s->domain, dest, pending);
	if (junk)
		fprintf(out, " (%zu in Junk)", junk);
	fprintf(out, ", %zu refused (kept for POP3)", listing.refused);
	if (last_error && *last_error) {
		char next[32];
		print_age((long long)(next_try - now), next, sizeof(next));
		fprintf(out, ", last error: %s, next try in %s", last_error,
			next_try > now ? next : "now");
	}
	fprintf(out, "\n");
	for (size_t i = 0; i < listing.count; i++) {
		const struct push_pending *p = &listing.items[i];
		const char *state = "pending";
		const char *detail = errors ? json_string_value(json_object_get(errors, p->key)) :
			NULL;
		/* Attempted: answered with an error (retried), or unanswered (in doubt: looked up
		 * before it is sent again). */
		if (p->state == PUSH_JOURNAL_ATTEMPT)
			state = detail ? "retrying" : "in-doubt";
		else if (p->state == PUSH_JOURNAL_CONFIRMED)
			state = "pushed"; /* removed or marked once POP3 lets go of the lock */
		else if (p->state == PUSH_JOURNAL_REFUSED)
			state = "refused";
		print_age((long long)(now - p->mtime.tv_sec), age, sizeof(age));
		/* A Junk message's key names its folder: ".Junk/NAME". */
		fprintf(out, "    %-9s %s  age %s  size %llu%s%s%s\n", state, p->key, age,
			(unsigned long long)p->size, p->junk ? "  folder Junk" : "",
			detail ? "  " : "", detail ? detail : "");
	}
	if (listing.left_out)
		fprintf(out, "    ... and %zu more\n", listing.left_out);
	if (listing.legacy)
		fprintf(out, "    (%zu *.msg files of the original server: POP3 only, not pushed)\n",
			listing.legacy);
	json_decref(status);
	push_listing_free(&listing);
	push_journal_close(j);
}

int push_queue_command(const struct config *cfg, FILE *out)
{
	for (size_t i = 0; i < cfg->server_count; i++)
		if (cfg->servers[i].destination)
			queue_list_server(&cfg->servers[i], out);
	return 0;
}

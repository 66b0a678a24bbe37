/* queue/queue.c: scheduling delivery runs over the spool, recording outcomes, backoff,
 * expiry and DSNs. A run for one entry goes through its recipients' domains one at a time;
 * after each domain the envelope is saved (fsync'd) on the worker pool, so a recipient the
 * remote accepted is recorded before the next step and never sent twice after a crash.
 * Record, then deliver: a run starts with a save too, and no domain is tried unless the save
 * just before it succeeded, so a spool that cannot record outcomes (a full disk) stops
 * deliveries instead of sending mail whose outcome would be forgotten. */
#include "queue/queue.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "bounds.h"
#include "fsutil.h"
#include "inbox.h"
#include "log.h"
#include "mail/dsn.h"
#include "mail/dsn_params.h"
#include "mail/trace.h"
#include "queue/delivery.h"
#include "queue/dns.h"
#include "queue/spool.h"
#include "store/maildrop.h"
#include "worker.h"

/* How often due entries are looked for. */
#define QUEUE_TICK_SECONDS 1

struct queue_item {
	struct queue_item *next;
	struct spool_entry entry;
	bool busy;
	bool flush_requested; /* a flush came while a run was in progress: retry right after it */
	/* The run in progress. */
	char **domains;          /* distinct domains of pending recipients (one NULL: smarthost) */
	size_t domain_count, domain_index;
	struct delivery_recipient *group;
	size_t *group_map;       /* group index -> entry recipient index */
	size_t group_count;
	char **notify_words;
	int save_status;
	int64_t run_started;
};

struct queue {
	struct event_base *base;
	const struct config *cfg;
	struct worker_pool *workers;
	struct dns_resolver *dns;
	SSL_CTX *tls_ctx;
	SSL_CTX *relay_tls_ctx; /* NULL unless delivery_relay_verified() */
	struct queue_item *items;
	struct event *tick;
	struct inbox *added; /* ids committed on other threads' loops */
	unsigned running;
	bool stopping;
};

static void run_next_domain(struct queue *q, struct queue_item *item);
static void run_finish(struct queue *q, struct queue_item *item);

/* ---- helpers ---- */

static const char *domain_of(const char *address)
{
	const char *at = strrchr(address, '@');

	return at ? at + 1 : "";
}

/* The recipients of the domain being tried. */
static void free_group(struct queue_item *item)
{
	for (size_t i = 0; i < item->group_count; i++)
		free(item->notify_words[i]);
	free(item->notify_words);
	free(item->group);
	free(item->group_map);
	item->notify_words = NULL;
	item->group = NULL;
	item->group_map = NULL;
	item->group_count = 0;
}

static void free_run(struct queue_item *item)
{
	for (size_t i = 0; i < item->domain_count; i++)
		free(item->domains[i]);
	free(item->domains);
	item->domains = NULL;
	item->domain_count = item->domain_index = 0;
	free_group(item);
}

static int64_t backoff(const struct config *cfg, unsigned attempts)
{
	int64_t delay = cfg->queue_retry_base;

	for (unsigned i = 1; i < attempts && delay < QUEUE_MAX_RETRY_SECONDS; i++)
		delay *= 2;
	if (delay > QUEUE_MAX_RETRY_SECONDS)
		delay = QUEUE_MAX_RETRY_SECONDS;
	return delay < 1 ? 1 : delay;
}

/* ---- saving (worker) ---- */

struct save_job {
	struct queue *q;
	struct queue_item *item;
	void (*then)(struct queue *q, struct queue_item *item);
};

static void save_work(void *arg)
{
	struct save_job *job = arg;

	job->item->save_status = spool_save(job->q->cfg->spool_path, &job->item->entry);
	if (job->item->save_status != 0)
		log_error("queue", "event=save_failed id=%s error=\"%s\"", job->item->entry.id,
			strerror(errno));
}

static void save_done(void *arg)
{
	struct save_job *job = arg;

	job->then(job->q, job->item);
	free(job);
}

static void save_then(struct queue *q, struct queue_item *item,
	void (*then)(struct queue *q, struct queue_item *item))
{
	struct save_job *job = xcalloc(1, sizeof(*job));

	job->q = q;
	job->item = item;
	job->then = then;
	worker_pool_submit(q->workers, save_work, save_done, job);
}

/* ---- one domain ---- */

/* Records one domain's outcome in the entry (the caller saves it). */
static void group_done(struct queue_item *item, const struct smtp_client_result *results,
	const bool *remote_dsn)
{
	int64_t now = (int64_t)time(NULL);

	for (size_t i = 0; i < item->group_count; i++) {
		struct spool_recipient *r = &item->entry.recipients[item->group_map[i]];
		const struct smtp_client_result *res = &results[i];
		char error[SMTP_CLIENT_TEXT_MAX + 64];
		char quoted[SMTP_CLIENT_TEXT_MAX + 64];

		if (res->code)
			snprintf(error, sizeof(error), "smtp; %s", res->text);
		else
			snprintf(error, sizeof(error), "%s", res->text);
		r->last_attempt = now;
		spool_set_string(&r->status, res->enhanced[0] ? res->enhanced : NULL);
		spool_set_string(&r->remote_mta, res->remote_host[0] ? res->remote_host : NULL);
		switch (res->status) {
		case SMTP_CLIENT_DELIVERED:
			r->state = SPOOL_RCPT_DELIVERED;
			r->remote_dsn = remote_dsn[i];
			spool_set_string(&r->last_error, NULL);
			log_info("queue", "event=delivered id=%s to=%s relay=%s status=%s",
				item->entry.id, r->address, res->remote_host, res->enhanced);
			break;
		case SMTP_CLIENT_PERMFAIL:
			r->state = SPOOL_RCPT_FAILED;
			spool_set_string(&r->last_error, error);
			log_warn("queue", "event=bounced id=%s to=%s status=%s error=%s",
				item->entry.id, r->address, res->enhanced,
				log_quote(quoted, sizeof(quoted), res->text, strlen(res->text)));
			break;
		case SMTP_CLIENT_TEMPFAIL:
		case SMTP_CLIENT_PENDING:
			spool_set_string(&r->last_error, error);
			log_info("queue", "event=deferred id=%s to=%s status=%s error=%s",
				item->entry.id, r->address, res->enhanced,
				log_quote(quoted, sizeof(quoted), res->text, strlen(res->text)));
			break;
		}
	}
	free_group(item);
	item->domain_index++;
}

struct group_context {
	struct queue *q;
	struct queue_item *item;
	char *message_path;
};

static void group_done_cb(void *arg, const struct smtp_client_result *results,
	const bool *remote_dsn)
{
	struct group_context *ctx = arg;
	struct queue *q = ctx->q;
	struct queue_item *item = ctx->item;

	free(ctx->message_path);
	free(ctx);
	group_done(item, results, remote_dsn);
	save_then(q, item, run_next_domain);
}

static void run_next_domain(struct queue *q, struct queue_item *item)
{
	struct spool_entry *e = &item->entry;
	const char *domain;

	if (item->save_status != 0 && item->domain_index < item->domain_count) {
		/* The outcome of the next delivery could not be recorded either: after a crash
		 * it would be sent again. The recipients stay PENDING for the next run. */
		log_warn("queue", "event=attempt_deferred id=%s reason=\"the spool cannot record the attempt\"",
			e->id);
		run_finish(q, item);
		return;
	}
	if (item->domain_index >= item->domain_count) {
		run_finish(q, item);
		return;
	}
	domain = item->domains[item->domain_index];
	item->group = xcalloc(e->recipient_count, sizeof(*item->group));
	item->group_map = xcalloc(e->recipient_count, sizeof(*item->group_map));
	item->notify_words = xcalloc(e->recipient_count, sizeof(*item->notify_words));
	item->group_count = 0;
	for (size_t i = 0; i < e->recipient_count; i++) {
		struct spool_recipient *r = &e->recipients[i];
		if (r->state != SPOOL_RCPT_PENDING)
			continue;
		if (domain && strcasecmp(domain_of(r->address), domain) != 0)
			continue;
		size_t g = item->group_count++;
		item->group_map[g] = i;
		item->notify_words[g] = dsn_notify_format(r->notify);
		item->group[g].address = r->address;
		item->group[g].notify = item->notify_words[g];
		item->group[g].orcpt = r->orcpt;
	}
	if (item->group_count == 0) {
		item->domain_index++;
		run_next_domain(q, item);
		return;
	}
	struct group_context *ctx = xcalloc(1, sizeof(*ctx));
	ctx->q = q;
	ctx->item = item;
	ctx->message_path = spool_message_path(q->cfg->spool_path, e->id);
	struct delivery_request req = {
		.base = q->base,
		.cfg = q->cfg,
		.dns = q->dns,
		.tls_ctx = q->tls_ctx,
		.relay_tls_ctx = q->relay_tls_ctx,
		.message_path = ctx->message_path,
		.sender = e->sender,
		.domain = domain,
		.ret = dsn_ret_name((enum dsn_ret)e->ret),
		.envid = e->envid,
		.size = e->size,
		.body_8bit = e->body_8bit,
		.smtputf8 = e->smtputf8,
		.recipients = item->group,
		.recipient_count = item->group_count,
	};
	delivery_start(&req, group_done_cb, ctx);
}

/* ---- DSNs and the end of a run (worker) ---- */

struct report_job {
	struct queue *q;
	struct queue_item *item;
	bool removed;
};

/* Puts one report about the recipients selected by kind into the sender's maildrop.
 * Returns 0 (also when nothing was due), or -1 when it could not be stored. */
static int deliver_report(struct queue *q, struct spool_entry *e, enum dsn_action kind,
	const bool *selected)
{
	const struct server_config *server;
	struct dsn_recipient *list;
	size_t count = 0;
	int status = 0;

	list = xcalloc(e->recipient_count, sizeof(*list));
	for (size_t i = 0; i < e->recipient_count; i++) {
		const struct spool_recipient *r = &e->recipients[i];
		if (!selected[i])
			continue;
		struct dsn_recipient *d = &list[count++];
		d->address = r->address;
		d->original = r->orcpt;
		d->action = kind == DSN_ACTION_DELIVERED ?
			(r->remote_dsn ? DSN_ACTION_DELIVERED : DSN_ACTION_RELAYED) : kind;
		d->status = r->state == SPOOL_RCPT_EXPIRED ? "4.4.7" :
			kind == DSN_ACTION_DELIVERED ? "2.0.0" : r->status;
		d->diagnostic = r->last_error;
		d->remote_mta = r->remote_mta;
		d->last_attempt = (time_t)r->last_attempt;
		if (kind == DSN_ACTION_DELAYED)
			d->will_retry_until = (time_t)(e->created + q->cfg->queue_lifetime);
	}
	server = config_find_domain(q->cfg, e->sender_domain, strlen(e->sender_domain));
	if (count == 0 || !server) {
		if (count && !server)
			log_warn("queue", "event=dsn_dropped id=%s reason=\"sender domain %s is not ours\"",
				e->id, e->sender_domain);
		free(list);
		return 0;
	}

	char *message_path = spool_message_path(q->cfg->spool_path, e->id);
	int fd = open(message_path, O_RDONLY | O_CLOEXEC);
	char *head = xmalloc(DSN_HEADERS_MAX);
	ssize_t head_len = fd >= 0 ? pread(fd, head, DSN_HEADERS_MAX, 0) : 0;
	if (head_len < 0)
		head_len = 0;
	unsigned char random[8];
	char token[DSN_TOKEN_MAX + 1];
	RAND_bytes(random, sizeof(random));
	snprintf(token, sizeof(token), "%s.%02x%02x%02x%02x%02x%02x%02x%02x", e->id, random[0],
		random[1], random[2], random[3], random[4], random[5], random[6], random[7]);
	struct dsn_report report = {
		.reporting_mta = q->cfg->hostname,
		.token = token,
		.queue_id = e->id,
		.sender = e->sender,
		.envid = e->envid,
		.date = time(NULL),
		.arrival_date = (time_t)e->created,
		.returned = dsn_return_for(e->ret == SPOOL_RET_HDRS, list, count),
		.original_headers = head,
		.original_headers_len = (size_t)head_len,
		.original_8bit = e->body_8bit || e->smtputf8,
		.recipients = list,
		.recipient_count = count,
	};
	if (fd < 0)
		report.returned = DSN_RETURN_HEADERS;
	struct strbuf out;
	char boundary[DSN_BOUNDARY_MAX + 1];
	struct maildrop_delivery md;
	strbuf_init(&out);
	/* RFC 3461 6.1: a DSN goes out with the null reverse-path. */
	mail_trace_return_path(&out, "");
	mail_trace_delivered_to(&out, e->sender);
	if (dsn_compose(&report, &out, boundary) != 0 ||
	    maildrop_delivery_begin(&md, server->maildrop_path) != 0) {
		status = -1;
	} else {
		maildrop_delivery_write(&md, out.data, out.len);
		if (report.returned == DSN_RETURN_FULL) {
			char chunk[16384];
			off_t offset = 0;
			ssize_t n;
			while ((n = pread(fd, chunk, sizeof(chunk), offset)) > 0) {
				maildrop_delivery_write(&md, chunk, (size_t)n);
				offset += n;
			}
			if (n < 0)
				md.error = errno;
		}
		strbuf_reset(&out);
		dsn_compose_end(boundary, &out);
		maildrop_delivery_write(&md, out.data, out.len);
		status = maildrop_delivery_commit(&md);
		maildrop_delivery_release(&md);
	}
	if (status == 0)
		log_info("queue", "event=dsn id=%s action=%s to=%s recipients=%zu", e->id,
			dsn_action_name(kind), e->sender, count);
	else
		log_error("queue", "event=dsn_failed id=%s error=\"%s\"", e->id, strerror(errno));
	strbuf_free(&out);
	free(head);
	if (fd >= 0)
		close(fd);
	free(message_path);
	free(list);
	return status;
}

static void report_work(void *arg)
{
	struct report_job *job = arg;
	struct queue *q = job->q;
	struct spool_entry *e = &job->item->entry;
	bool *failed = xcalloc(e->recipient_count, sizeof(bool));
	bool *delayed = xcalloc(e->recipient_count, sizeof(bool));
	bool *succeeded = xcalloc(e->recipient_count, sizeof(bool));
	bool all_final = true;
	/* RFC 3461 6.1 / RFC 5321 4.5.5: no DSN about a message with the null sender. */
	bool may_report = e->sender[0] != '\0';

	for (size_t i = 0; i < e->recipient_count; i++) {
		struct spool_recipient *r = &e->recipients[i];
		switch (r->state) {
		case SPOOL_RCPT_FAILED:
		case SPOOL_RCPT_EXPIRED:
			if (!r->reported)
				failed[i] = may_report && spool_notify_wants(r, SPOOL_NOTIFY_FAILURE);
			break;
		case SPOOL_RCPT_DELIVERED:
			/* RFC 3461 5.2.2: a next hop that took NOTIFY reports success itself. */
			if (!r->reported)
				succeeded[i] = may_report && !r->remote_dsn &&
					spool_notify_wants(r, SPOOL_NOTIFY_SUCCESS);
			break;
		case SPOOL_RCPT_PENDING:
			all_final = false;
			/* Only for an explicit NOTIFY=DELAY, and once (RFC 3464 2.3.3). */
			if (!r->delay_reported && e->attempts > 0 && (r->notify & SPOOL_NOTIFY_DELAY))
				delayed[i] = may_report && spool_notify_wants(r, SPOOL_NOTIFY_DELAY);
			break;
		}
	}
	/* A report that cannot be stored is tried again on the next run: the flags stay. */
	if (deliver_report(q, e, DSN_ACTION_FAILED, failed) == 0)
		for (size_t i = 0; i < e->recipient_count; i++)
			if (e->recipients[i].state == SPOOL_RCPT_FAILED ||
			    e->recipients[i].state == SPOOL_RCPT_EXPIRED)
				e->recipients[i].reported = true;
	if (deliver_report(q, e, DSN_ACTION_DELIVERED, succeeded) == 0)
		for (size_t i = 0; i < e->recipient_count; i++)
			if (e->recipients[i].state == SPOOL_RCPT_DELIVERED)
				e->recipients[i].reported = true;
	if (deliver_report(q, e, DSN_ACTION_DELAYED, delayed) == 0)
		for (size_t i = 0; i < e->recipient_count; i++)
			if (delayed[i])
				e->recipients[i].delay_reported = true;
	bool all_reported = true;
	for (size_t i = 0; i < e->recipient_count; i++)
		if (e->recipients[i].state != SPOOL_RCPT_PENDING && !e->recipients[i].reported)
			all_reported = false;
	if (all_final && all_reported) {
		if (spool_remove(q->cfg->spool_path, e->id) == 0) {
			job->removed = true;
			log_info("queue", "event=removed id=%s", e->id);
		}
	} else if (spool_save(q->cfg->spool_path, e) != 0) {
		log_error("queue", "event=save_failed id=%s error=\"%s\"", e->id, strerror(errno));
	}
	free(failed);
	free(delayed);
	free(succeeded);
}

static void unlink_item(struct queue *q, struct queue_item *item)
{
	struct queue_item **p = &q->items;

	while (*p && *p != item)
		p = &(*p)->next;
	if (*p)
		*p = item->next;
	spool_entry_free(&item->entry);
	free(item);
}

static void report_done(void *arg)
{
	struct report_job *job = arg;
	struct queue *q = job->q;
	struct queue_item *item = job->item;

	item->busy = false;
	q->running--;
	if (job->removed)
		unlink_item(q, item);
	free(job);
}

static void run_finish(struct queue *q, struct queue_item *item)
{
	struct spool_entry *e = &item->entry;
	int64_t now = (int64_t)time(NULL);

	free_run(item);
	e->attempts++;
	e->last_attempt = now;
	e->next_attempt = item->flush_requested ? now : now + backoff(q->cfg, e->attempts);
	item->flush_requested = false;
	struct report_job *job = xcalloc(1, sizeof(*job));
	job->q = q;
	job->item = item;
	worker_pool_submit(q->workers, report_work, report_done, job);
}

/* ---- starting runs ---- */

static void run_start(struct queue *q, struct queue_item *item)
{
	struct spool_entry *e = &item->entry;
	int64_t now = (int64_t)time(NULL);

	item->busy = true;
	item->run_started = now;
	q->running++;
	if (now >= e->created + (int64_t)q->cfg->queue_lifetime) {
		/* RFC 5321 4.5.4.1: give up after the queue lifetime; 4.4.7 says why. */
		for (size_t i = 0; i < e->recipient_count; i++) {
			struct spool_recipient *r = &e->recipients[i];
			if (r->state != SPOOL_RCPT_PENDING)
				continue;
			r->state = SPOOL_RCPT_EXPIRED;
			if (!r->last_error)
				spool_set_string(&r->last_error, "delivery time expired");
			log_warn("queue", "event=expired id=%s to=%s", e->id, r->address);
		}
		run_finish(q, item);
		return;
	}
	item->domains = xcalloc(e->recipient_count + 1, sizeof(char *));
	if (q->cfg->outbound_relay_host) {
		item->domains[0] = NULL; /* one group: everything to the smarthost */
		item->domain_count = 1;
	} else {
		for (size_t i = 0; i < e->recipient_count; i++) {
			const struct spool_recipient *r = &e->recipients[i];
			if (r->state != SPOOL_RCPT_PENDING)
				continue;
			const char *domain = domain_of(r->address);
			bool seen = false;
			for (size_t j = 0; j < item->domain_count; j++)
				if (strcasecmp(item->domains[j], domain) == 0)
					seen = true;
			if (!seen)
				item->domains[item->domain_count++] = xstrdup(domain);
		}
	}
	item->domain_index = 0;
	/* Record, then deliver: this save proves the spool can take the outcome. */
	e->last_attempt = now;
	save_then(q, item, run_next_domain);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	int64_t now = (int64_t)time(NULL);

	(void)fd;
	(void)what;
	for (struct queue_item *item = q->items; item && !q->stopping; item = item->next) {
		if (q->running >= QUEUE_MAX_PARALLEL_DELIVERIES)
			break;
		if (!item->busy && item->entry.next_attempt <= now)
			run_start(q, item);
	}
}

static struct queue_item *load_item(struct queue *q, const char *id)
{
	struct queue_item *item = xcalloc(1, sizeof(*item));
	char err[512];

	if (spool_load(q->cfg->spool_path, id, &item->entry, err, sizeof(err)) != 0) {
		log_error("queue", "event=load_failed id=%s error=\"%s\"", id, err);
		free(item);
		return NULL;
	}
	item->next = q->items;
	q->items = item;
	return item;
}

static void write_pid_file(const struct config *cfg)
{
	char path[4096], tmp[4096], pid[32];

	snprintf(path, sizeof(path), "%s/%s", cfg->spool_path, QUEUE_PID_FILE);
	snprintf(tmp, sizeof(tmp), "%s/tmp/%s", cfg->spool_path, QUEUE_PID_FILE);
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	/* A leftover tmp file (a crash in between) is not ours to keep. */
	unlink(tmp);
	if (fs_durable_write_file(tmp, path, pid, (size_t)n, NULL) != 0)
		log_warn("queue", "event=pid_file_failed path=%s", path);
}

/* An id posted by queue_add_from_any_thread, now on the queue's thread. */
static void add_posted(void *ctx, void *id)
{
	queue_add(ctx, id);
	free(id);
}

struct queue *queue_new(struct event_base *base, const struct config *cfg,
	struct worker_pool *workers, char *err, size_t errsz)
{
	struct queue *q;
	char **ids = NULL;
	size_t count = 0;
	SSL_CTX *relay_tls_ctx = NULL;

	if (delivery_relay_verified(cfg)) {
		relay_tls_ctx = delivery_relay_tls_context_new(cfg, err, errsz);
		if (!relay_tls_ctx)
			return NULL;
	}
	if (spool_init(cfg->spool_path, err, errsz) != 0) {
		SSL_CTX_free(relay_tls_ctx);
		return NULL;
	}
	spool_recover(cfg->spool_path);
	q = xcalloc(1, sizeof(*q));
	q->base = base;
	q->cfg = cfg;
	q->workers = workers;
	q->relay_tls_ctx = relay_tls_ctx;
	q->dns = dns_resolver_new(base, cfg->dns_resolver, err, errsz);
	if (!q->dns) {
		SSL_CTX_free(relay_tls_ctx);
		free(q);
		return NULL;
	}
	q->tls_ctx = delivery_tls_context_new();
	if (spool_list(cfg->spool_path, &ids, &count) == 0) {
		for (size_t i = 0; i < count; i++)
			load_item(q, ids[i]);
		spool_list_free(ids, count);
	}
	write_pid_file(cfg);
	q->added = inbox_new(base, add_posted, q);
	q->tick = event_new(base, -1, EV_PERSIST, tick, q);
	struct timeval every = {QUEUE_TICK_SECONDS, 0};
	event_add(q->tick, &every);
	log_info("queue", "event=started spool=%s entries=%zu", cfg->spool_path, count);
	return q;
}

void queue_add(struct queue *q, const char *id)
{
	struct queue_item *item = load_item(q, id);

	if (item && !q->stopping && q->running < QUEUE_MAX_PARALLEL_DELIVERIES)
		run_start(q, item);
}

void queue_add_from_any_thread(struct queue *q, const char *id)
{
	inbox_post(q->added, xstrdup(id));
}

void queue_flush(struct queue *q)
{
	int64_t now = (int64_t)time(NULL);
	size_t n = 0;

	for (struct queue_item *item = q->items; item; item = item->next, n++) {
		if (item->busy)
			item->flush_requested = true; /* its run decides the next attempt: make it now */
		else
			item->entry.next_attempt = now;
	}
	log_info("queue", "event=flush entries=%zu", n);
	tick(-1, 0, q);
}

void queue_stop(struct queue *q)
{
	q->stopping = true;
}

bool queue_idle(const struct queue *q)
{
	return q->running == 0;
}

void queue_free(struct queue *q)
{
	char path[4096];

	if (!q)
		return;
	snprintf(path, sizeof(path), "%s/%s", q->cfg->spool_path, QUEUE_PID_FILE);
	unlink(path);
	/* Already in the spool: spool_list finds them at the next start. */
	inbox_free(q->added, free);
	event_free(q->tick);
	dns_resolver_free(q->dns);
	SSL_CTX_free(q->tls_ctx);
	SSL_CTX_free(q->relay_tls_ctx);
	while (q->items) {
		struct queue_item *next = q->items->next;
		free_run(q->items);
		spool_entry_free(&q->items->entry);
		free(q->items);
		q->items = next;
	}
	free(q);
}

long queue_pid_file_read(const char *spool_path)
{
	char path[4096], buf[32];
	long pid = 0;

	snprintf(path, sizeof(path), "%s/%s", spool_path, QUEUE_PID_FILE);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f))
		pid = strtol(buf, NULL, 10);
	fclose(f);
	if (pid <= 0 || pid > INT_MAX) { /* pid_t is an int */
		errno = EINVAL;
		return 0;
	}
	return pid;
}

/* ---- `mailpopbox queue` ---- */

static void print_age(int64_t seconds, char *buf, size_t size)
{
	if (seconds < 120)
		snprintf(buf, size, "%llds", (long long)seconds);
	else if (seconds < 7200)
		snprintf(buf, size, "%lldm", (long long)seconds / 60);
	else if (seconds < 172800)
		snprintf(buf, size, "%lldh", (long long)seconds / 3600);
	else
		snprintf(buf, size, "%lldd", (long long)seconds / 86400);
}

int queue_command(const struct config *cfg, bool flush)
{
	char **ids = NULL;
	size_t count = 0;
	int64_t now = (int64_t)time(NULL);

	if (flush) {
		long pid = queue_pid_file_read(cfg->spool_path);
		if (pid == 0) {
			fprintf(stderr, "mailpopbox: no running server (%s/%s: %s)\n",
				cfg->spool_path, QUEUE_PID_FILE,
				errno == EINVAL ? "not a process id" : strerror(errno));
			return 1;
		}
		if (kill((pid_t)pid, SIGUSR1) != 0) {
			fprintf(stderr, "mailpopbox: cannot signal server %ld: %s\n", pid,
				strerror(errno));
			return 1;
		}
		printf("asked the server (pid %ld) to retry the queue now\n", pid);
		return 0;
	}
	if (spool_list(cfg->spool_path, &ids, &count) != 0) {
		fprintf(stderr, "mailpopbox: cannot read the queue in %s: %s\n", cfg->spool_path,
			strerror(errno));
		return 1;
	}
	if (count == 0)
		printf("queue is empty\n");
	for (size_t i = 0; i < count; i++) {
		struct spool_entry e;
		char err[512], age[32], next[32];
		if (spool_load(cfg->spool_path, ids[i], &e, err, sizeof(err)) != 0) {
			printf("%s  (unreadable: %s)\n", ids[i], err);
			continue;
		}
		print_age(now - e.created, age, sizeof(age));
		if (e.next_attempt <= now)
			snprintf(next, sizeof(next), "now");
		else
			print_age(e.next_attempt - now, next, sizeof(next));
		printf("%s  age %s  size %llu  from <%s>  attempts %u  next attempt in %s\n", e.id,
			age, (unsigned long long)e.size, e.sender, e.attempts, next);
		for (size_t r = 0; r < e.recipient_count; r++) {
			const struct spool_recipient *rc = &e.recipients[r];
			printf("    %-9s <%s>%s%s\n", spool_state_name(rc->state), rc->address,
				rc->last_error ? "  " : "", rc->last_error ? rc->last_error : "");
		}
		spool_entry_free(&e);
	}
	spool_list_free(ids, count);
	return 0;
}

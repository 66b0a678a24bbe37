/* push/gmail.h: the Gmail API transport of push delivery: users.messages.import as a multipart
 * upload (Gmail classifies the message as if it had come by SMTP, unlike insert), and
 * users.messages.list with q=rfc822msgid: to look up a message in doubt after a crash.
 * Blocking with bounded deadlines (push/http.h); runs on the push engine's thread. The
 * multipart building and the verdicts are pure, for the unit tests. */
#ifndef MAILPOPBOX_PUSH_GMAIL_H
#define MAILPOPBOX_PUSH_GMAIL_H

#include <stdbool.h>
#include <stddef.h>

#include "push/oauth.h"
#include "push/transport.h"
#include "strbuf.h"

#define GMAIL_SCOPE_INSERT "https://www.googleapis.com/auth/gmail.insert"
#define GMAIL_SCOPE_READ "https://www.googleapis.com/auth/gmail.readonly"
#define GMAIL_DEFAULT_API_URL "https://gmail.googleapis.com"

struct gmail_client;

struct gmail_client *gmail_client_new(const char *api_url, const char *ca_file);
void gmail_client_free(struct gmail_client *g);
/* users.messages.import, multipart upload: labelIds INBOX+UNREAD (SPAM+UNREAD for item->junk),
 * internalDateSource=dateHeader. 401 → forgets the token, refreshes once, retries once.
 * Fills item->status (also returned), item->detail and item->remote_id (Gmail's id). */
enum push_status gmail_import(struct gmail_client *g, struct oauth_session *auth,
	struct push_item *item, char *err, size_t errsz);
/* messages.list?q=rfc822msgid:ID (spam and trash included); needs a read scope
 * (oauth_has_scope; PUSH_AUTH without one). *found set on PUSH_OK. */
enum push_status gmail_find(struct gmail_client *g, struct oauth_session *auth,
	const char *message_id, bool *found, char *err, size_t errsz);

/* Pure parts. */
/* A fresh random multipart boundary (RFC 2046 5.1.1: at most 70 characters; 128 random bits,
 * so the message cannot contain it but by a chance of 2^-128). out holds 64 octets. */
void gmail_new_boundary(char *out, size_t outsz);
/* The multipart/related body around the message (Google's "multipart upload"): prefix holds
 * the metadata part ({"labelIds": [...]}) and the message part's header; suffix the close
 * delimiter. The message goes between them as is. */
void gmail_multipart_build(const char *boundary, bool junk, struct strbuf *prefix,
	struct strbuf *suffix);
/* The verdict on an API answer (PUSH.md): 200 with "id" → PUSH_OK (id copied to remote_id);
 * 401, 403 insufficient permissions → PUSH_AUTH; 429, 5xx, 403 rate limits, other odd
 * answers → PUSH_TEMPORARY; 400, 413 (the message itself) → PUSH_REFUSED. detail gets
 * "HTTP N: Google's message". remote_id may be NULL (list answers). */
enum push_status gmail_verdict(long http_status, const char *body, size_t len, char *remote_id,
	size_t idsz, char *detail, size_t detailsz);
/* Whether a 200 answer to messages.list lists a message. -1 when it is not such an answer. */
int gmail_list_found(const char *body, size_t len);

#endif

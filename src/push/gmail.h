/* push/gmail.h: the Gmail API calls push delivery uses (users.messages.import, messages.list). */
#ifndef MAILPOPBOX_PUSH_GMAIL_H
#define MAILPOPBOX_PUSH_GMAIL_H

#include <stdbool.h>
#include <stddef.h>

#include "push/oauth.h"
#include "push/transport.h"

struct gmail_client *gmail_client_new(const char *api_url, const char *ca_file);
void gmail_client_free(struct gmail_client *g);
/* users.messages.import, multipart upload: labelIds INBOX+UNREAD (SPAM+UNREAD for item->junk),
 * internalDateSource=dateHeader. 401 → forgets the token, refreshes once, retries once. */
enum push_status gmail_import(struct gmail_client *g, struct oauth_session *auth,
	struct push_item *item, char *err, size_t errsz);
/* messages.list?q=rfc822msgid:ID; needs a read scope (oauth_has_scope). */
enum push_status gmail_find(struct gmail_client *g, struct oauth_session *auth,
	const char *message_id, bool *found, char *err, size_t errsz);
#define GMAIL_SCOPE_INSERT "https://www.googleapis.com/auth/gmail.insert"
#define GMAIL_SCOPE_READ "https://www.googleapis.com/auth/gmail.readonly"

#endif

/* push/gmail.c: the Gmail API transport (see gmail.h): users.messages.import as one multipart
 * upload streamed from the maildrop file, users.messages.list for the after-crash lookup, and
 * Google's answers turned into push verdicts. */
#include "push/gmail.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bounds.h"
#include "log.h"
#include "push/http.h"

struct gmail_client {
	char *api_url; /* without a trailing "/" */
	struct http_client *http;
};

struct gmail_client *gmail_client_new(const char *api_url, const char *ca_file)
{
	struct gmail_client *g = xcalloc(1, sizeof(*g));
	if (api_url == NULL || api_url[0] == '\0')
		api_url = GMAIL_DEFAULT_API_URL;
	size_t len = strlen(api_url);
	while (len > 0 && api_url[len - 1] == '/')
		len--;
	g->api_url = xstrndup(api_url, len);
	g->http = http_client_new(ca_file);
	return g;
}

void gmail_client_free(struct gmail_client *g)
{
	if (g == NULL)
		return;
	http_client_free(g->http);
	free(g->api_url);
	free(g);
}

void gmail_new_boundary(char *out, size_t outsz)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char random[16];

	if (RAND_bytes(random, sizeof(random)) != 1)
		fatal("RAND_bytes failed");
	struct strbuf sb;
	strbuf_init(&sb);
	strbuf_append_str(&sb, "mailpopbox-");
	for (size_t i = 0; i < sizeof(random); i++) {
		char pair[2] = {hex[random[i] >> 4], hex[random[i] & 15]};
		strbuf_append(&sb, pair, 2);
	}
	snprintf(out, outsz, "%s", sb.data);
	strbuf_free(&sb);
}

void gmail_multipart_build(const char *boundary, bool junk, struct strbuf *prefix,
	struct strbuf *suffix)
{
	/* Google's "multipart upload": the metadata (a Message resource: labelIds) as JSON, then
	 * the media. RFC 2046 5.1.1: the CRLF before a delimiter belongs to the delimiter, so the
	 * message's own last CRLF stays part of the message. */
	strbuf_appendf(prefix,
		"--%s\r\n"
		"Content-Type: application/json; charset=UTF-8\r\n"
		"\r\n"
		"{\"labelIds\":[\"%s\",\"UNREAD\"]}\r\n"
		"--%s\r\n"
		"Content-Type: message/rfc822\r\n"
		"\r\n",
		boundary, junk ? "SPAM" : "INBOX", boundary);
	strbuf_appendf(suffix, "\r\n--%s--\r\n", boundary);
}

/* Google's error document: {"error": {"code": N, "message": "...", "status": "...",
 * "errors": [{"reason": "...", ...}]}}. */
static bool is_rate_limit(const char *reason)
{
	return reason != NULL && (strstr(reason, "ateLimit") != NULL ||
				  strstr(reason, "RATE_LIMIT") != NULL ||
				  strstr(reason, "uota") != NULL ||
				  strcmp(reason, "dailyLimitExceeded") == 0 ||
				  strcmp(reason, "RESOURCE_EXHAUSTED") == 0);
}

enum push_status gmail_verdict(long http_status, const char *body, size_t len, char *remote_id,
	size_t idsz, char *detail, size_t detailsz)
{
	json_error_t jerr;
	json_t *root = json_loadb(body != NULL ? body : "", len, 0, &jerr);
	json_t *error = json_object_get(root, "error");
	const char *message = json_string_value(json_object_get(error, "message"));
	const char *status_name = json_string_value(json_object_get(error, "status"));
	const char *reason = json_string_value(
		json_object_get(json_array_get(json_object_get(error, "errors"), 0), "reason"));
	enum push_status verdict;

	if (message == NULL)
		message = json_string_value(error); /* {"error": "..."} from a proxy */
	if (http_status == 200) {
		const char *id = json_string_value(json_object_get(root, "id"));
		if (remote_id == NULL) {
			verdict = PUSH_OK;
			snprintf(detail, detailsz, "HTTP 200");
		} else if (id != NULL && id[0] != '\0' && strlen(id) < idsz) {
			snprintf(remote_id, idsz, "%s", id);
			snprintf(detail, detailsz, "HTTP 200 id %s", id);
			verdict = PUSH_OK;
		} else {
			snprintf(detail, detailsz, "HTTP 200 without a message id");
			verdict = PUSH_TEMPORARY;
		}
		json_decref(root);
		return verdict;
	}
	if (http_status == 401)
		verdict = PUSH_AUTH;
	else if (http_status == 403)
		verdict = is_rate_limit(reason) || is_rate_limit(status_name) ? PUSH_TEMPORARY
									       : PUSH_AUTH;
	else if (http_status == 400 || http_status == 413)
		verdict = PUSH_REFUSED;
	else
		verdict = PUSH_TEMPORARY; /* 429, 5xx, and what no message deserves to lose by */
	if (message != NULL)
		snprintf(detail, detailsz, "HTTP %ld%s%s: %s", http_status,
			reason != NULL ? " " : "", reason != NULL ? reason : "", message);
	else
		snprintf(detail, detailsz, "HTTP %ld", http_status);
	json_decref(root);
	return verdict;
}

int gmail_list_found(const char *body, size_t len)
{
	json_error_t jerr;
	json_t *root = json_loadb(body != NULL ? body : "", len, 0, &jerr);
	int found = -1;

	if (json_is_object(root)) {
		json_t *messages = json_object_get(root, "messages");
		/* An empty result has no "messages" at all, only resultSizeEstimate 0. */
		if (messages == NULL)
			found = 0;
		else if (json_is_array(messages))
			found = json_array_size(messages) > 0;
	}
	json_decref(root);
	return found;
}

/* One API call with the session's access token; a 401 once makes it forget the token, get a
 * new one and call again (the token may have expired or been revoked early). */
static enum push_status call_api(struct gmail_client *g, struct oauth_session *auth,
	struct http_request *req, struct http_response *resp, char *err, size_t errsz)
{
	char token[OAUTH_ACCESS_TOKEN_MAX + 1];
	enum push_status status = PUSH_TEMPORARY;

	for (int attempt = 0; attempt < 2; attempt++) {
		status = oauth_access_token(auth, token, sizeof(token), err, errsz);
		if (status != PUSH_OK)
			break;
		req->bearer = token;
		int rc = http_client_run(g->http, req, resp, err, errsz);
		req->bearer = NULL;
		if (rc != 0) {
			status = PUSH_TEMPORARY;
			break;
		}
		if (resp->status != 401 || attempt == 1)
			break;
		http_response_free(resp);
		oauth_forget_access_token(auth);
	}
	OPENSSL_cleanse(token, sizeof(token));
	return status;
}

enum push_status gmail_import(struct gmail_client *g, struct oauth_session *auth,
	struct push_item *item, char *err, size_t errsz)
{
	char boundary[64];
	char content_type[128];
	struct strbuf prefix, suffix, url;
	struct http_response resp;

	item->remote_id[0] = '\0';
	gmail_new_boundary(boundary, sizeof(boundary));
	snprintf(content_type, sizeof(content_type), "multipart/related; boundary=%s", boundary);
	strbuf_init(&prefix);
	strbuf_init(&suffix);
	strbuf_init(&url);
	gmail_multipart_build(boundary, item->junk, &prefix, &suffix);
	strbuf_appendf(&url, "%s/upload/gmail/v1/users/me/messages/import"
		"?uploadType=multipart&internalDateSource=dateHeader", g->api_url);
	struct http_upload upload = {
		.prefix = prefix.data, .prefix_len = prefix.len,
		.fd = item->fd, .size = item->size,
		.suffix = suffix.data, .suffix_len = suffix.len,
	};
	struct http_request req = {
		.method = "POST",
		.url = url.data,
		.content_type = content_type,
		.upload = &upload,
	};
	http_response_init(&resp);
	enum push_status status = call_api(g, auth, &req, &resp, err, errsz);
	if (status == PUSH_OK)
		status = gmail_verdict(resp.status, resp.body.data, resp.body.len, item->remote_id,
			sizeof(item->remote_id), err, errsz);
	item->status = status;
	snprintf(item->detail, sizeof(item->detail), "%s", err);
	http_response_free(&resp);
	strbuf_free(&prefix);
	strbuf_free(&suffix);
	strbuf_free(&url);
	return status;
}

static bool has_read_scope(const struct oauth_session *auth)
{
	/* Each of these lets messages.list search (gmail.metadata does not allow q). */
	return oauth_has_scope(auth, GMAIL_SCOPE_READ) ||
	       oauth_has_scope(auth, "https://www.googleapis.com/auth/gmail.modify") ||
	       oauth_has_scope(auth, "https://mail.google.com/");
}

enum push_status gmail_find(struct gmail_client *g, struct oauth_session *auth,
	const char *message_id, bool *found, char *err, size_t errsz)
{
	struct strbuf url, query;
	struct http_response resp;

	if (!has_read_scope(auth)) {
		snprintf(err, errsz, "the token grants no read scope (%s): run mailpopbox authorize "
			"with --read-scope", GMAIL_SCOPE_READ);
		return PUSH_AUTH;
	}
	/* Gmail's search operator takes the id without its angle brackets. */
	size_t len = strlen(message_id);
	if (len >= 2 && message_id[0] == '<' && message_id[len - 1] == '>') {
		message_id++;
		len -= 2;
	}
	strbuf_init(&url);
	strbuf_init(&query);
	strbuf_append_str(&query, "rfc822msgid:");
	strbuf_append(&query, message_id, len);
	strbuf_appendf(&url, "%s/gmail/v1/users/me/messages?", g->api_url);
	http_append_param(&url, "q", query.data);
	/* Import classifies: the message may be in Spam. */
	http_append_param(&url, "includeSpamTrash", "true");
	http_append_param(&url, "maxResults", "1");
	struct http_request req = {.method = "GET", .url = url.data};
	http_response_init(&resp);
	enum push_status status = call_api(g, auth, &req, &resp, err, errsz);
	if (status == PUSH_OK) {
		status = gmail_verdict(resp.status, resp.body.data, resp.body.len, NULL, 0, err,
			errsz);
		int listed = gmail_list_found(resp.body.data, resp.body.len);
		if (status == PUSH_OK && listed < 0) {
			snprintf(err, errsz, "HTTP 200 that is not a message list");
			status = PUSH_TEMPORARY;
		} else if (status == PUSH_OK) {
			*found = listed == 1;
		} else if (status == PUSH_REFUSED) {
			status = PUSH_TEMPORARY; /* a lookup refuses no message */
		}
	}
	http_response_free(&resp);
	strbuf_free(&url);
	strbuf_free(&query);
	return status;
}

/* push/stub_gmail.c: stands in for push/gmail.c and push/oauth.c until they land (meson builds
 * it only when gmail.c is missing), so the engine builds and links alone. Every call fails as
 * a temporary error: nothing is ever marked pushed. */
#include "push/gmail.h"

#include <stdio.h>

struct gmail_client {
	int unused;
};

struct oauth_session {
	int unused;
};

static struct gmail_client stub_client;
static struct oauth_session stub_session;

struct oauth_session *oauth_session_new(const char *client_file, const char *token_file,
	const char *ca_file, char *err, size_t errsz)
{
	(void)client_file;
	(void)token_file;
	(void)ca_file;
	(void)err;
	(void)errsz;
	return &stub_session;
}

void oauth_session_free(struct oauth_session *s)
{
	(void)s;
}

enum push_status oauth_access_token(struct oauth_session *s, char *token, size_t tokensz,
	char *err, size_t errsz)
{
	(void)s;
	(void)token;
	(void)tokensz;
	snprintf(err, errsz, "OAuth not built");
	return PUSH_TEMPORARY;
}

void oauth_forget_access_token(struct oauth_session *s)
{
	(void)s;
}

bool oauth_has_scope(const struct oauth_session *s, const char *scope)
{
	(void)s;
	(void)scope;
	return false;
}

struct gmail_client *gmail_client_new(const char *api_url, const char *ca_file)
{
	(void)api_url;
	(void)ca_file;
	return &stub_client;
}

void gmail_client_free(struct gmail_client *g)
{
	(void)g;
}

enum push_status gmail_import(struct gmail_client *g, struct oauth_session *auth,
	struct push_item *item, char *err, size_t errsz)
{
	(void)g;
	(void)auth;
	(void)item;
	snprintf(err, errsz, "Gmail client not built");
	return PUSH_TEMPORARY;
}

enum push_status gmail_find(struct gmail_client *g, struct oauth_session *auth,
	const char *message_id, bool *found, char *err, size_t errsz)
{
	(void)g;
	(void)auth;
	(void)message_id;
	*found = false;
	snprintf(err, errsz, "Gmail client not built");
	return PUSH_TEMPORARY;
}

/* push/oauth.h: OAuth 2.0 for a Destination: the client file, the refresh token kept in the
 * token file, and the access token refreshed at the token_uri when needed. */
#ifndef MAILPOPBOX_PUSH_OAUTH_H
#define MAILPOPBOX_PUSH_OAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "push/transport.h"

struct oauth_session;                 /* client file + token file + the access token in memory */
struct oauth_session *oauth_session_new(const char *client_file, const char *token_file,
	const char *ca_file, char *err, size_t errsz);   /* NULL + err: unreadable/garbled JSON */
void oauth_session_free(struct oauth_session *s);
/* A valid access token (refreshed at the token_uri when missing or about to expire). PUSH_AUTH
 * on invalid_grant (revoked/expired refresh token), PUSH_TEMPORARY on network/5xx. */
enum push_status oauth_access_token(struct oauth_session *s, char *token, size_t tokensz,
	char *err, size_t errsz);
void oauth_forget_access_token(struct oauth_session *s); /* after a 401 from the API */
bool oauth_has_scope(const struct oauth_session *s, const char *scope);

#endif

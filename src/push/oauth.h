/* push/oauth.h: OAuth 2.0 for push delivery (RFC 6749): the client JSON as Google Cloud or
 * Microsoft Entra give it (OAuthClientFile), the refresh token kept in OAuthTokenFile (written
 * by `mailpopbox authorize`, mode 0600, atomic replace), and access tokens got from the
 * token_uri with the refresh token (RFC 6749 6), held only in memory and refreshed before they
 * expire. No token is ever logged. The parsers are pure, for the unit tests. */
#ifndef MAILPOPBOX_PUSH_OAUTH_H
#define MAILPOPBOX_PUSH_OAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "push/transport.h"

/* The client: what `authorize` and the refresh need from OAuthClientFile. */
struct oauth_client {
	char *client_id;
	char *client_secret; /* NULL for a public client (Entra's "mobile and desktop") */
	char *auth_uri;
	char *token_uri;
};

/* Parses a client JSON: Google's {"installed": {...}} or {"web": {...}} (client_id,
 * client_secret, auth_uri, token_uri), a flat object with the same keys (client_secret
 * optional), or an Entra app manifest (appId and signInAudience: the Microsoft identity
 * platform's v2.0 endpoints for that audience). Returns 0, or -1 with err (out untouched). */
int oauth_client_parse(const char *json, size_t len, struct oauth_client *out, char *err,
	size_t errsz);
/* oauth_client_parse of a file (at most OAUTH_FILE_MAX octets). */
int oauth_client_load(const char *path, struct oauth_client *out, char *err, size_t errsz);
void oauth_client_free(struct oauth_client *c);

/* The token file: {"refresh_token": "...", "scope": "space separated scopes"}. */
struct oauth_token_file {
	char *refresh_token;
	char *scope; /* the scopes granted, "" when the provider did not say */
};
int oauth_token_file_parse(const char *json, size_t len, struct oauth_token_file *out,
	char *err, size_t errsz);
void oauth_token_file_free(struct oauth_token_file *t);
/* Writes the token file durably (staging file, fsync, rename, directory fsync), mode 0600,
 * owned by owner:group unless owner is (uid_t)-1. Returns 0, or -1 with err. */
int oauth_token_file_store(const char *path, const char *refresh_token, const char *scope,
	uid_t owner, gid_t group, char *err, size_t errsz);

/* A token endpoint's answer (RFC 6749 5.1 success, 5.2 error). */
struct oauth_token_response {
	char *access_token;  /* NULL when the answer is an error */
	long expires_in;     /* seconds; 3600 when not given */
	char *refresh_token; /* a new (rotated) refresh token, or NULL */
	char *scope;         /* the scopes granted, or NULL */
};
/* The verdict on a token endpoint's answer: PUSH_OK with out filled (200 and an
 * access_token); PUSH_AUTH for an RFC 6749 5.2 error (invalid_grant: revoked or expired refresh
 * token; invalid_client...) or another 4xx; PUSH_TEMPORARY for 429, 5xx and unreadable 200s.
 * err names the error and its description (never a token). */
enum push_status oauth_token_response_parse(long http_status, const char *body, size_t len,
	struct oauth_token_response *out, char *err, size_t errsz);
void oauth_token_response_free(struct oauth_token_response *r);
/* Whether the space-separated list holds scope exactly. */
bool oauth_scope_list_has(const char *list, const char *scope);

/* Exchanges one grant (form parameters, already encoded, client_id and client_secret added
 * here) at the client's token_uri over http (push/http.h). */
struct http_client;
enum push_status oauth_token_request(struct http_client *http, const struct oauth_client *client,
	const char *form, struct oauth_token_response *out, char *err, size_t errsz);

struct oauth_session;                 /* client file + token file + the access token in memory */
/* NULL + err: unreadable or garbled client JSON, or a garbled token file. A token file that is
 * not there yet is no error here: oauth_access_token then says to run `authorize` (and reads
 * the file again whenever it changes, so no restart is needed after `authorize`). */
struct oauth_session *oauth_session_new(const char *client_file, const char *token_file,
	const char *ca_file, char *err, size_t errsz);
void oauth_session_free(struct oauth_session *s);
/* A valid access token (refreshed at the token_uri when missing or about to expire). PUSH_AUTH
 * on invalid_grant (revoked/expired refresh token), PUSH_TEMPORARY on network/5xx. */
enum push_status oauth_access_token(struct oauth_session *s, char *token, size_t tokensz,
	char *err, size_t errsz);
void oauth_forget_access_token(struct oauth_session *s); /* after a 401 from the API */
bool oauth_has_scope(const struct oauth_session *s, const char *scope);

#endif

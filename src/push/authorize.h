/* push/authorize.h: "mailpopbox authorize CONFIG DOMAIN": the OAuth 2.0 authorization-code
 * flow (RFC 6749 4.1) with PKCE (RFC 7636, S256) and a loopback redirect (RFC 8252 7.3) that
 * stores the refresh token in the Destination's OAuthTokenFile. The PKCE and redirect parsing
 * parts are pure, for the unit tests. */
#ifndef MAILPOPBOX_PUSH_AUTHORIZE_H
#define MAILPOPBOX_PUSH_AUTHORIZE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "strbuf.h"

/* RFC 4648 5 base64url without padding (what RFC 7636 4.1-4.2 asks for), appended to out. */
void authorize_base64url(struct strbuf *out, const void *data, size_t len);
/* A random string of base64url characters from `bytes` random octets (RFC 7636 4.1: 32
 * octets make a 43-character code_verifier). */
void authorize_random_string(struct strbuf *out, size_t bytes);
/* RFC 7636 4.2: code_challenge = BASE64URL(SHA256(ASCII(code_verifier))), appended to out. */
void authorize_pkce_challenge(struct strbuf *out, const char *verifier);
/* The scopes to ask for when --scope is not given: gmail → gmail.insert (plus gmail.readonly
 * with read_scope); imap → Google's full-mail scope for Google's token_uri, Outlook's IMAP
 * scope for Microsoft's; NULL when there is no default (--scope needed). */
const char *authorize_default_scope(enum destination_type type, const char *token_uri,
	bool read_scope);

/* What the browser brought back to the loopback listener (RFC 6749 4.1.2). */
struct authorize_redirect {
	char *code;              /* NULL when absent */
	char *state;
	char *error;             /* RFC 6749 4.1.2.1, e.g. "access_denied" */
	char *error_description;
};
/* Parses an HTTP request line ("GET /?code=...&state=... HTTP/1.1"). Returns 1 for a request
 * for "/" (out filled, free with authorize_redirect_free), 0 for another path (a favicon...),
 * -1 for something that is not an HTTP GET line. */
int authorize_parse_request_line(const char *line, struct authorize_redirect *out);
void authorize_redirect_free(struct authorize_redirect *r);

/* The command: argv holds CONFIG DOMAIN [--read-scope] [--scope S] [--port N]. Returns the
 * exit status. */
int authorize_command(int argc, char **argv);

#endif

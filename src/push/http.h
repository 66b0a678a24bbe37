/* push/http.h: the one way push/ talks HTTPS (libcurl), shared by the OAuth token endpoint
 * (push/oauth.c, push/authorize.c) and the Gmail API (push/gmail.c). Every exchange is HTTPS
 * only, with the peer's certificate and host name always verified (against TLSCAFile when set),
 * bounded connect, total and low-speed times, a bounded response body, no redirects, and
 * nothing of the request (tokens, codes) in logs: curl's verbose output is never turned on.
 * A client keeps its connection between requests (curl's connection cache). Blocking. */
#ifndef MAILPOPBOX_PUSH_HTTP_H
#define MAILPOPBOX_PUSH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

/* A request body streamed from a file between two in-memory parts (a multipart upload):
 * prefix, then size octets of fd read from offset 0, then suffix. */
struct http_upload {
	const char *prefix;
	size_t prefix_len;
	int fd;
	uint64_t size;
	const char *suffix;
	size_t suffix_len;
	/* Kept by http_client_run: */
	uint64_t position; /* octets of the whole body handed to curl so far */
	int read_errno;    /* a failed or short read of fd (ENODATA: the file shrank) */
};

struct http_request {
	const char *method;       /* "GET" or "POST" */
	const char *url;          /* https:// only */
	const char *bearer;       /* an OAuth 2.0 access token (RFC 6750 2.1), or NULL */
	const char *content_type; /* of the body, or NULL */
	const char *body;         /* an in-memory body (a form), or NULL */
	size_t body_len;
	struct http_upload *upload; /* or a streamed one, or NULL */
};

struct http_response {
	long status;        /* the HTTP status, 0 when none came */
	struct strbuf body; /* at most PUSH_HTTP_RESPONSE_MAX octets */
};

struct http_client;

/* A client trusting ca_file (NULL: the system's store). Never NULL. */
struct http_client *http_client_new(const char *ca_file);
void http_client_free(struct http_client *c);
/* Runs one exchange. Returns 0 when a response came (whatever its status; resp filled and to
 * be freed with http_response_free), or -1 with err set (connection, TLS, certificate,
 * timeout, a response body over the bound, a read error on the upload); resp is then empty. */
int http_client_run(struct http_client *c, const struct http_request *req,
	struct http_response *resp, char *err, size_t errsz);
void http_response_init(struct http_response *resp);
void http_response_free(struct http_response *resp);

/* Appends the application/x-www-form-urlencoded (or query string) encoding of s to out
 * (RFC 3986 2.3 unreserved characters kept, everything else %XX). */
void http_append_urlencoded(struct strbuf *out, const char *s);
/* Appends "&name=value", the "&" left out when out is empty or ends with "?" or "&". */
void http_append_param(struct strbuf *out, const char *name, const char *value);

#endif

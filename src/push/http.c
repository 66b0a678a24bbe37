/* push/http.c: libcurl set up once for every HTTPS exchange of push/ (see http.h): HTTPS only,
 * certificates verified, bounded times and sizes, a streamed upload body. */
#include "push/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alloc.h"
#include "bounds.h"
#include "log.h"

struct http_client {
	CURL *curl;
	char *ca_file; /* NULL: the system's store */
};

struct response_sink {
	struct http_response *resp;
	bool too_big;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
	/* Before any handle, once per process: curl_global_init is not thread-safe everywhere. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatal("curl_global_init failed");
}

struct http_client *http_client_new(const char *ca_file)
{
	pthread_once(&global_once, global_init);
	struct http_client *c = xcalloc(1, sizeof(*c));
	c->curl = curl_easy_init();
	if (c->curl == NULL)
		fatal("curl_easy_init failed");
	c->ca_file = ca_file != NULL ? xstrdup(ca_file) : NULL;
	return c;
}

void http_client_free(struct http_client *c)
{
	if (c == NULL)
		return;
	curl_easy_cleanup(c->curl);
	free(c->ca_file);
	free(c);
}

void http_response_init(struct http_response *resp)
{
	resp->status = 0;
	strbuf_init(&resp->body);
}

void http_response_free(struct http_response *resp)
{
	strbuf_free(&resp->body);
	http_response_init(resp);
}

static size_t on_body(char *data, size_t size, size_t count, void *arg)
{
	struct response_sink *sink = arg;
	size_t len = size * count;

	if (sink->resp->body.len + len > PUSH_HTTP_RESPONSE_MAX) {
		sink->too_big = true;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	strbuf_append(&sink->resp->body, data, len);
	return len;
}

/* Copies what fits of the in-memory part [start, start+len) of the body at position pos. */
static size_t copy_part(struct http_upload *u, char *out, size_t room, const char *part,
	uint64_t start, size_t len)
{
	uint64_t skip = u->position - start;
	size_t n = len - (size_t)skip;
	if (n > room)
		n = room;
	memcpy(out, part + skip, n);
	return n;
}

static size_t on_upload_read(char *out, size_t size, size_t count, void *arg)
{
	struct http_upload *u = arg;
	size_t room = size * count;
	uint64_t file_end = u->prefix_len + u->size;

	if (u->position < u->prefix_len) {
		size_t n = copy_part(u, out, room, u->prefix, 0, u->prefix_len);
		u->position += n;
		return n;
	}
	if (u->position < file_end) {
		uint64_t left = file_end - u->position;
		size_t want = left < room ? (size_t)left : room;
		ssize_t got;
		do
			got = pread(u->fd, out, want, (off_t)(u->position - u->prefix_len));
		while (got < 0 && errno == EINTR);
		if (got <= 0) {
			u->read_errno = got < 0 ? errno : ENODATA;
			return CURL_READFUNC_ABORT;
		}
		u->position += (uint64_t)got;
		return (size_t)got;
	}
	if (u->position < file_end + u->suffix_len) {
		size_t n = copy_part(u, out, room, u->suffix, file_end, u->suffix_len);
		u->position += n;
		return n;
	}
	return 0;
}

static int on_upload_seek(void *arg, curl_off_t offset, int origin)
{
	struct http_upload *u = arg;

	/* curl rewinds to send the body again (a reused connection closed under it). */
	if (origin != SEEK_SET || offset < 0 ||
	    (uint64_t)offset > u->prefix_len + u->size + u->suffix_len)
		return CURL_SEEKFUNC_CANTSEEK;
	u->position = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

/* Everything every exchange gets: the rules of http.h. */
static void set_common_options(struct http_client *c, struct response_sink *sink, char *errbuf)
{
	CURL *h = c->curl;

	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (c->ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)PUSH_HTTP_CONNECT_TIMEOUT_SECONDS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)PUSH_HTTP_TOTAL_TIMEOUT_SECONDS);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)PUSH_HTTP_LOW_SPEED_SECONDS);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, (long)PUSH_HTTP_LOW_SPEED_BYTES);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)PUSH_HTTP_RESPONSE_MAX);
	curl_easy_setopt(h, CURLOPT_VERBOSE, 0L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "mailpopbox/" MAILPOPBOX_VERSION);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
}

int http_client_run(struct http_client *c, const struct http_request *req,
	struct http_response *resp, char *err, size_t errsz)
{
	CURL *h = c->curl;
	char errbuf[CURL_ERROR_SIZE] = "";
	struct response_sink sink = {.resp = resp};
	struct curl_slist *headers = NULL;
	char line[256];

	http_response_init(resp);
	if (strncasecmp(req->url, "https://", 8) != 0) {
		snprintf(err, errsz, "not an https:// URL");
		return -1;
	}
	/* Keeps the connection cache, forgets the previous request's options. */
	curl_easy_reset(h);
	set_common_options(c, &sink, errbuf);
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	if (req->bearer != NULL) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, req->bearer);
	}
	if (req->content_type != NULL) {
		snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
		headers = curl_slist_append(headers, line);
	}
	headers = curl_slist_append(headers, "Accept: application/json");
	if (strcmp(req->method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		if (req->upload != NULL) {
			struct http_upload *u = req->upload;
			u->position = 0;
			u->read_errno = 0;
			curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload_read);
			curl_easy_setopt(h, CURLOPT_READDATA, u);
			curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_upload_seek);
			curl_easy_setopt(h, CURLOPT_SEEKDATA, u);
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				(curl_off_t)(u->prefix_len + u->size + u->suffix_len));
			/* No "Expect: 100-continue" round trip: Google answers at once anyway. */
			headers = curl_slist_append(headers, "Expect:");
		} else {
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		}
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	}
	if (headers == NULL)
		fatal("curl_slist_append failed");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);

	CURLcode rc = curl_easy_perform(h);
	curl_slist_free_all(headers);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	/* The token is not left in the handle between requests. */
	curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, NULL);
	if (rc != CURLE_OK) {
		if (sink.too_big || rc == CURLE_FILESIZE_EXCEEDED)
			snprintf(err, errsz, "response body over %d octets", PUSH_HTTP_RESPONSE_MAX);
		else if (req->upload != NULL && req->upload->read_errno != 0)
			snprintf(err, errsz, "reading the message: %s",
				req->upload->read_errno == ENODATA ? "file shorter than its size"
								  : strerror(req->upload->read_errno));
		else
			snprintf(err, errsz, "%s", errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
		http_response_free(resp);
		return -1;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	return 0;
}

void http_append_urlencoded(struct strbuf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			strbuf_append(out, s, 1);
		} else {
			char esc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
			strbuf_append(out, esc, 3);
		}
	}
}

void http_append_param(struct strbuf *out, const char *name, const char *value)
{
	if (out->len > 0 && out->data[out->len - 1] != '?' && out->data[out->len - 1] != '&')
		strbuf_append_str(out, "&");
	http_append_urlencoded(out, name);
	strbuf_append_str(out, "=");
	http_append_urlencoded(out, value);
}

/* rssfloor: the memory floor under mailpopbox's idle figure.
 *
 * A process linked against exactly the libraries the release mailpopbox links (bench/run
 * builds it with the same pkg-config names as meson.build, and checks that the two binaries'
 * DT_NEEDED lists match), each of them loaded and touched through one harmless call, plus the
 * one thing every TLS server must hold: OpenSSL initialised and one server SSL_CTX with the
 * certificate chain and private key loaded and checked. Nothing of mailpopbox's own: no
 * configuration, no listening socket, no threads, no event loop running. Then it writes
 * "ready" to stdout and sleeps until it is killed, so that bench/run can take its RSS/PSS
 * the way it takes mailpopbox's idle figure.
 *
 *   rssfloor CERT.pem KEY.pem
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <crypt.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <opendmarc/dmarc.h>
#include <spf2/spf.h>
#include <dkim.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <ares.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "rssfloor: %s failed\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: rssfloor CERT.pem KEY.pem\n");
		return 2;
	}

	/* libcrypto, libssl: what any TLS server does before accepting a client. */
	if (OPENSSL_init_ssl(0, NULL) != 1)
		die("OPENSSL_init_ssl");
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		die("SSL_CTX_new");
	if (SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1)
		die("SSL_CTX_use_certificate_chain_file");
	if (SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1)
		die("SSL_CTX_use_PrivateKey_file");
	if (SSL_CTX_check_private_key(ctx) != 1)
		die("SSL_CTX_check_private_key");

	/* libevent_pthreads, libevent_core, libevent_openssl: one call each, everything freed.
	 * bufferevent_openssl_get_ssl() on a plain socket bufferevent returns NULL. */
	if (evthread_use_pthreads() != 0)
		die("evthread_use_pthreads");
	struct event_base *base = event_base_new();
	if (!base)
		die("event_base_new");
	struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
	if (!bev)
		die("bufferevent_socket_new");
	if (bufferevent_openssl_get_ssl(bev) != NULL)
		die("bufferevent_openssl_get_ssl");
	bufferevent_free(bev);
	event_base_free(base);

	/* libjansson */
	json_t *object = json_object();
	if (!object)
		die("json_object");
	json_decref(object);

	/* libcares */
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
		die("ares_library_init");
	ares_library_cleanup();

	/* libopendkim */
	DKIM_LIB *dkim = dkim_init(NULL, NULL);
	if (!dkim)
		die("dkim_init");
	dkim_close(dkim);

	/* libcurl, libspf2, libopendmarc (push, the sender checks): linked and started, as a
	 * server with neither a Destination nor VerifySenders has them */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		die("curl_global_init");
	if (!SPF_strerror(SPF_E_SUCCESS) || !opendmarc_policy_status_to_str(DMARC_PARSE_OKAY))
		die("spf2, opendmarc");

	/* libcrypt */
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	if (!crypt_gensalt_rn(crypt_preferred_method(), 0, NULL, 0, salt, (int)sizeof(salt)))
		die("crypt_gensalt_rn");

	if (fputs("ready\n", stdout) == EOF || fflush(stdout) != 0)
		die("writing ready");
	/* ctx stays allocated, as a server's does, until bench/run kills the process. */
	for (;;)
		pause();
}

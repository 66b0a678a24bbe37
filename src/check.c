/* check.c: "mailpopbox check CONFIG.json": loads the config as "serve" would, then tries
 * everything the server needs from this machine without starting it, one line per problem. */
#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "fsutil.h"
#include "log.h"
#include "mail/dkim.h"
#include "queue/delivery.h"
#include "tls.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct check_report {
	FILE *out;
	int errors;
	int warnings;
};

static void report_error(struct check_report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void report_warning(struct check_report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void report_error(struct check_report *r, const char *fmt, ...)
{
	va_list ap;

	fputs("error: ", r->out);
	va_start(ap, fmt);
	vfprintf(r->out, fmt, ap);
	va_end(ap);
	fputc('\n', r->out);
	r->errors++;
}

static void report_warning(struct check_report *r, const char *fmt, ...)
{
	va_list ap;

	fputs("warning: ", r->out);
	va_start(ap, fmt);
	vfprintf(r->out, fmt, ap);
	va_end(ap);
	fputc('\n', r->out);
	r->warnings++;
}

/* ---- certificates ---- */

/* The certificate's DNS names (its subjectAltNames, or its CN when it has none, which is what
 * X509_check_host() matches too), comma-separated into buf. */
static void certificate_names(X509 *cert, char *buf, size_t bufsz)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
		if (name->type != GEN_DNS)
			continue;
		int n = snprintf(buf + used, bufsz - used, "%s%.*s", used ? ", " : "",
			ASN1_STRING_length(name->d.dNSName),
			(const char *)ASN1_STRING_get0_data(name->d.dNSName));
		if (n < 0 || (size_t)n >= bufsz - used)
			break;
		used += (size_t)n;
	}
	GENERAL_NAMES_free(names);
	if (used == 0) {
		int index = X509_NAME_get_index_by_NID(X509_get_subject_name(cert), NID_commonName, -1);
		const ASN1_STRING *cn = index < 0 ? NULL :
			X509_NAME_ENTRY_get_data(X509_NAME_get_entry(X509_get_subject_name(cert), index));
		if (cn)
			snprintf(buf, bufsz, "CN %.*s", ASN1_STRING_length(cn),
				(const char *)ASN1_STRING_get0_data(cn));
		else
			snprintf(buf, bufsz, "no DNS names");
	}
}

/* A verifying client checks the name it connected to: Hostname (the MX name) or, for mail
 * clients set up with the bare domain, Domain. A certificate naming neither fails them all. */
static void check_certificate_names(struct check_report *r, const struct config *cfg,
	size_t index)
{
	const struct server_config *server = &cfg->servers[index];
	FILE *f = fopen(server->tls_cert_path, "r");
	X509 *cert = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	char names[512];

	if (f)
		fclose(f);
	if (!cert) {
		report_error(r, "Servers[%zu].TLSCertPath: %s: no PEM certificate", index,
			server->tls_cert_path);
		return;
	}
	if (X509_check_host(cert, cfg->hostname, 0, 0, NULL) != 1 &&
		X509_check_host(cert, server->domain, 0, 0, NULL) != 1) {
		certificate_names(cert, names, sizeof(names));
		report_warning(r, "Servers[%zu].TLSCertPath: %s names neither Hostname %s nor Domain "
			"%s (it names: %s)", index, server->tls_cert_path, cfg->hostname,
			server->domain, names);
	}
	X509_free(cert);
}

static bool check_readable(struct check_report *r, size_t index, const char *key,
	const char *path)
{
	if (access(path, R_OK) == 0)
		return true;
	report_error(r, "Servers[%zu].%s: cannot read %s: %s", index, key, path, strerror(errno));
	return false;
}

static void check_tls(struct check_report *r, const struct config *cfg, size_t index)
{
	const struct server_config *server = &cfg->servers[index];
	char err[512];

	if (!server->tls_cert_path)
		return;
	bool cert_ok = check_readable(r, index, "TLSCertPath", server->tls_cert_path);
	bool key_ok = check_readable(r, index, "TLSKeyPath", server->tls_key_path);
	if (!cert_ok || !key_ok)
		return;
	/* The server's own loader, on this Server alone, so each Server gets its own verdict. */
	struct config one = *cfg;
	one.servers = &cfg->servers[index];
	one.server_count = 1;
	struct tls_contexts *tls = tls_contexts_load(&one, err, sizeof(err));
	if (!tls) {
		report_error(r, "%s", err);
		return;
	}
	tls_contexts_free(tls);
	check_certificate_names(r, cfg, index);
}

/* ---- directories ---- */

/* The server creates a missing directory itself (maildrops on the first delivery, the spool
 * at start), so a missing one is fine when its parent lets us create it. */
static void check_directory(struct check_report *r, const char *key, const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			report_error(r, "%s: %s is not a directory", key, path);
		else if (access(path, W_OK | X_OK) != 0)
			report_error(r, "%s: %s is not writable by uid %u: %s", key, path,
				(unsigned)getuid(), strerror(errno));
		return;
	}
	if (errno != ENOENT) {
		report_error(r, "%s: %s: %s", key, path, errno == ENOTDIR ?
			"a component of the path is not a directory" : strerror(errno));
		return;
	}
	char *parent = fs_parent_directory(path);
	if (stat(parent, &st) != 0)
		report_error(r, "%s: %s does not exist, nor does its parent %s", key, path, parent);
	else if (!S_ISDIR(st.st_mode))
		report_error(r, "%s: %s does not exist, and its parent %s is not a directory", key,
			path, parent);
	else if (access(parent, W_OK | X_OK) != 0)
		report_error(r, "%s: %s does not exist, and its parent %s is not writable by uid %u",
			key, path, parent, (unsigned)getuid());
	free(parent);
}

/* ---- DKIM ---- */

static void check_dkim(struct check_report *r, const struct server_config *server, size_t index)
{
	char err[512];

	if (!server->dkim_key_path)
		return;
	struct dkim_signer *signer = dkim_signer_new(server->domain, server->dkim_selector,
		server->dkim_key_path, err, sizeof(err));
	if (!signer) {
		report_error(r, "Servers[%zu].DKIMKeyPath: %s", index, err);
		return;
	}
	dkim_signer_free(signer);
}

/* ---- the smarthost ---- */

/* The CA certificates the smarthost is checked against load as the queue will load them. */
static void check_relay_tls(struct check_report *r, const struct config *cfg)
{
	char err[512];

	if (!delivery_relay_verified(cfg))
		return;
	SSL_CTX *ctx = delivery_relay_tls_context_new(cfg, err, sizeof(err));
	if (!ctx) {
		report_error(r, "%s", err);
		return;
	}
	SSL_CTX_free(ctx);
}

/* ---- ports ---- */

/* The address the daemon listens on: ListenAddress, or all addresses through one dual-stack
 * IPv6 socket (IPv4 alone on a host without IPv6). */
/* Binds (and closes) a socket as the daemon would. Returns 0, or an errno value. */
static int try_bind(const struct config *cfg, int port)
{
	int family = cfg->listen_address && !strchr(cfg->listen_address, ':') ? AF_INET :
		AF_INET6;
	struct sockaddr_storage ss;
	int one = 1;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 && errno == EAFNOSUPPORT && !cfg->listen_address) {
		family = AF_INET;
		fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	}
	if (fd < 0)
		return errno;
	/* As the daemon (libevent's LEV_OPT_REUSEABLE): a port in TIME_WAIT is free to use. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	socklen_t len = daemon_listen_address(cfg, family, port, &ss);
	int error = bind(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : errno;
	close(fd);
	return error;
}

static void check_ports(struct check_report *r, const struct config *cfg)
{
	const struct {
		const char *key;
		int port;
	} ports[] = {
		{"SMTPPort", cfg->smtp_port},
		{"SubmissionPort", cfg->submission_port},
		{"SubmissionTLSPort", cfg->submission_tls_port},
		{"POP3Port", cfg->pop3_port},
		{"POP3STLSPort", cfg->pop3_stls_port},
	};

	for (size_t i = 0; i < ARRAY_LEN(ports); i++) {
		if (ports[i].port == 0)
			continue;
		int error = try_bind(cfg, ports[i].port);
		if (error == 0)
			continue;
		if (error == EADDRINUSE)
			report_error(r, "%s %d: in use", ports[i].key, ports[i].port);
		else if (error == EACCES)
			report_error(r, "%s %d: needs root or CAP_NET_BIND_SERVICE", ports[i].key,
				ports[i].port);
		else if (error == EADDRNOTAVAIL)
			report_error(r, "%s %d: ListenAddress %s is not an address of this host",
				ports[i].key, ports[i].port, cfg->listen_address);
		else
			report_error(r, "%s %d: cannot bind: %s", ports[i].key, ports[i].port,
				strerror(error));
	}
}

/* ---- the whole check ---- */

static void check_all(struct check_report *r, const struct config *cfg)
{
	char key[64];

	for (size_t i = 0; i < cfg->server_count; i++) {
		check_tls(r, cfg, i);
		snprintf(key, sizeof(key), "Servers[%zu].MaildropPath", i);
		check_directory(r, key, cfg->servers[i].maildrop_path);
		check_dkim(r, &cfg->servers[i], i);
	}
	check_directory(r, "SpoolPath", cfg->spool_path);
	check_relay_tls(r, cfg);
	check_ports(r, cfg);
}

int check_config(const struct config *cfg, FILE *out)
{
	struct check_report r = {.out = out};

	check_all(&r, cfg);
	return r.errors;
}

int check_command(const char *path, FILE *out)
{
	struct check_report r = {.out = out};
	struct config cfg;
	char err[512];

	if (config_load(path, &cfg, err, sizeof(err)) != 0) {
		report_error(&r, "%s", err);
	} else {
		check_all(&r, &cfg);
		config_free(&cfg);
	}
	if (r.errors == 0 && r.warnings == 0)
		fprintf(out, "config OK\n");
	else if (r.errors == 0)
		fprintf(out, "config OK, %d warning(s)\n", r.warnings);
	else
		fprintf(out, "%d problem(s)\n", r.errors + r.warnings);
	return r.errors == 0 ? 0 : 1;
}

/* check.c: "mailpopbox check CONFIG.json": loads the config as "serve" would, then tries
 * everything the server needs from this machine without starting it, one line per problem.
 * Files are tried with the credentials the server will have when it reads and writes them:
 * started as root with User set, that is User's, also on every reload. */
#include "check.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "fsutil.h"
#include "log.h"
#include "mail/dkim.h"
#include "privileges.h"
#include "push/oauth.h"
#include "queue/delivery.h"
#include "queue/queue.h"
#include "running.h"
#include "tls.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#ifdef MAILPOPBOX_COVERAGE_DIR
/* A coverage build only: _exit() skips gcov's exit handler, so the child checking as User
 * writes its counters itself. */
void __gcov_dump(void);
#define COVERAGE_DUMP() __gcov_dump()
#else
#define COVERAGE_DUMP() ((void)0)
#endif

struct check_report {
	FILE *out;
	int errors;
	int warnings;
	/* Whose rights the file checks run with, for messages: "root", "uid 1000 (alice)", or
	 * "User mailpopbox" in the child that became User. */
	char who[96];
	/* Checking as User: the server, started as root, reads everything once as root but again
	 * as User on each reload, and gives the maildrops and the spool to User at start. */
	const char *user;
	uid_t uid;
	gid_t gid;
	char group[64];
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

/* Says what stands between User and a file it must read on each reload: the file's own
 * permissions (User can see it) or a directory above it (User cannot even see it). */
static void report_unreadable_by_user(struct check_report *r, const char *label,
	const char *path, int error)
{
	struct stat st;
	char fix[512];

	if (error == EACCES && stat(path, &st) == 0)
		snprintf(fix, sizeof(fix), "give %s read access (e.g. chgrp %s %s; chmod g+r %s)",
			r->user, r->group, path, path);
	else if (error == EACCES)
		snprintf(fix, sizeof(fix), "let %s enter every directory above it (search, x)",
			r->user);
	else
		snprintf(fix, sizeof(fix), "make it readable by %s", r->user);
	report_error(r, "%s: User %s cannot read %s: %s; the server reads it as root at start "
		"but as %s on every reload (SIGHUP), which would fail: %s", label, r->user, path,
		strerror(error), r->user, fix);
}

/* Opens path for reading, as the server does; open(2) is the kernel's own answer for these
 * credentials (ACLs, read-only mounts, security modules included). */
static bool check_readable(struct check_report *r, const char *label, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd >= 0) {
		close(fd);
		return true;
	}
	if (r->user)
		report_unreadable_by_user(r, label, path, errno);
	else
		report_error(r, "%s: cannot read %s as %s: %s", label, path, r->who,
			strerror(errno));
	return false;
}

static void check_tls(struct check_report *r, const struct config *cfg, size_t index)
{
	const struct server_config *server = &cfg->servers[index];
	char err[512];

	if (!server->tls_cert_path)
		return;
	char cert_label[64], key_label[64];
	snprintf(cert_label, sizeof(cert_label), "Servers[%zu].TLSCertPath", index);
	snprintf(key_label, sizeof(key_label), "Servers[%zu].TLSKeyPath", index);
	bool cert_ok = check_readable(r, cert_label, server->tls_cert_path);
	bool key_ok = check_readable(r, key_label, server->tls_key_path);
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

/* Creates and removes a file in dir, as the server creates its files there. A dot name:
 * Maildir readers and the spool pass over dot files. Returns 0, or an errno value. */
static int probe_write(const char *dir)
{
	char *probe = fs_path_printf("%s/.mailpopbox-check.%ld", dir, (long)getpid());
	int fd = open(probe, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	int error = fd < 0 ? errno : 0;

	if (fd >= 0) {
		close(fd);
		unlink(probe);
	}
	free(probe);
	return error;
}

static void report_unwritable(struct check_report *r, const char *key, const char *base,
	const char *dir, int error)
{
	struct stat st;

	/* privileges_drop() gives the directory (not a link) to User when the server starts as
	 * root: what root or an earlier run left is mended then, though not by a reload. */
	if (r->user && (error == EACCES || error == EPERM) && lstat(dir, &st) == 0 &&
	    S_ISDIR(st.st_mode) && (st.st_uid != r->uid || st.st_gid != r->gid)) {
		struct passwd *owner = getpwuid(st.st_uid);
		char owner_name[64];
		if (owner)
			snprintf(owner_name, sizeof(owner_name), "%s", owner->pw_name);
		else
			snprintf(owner_name, sizeof(owner_name), "uid %u", (unsigned)st.st_uid);
		report_warning(r, "%s: User %s cannot write in %s (owned by %s): the server gives it "
			"to %s when it starts as root, but not on a reload; to fix it now: "
			"chown -R %s:%s %s", key, r->user, dir, owner_name, r->user, r->user, r->group,
			base);
		return;
	}
	report_error(r, "%s: %s cannot write in %s: %s", key, r->who, dir, strerror(error));
}

/* The server creates a missing directory itself (maildrops on the first delivery, the spool
 * at start; as root with User set, both at start before giving them to User), so a missing
 * one is fine when it can be created there. An existing one must take a new file in itself
 * (the POP3 lock, the pid file) and in its tmp/, where every message is first written. */
static void check_directory(struct check_report *r, const char *key, const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			report_error(r, "%s: %s is not a directory", key, path);
			return;
		}
		char *tmp = fs_path_printf("%s/tmp", path);
		const char *dirs[] = {path, tmp};
		for (size_t i = 0; i < ARRAY_LEN(dirs); i++) {
			if (i > 0 && (stat(dirs[i], &st) != 0 || !S_ISDIR(st.st_mode)))
				continue; /* made at start or at the first delivery */
			int error = probe_write(dirs[i]);
			if (error != 0) {
				report_unwritable(r, key, path, dirs[i], error);
				break;
			}
		}
		free(tmp);
		return;
	}
	int error = errno;
	if (error == EACCES) {
		report_error(r, "%s: %s cannot reach %s: a directory above it cannot be entered "
			"(search, x)", key, r->who, path);
		return;
	}
	if (error != ENOENT) {
		report_error(r, "%s: %s: %s", key, path, error == ENOTDIR ?
			"a component of the path is not a directory" : strerror(error));
		return;
	}
	char *parent = fs_parent_directory(path);
	/* As User, root creates the directory at start; User reaches it, as ENOENT (not EACCES)
	 * says. Otherwise the server itself creates it, so it must write in the parent. */
	if (stat(parent, &st) != 0)
		report_error(r, "%s: %s does not exist, nor does its parent %s", key, path, parent);
	else if (!S_ISDIR(st.st_mode))
		report_error(r, "%s: %s does not exist, and its parent %s is not a directory", key,
			path, parent);
	else if (!r->user && access(parent, W_OK | X_OK) != 0)
		report_error(r, "%s: %s does not exist, and %s cannot write in its parent %s", key,
			path, r->who, parent);
	free(parent);
}

/* ---- DKIM ---- */

static void check_dkim(struct check_report *r, const struct server_config *server, size_t index)
{
	char err[512];

	if (!server->dkim_key_path)
		return;
	char label[64];
	snprintf(label, sizeof(label), "Servers[%zu].DKIMKeyPath", index);
	if (!check_readable(r, label, server->dkim_key_path))
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

/* Binds (and closes) a socket as the daemon would: on ListenAddress, or on all addresses through
 * one dual-stack IPv6 socket (IPv4 alone on a host without IPv6). Returns 0, or an errno value. */
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

/* A port in use is fine when the server already running with this SpoolPath holds it: that is
 * the state `check` is run in before a reload. Any other holder is reported. */
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
	long running = running_server_pid(cfg->spool_path);
	char held[256] = "";
	size_t used = 0;

	for (size_t i = 0; i < ARRAY_LEN(ports); i++) {
		if (ports[i].port == 0)
			continue;
		int error = try_bind(cfg, ports[i].port);
		if (error == 0)
			continue;
		if (error == EADDRINUSE && running) {
			int holds = running_server_listens_on(running, ports[i].port);
			if (holds == 1) {
				int n = snprintf(held + used, sizeof(held) - used, "%s%s %d",
					used ? ", " : "", ports[i].key, ports[i].port);
				if (n > 0 && (size_t)n < sizeof(held) - used)
					used += (size_t)n;
			} else if (holds < 0) {
				report_error(r, "%s %d: in use, perhaps by the running server (pid %ld in "
					"%s/%s), but %s cannot see its sockets (/proc/%ld/fd: %s): run "
					"check as root", ports[i].key, ports[i].port, running,
					cfg->spool_path, QUEUE_PID_FILE, r->who, running, strerror(errno));
			} else {
				report_error(r, "%s %d: in use by another program, not by the running "
					"server (pid %ld)", ports[i].key, ports[i].port, running);
			}
		} else if (error == EADDRINUSE) {
			report_error(r, "%s %d: in use", ports[i].key, ports[i].port);
		} else if (error == EACCES) {
			report_error(r, "%s %d: needs root or CAP_NET_BIND_SERVICE", ports[i].key,
				ports[i].port);
		} else if (error == EADDRNOTAVAIL) {
			report_error(r, "%s %d: ListenAddress %s is not an address of this host",
				ports[i].key, ports[i].port, cfg->listen_address);
		} else {
			report_error(r, "%s %d: cannot bind: %s", ports[i].key, ports[i].port,
				strerror(error));
		}
	}
	if (used)
		fprintf(r->out, "note: the running server (pid %ld) holds %s; a reload keeps its "
			"listeners (a changed port needs a restart)\n", running, held);
}

/* ---- the push Destination ---- */

/* The client JSON, parsed by the same code the server and `authorize` use. */
static void check_oauth_client_file(struct check_report *r, const char *label, const char *path)
{
	struct oauth_client client;
	char why[512];

	if (!check_readable(r, label, path))
		return;
	if (oauth_client_load(path, &client, why, sizeof(why)) != 0) {
		report_error(r, "%s: %s (download the client JSON again from the provider's "
			"console)", label, why);
		return;
	}
	oauth_client_free(&client);
}

/* The server reads the refresh token and, when the provider rotates it, replaces the file
 * (a staging file beside it, then rename): so User must read and write the file and write
 * in its directory. */
static void check_oauth_token_file(struct check_report *r, const char *label, const char *path,
	const char *config_path, const char *domain)
{
	struct stat st;
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);

	if (fd < 0 && errno == ENOENT) {
		report_error(r, "%s: %s does not exist: run mailpopbox authorize %s %s", label, path,
			config_path, domain);
		return;
	}
	if (fd < 0) {
		int error = errno;
		if (r->user && error == EACCES && stat(path, &st) == 0)
			report_error(r, "%s: User %s cannot read and write %s: %s; the server refreshes "
				"the token as %s: chown %s:%s %s", label, r->user, path, strerror(error),
				r->user, r->user, r->group, path);
		else
			report_error(r, "%s: %s cannot read and write %s: %s", label, r->who, path,
				strerror(error));
		return;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0)
		report_warning(r, "%s: %s is open to others (mode %04o): it holds a refresh token; "
			"chmod 600 %s", label, path, (unsigned)(st.st_mode & 07777), path);
	char text[OAUTH_FILE_MAX + 1];
	ssize_t n = read(fd, text, sizeof(text));
	int read_error = n < 0 ? errno : 0;
	struct oauth_token_file token;
	char why[256];
	close(fd);
	if (n < 0 || (size_t)n > OAUTH_FILE_MAX ||
	    oauth_token_file_parse(text, (size_t)n, &token, why, sizeof(why)) != 0)
		report_error(r, "%s: %s: %s: run mailpopbox authorize %s %s", label, path,
			n < 0 ? strerror(read_error) : (size_t)n > OAUTH_FILE_MAX ? "too large" : why,
			config_path, domain);
	else
		oauth_token_file_free(&token);
	char *dir = fs_parent_directory(path);
	int dir_error = probe_write(dir);
	if (dir_error != 0)
		report_error(r, "%s: %s cannot write in %s (the token file is replaced there "
			"atomically when the provider rotates it): %s", label, r->who, dir,
			strerror(dir_error));
	free(dir);
}

/* Loads TLSCAFile as OpenSSL will for each connection the Destination makes. */
static void check_ca_file(struct check_report *r, const char *label, const char *path)
{
	if (!check_readable(r, label, path))
		return;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		report_error(r, "%s: cannot make a TLS context", label);
		return;
	}
	if (SSL_CTX_load_verify_locations(ctx, path, NULL) != 1)
		report_error(r, "%s: %s: no PEM CA certificate in it", label, path);
	SSL_CTX_free(ctx);
}

/* The files of Servers[index].Destination, with the rights the push thread has (User's). */
static void check_destination_files(struct check_report *r, const struct server_config *server,
	size_t index, const char *config_path)
{
	const struct destination_config *d = server->destination;
	char label[96];

	if (!d)
		return;
	if (d->oauth_client_file) {
		snprintf(label, sizeof(label), "Servers[%zu].Destination.OAuthClientFile", index);
		check_oauth_client_file(r, label, d->oauth_client_file);
	}
	if (d->oauth_token_file) {
		snprintf(label, sizeof(label), "Servers[%zu].Destination.OAuthTokenFile", index);
		check_oauth_token_file(r, label, d->oauth_token_file, config_path, server->domain);
	}
	if (d->tls_ca_file) {
		snprintf(label, sizeof(label), "Servers[%zu].Destination.TLSCAFile", index);
		check_ca_file(r, label, d->tls_ca_file);
	}
}

/* Resolves host as the push thread will; nothing is sent to it. A temporary DNS failure is
 * only a warning: the push retries, and the config is not wrong. */
static void check_resolvable(struct check_report *r, const char *label, const char *host)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	struct addrinfo *found = NULL;
	int rc = getaddrinfo(host, NULL, &hints, &found);

	if (rc == 0) {
		freeaddrinfo(found);
		return;
	}
	if (rc == EAI_AGAIN)
		report_warning(r, "%s: cannot resolve %s now: %s", label, host, gai_strerror(rc));
	else
		report_error(r, "%s: cannot resolve %s: %s", label, host,
			rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
}

static void check_destination_hosts(struct check_report *r, const struct config *cfg)
{
	char label[96];

	for (size_t i = 0; i < cfg->server_count; i++) {
		const struct destination_config *d = cfg->servers[i].destination;

		if (!d)
			continue;
		if (d->type == DESTINATION_IMAP) {
			snprintf(label, sizeof(label), "Servers[%zu].Destination.Host", i);
			check_resolvable(r, label, d->host);
			continue;
		}
		/* libcurl's own URL parser: the host is what the push thread will connect to. */
		snprintf(label, sizeof(label), "Servers[%zu].Destination.GmailAPIURL", i);
		CURLU *url = curl_url();
		char *host = NULL;
		if (!url || curl_url_set(url, CURLUPART_URL, d->gmail_api_url, 0) != CURLUE_OK ||
			curl_url_get(url, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
			report_error(r, "%s: %s: not a URL with a host", label, d->gmail_api_url);
		} else {
			/* An IPv6 literal comes back in brackets. */
			size_t len = strlen(host);
			if (len > 2 && host[0] == '[' && host[len - 1] == ']') {
				memmove(host, host + 1, len - 2);
				host[len - 2] = '\0';
			}
			check_resolvable(r, label, host);
		}
		curl_free(host);
		curl_url_cleanup(url);
	}
}

/* The sender checks' needs on this machine; the Milter's address itself was checked by the
 * config. A milter that is down is a warning: MilterFailOpen decides what the server does. */
static void check_sender_checks(struct check_report *r, const struct config *cfg)
{
	static const char psl[] = "/usr/share/publicsuffix/public_suffix_list.dat";
	struct stat st;

	if (cfg->verify_senders && access(psl, R_OK) != 0)
		report_warning(r, "VerifySenders: %s: %s (DMARC will answer temperror; install "
			"the publicsuffix package)", psl, strerror(errno));
	if (cfg->milter && strncmp(cfg->milter, "unix:", 5) == 0 &&
	    (stat(cfg->milter + 5, &st) != 0 || !S_ISSOCK(st.st_mode)))
		report_warning(r, "Milter: %s is not a socket now (the milter is not running?)",
			cfg->milter + 5);
}

/* ---- whose rights ---- */

static void describe_self(struct check_report *r)
{
	uid_t uid = geteuid();
	struct passwd *pw = uid == 0 ? NULL : getpwuid(uid);

	if (uid == 0)
		snprintf(r->who, sizeof(r->who), "root");
	else if (pw)
		snprintf(r->who, sizeof(r->who), "uid %u (%s)", (unsigned)uid, pw->pw_name);
	else
		snprintf(r->who, sizeof(r->who), "uid %u", (unsigned)uid);
}

/* Everything the server reads and writes: the config (read again on each reload, with the
 * passwords in it), certificates, keys, maildrops, the spool and the Destination's files. */
static void check_files(struct check_report *r, const struct config *cfg,
	const char *config_path)
{
	char key[64];

	check_readable(r, "config", config_path);
	for (size_t i = 0; i < cfg->server_count; i++) {
		check_tls(r, cfg, i);
		snprintf(key, sizeof(key), "Servers[%zu].MaildropPath", i);
		check_directory(r, key, cfg->servers[i].maildrop_path);
		check_dkim(r, &cfg->servers[i], i);
		check_destination_files(r, &cfg->servers[i], i, config_path);
	}
	check_directory(r, "SpoolPath", cfg->spool_path);
	check_relay_tls(r, cfg);
}

/* Runs check_files() in a child that has become User through the server's own
 * privileges_switch(), so every open and create is decided by the kernel for exactly the
 * credentials the server has after dropping root (uid, the one group, ACLs, read-only mounts)
 * rather than by a second reading of permission bits. It prints to the same stream; its counts
 * come back through a shared page. */
static void check_files_as_user(struct check_report *r, const struct config *cfg,
	const char *config_path, uid_t uid, gid_t gid)
{
	struct check_report as_user = {.out = r->out, .user = cfg->user, .uid = uid, .gid = gid};
	struct group *gr = getgrgid(gid);
	int status = 0;

	snprintf(as_user.who, sizeof(as_user.who), "User %s", cfg->user);
	if (gr)
		snprintf(as_user.group, sizeof(as_user.group), "%s", gr->gr_name);
	else
		snprintf(as_user.group, sizeof(as_user.group), "%u", (unsigned)gid);
	int *counts = mmap(NULL, 2 * sizeof(int), PROT_READ | PROT_WRITE,
		MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counts == MAP_FAILED) {
		report_error(r, "cannot check as User %s: mmap: %s", cfg->user, strerror(errno));
		return;
	}
	counts[0] = counts[1] = 0;
	fflush(r->out);
	fflush(stderr);
	pid_t child = fork();
	if (child == 0) {
		char err[512];
		if (privileges_switch(cfg->user, uid, gid, err, sizeof(err)) != 0)
			report_error(&as_user, "%s", err);
		else
			check_files(&as_user, cfg, config_path);
		counts[0] = as_user.errors;
		counts[1] = as_user.warnings;
		fflush(as_user.out);
		COVERAGE_DUMP();
		_exit(0);
	}
	if (child < 0)
		report_error(r, "cannot check as User %s: fork: %s", cfg->user, strerror(errno));
	while (child > 0 && waitpid(child, &status, 0) < 0 && errno == EINTR)
		continue;
	if (child > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		r->errors += counts[0];
		r->warnings += counts[1];
	} else if (child > 0) {
		report_error(r, "the check as User %s did not finish (status %d)", cfg->user, status);
	}
	munmap(counts, 2 * sizeof(int));
}

/* Where the server will read and write from, the same rule as privileges_drop(): started as
 * root with User, as User (resolved and refused exactly as there); otherwise as whoever runs
 * it, which is whoever runs this check. */
static void check_as_the_server(struct check_report *r, const struct config *cfg,
	const char *config_path)
{
	char err[512];
	uid_t uid;
	gid_t gid;

	if (!cfg->user) {
		check_files(r, cfg, config_path);
		return;
	}
	int resolved = privileges_resolve(cfg, &uid, &gid, err, sizeof(err));
	if (geteuid() == 0 && resolved == 0) {
		check_files_as_user(r, cfg, config_path, uid, gid);
		return;
	}
	if (geteuid() == 0) {
		report_error(r, "%s: the server started as root refuses to start "
			"(event=privileges_failed)", err);
	} else if (resolved != 0) {
		report_warning(r, "%s: ignored while the server is not started as root (as this "
			"check is not), but started as root it would refuse to start", err);
	} else if (uid != geteuid()) {
		/* Without root there is no switching to User; say what was tested instead. */
		report_warning(r, "User: this check runs as %s, not root, so it tested the files as "
			"%s, not as User %s; the server started as root reads and writes them as %s: "
			"run check as root to test that", r->who, r->who, cfg->user, cfg->user);
	}
	check_files(r, cfg, config_path);
}

/* Whether mkdir -p could make path and we could then write in it: the nearest ancestor that
 * exists must let us, as whatever mkdir -p makes below it is ours. */
static bool directory_can_be_made(const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0)
		return S_ISDIR(st.st_mode) && access(path, W_OK | X_OK) == 0;
	if (errno != ENOENT)
		return false;
	char *parent = fs_parent_directory(path);
	bool ok = strcmp(parent, path) != 0 && directory_can_be_made(parent);
	free(parent);
	return ok;
}

/* The server's resolve_default_spool() (daemon.c) without its mkdir: a SpoolPath left out
 * whose default this process cannot make is replaced with the fallback the server will use.
 * Run before any switch to User, as the server resolves it before dropping root. */
static void resolve_default_spool(struct check_report *r, struct config *cfg)
{
	if (cfg->spool_path_given || directory_can_be_made(cfg->spool_path))
		return;
	char *fallback = daemon_fallback_spool_path(cfg);
	report_warning(r, "SpoolPath: not set, and %s cannot make or write %s, so the server will "
		"keep its queue in %s: set SpoolPath", r->who, cfg->spool_path, fallback);
	free(cfg->spool_path);
	cfg->spool_path = fallback;
}

/* ---- the whole check ---- */

int check_command(const char *path, FILE *out)
{
	struct check_report r = {.out = out};
	struct config cfg;
	char err[512];

	describe_self(&r);
	if (config_load(path, &cfg, err, sizeof(err)) != 0) {
		report_error(&r, "%s", err);
	} else {
		resolve_default_spool(&r, &cfg);
		check_as_the_server(&r, &cfg, path);
		check_ports(&r, &cfg);
		check_destination_hosts(&r, &cfg);
		check_sender_checks(&r, &cfg);
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

/* main.c: the command line. "mailpopbox CONFIG.json" serves, exactly like the original;
 * the other commands are for the operator (docs/operations in README). */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "mail/dkim_keygen.h"
#include "password.h"
#include "pop3/server.h"
#include "push/authorize.h"
#include "push/push.h"
#include "queue/queue.h"
#include "smtp/server.h"

/* The protocols served, each listening port in the order they are opened. A new protocol
 * adds its entries here (net/loop.h says what an entry holds). */
static const struct net_protocol *const protocols[] = {
	&smtp_server_mx,
	&smtp_server_submission,
	&smtp_server_submissions,
	&pop3_server_pop3,
	&pop3_server_stls,
	NULL,
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mailpopbox CONFIG.json                 serve the domains in CONFIG.json\n"
		"       mailpopbox serve CONFIG.json           the same\n"
		"       mailpopbox queue CONFIG.json [--flush] list the outbound queue and the pushes\n"
		"                                              waiting, or make the running server\n"
		"                                              retry them now\n"
		"       mailpopbox dkim-keygen DOMAIN SELECTOR KEYFILE\n"
		"                                              write a 2048-bit DKIM key and print the\n"
		"                                              DNS TXT record to publish\n"
		"       mailpopbox check CONFIG.json           check files, certificates, directories\n"
		"                                              and ports without starting\n"
		"       mailpopbox hash-password [--scheme yescrypt|sha512|bcrypt]\n"
		"                                              read a password, print its hash for\n"
		"                                              MailboxPasswordHash\n"
		"       mailpopbox authorize CONFIG.json DOMAIN [--read-scope] [--scope S] [--port N]\n"
		"                                              let DOMAIN's Destination use an OAuth\n"
		"                                              account: prints a URL to open, stores\n"
		"                                              the refresh token in OAuthTokenFile\n"
		"       mailpopbox version                     print the version\n"
		"       mailpopbox help                        this text\n"
		"Configuration keys: docs/config.md. Logs go to standard error.\n");
}

static int load(const char *path, struct config *cfg)
{
	char err[512];

	if (config_load(path, cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "mailpopbox: %s\n", err);
		return -1;
	}
	return 0;
}

static int serve(const char *path)
{
	struct config cfg;

	if (load(path, &cfg) != 0)
		return 1;
	return daemon_run(&cfg, path, protocols); /* takes the config over */
}

static int queue(const char *path, bool flush)
{
	struct config cfg;

	/* Warnings about unknown keys are for the server's log, not this listing. */
	log_set_level(LOG_LEVEL_ERROR);
	if (load(path, &cfg) != 0)
		return 1;
	int status = queue_command(&cfg, flush);
	/* The pushes waiting in each maildrop (--flush has signalled them with the queue). */
	if (!flush && status == 0)
		status = push_queue_command(&cfg, stdout);
	config_free(&cfg);
	return status;
}

static int keygen(const char *domain, const char *selector, const char *key_path)
{
	char err[512];

	if (dkim_keygen(domain, selector, key_path, stdout, err, sizeof(err)) != 0) {
		fprintf(stderr, "mailpopbox: %s\n", err);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *command = argc > 1 ? argv[1] : "";

	if (argc == 2 && (strcmp(command, "version") == 0 || strcmp(command, "--version") == 0)) {
		printf("mailpopbox %s\n", MAILPOPBOX_VERSION);
		return 0;
	}
	if (argc == 2 && (strcmp(command, "help") == 0 || strcmp(command, "--help") == 0 ||
			  strcmp(command, "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc == 3 && strcmp(command, "serve") == 0)
		return serve(argv[2]);
	if (strcmp(command, "queue") == 0 && (argc == 3 ||
		    (argc == 4 && strcmp(argv[3], "--flush") == 0)))
		return queue(argv[2], argc == 4);
	if (argc == 5 && strcmp(command, "dkim-keygen") == 0)
		return keygen(argv[2], argv[3], argv[4]);
	if (argc == 3 && strcmp(command, "check") == 0)
		return check_command(argv[2], stdout);
	if (argc >= 3 && strcmp(command, "authorize") == 0)
		return authorize_command(argc - 2, argv + 2);
	if (strcmp(command, "hash-password") == 0)
		return password_command(argc - 2, argv + 2);
	if (argc == 2 && command[0] != '-' && strcmp(command, "queue") != 0 &&
	    strcmp(command, "dkim-keygen") != 0 && strcmp(command, "check") != 0 &&
	    strcmp(command, "authorize") != 0)
		return serve(command);
	usage(stderr);
	return 2;
}

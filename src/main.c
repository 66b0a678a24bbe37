/* main.c: the command line. "mailpopbox CONFIG.json" serves, exactly like the original;
 * "mailpopbox version" prints the version. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "daemon.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mailpopbox CONFIG.json        serve the domains in CONFIG.json\n"
		"       mailpopbox serve CONFIG.json  the same\n"
		"       mailpopbox version            print the version\n"
		"       mailpopbox help               this text\n"
		"Configuration keys: docs/config.md. Logs go to standard error.\n");
}

static int serve(const char *path)
{
	struct config cfg;
	char err[512];

	if (config_load(path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "mailpopbox: %s\n", err);
		return 1;
	}
	int status = daemon_run(&cfg);
	config_free(&cfg);
	return status;
}

int main(int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0)) {
		printf("mailpopbox %s\n", MAILPOPBOX_VERSION);
		return 0;
	}
	if (argc == 2 && (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
			  strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "serve") == 0)
		return serve(argv[2]);
	if (argc == 2 && argv[1][0] != '-')
		return serve(argv[1]);
	usage(stderr);
	return 2;
}

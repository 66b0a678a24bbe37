/* imap_push_probe.c: a test-only driver of push/imap_client.c, so the integration tests can
 * run the real client against a real Dovecot. Usage:
 *   imap_push_probe HOST PORT implicit|starttls CAFILE USER PASSWORD MAILBOX COMMAND [ARGS]
 * PASSWORD "-" logs in with the access token in $IMAP_PROBE_TOKEN instead. Commands:
 *   login                     log in only
 *   append FILE...            one imap_client_append() of all files, in order
 *   find MESSAGE-ID [junk]    imap_client_find()
 * Prints one line per verdict ("login ok", "item FILE ok remote_id=\"1 2\" detail=\"...\"",
 * "append ok", "found yes") and exits 0 when every step returned PUSH_OK, else 1. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "push/imap_client.h"

static int append_files(struct imap_client *c, char **files, size_t count)
{
	struct push_item *items = calloc(count, sizeof(*items));
	char err[512] = "";

	if (!items)
		return 2;
	for (size_t i = 0; i < count; i++) {
		struct stat st;
		items[i].fd = open(files[i], O_RDONLY | O_CLOEXEC);
		if (items[i].fd < 0 || fstat(items[i].fd, &st) != 0) {
			fprintf(stderr, "imap_push_probe: cannot open %s\n", files[i]);
			return 2;
		}
		items[i].size = (uint64_t)st.st_size;
		items[i].internal_date = st.st_mtime;
		items[i].junk = strstr(files[i], "junk") != NULL;
	}
	enum push_status status = imap_client_append(c, items, count, err, sizeof(err));
	int rc = status == PUSH_OK ? 0 : 1;
	for (size_t i = 0; i < count; i++) {
		printf("item %s %s remote_id=\"%s\" detail=\"%s\"\n", files[i],
			push_status_name(items[i].status), items[i].remote_id, items[i].detail);
		if (items[i].status != PUSH_OK)
			rc = 1;
		close(items[i].fd);
	}
	printf("append %s%s%s connected=%s\n", push_status_name(status), err[0] ? " " : "", err,
		imap_client_connected(c) ? "yes" : "no");
	free(items);
	return rc;
}

int main(int argc, char **argv)
{
	char err[512] = "";

	/* As the daemon does: a peer that closes mid-write is an error return, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 9) {
		fprintf(stderr, "usage: imap_push_probe HOST PORT implicit|starttls CAFILE USER "
			"PASSWORD MAILBOX login|append FILE...|find ID [junk]\n");
		return 2;
	}
	struct imap_client_options options = {
		.host = argv[1],
		.port = atoi(argv[2]),
		.tls = strcmp(argv[3], "starttls") == 0 ? DESTINATION_TLS_STARTTLS :
			DESTINATION_TLS_IMPLICIT,
		.ca_file = strcmp(argv[4], "-") == 0 ? NULL : argv[4],
		.username = argv[5],
		.password = strcmp(argv[6], "-") == 0 ? NULL : argv[6],
		.mailbox = argv[7],
		.junk_mailbox = "Junk",
	};
	struct imap_client *c = imap_client_new(&options);
	enum push_status status = imap_client_login(c, getenv("IMAP_PROBE_TOKEN"), err,
		sizeof(err));
	printf("login %s%s%s\n", push_status_name(status), err[0] ? " " : "", err);
	int rc = status == PUSH_OK ? 0 : 1;
	if (status == PUSH_OK && strcmp(argv[8], "append") == 0) {
		rc = append_files(c, argv + 9, (size_t)(argc - 9));
	} else if (status == PUSH_OK && strcmp(argv[8], "find") == 0 && argc >= 10) {
		bool found = false;
		err[0] = '\0';
		status = imap_client_find(c, argv[9], argc > 10 && strcmp(argv[10], "junk") == 0,
			&found, err, sizeof(err));
		if (status == PUSH_OK)
			printf("found %s\n", found ? "yes" : "no");
		else
			printf("find %s %s\n", push_status_name(status), err);
		rc = status == PUSH_OK ? 0 : 1;
	}
	imap_client_free(c);
	return rc;
}

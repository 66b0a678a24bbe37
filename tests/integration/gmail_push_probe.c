/* gmail_push_probe: a test-only command that drives push/gmail.c and push/oauth.c exactly as
 * the push engine does, for tests/integration/test_gmail_client.py:
 *   gmail_push_probe import CLIENT_FILE TOKEN_FILE API_URL CA_FILE [--junk] FILE...
 *   gmail_push_probe find CLIENT_FILE TOKEN_FILE API_URL CA_FILE MESSAGE_ID...
 * One session and one client for all the files (tokens and connections reused). Prints one
 * line per file or id: "status=ok remote_id=ID detail=..." or "status=ok found=1". CA_FILE
 * "-" is the system's store. Exit status 0, or 1 when the session cannot be made. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "push/gmail.h"
#include "push/oauth.h"
#include "push/transport.h"

static int import_files(struct gmail_client *g, struct oauth_session *s, bool junk, int count,
	char **files)
{
	for (int i = 0; i < count; i++) {
		struct push_item item = {.junk = junk};
		struct stat st;
		char err[512] = "";
		item.fd = open(files[i], O_RDONLY | O_CLOEXEC);
		if (item.fd < 0 || fstat(item.fd, &st) != 0) {
			perror(files[i]);
			return 1;
		}
		item.size = (uint64_t)st.st_size;
		enum push_status status = gmail_import(g, s, &item, err, sizeof(err));
		printf("status=%s remote_id=%s item_status=%s detail=%s\n", push_status_name(status),
			item.remote_id, push_status_name(item.status), item.detail);
		close(item.fd);
	}
	return 0;
}

static int find_ids(struct gmail_client *g, struct oauth_session *s, int count, char **ids)
{
	for (int i = 0; i < count; i++) {
		bool found = false;
		char err[512] = "";
		enum push_status status = gmail_find(g, s, ids[i], &found, err, sizeof(err));
		printf("status=%s found=%d detail=%s\n", push_status_name(status), found ? 1 : 0, err);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 7 || (strcmp(argv[1], "import") != 0 && strcmp(argv[1], "find") != 0)) {
		fprintf(stderr, "usage: gmail_push_probe import|find CLIENT TOKEN API_URL CA_FILE "
			"[--junk] FILE|ID...\n");
		return 2;
	}
	const char *ca = strcmp(argv[5], "-") == 0 ? NULL : argv[5];
	char err[512];
	struct oauth_session *s = oauth_session_new(argv[2], argv[3], ca, err, sizeof(err));
	if (s == NULL) {
		fprintf(stderr, "gmail_push_probe: %s\n", err);
		return 1;
	}
	struct gmail_client *g = gmail_client_new(argv[4], ca);
	int first = 6;
	bool junk = false;
	if (strcmp(argv[first], "--junk") == 0) {
		junk = true;
		first++;
	}
	fflush(stdout);
	int rc = strcmp(argv[1], "import") == 0 ? import_files(g, s, junk, argc - first, argv + first)
						 : find_ids(g, s, argc - first, argv + first);
	gmail_client_free(g);
	oauth_session_free(s);
	return rc;
}

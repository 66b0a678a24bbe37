/* milter_probe.c: a test-only driver of filter/milter.c, so the integration tests can run the
 * real client against rspamd and a test milter. Usage:
 *   milter_probe SPEC TIMEOUT MESSAGE [KEY=VALUE...]
 * KEY: from, rcpt (repeatable), helo, ip, name, port, id, hostname, tls, lead (a file whose
 * content goes before the message), offset (where the message starts in MESSAGE).
 * Prints one JSON object: verdict, reply, quarantine, quarantine_reason, error and changes
 * ([{kind, index, name, value}]); exits 0 (2 on a usage error). */
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filter/milter.h"
#include "filter/milter_codec.h"

#define PROBE_RCPTS_MAX 16

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = malloc(1 << 20);
	*len = buf ? fread(buf, 1, 1 << 20, f) : 0;
	fclose(f);
	return buf;
}

int main(int argc, char **argv)
{
	const char *rcpts[PROBE_RCPTS_MAX];
	struct milter_envelope env = {.client_ip = "127.0.0.1", .client_port = 40000,
		.helo = "client.example.net", .mail_from = "sender@example.net", .rcpts = rcpts,
		.queue_id = "4AB5C6D7E8", .hostname = "mx.example.org"};
	char *lead = NULL;
	size_t lead_len = 0;
	off_t offset = 0;

	signal(SIGPIPE, SIG_IGN);
	if (argc < 4) {
		fprintf(stderr, "usage: milter_probe SPEC TIMEOUT MESSAGE [KEY=VALUE...]\n");
		return 2;
	}
	for (int i = 4; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq) {
			fprintf(stderr, "milter_probe: %s is not KEY=VALUE\n", argv[i]);
			return 2;
		}
		*eq = '\0';
		const char *k = argv[i], *v = eq + 1;
		if (strcmp(k, "from") == 0)
			env.mail_from = v;
		else if (strcmp(k, "rcpt") == 0 && env.rcpt_count < PROBE_RCPTS_MAX)
			rcpts[env.rcpt_count++] = v;
		else if (strcmp(k, "helo") == 0)
			env.helo = v;
		else if (strcmp(k, "ip") == 0)
			env.client_ip = v;
		else if (strcmp(k, "name") == 0)
			env.client_name = v;
		else if (strcmp(k, "port") == 0)
			env.client_port = (unsigned)atoi(v);
		else if (strcmp(k, "id") == 0)
			env.queue_id = v;
		else if (strcmp(k, "hostname") == 0)
			env.hostname = v;
		else if (strcmp(k, "tls") == 0)
			env.tls_version = v;
		else if (strcmp(k, "offset") == 0)
			offset = (off_t)atoll(v);
		else if (strcmp(k, "lead") == 0) {
			lead = slurp(v, &lead_len);
			if (!lead) {
				fprintf(stderr, "milter_probe: cannot read %s\n", v);
				return 2;
			}
		} else {
			fprintf(stderr, "milter_probe: unknown key %s\n", k);
			return 2;
		}
	}
	if (env.rcpt_count == 0)
		rcpts[env.rcpt_count++] = "owner@example.org";
	int fd = open(argv[3], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "milter_probe: cannot open %s\n", argv[3]);
		return 2;
	}

	struct milter_result r;
	milter_check(argv[1], (unsigned)atoi(argv[2]), &env, lead, lead_len, fd, offset, &r);
	close(fd);

	static const char *const kinds[] = {"add", "insert", "change"};
	json_t *changes = json_array();
	for (size_t i = 0; i < r.change_count; i++)
		json_array_append_new(changes, json_pack("{s:s, s:i, s:s, s:s}",
			"kind", kinds[r.changes[i].kind], "index", (int)r.changes[i].index,
			"name", r.changes[i].name, "value", r.changes[i].value));
	json_t *o = json_pack("{s:s, s:s, s:b, s:s, s:s, s:o}", "verdict",
		milter_verdict_name(r.verdict), "reply", r.reply, "quarantine", r.quarantine,
		"quarantine_reason", r.quarantine_reason, "error", r.error, "changes", changes);
	char *text = o ? json_dumps(o, JSON_ENSURE_ASCII) : NULL;
	if (!text) {
		fprintf(stderr, "milter_probe: result not representable as JSON\n");
		return 1;
	}
	printf("%s\n", text);
	free(text);
	json_decref(o);
	milter_result_free(&r);
	free(lead);
	return 0;
}

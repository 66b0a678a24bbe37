/* fuzz_authorize.c: the parser of the browser's redirect to `mailpopbox authorize`'s loopback
 * listener (authorize_parse_request_line, src/push/authorize.c) on arbitrary request lines:
 * -1, 0 or 1, parameters only for a request of "/", decoded without NUL, and every allocation
 * freed. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "push/authorize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);
	struct authorize_redirect r;

	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	int rc = authorize_parse_request_line(line, &r);
	check(rc == -1 || rc == 0 || rc == 1);
	if (rc == 1) {
		check(strncmp(line, "GET /", 5) == 0);
		const char *fields[] = {r.code, r.state, r.error, r.error_description};
		for (size_t i = 0; i < 4; i++)
			check(fields[i] == NULL || strlen(fields[i]) <= size);
	} else {
		check(r.code == NULL && r.state == NULL && r.error == NULL &&
		      r.error_description == NULL);
	}
	authorize_redirect_free(&r);
	free(line);
	return 0;
}

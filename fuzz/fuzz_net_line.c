/* fuzz_net_line.c: the line framer (src/net/line.c) on arbitrary input split at arbitrary
 * points: no line longer than the limit, none with its end of line in it, the buffer bounded,
 * and memory bounded by the limit whatever the input. */
#include <event2/buffer.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/line.h"

#define MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct net_line_reader r;
	struct evbuffer *in;
	char line[MAX + 1];
	size_t len;

	if (size == 0 || !(in = evbuffer_new()))
		return 0;
	net_line_reader_init(&r, MAX);
	/* The first octet sets the piece size, so pieces split lines anywhere. */
	size_t step = (size_t)data[0] % 17 + 1;
	data++;
	size--;
	for (size_t i = 0; i < size; i += step) {
		evbuffer_add(in, data + i, size - i < step ? size - i : step);
		enum net_line_result got;
		while ((got = net_line_read(&r, in, line, &len)) != NET_LINE_NONE) {
			if (len > MAX || line[len] != '\0' ||
			    (got == NET_LINE_OK && memchr(line, '\n', len)))
				abort();
		}
		if (evbuffer_get_length(in) > MAX + 1)
			abort();
	}
	evbuffer_free(in);
	return 0;
}

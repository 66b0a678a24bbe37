/* log.c: key=value event lines on stderr. */
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Set at start, read by every event loop's thread. */
static _Atomic enum log_level min_level = LOG_LEVEL_INFO;
/* A line of at most PIPE_BUF octets goes out in one write(2), which a pipe, a regular file and
 * journald's stream socket take whole, so such lines only share this lock (no futex(2) when
 * two event loops log at once: that was about one per message, inbound). A longer line
 * holds it alone for its several writes, which then cannot be interleaved with another. */
static pthread_rwlock_t write_lock = PTHREAD_RWLOCK_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&min_level, level, memory_order_relaxed);
}

/* The whole line in one write(2) (stdio's unbuffered stderr may make several). */
static void write_line(const char *line, size_t len)
{
	if (len <= PIPE_BUF)
		pthread_rwlock_rdlock(&write_lock);
	else
		pthread_rwlock_wrlock(&write_lock);
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, line, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* nowhere to log to */
		line += n;
		len -= (size_t)n;
	}
	pthread_rwlock_unlock(&write_lock);
}

__attribute__((format(printf, 3, 0)))
static void log_vmsg(enum log_level level, const char *module, const char *fmt, va_list ap)
{
	char stamp[32];
	struct timespec now;
	struct tm tm;
	char line[2048];
	int n;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03ldZ level=%s module=%s ", stamp,
		now.tv_nsec / 1000000, level_names[level], module);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	/* Whatever a value holds (a remote server's reply, a file name), it cannot end the line
	 * or start a forged one: control octets are written as \xNN. */
	char safe[sizeof(line) * 4];
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)line; *p && o + 6 < sizeof(safe); p++) {
		if (*p < 0x20 || *p == 0x7f) {
			o += (size_t)snprintf(safe + o, sizeof(safe) - o, "\\x%02x", *p);
		} else {
			safe[o++] = (char)*p;
		}
	}
	safe[o++] = '\n';
	/* One write per event so concurrent threads never interleave inside a line. */
	write_line(safe, o);
}

void log_msg(enum log_level level, const char *module, const char *fmt, ...)
{
	va_list ap;

	if (level < atomic_load_explicit(&min_level, memory_order_relaxed))
		return;
	va_start(ap, fmt);
	log_vmsg(level, module, fmt, ap);
	va_end(ap);
}

const char *log_quote(char *out, size_t outsz, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (outsz < 8) {
		if (outsz)
			out[0] = '\0';
		return out;
	}
	out[o++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		/* Room for the widest escape, the closing quote, "..." and NUL. */
		if (o + 4 + 1 + 3 + 1 > outsz) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

bool log_rate_limit_allow(struct log_rate_limit *limit, time_t now, unsigned long *suppressed)
{
	bool allow;

	pthread_mutex_lock(&limit->lock);
	/* A clock set back starts a new interval rather than silencing the log until it
	 * catches up. */
	if (now < limit->interval_start ||
	    now - limit->interval_start >= (time_t)limit->interval_seconds) {
		limit->interval_start = now;
		limit->logged = 0;
	}
	allow = limit->logged < limit->burst;
	if (allow) {
		limit->logged++;
		*suppressed = limit->suppressed;
		limit->suppressed = 0;
	} else {
		limit->suppressed++;
		*suppressed = 0;
	}
	pthread_mutex_unlock(&limit->lock);
	return allow;
}

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERROR, "fatal", fmt, ap);
	va_end(ap);
	exit(1);
}

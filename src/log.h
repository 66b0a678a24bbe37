/* log.h: one line per event on stderr as key=value fields, e.g.
 *   log_info("smtp", "event=accepted client=%s id=%s", ip, id);
 * Values that come from clients go through log_quote() so a line can never be split or forged.
 * Passwords and AUTH payloads are never passed here. */
#ifndef MAILPOPBOX_LOG_H
#define MAILPOPBOX_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

void log_set_level(enum log_level level);
void log_msg(enum log_level level, const char *module, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
/* Writes a double-quoted, escaped copy of the len bytes of s into out (capacity outsz, always
 * NUL-terminated, truncated with "..." when too long) and returns out. */
const char *log_quote(char *out, size_t outsz, const char *s, size_t len);
/* Logs and exits(1): for broken invariants and allocation failure, never for client input. */
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define log_debug(module, ...) log_msg(LOG_LEVEL_DEBUG, module, __VA_ARGS__)
#define log_info(module, ...) log_msg(LOG_LEVEL_INFO, module, __VA_ARGS__)
#define log_warn(module, ...) log_msg(LOG_LEVEL_WARN, module, __VA_ARGS__)
#define log_error(module, ...) log_msg(LOG_LEVEL_ERROR, module, __VA_ARGS__)

/* A budget of lines for an event a remote party can cause at will: the first `burst` events
 * of each interval are logged, the others only counted; the count is handed over with the
 * next event that is logged (as Linux's printk_ratelimit reports "callbacks suppressed").
 * Safe to share between threads. */
struct log_rate_limit {
	pthread_mutex_t lock;
	unsigned burst;
	unsigned interval_seconds;
	time_t interval_start;
	unsigned logged;          /* in the current interval */
	unsigned long suppressed; /* since the last logged event */
};

#define LOG_RATE_LIMIT_INIT(burst, interval_seconds) \
	{PTHREAD_MUTEX_INITIALIZER, (burst), (interval_seconds), 0, 0, 0}

/* Whether the event at time now is to be logged. When it is, *suppressed is the number of
 * events held back before it (to be logged as a summary first, 0 if none); otherwise 0. */
bool log_rate_limit_allow(struct log_rate_limit *limit, time_t now, unsigned long *suppressed);

#endif

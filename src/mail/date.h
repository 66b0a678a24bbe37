/* mail/date.h: the RFC 5322 3.3 date-time of every header we write (Date, Received, the DSN
 * dates), in one format: "Tue, 01 Dec 2026 10:00:00 +0100", local time with its offset from
 * UTC, day and month names in English whatever the locale. Pure apart from the time zone. */
#ifndef MAILPOPBOX_MAIL_DATE_H
#define MAILPOPBOX_MAIL_DATE_H

#include <time.h>

#include "strbuf.h"

/* "Fri, 13 Feb 2026 10:00:00 +0000" is 31 characters; room for a NUL and more. */
#define MAIL_DATE_MAX 40

/* Writes the date-time of when into out. A time whose year cannot be written as RFC 5322's
 * four digits from 1900 on is written as the epoch (it only comes from a broken clock or a
 * corrupt spool entry). */
void mail_date_format(time_t when, char out[MAIL_DATE_MAX]);
/* Appends the same to out. */
void mail_date_append(struct strbuf *out, time_t when);

#endif

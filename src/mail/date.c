/* mail/date.c: RFC 5322 3.3 date-time, written by hand: strftime's %a and %b follow the
 * locale, and %z is not in C17. */
#include "mail/date.h"

#include <stdio.h>
#include <stdlib.h>

static const char *const day_names[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
	"Aug", "Sep", "Oct", "Nov", "Dec"};

/* Local time of when, or of the epoch when when cannot be written (see mail_date.h). */
static void local_time(time_t when, struct tm *tm)
{
	if (localtime_r(&when, tm) && tm->tm_year + 1900LL >= 1900 &&
	    tm->tm_year + 1900LL <= 9999 && tm->tm_wday >= 0 && tm->tm_wday <= 6 &&
	    tm->tm_mon >= 0 && tm->tm_mon <= 11)
		return;
	when = 0;
	localtime_r(&when, tm);
}

void mail_date_format(time_t when, char out[MAIL_DATE_MAX])
{
	struct tm tm;
	int minutes;

	local_time(when, &tm);
	/* RFC 5322 3.3: zone = ("+" / "-") 4DIGIT, the local time's offset from UTC (real zones
	 * stay within a day of it). */
	minutes = (int)(labs(tm.tm_gmtoff) / 60 % (100 * 60));
	snprintf(out, MAIL_DATE_MAX, "%s, %02d %s %04d %02d:%02d:%02d %c%02d%02d",
		day_names[tm.tm_wday], tm.tm_mday, month_names[tm.tm_mon], tm.tm_year + 1900,
		tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_gmtoff < 0 ? '-' : '+', minutes / 60,
		minutes % 60);
}

void mail_date_append(struct strbuf *out, time_t when)
{
	char date[MAIL_DATE_MAX];

	mail_date_format(when, date);
	strbuf_append_str(out, date);
}

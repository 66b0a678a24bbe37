/* push/transport.c: names of the transport verdicts, for logs and `mailpopbox queue`. */
#include "push/transport.h"

const char *push_status_name(enum push_status status)
{
	switch (status) {
	case PUSH_OK:
		return "ok";
	case PUSH_TEMPORARY:
		return "temporary";
	case PUSH_AUTH:
		return "auth";
	case PUSH_REFUSED:
		return "refused";
	}
	return "unknown";
}

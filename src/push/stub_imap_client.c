/* push/stub_imap_client.c: stands in for push/imap_client.c until that lands (meson builds it
 * only when imap_client.c is missing), so the engine builds and links alone. Every call fails
 * as a temporary error: nothing is ever marked pushed. */
#include "push/imap_client.h"

#include <stdio.h>

struct imap_client {
	int unused;
};

static struct imap_client stub;

struct imap_client *imap_client_new(const struct imap_client_options *options)
{
	(void)options;
	return &stub;
}

void imap_client_free(struct imap_client *c)
{
	(void)c;
}

bool imap_client_connected(const struct imap_client *c)
{
	(void)c;
	return false;
}

enum push_status imap_client_login(struct imap_client *c, const char *access_token,
	char *err, size_t errsz)
{
	(void)c;
	(void)access_token;
	snprintf(err, errsz, "IMAP client not built");
	return PUSH_TEMPORARY;
}

enum push_status imap_client_append(struct imap_client *c, struct push_item *items, size_t count,
	char *err, size_t errsz)
{
	(void)c;
	(void)items;
	(void)count;
	snprintf(err, errsz, "IMAP client not built");
	return PUSH_TEMPORARY;
}

enum push_status imap_client_find(struct imap_client *c, const char *message_id, bool junk,
	bool *found, char *err, size_t errsz)
{
	(void)c;
	(void)message_id;
	(void)junk;
	*found = false;
	snprintf(err, errsz, "IMAP client not built");
	return PUSH_TEMPORARY;
}

/* config.h: the server configuration, loaded from the original mailpopbox's JSON file.
 * The original's keys keep their meaning; every new key is optional with a default listed in
 * docs/config.md (and in the defaults table in config.c). */
#ifndef MAILPOPBOX_CONFIG_H
#define MAILPOPBOX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "Servers[].Destination": where each message of the maildrop is pushed (docs/config.md). */
enum destination_type {
	DESTINATION_IMAP,  /* "Type": "imap": IMAP APPEND into Mailbox */
	DESTINATION_GMAIL, /* "Type": "gmail": the Gmail API's users.messages.import */
};

enum destination_tls {
	DESTINATION_TLS_IMPLICIT, /* "TLS": "implicit" (default; port 993) */
	DESTINATION_TLS_STARTTLS, /* "TLS": "starttls" (port 143); never plaintext */
};

struct destination_config {
	enum destination_type type;  /* "Type", required */
	char *host;                  /* "Host", required for imap */
	int port;                    /* "Port", default 993 (implicit) or 143 (starttls) */
	enum destination_tls tls;    /* "TLS" */
	char *username;              /* "Username", required for imap */
	char *password;              /* "Password": an app password; or OAuth below, not both */
	char *oauth_client_file;     /* "OAuthClientFile": client JSON as downloaded */
	char *oauth_token_file;      /* "OAuthTokenFile": refresh token, 0600, atomic writes */
	char *mailbox;               /* "Mailbox", default "INBOX" (imap) */
	char *junk_mailbox;          /* "JunkMailbox", default "Junk" (imap): the maildrop's .Junk */
	char *gmail_api_url;         /* "GmailAPIURL", default "https://gmail.googleapis.com" */
	char *tls_ca_file;           /* "TLSCAFile", NULL = the system's CA store */
	bool keep_copy;              /* "KeepCopy", default false */
};

/* One entry of "Servers": a domain and its maildrop. */
struct server_config {
	char *domain;            /* "Domain", required; stored lower-case */
	char *mailbox_password;  /* "MailboxPassword"; exactly one of it and the hash is set */
	char *mailbox_password_hash; /* "MailboxPasswordHash": crypt(3) string ($y$, $6$, $2b$) */
	char *tls_key_path;      /* "TLSKeyPath", optional; NULL when absent or "" */
	char *tls_cert_path;     /* "TLSCertPath", optional; both or neither */
	char *maildrop_path;     /* "MaildropPath", required */
	char **blocked_addresses; /* "BlockedAddresses", stored lower-case */
	size_t blocked_count;
	char *dkim_selector;     /* "DKIMSelector", optional; with DKIMKeyPath, both or neither */
	char *dkim_key_path;     /* "DKIMKeyPath": RSA private key (PEM) */
	struct destination_config *destination; /* "Destination", NULL when absent */
};

struct config {
	/* Original keys. */
	int smtp_port;       /* "SMTPPort", default 25 */
	int pop3_port;       /* "POP3Port", default 995 */
	char *hostname;      /* "Hostname", required */
	struct server_config *servers; /* "Servers", at least one */
	size_t server_count;

	/* New keys (defaults in docs/config.md). */
	char *listen_address;          /* "ListenAddress", NULL = all addresses */
	uint64_t max_message_size;     /* "MaxMessageSize", octets */
	unsigned max_recipients;       /* "MaxRecipients" */
	unsigned max_connections;      /* "MaxConnections", all listeners together */
	unsigned max_connections_per_ip; /* "MaxConnectionsPerIP" */
	unsigned smtp_command_timeout; /* "SMTPCommandTimeoutSeconds" */
	unsigned smtp_data_timeout;    /* "SMTPDataTimeoutSeconds" */
	int pop3_stls_port;            /* "POP3STLSPort", 0 = off */
	unsigned pop3_idle_timeout;    /* "POP3IdleTimeoutSeconds" */

	/* Sending (submission and the outbound queue). */
	int submission_port;           /* "SubmissionPort", default 587, 0 = off (STARTTLS) */
	int submission_tls_port;       /* "SubmissionTLSPort", default 465, 0 = off (implicit TLS) */
	char *spool_path;              /* "SpoolPath", default CONFIG_DEFAULT_SPOOL_PATH */
	char *dns_resolver;            /* "DNSResolver" "ip:port", NULL = the system resolver */
	int outbound_port;             /* "OutboundPort", default 25 */
	char *outbound_relay_host;     /* "OutboundRelayHost" "host:port", NULL = direct to MX */
	char *outbound_relay_user;     /* "OutboundRelayUser" */
	char *outbound_relay_password; /* "OutboundRelayPassword" */
	char *outbound_relay_ca_file;  /* "OutboundRelayCAFile", NULL = the system's CA store */
	unsigned queue_retry_base;     /* "QueueRetryBaseSeconds", default 60 */
	unsigned queue_lifetime;       /* "QueueLifetimeSeconds", default 432000 (5 days) */

	/* Operations. */
	char *user;                    /* "User": drop root to this user after binding, or NULL */
	char *group;                   /* "Group": its group instead of the user's own */
	unsigned auth_max_failures;    /* "AuthMaxFailures", default 10 */
	unsigned auth_failure_window;  /* "AuthFailureWindowSeconds", default 600 */
	unsigned auth_lockout;         /* "AuthLockoutSeconds", default 900 */

	/* Sender checks on the MX port (docs/smtp.md). */
	bool verify_senders;           /* "VerifySenders", default true: SPF, DKIM, DMARC */
	bool dmarc_reject;             /* "DMARCReject", default true: 550 under p=reject */
	char **dnsbl_zones;            /* "DNSBLZones", at most DNSBL_ZONES_MAX, lower-case */
	size_t dnsbl_zone_count;
	char *milter;                  /* "Milter" "inet:HOST:PORT" or "unix:PATH", NULL = none */
	bool milter_fail_open;         /* "MilterFailOpen", default true */
	unsigned milter_timeout;       /* "MilterTimeoutSeconds", 1..MILTER_TIMEOUT_MAX */

	/* Whether the file set these keys: a config written for the original does not, and
	 * must still start where their defaults cannot be used (an unprivileged user cannot
	 * bind 587/465 or create /var/spool/mailpopbox). */
	bool submission_port_given;
	bool submission_tls_port_given;
	bool spool_path_given;
};

#define CONFIG_DEFAULT_SPOOL_PATH "/var/spool/mailpopbox"

/* Loads and validates path. On success returns 0 and fills *out (free with config_free).
 * On failure returns -1, fills *out with nothing, and writes one line naming the key and the
 * problem into err (e.g. "Servers[0].Domain: missing"). Unknown keys are logged as warnings
 * (log_warn), naming each key. */
int config_load(const char *path, struct config *out, char *err, size_t errsz);
/* The same from a JSON text in memory (used by tests and the config fuzz target). */
int config_load_string(const char *json, struct config *out, char *err, size_t errsz);
void config_free(struct config *cfg);

/* The Server whose Domain equals domain (case-insensitive, len bytes), or NULL. */
const struct server_config *config_find_domain(const struct config *cfg, const char *domain,
	size_t len);
/* True when address (local@domain, len bytes) is in server's BlockedAddresses,
 * compared case-insensitively. */
bool config_address_blocked(const struct server_config *server, const char *address, size_t len);
/* True when at least one Server has a certificate. */
bool config_has_tls(const struct config *cfg);

#endif

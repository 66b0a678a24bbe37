/* bounds.h: every bound mailpopbox enforces, in one place, with where it comes from.
 * docs/limits.md lists the same values for operators; keep the two in step. */
#ifndef MAILPOPBOX_BOUNDS_H
#define MAILPOPBOX_BOUNDS_H

/* RFC 5321 4.5.3.1.4 allows 512 octets per command line; SIZE/SMTPUTF8/DSN parameters
 * (RFC 1870 3, RFC 3461 4) may extend it, so we allow 2048 like Postfix's line_length_limit. */
#define SMTP_COMMAND_LINE_MAX 2048
/* RFC 5321 4.5.3.1.1 and 4.5.3.1.2: local-part 64, domain 255 octets. */
#define SMTP_LOCAL_PART_MAX 64
#define SMTP_DOMAIN_MAX 255
/* RFC 5321 4.5.3.1.3: a path is at most 256 octets including the angle brackets. */
#define SMTP_PATH_MAX 256
/* RFC 5321 4.5.3.1.8 requires at least 100 recipients; "MaxRecipients" config, default. */
#define SMTP_DEFAULT_MAX_RECIPIENTS 100
/* Default "MaxMessageSize" in octets (the value the original Go server documents). */
#define SMTP_DEFAULT_MAX_MESSAGE_SIZE 40960000ULL
/* Bad commands before we hang up (RFC 5321 does not bound it; Postfix's smtpd_hard_error_limit). */
#define SMTP_MAX_ERRORS 20
/* RFC 5321 4.5.3.2.7: server timeout waiting for the next command is at least 5 minutes. */
#define SMTP_DEFAULT_COMMAND_TIMEOUT_SECONDS 300
/* RFC 5321 4.5.3.2.5/4.5.3.2.6: data block and DATA termination, at least 3 / 10 minutes;
 * we time out a DATA transfer that has received nothing for this long. */
#define SMTP_DEFAULT_DATA_TIMEOUT_SECONDS 600
/* The slowest DATA transfer we wait for, in octets per second (128 kbit/s, a poor mobile
 * uplink; a mail server sends far faster). A whole DATA transfer must end within
 * "SMTPDataTimeoutSeconds" (its base: what one silence may last) + "MaxMessageSize" / this
 * rate: 3100 s with the defaults. RFC 5321 sets no limit on the whole; without one, a
 * client trickling a byte now and then keeps a slot for as long as it likes, since the idle
 * timeout only counts silence. A transfer below the rate also counts as idle for shedding
 * (SERVER_SHED_IDLE_SECONDS). */
#define SMTP_DATA_MIN_RATE 16384
/* The whole-DATA deadline at most (68 years: no limit, but a timer that cannot overflow). */
#define SMTP_DATA_DEADLINE_MAX_SECONDS 2147483647U
/* Connection caps ("MaxConnections", "MaxConnectionsPerIP"). */
#define SERVER_DEFAULT_MAX_CONNECTIONS 1000
#define SERVER_DEFAULT_MAX_CONNECTIONS_PER_IP 20
/* Of MaxConnections, this share in percent (rounded up, never all of them) is kept for the
 * owner's listeners (POP3, submission): the MX port, open to anyone, cannot fill the house
 * alone. A tenth (100 of the default 1000) is far more than one owner's devices use, and
 * leaves nine tenths for incoming mail. */
#define SERVER_RESERVED_CONNECTIONS_PERCENT 10
/* A full house sheds the connection longest without progress (a complete command line, or
 * DATA at SMTP_DATA_MIN_RATE) instead of refusing a new one, if it has made none for this
 * long: a client in a live conversation answers within a few round trips, so a slot held
 * this long without progress is held, not used. Authenticated sessions are never shed. */
#define SERVER_SHED_IDLE_SECONDS 5
/* Candidates looked at for one shedding; one that cannot be closed now (its commit or
 * password check is running) is passed over. */
#define SERVER_SHED_CANDIDATES_MAX 16
/* Bytes buffered for one client before we stop reading from it (pipelining back-pressure). */
#define SESSION_INPUT_BUFFER_MAX (64 * 1024)
/* Bound on replies queued for a client that does not read them. */
#define SESSION_OUTPUT_BUFFER_MAX (256 * 1024)
/* RFC 1939 3: POP3 command lines are at most 255 octets (RFC 2449 4: 255 octets incl. CRLF);
 * AUTH PLAIN continuation lines (RFC 5034 4) carry base64 of up to ~770 octets, so we allow 1024. */
#define POP3_COMMAND_LINE_MAX 1024
/* RFC 1939 3: autologout timer at least 10 minutes. */
#define POP3_DEFAULT_IDLE_TIMEOUT_SECONDS 600
/* Bad POP3 commands in a row before we hang up (like SMTP_MAX_ERRORS). */
#define POP3_MAX_ERRORS 20
/* Failed logins per POP3 connection; USER's +OK does not reset the count. */
#define POP3_MAX_AUTH_FAILURES 3
/* RFC 1939 7 / RFC 2449 6.2: a POP3 argument is at most 40 octets. */
#define POP3_ARGUMENT_MAX 40
/* RFC 1939 7: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E. */
#define POP3_UIDL_MAX 70
/* Messages one POP3 session will list; beyond this the rest wait for the next session. */
#define POP3_MAX_MESSAGES 1000000
/* The Maildir spec: a file in tmp/ untouched (atime, mtime and ctime) for 36 hours is a dead
 * delivery's leftover; removed when POP3 opens the maildrop, at most this many looked at. */
#define MAILDROP_TMP_STALE_SECONDS (36 * 3600)
#define MAILDROP_TMP_SCAN_MAX 10000
/* Octets of a message being received held in memory before they are written to its tmp/
 * file: a message up to this size is written in one write(2), by the commit on a worker. */
#define MAILDROP_WRITE_BUFFER (32 * 1024)
/* Seconds after the last connection closes before freed memory goes back to the system
 * (malloc_trim), unless a new connection came and went meanwhile. */
#define MEMORY_TRIM_IDLE_SECONDS 10
/* Outbound queue: first retry after this many seconds, doubling each time up to
 * QUEUE_MAX_RETRY_SECONDS ("QueueRetryBaseSeconds"); give up after "QueueLifetimeSeconds"
 * (5 days, RFC 5321 4.5.4.1 suggests at least 4-5 days). */
#define QUEUE_DEFAULT_RETRY_BASE_SECONDS 60
#define QUEUE_MAX_RETRY_SECONDS (4 * 3600)
#define QUEUE_DEFAULT_LIFETIME_SECONDS 432000
/* Deliveries in progress at once. */
#define QUEUE_MAX_PARALLEL_DELIVERIES 10
/* Brute-force throttling per client IP ("AuthMaxFailures" failed logins within
 * "AuthFailureWindowSeconds" lock the IP out for "AuthLockoutSeconds"; each failure's reply
 * waits one second more, up to THROTTLE_MAX_DELAY_SECONDS in throttle.h). */
#define AUTH_DEFAULT_MAX_FAILURES 10
#define AUTH_DEFAULT_FAILURE_WINDOW_SECONDS 600
#define AUTH_DEFAULT_LOCKOUT_SECONDS 900
/* Worker threads at most, started only when a job would wait (an idle server has none):
 * fsync/rename, maildrop listing, password checks, DKIM signing and TLS handshake steps, off
 * the event loop. 8 and 16 measured no faster on 2 cores (bench/README.md, profile; 16 again
 * on 2026-12-03, without the benchmark's deletion artefact). */
#define WORKER_THREADS 4
/* Event loops at most, one per online CPU by default (MAILPOPBOX_LOOPS overrides it for tests
 * and benchmarks). Each has its own worker pool of up to WORKER_THREADS threads, so this also
 * bounds the threads a large machine starts. */
#define EVENT_LOOPS_MAX 64
/* RFC 4954 4: an AUTH line (base64 of authzid, authcid, password) is at most 12288 octets. */
#define SASL_LINE_MAX 12288

/* ---- enforced by the modules named above each group ---- */

/* net/conn.h */
/* Longest wait for a client to take our last reply. */
#define CONNECTION_CLOSE_FLUSH_SECONDS 5

/* password.h */
/* The longest password hash-password reads; SMTP AUTH and POP3 PASS lines could not carry a
 * much longer one anyway (bounds.h: SASL_LINE_MAX, POP3_COMMAND_LINE_MAX). */
#define PASSWORD_INPUT_MAX 1024
/* bcrypt hashes only the first 72 bytes of a password. */
#define PASSWORD_BCRYPT_INPUT_MAX 72

/* throttle.h */
/* Client addresses whose failed logins are remembered (the stalest is dropped first), and the
 * longest a failed login's reply is held back. */
#define THROTTLE_MAX_ENTRIES 4096
#define THROTTLE_MAX_DELAY_SECONDS 8

/* tls.h */
/* Failed TLS handshakes logged per interval; the rest are counted and the count is logged
 * with the next line that is written. A scanner can fail a handshake as often as it likes:
 * this bounds what it costs the log. Linux's printk_ratelimit() defaults
 * (include/linux/ratelimit_types.h: DEFAULT_RATELIMIT_BURST 10, _INTERVAL 5 s). */
#define TLS_FAILURE_LOG_BURST 10
#define TLS_FAILURE_LOG_INTERVAL_SECONDS 5

/* mail/dsn.h */
/* Diagnostic text kept from a remote reply (one Diagnostic-Code line stays far below the
 * RFC 5322 2.1.1 limit of 998 octets before folding). */
#define DSN_DIAGNOSTIC_MAX 600
/* Original header section returned (RFC 6522 / RFC 3462 text/rfc822-headers); longer sections
 * are cut at a line end. */
#define DSN_HEADERS_MAX (64 * 1024)

/* mail/headers.h */
/* RFC 5322 sets no limit on the header section; like Postfix's header_size_limit we refuse a
 * header section (blank line included) larger than this, and more fields than
 * MAIL_HEADER_FIELDS_MAX, so one message cannot make us hold or scan unbounded structure.
 * The limits apply to what we receive, not to what our own edits write: added fields, and a
 * Subject re-encoded into RFC 2047 words of at most 75 octets (a long word grows by about a
 * quarter when split), can take the written section past them. */
#define MAIL_HEADER_SECTION_MAX (256 * 1024)
#define MAIL_HEADER_FIELDS_MAX 1000

/* queue/dns.h */
/* Hosts whose addresses we look up for one domain (RFC 5321 5.1 leaves the count open). */
#define DNS_MAX_HOSTS 10
/* Addresses tried per host. */
#define DNS_MAX_ADDRESSES 8

/* smtp/address.h */
/* ESMTP parameters on one MAIL or RCPT (RFC 5321 4.1.2 sets no number; we know six). */
#define SMTP_MAX_PARAMS 8

/* smtp/client.h */
/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets including the code and CRLF; real
 * servers exceed it with long texts, so we accept up to SMTP_COMMAND_LINE_MAX like the server
 * side and call anything longer a protocol error. */
#define SMTP_REPLY_LINE_MAX SMTP_COMMAND_LINE_MAX
/* Lines in one (multi-line, RFC 5321 4.2.1) reply; an EHLO reply has about a dozen. */
#define SMTP_REPLY_LINES_MAX 100

/* smtp/session.h */
/* RFC 3461 4.2: ORCPT is addr-type ";" xtext, at most 500 characters. */
#define SMTP_ORCPT_MAX 500
/* RFC 3461 4.4: ENVID is at most 100 characters. */
#define SMTP_ENVID_MAX 100

/* queue/delivery.c */
/* RFC 5321 4.5.3.2: 5 minutes for most replies, 10 for the one after the final dot. */
#define DELIVERY_CONNECT_TIMEOUT_SECONDS 30
#define DELIVERY_REPLY_TIMEOUT_SECONDS 300
#define DELIVERY_FINAL_REPLY_TIMEOUT_SECONDS 600

/* queue/spool.c */
/* An envelope is a few hundred octets per recipient; anything far bigger is not ours and is
 * refused before it is read into memory. */
#define SPOOL_ENVELOPE_MAX (8 * 1024 * 1024)

/* daemon.c */
/* How long a stopping server waits for sessions in DATA or in a commit before exiting. */
#define SHUTDOWN_GRACE_SECONDS 30

/* push/ (push delivery into the owner's mailbox; each helper may add its own limits here,
 * each in its own block below, and in docs/limits.md) */
/* A destination's words kept for logs and `mailpopbox queue`. */
#define PUSH_DETAIL_MAX 200
/* A Gmail message id or an IMAP APPENDUID ("uidvalidity uid"). */
#define PUSH_REMOTE_ID_MAX 64
/* Retry backoff: the first wait, doubled per failure, capped (issue 13: cap 15 minutes). */
#define PUSH_RETRY_FIRST_SECONDS 5
#define PUSH_RETRY_CAP_SECONDS 900

/* push/http.c, push/oauth.c, push/gmail.c, push/authorize.c (the Gmail API and OAuth 2.0) */
/* Connecting to an API or token endpoint (TCP and TLS handshake). */
#define PUSH_HTTP_CONNECT_TIMEOUT_SECONDS 15
/* One whole HTTPS exchange: a message upload at MaxMessageSize over a slow uplink fits. */
#define PUSH_HTTP_TOTAL_TIMEOUT_SECONDS 600
/* An exchange moving under PUSH_HTTP_LOW_SPEED_BYTES per second for this long is cut. */
#define PUSH_HTTP_LOW_SPEED_SECONDS 30
#define PUSH_HTTP_LOW_SPEED_BYTES 100
/* A response body kept in memory (token JSON, import or list answer, an error document). */
#define PUSH_HTTP_RESPONSE_MAX (256 * 1024)
/* The client JSON and the token file (a few hundred octets each as Google and Microsoft make
 * them); anything larger is not theirs. */
#define OAUTH_FILE_MAX (64 * 1024)
/* An access token kept in memory (Google's are ~200 octets, Microsoft's JWTs up to ~4 KiB). */
#define OAUTH_ACCESS_TOKEN_MAX 8192
/* An access token is refreshed this long before it expires. */
#define OAUTH_REFRESH_MARGIN_SECONDS 120
/* The longest lifetime believed of a token endpoint's expires_in (Google says 3599, Microsoft
 * up to ~28 hours with CAE; refreshing sooner costs one request): a larger one, even
 * LONG_MAX, is taken as this, so the refresh time cannot overflow. */
#define OAUTH_EXPIRES_IN_MAX (24 * 3600)
/* `mailpopbox authorize`: how long it waits for the browser's redirect in all, and for one
 * loopback connection's request once connected; the request's size. */
#define AUTHORIZE_WAIT_SECONDS 900
#define AUTHORIZE_REQUEST_TIMEOUT_SECONDS 10
#define AUTHORIZE_REQUEST_MAX 16384

/* push/imap_reply.c and push/imap_client.c (an IMAP destination) */
/* RFC 9051 4 sets no line limit; RFC 7162 4 asks for at least 8192 octets, and a longer
 * response is a protocol error (the connection is dropped, the messages retried). */
#define PUSH_IMAP_LINE_MAX 8192
/* Our own tags are "A" and a counter; a longer tag in a response is not ours. */
#define PUSH_IMAP_TAG_MAX 16
/* Literals inside one response (RFC 9051 4.3) are skipped, never kept: at most this many
 * octets and pieces, else a protocol error. We never FETCH, so real responses stay tiny. */
#define PUSH_IMAP_RESPONSE_LITERAL_MAX (64 * 1024)
#define PUSH_IMAP_RESPONSE_PIECES_MAX 64
/* Untagged responses read while waiting for one command's tagged answer. */
#define PUSH_IMAP_UNTAGGED_MAX 100000
/* Capability atoms read from one CAPABILITY response (the rest are ignored). */
#define PUSH_IMAP_CAPABILITIES_MAX 256
/* Deadlines: TCP connect + TLS handshake; each command's answer; a message's upload gets the
 * command deadline plus its size at this slow rate, and fails sooner when the server takes
 * nothing for a command's time. */
#define PUSH_IMAP_CONNECT_TIMEOUT_SECONDS 30
#define PUSH_IMAP_COMMAND_TIMEOUT_SECONDS 60
/* LOGOUT when the client is freed: a courtesy, so it waits only briefly. */
#define PUSH_IMAP_LOGOUT_TIMEOUT_SECONDS 5
#define PUSH_IMAP_MESSAGE_MIN_OCTETS_PER_SECOND (32 * 1024)
/* APPENDs sent ahead of their answers with LITERAL+/LITERAL- (RFC 7888). */
#define PUSH_IMAP_PIPELINE_MAX 64
/* MULTIAPPEND (RFC 3502): messages and octets in one APPEND command. The server stores them
 * in one transaction (Dovecot: several times the rate of single APPENDs); if it refuses the
 * group, none is stored and each is sent again alone to learn its own verdict. */
#define PUSH_IMAP_MULTIAPPEND_MAX 50
#define PUSH_IMAP_MULTIAPPEND_OCTETS_MAX (8 * 1024 * 1024)
/* The uid-set of an APPENDUID kept to name each message of a MULTIAPPEND. */
#define PUSH_IMAP_UID_SET_MAX 256
/* RFC 7888 5: LITERAL- allows non-synchronising literals of at most 4096 octets. */
#define PUSH_IMAP_LITERAL_MINUS_MAX 4096

/* push/journal.c, push/push.c (the engine) */
/* One journal record: a letter, a space, a Maildir file name (%XX-escaped) and the line end;
 * longer lines are not ours and are skipped. */
#define PUSH_JOURNAL_LINE_MAX 1024
/* The journal is rewritten with only its live records once it has more lines than this and
 * more than twice as many as are live. */
#define PUSH_JOURNAL_COMPACT_LINES 4096
/* Messages, and their octets, offered to a destination in one batch (pipelined APPENDs; one
 * journal fdatasync per batch). A single larger message goes alone. */
#define PUSH_BATCH_MAX 64
#define PUSH_BATCH_OCTETS_MAX (16 * 1024 * 1024)
/* Pending messages taken from one listing of the maildrop; the rest wait for the next one. */
#define PUSH_LISTING_MAX 10000
/* Octets read from a message to find its Message-ID and Date (the whole header section of
 * what we accept, mail/headers.h). */
#define PUSH_HEADER_READ_MAX MAIL_HEADER_SECTION_MAX
/* RFC 5322 2.1.1: a Message-ID longer than a line is not looked up (sent again instead). */
#define PUSH_MESSAGE_ID_MAX 998
/* Even with no inotify event, the maildrop is listed again this often (a writer we did not
 * see: another tool, an inotify queue overflow). */
#define PUSH_RESCAN_SECONDS 300
/* A message in doubt (attempted when the server was killed, or when the connection broke) is
 * looked up at the destination only this long after the break: the destination's end of the
 * old connection may still be storing the APPENDs (or imports) it had fully received, and a
 * lookup made before it has would miss them and send them again. */
#define PUSH_IN_DOUBT_SETTLE_SECONDS 10
/* After a wake-up by a delivery, the engine waits this long before listing the maildrop, so
 * that messages arriving together go in one batch (one journal sync, one MULTIAPPEND). */
#define PUSH_COALESCE_MILLISECONDS 20
/* Messages with their last error kept in the status file for `mailpopbox queue`. */
#define PUSH_STATUS_ERRORS_MAX 100

/* store/maildrop.c: a POP3 login waits this long for the push engine's short hold of the
 * maildrop lock (a batch's unlinks and directory fsync) before answering [IN-USE]. */
#define MAILDROP_LOCK_RETRY_MILLISECONDS 1000
#define MAILDROP_LOCK_RETRY_STEP_MILLISECONDS 20

/* ---- sender verification (src/verify/), the DNSBL check and the milter (src/filter/) ---- */
/* All DNS of one received message's checks (SPF, DKIM keys, DMARC) ends by this deadline;
 * what is unanswered then is a temperror (never a rejection). */
#define VERIFY_DEADLINE_SECONDS 20
/* One DNS query's wait (c-ares timeout, tried twice within the deadline). */
#define DNSQ_QUERY_TIMEOUT_MS 3000
/* The shared cache of answers, and the longest an answer is kept whatever its TTL. */
#define DNSQ_CACHE_ENTRIES 1024
#define DNSQ_TTL_MAX_SECONDS 3600
/* The largest DNS answer taken (a TXT record set of an SPF or DKIM key is well below). */
#define DNSQ_ANSWER_MAX 8192
/* Signatures of one message that are verified; more are a permerror each. */
#define DKIM_SIGNATURES_MAX 8
/* Octets kept of one value (domain, selector, address) and of one comment in the
 * Authentication-Results field. */
#define AUTHRES_VALUE_MAX 320
#define AUTHRES_COMMENT_MAX 80
/* DNSBLZones entries; the lookups of one connection end by the deadline. */
#define DNSBL_ZONES_MAX 8
#define DNSBL_DEADLINE_SECONDS 10
#define DNSBL_REASON_MAX 256
/* One milter packet's length (the protocol's body chunks are at most 65535 octets), the
 * header changes taken from one milter, its SMTP reply kept, and MilterTimeoutSeconds. */
#define MILTER_PACKET_MAX 65536
#define MILTER_CHANGES_MAX 100
#define MILTER_SMTP_REPLY_MAX 1024
#define MILTER_TIMEOUT_MAX 600
#define MILTER_TIMEOUT_DEFAULT 30

#endif

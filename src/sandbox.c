/* sandbox.c: a Landlock ruleset built from the configuration's paths. The kernel interface is
 * three system calls (no libc wrappers in Debian 12): create a ruleset that names the access
 * rights we govern, add a rule per allowed directory, then restrict ourselves. */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/landlock.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"

#ifdef LANDLOCK_ACCESS_FS_REFER
#define REFER_ACCESS LANDLOCK_ACCESS_FS_REFER
#else
#define REFER_ACCESS 0
#endif
#define READ_ACCESS (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define EXEC_ACCESS (READ_ACCESS | LANDLOCK_ACCESS_FS_EXECUTE)
/* Everything a Maildir and the spool need: create, write, rename, unlink, mkdir. */
#define WRITE_ACCESS (READ_ACCESS | LANDLOCK_ACCESS_FS_WRITE_FILE | \
	LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE | \
	LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | REFER_ACCESS)

static uint64_t all_access(int abi)
{
	uint64_t access = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0..12 */
#ifdef LANDLOCK_ACCESS_FS_REFER
	/* ABI 2: renames across directories (tmp/ -> new/) need REFER once it is handled. */
	if (abi >= 2)
		access |= LANDLOCK_ACCESS_FS_REFER;
#endif
	return access;
}

static int add_rule(int ruleset, const char *path, uint64_t access, uint64_t handled)
{
	struct landlock_path_beneath_attr rule = {.allowed_access = access & handled};
	int fd = open(path, O_PATH | O_CLOEXEC);

	if (fd < 0) {
		/* A path that does not exist yet cannot be used; say so, do not fail. */
		log_warn("sandbox", "event=rule_skipped path=%s error=\"%s\"", path, strerror(errno));
		return 0;
	}
	rule.parent_fd = fd;
	int r = (int)syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
	int saved = errno;
	close(fd);
	if (r != 0) {
		/* A rule on a file (not a directory) may only carry file rights. */
		errno = saved;
		return -1;
	}
	return 0;
}

/* The directory of path and, when path is a link (an ACME client's live/ symlink), the
 * directory of what it points to, so a renewed certificate can still be read on SIGHUP. */
static int add_read_dirs_of(int ruleset, const char *path, uint64_t handled)
{
	char resolved[PATH_MAX];
	char *dir = fs_parent_directory(path);
	int r = add_rule(ruleset, dir, READ_ACCESS, handled);

	free(dir);
	if (r == 0 && realpath(path, resolved)) {
		dir = fs_parent_directory(resolved);
		r = add_rule(ruleset, dir, READ_ACCESS, handled);
		free(dir);
	}
	return r;
}

/* A push Destination reads its OAuth client file and CA file, and replaces its OAuth token
 * file atomically (a staging file beside it, then a rename): that directory is writable. The
 * system's CA store and resolver files are under /etc and /usr, allowed below. */
static int add_destination_rules(int ruleset, const struct destination_config *d,
	uint64_t handled)
{
	int r = 0;

	if (d->oauth_client_file)
		r = add_read_dirs_of(ruleset, d->oauth_client_file, handled);
	if (r == 0 && d->tls_ca_file)
		r = add_read_dirs_of(ruleset, d->tls_ca_file, handled);
	if (r == 0 && d->oauth_token_file) {
		char *dir = fs_parent_directory(d->oauth_token_file);
		r = add_rule(ruleset, dir, WRITE_ACCESS, handled);
		free(dir);
	}
	return r;
}

int sandbox_apply(const struct config *cfg, const char *config_path)
{
	int abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0,
		LANDLOCK_CREATE_RULESET_VERSION);

	/* Header dates are local time (mail/date.h): the zone file is read now, while it still
	 * may be; localtime_r keeps what tzset found. */
	tzset();
	if (abi < 1) {
		log_info("sandbox", "event=landlock_unavailable error=\"%s\"", strerror(errno));
		return 0;
	}
	/* Rules need the directories to exist; creating them is what a first delivery does. */
	for (size_t i = 0; i < cfg->server_count; i++) {
		char *tmp = fs_path_printf("%s/tmp", cfg->servers[i].maildrop_path);
		int r = fs_make_directories(tmp);
		free(tmp);
		if (r != 0) {
			log_error("sandbox", "event=maildrop_failed path=%s error=\"%s\"",
				cfg->servers[i].maildrop_path, strerror(errno));
			return -1;
		}
	}
	if (fs_make_directories(cfg->spool_path) != 0) {
		log_error("sandbox", "event=spool_failed path=%s error=\"%s\"", cfg->spool_path,
			strerror(errno));
		return -1;
	}

	uint64_t handled = all_access(abi);
	struct landlock_ruleset_attr attr = {.handled_access_fs = handled};
	int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (ruleset < 0) {
		log_warn("sandbox", "event=landlock_failed error=\"%s\"", strerror(errno));
		return 0;
	}
	int r = 0;
	for (size_t i = 0; i < cfg->server_count && r == 0; i++) {
		const struct server_config *s = &cfg->servers[i];
		r = add_rule(ruleset, s->maildrop_path, WRITE_ACCESS, handled);
		if (r == 0 && s->tls_cert_path)
			r = add_read_dirs_of(ruleset, s->tls_cert_path, handled);
		if (r == 0 && s->tls_key_path)
			r = add_read_dirs_of(ruleset, s->tls_key_path, handled);
		if (r == 0 && s->dkim_key_path)
			r = add_read_dirs_of(ruleset, s->dkim_key_path, handled);
		if (r == 0 && s->destination)
			r = add_destination_rules(ruleset, s->destination, handled);
	}
	if (r == 0)
		r = add_rule(ruleset, cfg->spool_path, WRITE_ACCESS, handled);
	if (r == 0)
		r = add_read_dirs_of(ruleset, config_path, handled);
	if (r == 0 && cfg->outbound_relay_ca_file)
		r = add_read_dirs_of(ruleset, cfg->outbound_relay_ca_file, handled);
	/* resolv.conf, hosts, passwd, CA files; libraries and a sanitizer's symbolizer;
	 * /proc/self/maps for LeakSanitizer; /dev/urandom for OpenSSL's fallback. */
	static const struct {
		const char *path;
		uint64_t access;
	} system[] = {{"/etc", READ_ACCESS}, {"/usr", EXEC_ACCESS}, {"/proc", READ_ACCESS},
		{"/dev/urandom", LANDLOCK_ACCESS_FS_READ_FILE}, {"/dev/null",
		LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE}};
	for (size_t i = 0; i < sizeof(system) / sizeof(system[0]) && r == 0; i++)
		r = add_rule(ruleset, system[i].path, system[i].access, handled);
	/* c-ares reads these on a worker whenever a channel is made (verify/dnsq.c); with
	 * systemd-resolved resolv.conf is a link into /run/systemd/resolve/. */
	if (r == 0)
		r = add_read_dirs_of(ruleset, "/etc/resolv.conf", handled);
	if (r == 0)
		r = add_read_dirs_of(ruleset, "/etc/hosts", handled);
#ifdef MAILPOPBOX_COVERAGE_DIR
	/* A coverage build only (meson -Db_coverage=true): at exit gcov writes each object's
	 * counters into a .gcda file beside it in the build directory. */
	if (r == 0)
		r = add_rule(ruleset, MAILPOPBOX_COVERAGE_DIR, WRITE_ACCESS, handled);
#endif
	if (r != 0) {
		log_warn("sandbox", "event=landlock_failed error=\"%s\"", strerror(errno));
		close(ruleset);
		return 0;
	}
	/* Landlock requires no_new_privs (or CAP_SYS_ADMIN); we never exec anything anyway. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) {
		log_warn("sandbox", "event=landlock_failed error=\"%s\"", strerror(errno));
		close(ruleset);
		return 0;
	}
	close(ruleset);
	log_info("sandbox", "event=landlock_applied abi=%d", abi);
	return 0;
}

/* privileges.c: resolving User/Group and switching to them, checked. */
#include "privileges.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"

/* Gives path (if it exists) to uid:gid; a missing path is fine (created later as the user). */
static int hand_over(const char *path, uid_t uid, gid_t gid, char *err, size_t errsz)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : (snprintf(err, errsz, "%s: %s", path, strerror(errno)), -1);
	if (S_ISLNK(st.st_mode))
		return 0; /* never follow a link planted where we write */
	if (st.st_uid == uid && st.st_gid == gid)
		return 0;
	if (lchown(path, uid, gid) != 0) {
		snprintf(err, errsz, "%s: cannot give it to the configured User: %s", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* Creates base and its child directories when missing (as root, so a root-owned parent is
 * no obstacle; each new name fsync'd into its parent), then gives them all to uid:gid. */
static int hand_over_tree(const char *base, const char *const *children, uid_t uid, gid_t gid,
	char *err, size_t errsz)
{
	char path[4096];

	for (size_t i = 0; children[i]; i++) {
		if (strchr(children[i], '.'))
			continue; /* files, not directories */
		snprintf(path, sizeof(path), "%s/%s", base, children[i]);
		if (fs_make_directories(path) != 0) {
			snprintf(err, errsz, "%s: %s", path, strerror(errno));
			return -1;
		}
	}
	if (hand_over(base, uid, gid, err, errsz) != 0)
		return -1;
	for (size_t i = 0; children[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", base, children[i]);
		if (hand_over(path, uid, gid, err, errsz) != 0)
			return -1;
	}
	return 0;
}

int privileges_resolve(const struct config *cfg, uid_t *uid, gid_t *gid, char *err,
	size_t errsz)
{
	struct passwd *pw = getpwnam(cfg->user);

	if (!pw) {
		snprintf(err, errsz, "User: no such user \"%s\"", cfg->user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		snprintf(err, errsz, "User: \"%s\" is root; name an unprivileged user", cfg->user);
		return -1;
	}
	gid_t group = pw->pw_gid;
	if (cfg->group) {
		struct group *gr = getgrnam(cfg->group);
		if (!gr) {
			snprintf(err, errsz, "Group: no such group \"%s\"", cfg->group);
			return -1;
		}
		group = gr->gr_gid;
	}
	*uid = pw->pw_uid;
	*gid = group;
	return 0;
}

int privileges_switch(const char *user, uid_t uid, gid_t gid, char *err, size_t errsz)
{
	/* Order matters: supplementary groups and gid while we still may, then uid. */
	if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
		snprintf(err, errsz, "cannot switch to User \"%s\": %s", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0 || geteuid() == 0 || getegid() != gid) {
		snprintf(err, errsz, "privileges were not dropped completely");
		return -1;
	}
	return 0;
}

int privileges_drop(const struct config *cfg, char *err, size_t errsz)
{
	static const char *const maildir_children[] = {"tmp", "new", "cur", ".mailpopbox.lock",
		NULL};
	static const char *const spool_children[] = {"tmp", "msg", "env", "mailpopbox.pid", NULL};
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0) {
		if (cfg->user)
			log_info("server", "event=privileges note=\"not started as root; User ignored\"");
		return 0;
	}
	if (!cfg->user) {
		log_warn("server", "event=privileges note=\"running as root: set User to drop privileges\"");
		return 0;
	}
	if (privileges_resolve(cfg, &uid, &gid, err, errsz) != 0)
		return -1;
	/* The directories we write were perhaps created by root (earlier runs, this start). */
	for (size_t i = 0; i < cfg->server_count; i++)
		if (hand_over_tree(cfg->servers[i].maildrop_path, maildir_children, uid, gid, err,
			    errsz) != 0)
			return -1;
	if (hand_over_tree(cfg->spool_path, spool_children, uid, gid, err, errsz) != 0)
		return -1;
	if (privileges_switch(cfg->user, uid, gid, err, errsz) != 0)
		return -1;
	log_info("server", "event=privileges_dropped user=%s uid=%ld gid=%ld", cfg->user,
		(long)uid, (long)gid);
	return 0;
}

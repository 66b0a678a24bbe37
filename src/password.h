/* password.h: crypt(3) password hashes through libxcrypt: which hashes "MailboxPasswordHash"
 * accepts, verifying a password against one (thread-safe, for the AUTH worker threads), and the
 * "mailpopbox hash-password" command that makes them. */
#ifndef MAILPOPBOX_PASSWORD_H
#define MAILPOPBOX_PASSWORD_H

#include "bounds.h"

#include <stdbool.h>
#include <stddef.h>

/* NULL when hash is a complete yescrypt ("$y$"), SHA-512-crypt ("$6$") or bcrypt ("$2b$",
 * "$2y$") hash that this system's libcrypt supports; else how it must look (completes
 * "KEY: must ..."). Cheap: it never hashes, so loading a config cannot stall on a costly hash. */
const char *password_hash_problem(const char *hash);

/* True when password (len bytes, not NUL-terminated) hashes to hash; a password containing NUL
 * never matches, as crypt(3) would silently cut it there. The comparison takes the same time
 * whatever bytes differ. Safe to call from several threads at once. */
bool password_hash_verify(const char *hash, const char *password, size_t len);

/* Hashes password (a C string) with a new random salt into out, with the scheme named by
 * prefix ("$y$", "$6$", "$2b$") at cost count (crypt_gensalt(3); 0 is libcrypt's default).
 * Returns 0, or -1 when libcrypt cannot make such a hash (unsupported or disabled scheme). */
int password_hash_make(const char *prefix, unsigned long count, const char *password, char *out,
	size_t outsz);

/* "mailpopbox hash-password [--scheme yescrypt|sha512|bcrypt]"; args are the words after the
 * command. Reads the password from the terminal without echo (twice), or one line from stdin
 * when that is not a terminal, and prints its hash. Returns the exit status. */
int password_command(int argc, char **argv);

#endif

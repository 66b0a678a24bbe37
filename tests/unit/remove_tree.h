/* remove_tree.h: removes a unit test's scratch directory and everything in it (teardown). */
#ifndef MAILPOPBOX_TEST_REMOVE_TREE_H
#define MAILPOPBOX_TEST_REMOVE_TREE_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static inline int remove_tree_entry(const char *path, const struct stat *st, int flag,
	struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Depth first, without following symbolic links. */
static inline void remove_tree(const char *root)
{
	nftw(root, remove_tree_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif

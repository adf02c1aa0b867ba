/*
 * File locations (DESIGN.md, "Contract: files"): XDG base directories with
 * their documented fallbacks, joining, and creating private directories.
 */
#ifndef MEMCHAT_UTIL_PATHS_H
#define MEMCHAT_UTIL_PATHS_H

#include <stddef.h>

/* $XDG_DATA_HOME/memchat, else $HOME/.local/share/memchat; a relative XDG
 * value is ignored as the XDG spec says. NULL when HOME is unset too.
 * Caller frees. */
char *paths_default_data_dir(void);
/* $XDG_CONFIG_HOME/memchat, else $HOME/.config/memchat. Caller frees. */
char *paths_default_config_dir(void);
/* dir + "/" + name (no doubled slash). Caller frees. */
char *paths_join(const char *dir, const char *name);
/* mkdir -p with mode for every directory created. 0, or -1 with a message
 * naming the path in err. */
int paths_mkdir_p(const char *path, unsigned mode, char *err, size_t errlen);
/* The directory of shipped files of one kind ("agents", "themes"):
 * share_dir/name when share_dir is non-empty (MEMCHAT_SHARE_DIR, never
 * second-guessed), else $(pkgdatadir)/name when it exists (an installed
 * memchat), else share/name of the source tree. Caller frees. */
char *paths_shipped_dir(const char *share_dir, const char *name);

#endif

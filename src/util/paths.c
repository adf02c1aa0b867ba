/*
 * XDG paths and private directory creation. The data and config dirs hold
 * conversations and keys, so every directory memchat creates is 0700.
 */
#include "config.h"

#include "util/paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/alloc.h"

static char *paths_xdg(const char *var, const char *fallback)
{
    const char *v = getenv(var);
    if (v != NULL && v[0] == '/')
        return paths_join(v, "memchat");
    const char *home = getenv("HOME");
    if (home == NULL || home[0] == '\0')
        return NULL;
    char *base = paths_join(home, fallback);
    char *p = paths_join(base, "memchat");
    xfree(base);
    return p;
}

char *paths_default_data_dir(void)
{
    return paths_xdg("XDG_DATA_HOME", ".local/share");
}

char *paths_default_config_dir(void)
{
    return paths_xdg("XDG_CONFIG_HOME", ".config");
}

char *paths_join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    while (n > 0 && dir[n - 1] == '/')
        n--;
    while (name[0] == '/')
        name++;
    /* n == 0 is the root ("/", "//") when dir had slashes, and then the one
     * slash below is all there is; an empty dir leaves name relative. */
    if (n == 0 && dir[0] == '\0')
        return xstrdup(name);
    return xasprintf("%.*s/%s", (int)n, dir, name);
}

int paths_mkdir_p(const char *path, unsigned mode, char *err, size_t errlen)
{
    if (path[0] == '\0') {
        /* The loop below starts at the second byte. */
        snprintf(err, errlen, "cannot create a directory with an empty name");
        return -1;
    }
    char *p = xstrdup(path);
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char saved = *s;
        *s = '\0';
        if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create directory %s: %s", p, strerror(errno));
            rc = -1;
            break;
        }
        *s = saved;
        if (saved == '\0')
            break;
    }
    if (rc == 0) {
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a directory", path);
            rc = -1;
        }
    }
    xfree(p);
    return rc;
}

char *paths_shipped_dir(const char *share_dir, const char *name)
{
    if (share_dir != NULL && share_dir[0] != '\0')
        return paths_join(share_dir, name);
    char *d = paths_join(MC_PKGDATADIR, name);
    struct stat st;
    if (stat(d, &st) == 0 && S_ISDIR(st.st_mode))
        return d;
    xfree(d);
    char *shared = paths_join(MC_SRCDIR, "share");
    char *out = paths_join(shared, name);
    xfree(shared);
    return out;
}

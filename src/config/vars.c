/*
 * memchat's variable table, generated from the MC_CONFIG_VARS list in
 * vars.h, and its computed defaults: the user comes from $LOGNAME and the
 * directories from the XDG rules, all read from the environment being
 * loaded (a test's, or the process's) so that a test never sees the real
 * home. They are computed after every source was read, so a missing HOME is
 * an error only when nothing else chose a data dir.
 */
#include "config.h"

#include "config/vars.h"

#include <stdio.h>

#include "util/alloc.h"
#include "util/ident.h"
#include "util/paths.h"

const struct cfg_var config_vars[] = {
#define MC_X_VAR(id, name, type, dflt, min, max, choices, flags, doc) \
    [id] = {name, type, dflt, min, max, choices, flags, doc},
    MC_CONFIG_VARS(MC_X_VAR)
#undef MC_X_VAR
};

_Static_assert(sizeof config_vars / sizeof config_vars[0] == CFG__COUNT,
               "config_vars has one entry per cfg_id");

/* MEMCHAT_USER, MEMCHAT_DATA_DIR and MEMCHAT_CONFIG_DIR (see the file
 * comment). envp NULL is the process environment. */
static int vars_defaults(struct config *cfg, const char *const *envp, const char *config_dir,
                         char *err, size_t errlen)
{
    const char *logname = config_getenv(envp, "LOGNAME");
    bool usable = logname != NULL && ident_valid(logname);
    if (config_set_default(cfg, CFG_MEMCHAT_USER, usable ? logname : "user", err, errlen) != 0)
        return -1;
    /* An unset or empty LOGNAME falls back silently: nothing was wrong. */
    if (!usable && logname != NULL && logname[0] != '\0' &&
        config_origin(cfg, CFG_MEMCHAT_USER) == CFG_FROM_DEFAULT) {
        char shown[256];
        config_add_warning(cfg, "LOGNAME '%s' is not a valid user id; using 'user'",
                           config_quote(NULL, logname, shown, sizeof shown));
    }

    char *data = envp != NULL ? config_xdg_dir(envp, "XDG_DATA_HOME", ".local/share")
                              : paths_default_data_dir();
    if (data == NULL && config_origin(cfg, CFG_MEMCHAT_DATA_DIR) == CFG_FROM_DEFAULT) {
        snprintf(err, errlen,
                 "cannot choose a data dir: HOME is not set (nor an absolute XDG_DATA_HOME); "
                 "set MEMCHAT_DATA_DIR, or HOME");
        return -1;
    }
    int rc = 0;
    if (data != NULL)
        rc = config_set_default(cfg, CFG_MEMCHAT_DATA_DIR, data, err, errlen);
    xfree(data);
    if (rc == 0)
        rc = config_set_default(cfg, CFG_MEMCHAT_CONFIG_DIR, config_dir, err, errlen);
    return rc;
}

struct config *config_new_memchat(void)
{
    struct config *cfg = config_new(config_vars, CFG__COUNT);
    config_set_defaults_fn(cfg, vars_defaults);
    return cfg;
}

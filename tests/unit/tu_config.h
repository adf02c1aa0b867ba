/*
 * A memchat configuration for tests: memchat's own variables, loaded from a
 * controlled environment (LOGNAME=tester only) with no .env, the data dir at
 * DIR/data and the config dir at DIR/config, plus extra "NAME=VALUE" flags.
 */
#ifndef MEMCHAT_TU_CONFIG_H
#define MEMCHAT_TU_CONFIG_H

#include "testutil.h"

#include "config/config.h"

/* Fails the test when loading fails. Caller frees with config_free(). */
static inline struct config *tu_config(const char *dir, const char *const *extra, size_t n_extra)
{
    char data[4200], conf[4200];
    snprintf(data, sizeof data, "MEMCHAT_DATA_DIR=%s/data", dir);
    snprintf(conf, sizeof conf, "MEMCHAT_CONFIG_DIR=%s/config", dir);
    const char *flags[16] = {data, conf};
    size_t n = 2;
    for (size_t i = 0; i < n_extra && n < 16; i++)
        flags[n++] = extra[i];
    const char *env[] = {"LOGNAME=tester", NULL};
    struct config *cfg = config_new_memchat();
    struct config_load_opts opts = {
        .dotenv_path = "", .environ = env, .flags = flags, .n_flags = n};
    char err[512] = "";
    if (config_load(cfg, &opts, err, sizeof err) != 0)
        fail_msg("config_load: %s", err);
    return cfg;
}

#endif

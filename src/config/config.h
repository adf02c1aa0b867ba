/*
 * Settings (DESIGN.md, "Contract: configuration"). A config is a table of
 * known variables and, for each, its effective value and where it came from.
 * Precedence, lowest first: built-in default < config.env in the config dir
 * < .env in the working directory < environment < flags (--set NAME=VALUE
 * and the verbs' own flags). The generic engine takes any table (tests use
 * their own); config_new_memchat() uses memchat's, listed in config/vars.h.
 */
#ifndef MEMCHAT_CONFIG_CONFIG_H
#define MEMCHAT_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum cfg_type {
    CFG_BOOL,     /* true|false|1|0|yes|no|on|off (any case) */
    CFG_INT,      /* decimal integer within [min, max] */
    CFG_DURATION, /* stored in ms; see the naming rules in config.c */
    CFG_STRING,   /* any UTF-8 text */
    CFG_ID,       /* [A-Za-z0-9_-]{1,64} */
    CFG_ENUM,     /* one of `choices`, "a|b|c" */
    CFG_PATH,     /* a filesystem path; ~/ expanded */
    CFG_NUMBER,   /* a decimal number within [min, max]; empty means unset */
};

enum cfg_flags {
    CFG_F_SECRET = 1 << 0,  /* shown masked to its last 4 characters */
    CFG_F_NO_FILE = 1 << 1, /* not settable in config.env (e.g. MEMCHAT_CONFIG_DIR) */
};

struct cfg_var {
    const char *name;
    enum cfg_type type;
    const char *dflt;    /* textual default; NULL: empty, or computed (vars.c) */
    long long min, max;  /* CFG_INT: the range; CFG_DURATION: in ms */
    const char *choices; /* CFG_ENUM */
    unsigned flags;      /* enum cfg_flags */
    const char *doc;     /* one line for docs and `memchat config --help` */
};

/* Where the value came from. */
enum cfg_origin {
    CFG_FROM_DEFAULT,
    CFG_FROM_CONFIG_ENV,
    CFG_FROM_DOTENV,
    CFG_FROM_ENV,
    CFG_FROM_FLAG
};

struct config;

/* Inputs of config_load(). Every field may be NULL/0 for the default. */
struct config_load_opts {
    /* The config dir, overriding MEMCHAT_CONFIG_DIR (tests); when given, the
     * table's MEMCHAT_CONFIG_DIR reports it with source "flag". */
    const char *config_dir;
    const char *dotenv_path;    /* default "./.env"; "" skips it */
    const char *const *environ; /* default: the process environment */
    const char *const *flags;   /* "NAME=VALUE" strings from the command line */
    size_t n_flags;
};

/* A config over vars[0..n) holding the defaults; never NULL. The table must
 * outlive it. Free with config_free(). */
struct config *config_new(const struct cfg_var *vars, size_t n);
/* A config over memchat's own variables (config/vars.h). */
struct config *config_new_memchat(void);
/* NULL is a no-op. */
void config_free(struct config *cfg);

/* Reads every source in precedence order. The config dir holding
 * config.env is opts->config_dir, else MEMCHAT_CONFIG_DIR from the flags,
 * else from the environment, else $XDG_CONFIG_HOME/memchat or
 * ~/.config/memchat. Starts afresh on each call (values and warnings of an
 * earlier load are dropped). 0 on success; -1 on the first bad
 * input with one message in err naming the variable, the file and line, and
 * what is accepted (the caller exits 2). Unknown names in a file are errors
 * suggesting the closest known name; unknown MEMCHAT_* names in the
 * environment are warnings. A working-directory .env may not set *_CMD,
 * *_URL, *_BASE_URL, *_URL_OVERRIDE, MEMCHAT_*_DIR or MEMCHAT_MASTER_KEY. */
int config_load(struct config *cfg, const struct config_load_opts *opts, char *err, size_t errlen);

/* Sets one variable from a flag-level source after loading (the TUI's and
 * chat's live switches). 0, or -1 with a message. */
int config_set(struct config *cfg, int id, const char *value, char *err, size_t errlen);

/* Typed getters; id is the index in the table (an enum cfg_id for memchat's).
 * Asking with the wrong type is a programming error (asserts). */
bool config_bool(const struct config *cfg, int id);
long long config_int(const struct config *cfg, int id);
long long config_duration_ms(const struct config *cfg, int id);
/* Strings, ids, enums, paths and numbers as text; never NULL ("" when unset). */
const char *config_str(const struct config *cfg, int id);
/* A CFG_NUMBER; NAN when it is unset (empty). */
double config_number(const struct config *cfg, int id);

/* The index of the variable called name; -1 when unknown. */
int config_find(const struct config *cfg, const char *name);
/* The number of variables in the table and the i-th definition. */
size_t config_count(const struct config *cfg);
const struct cfg_var *config_var(const struct config *cfg, int id);
/* The value as it may be shown: secrets masked to "…" + last 4 characters
 * (or fully when shorter than 12). Written into out. */
const char *config_display(const struct config *cfg, int id, char *out, size_t outlen);
/* "default", "config.env:LINE", ".env:LINE", "env" or "flag", into out. */
const char *config_source(const struct config *cfg, int id, char *out, size_t outlen);
enum cfg_origin config_origin(const struct config *cfg, int id);

/* The default as text: the table's, or the one computed while loading
 * (memchat's user, data dir and config dir); "" when there is none. */
const char *config_default(const struct config *cfg, int id);

/* Warnings collected while loading (unknown MEMCHAT_* names in the
 * environment, a user name that fell back to "user"); front ends print them. */
size_t config_warning_count(const struct config *cfg);
const char *config_warning(const struct config *cfg, size_t i);

/* Checks value against v's type, range and choices as config_load() does
 * for a source (source names it in the message, e.g. "config.env:3"), without
 * storing it and without expanding ~/. 0, or -1 with the message. */
int config_check_value(const struct cfg_var *v, const char *value, const char *source, char *err,
                       size_t errlen);
/* value as it may appear in a message: masked like config_display() when v
 * is secret (v may be NULL), control characters and invalid UTF-8 escaped
 * as \xNN, long values shortened. Written into out. */
const char *config_quote(const struct cfg_var *v, const char *value, char *out, size_t outlen);

/* --- for tables with computed defaults (memchat's, in vars.c) --- */

/* Computes a table's defaults that depend on the environment being loaded.
 * config_load() calls it after every source was read, with that environment
 * (NULL: the process environment) and the config dir it used; it records
 * them with config_set_default(). 0, or -1 with a message. */
typedef int (*config_defaults_fn)(struct config *cfg, const char *const *envp,
                                  const char *config_dir, char *err, size_t errlen);
void config_set_defaults_fn(struct config *cfg, config_defaults_fn fn);
/* Records value (validated) as id's default; it becomes the value only when
 * no source set the variable. 0, or -1 with a message. */
int config_set_default(struct config *cfg, int id, const char *value, char *err, size_t errlen);
/* Adds a printf-formatted warning (never put a secret in one). */
void config_add_warning(struct config *cfg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The value of name in envp (NULL: the process environment); NULL when unset. */
const char *config_getenv(const char *const *envp, const char *name);
/* util/paths.h's XDG rule evaluated in envp rather than the process
 * environment: $xdg_var/memchat when that is absolute, else
 * $HOME/home_fallback/memchat; NULL when neither is usable. Caller frees. */
char *config_xdg_dir(const char *const *envp, const char *xdg_var, const char *home_fallback);

#endif

/*
 * memchat limits: per-tenant and per-user overrides of the rate limits and
 * budgets. `set` and `clear` change the data file, so they go through an
 * engine job (front ends write nothing themselves); `show` only reads the
 * configuration and the data file.
 *
 *   memchat limits show  [--tenant T] [--user U] [--json]
 *   memchat limits set   [--tenant T] [--user U] rpm=N tpm=N budget=USD
 *   memchat limits clear [--tenant T] [--user U] [rpm] [tpm] [budget]
 *
 * Without --user the tenant's own limits are meant; --tenant defaults to
 * MEMCHAT_TENANT.
 */
#include "config.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/session.h"
#include "client/budget.h"
#include "client/ratelimit_redis.h"
#include "config/config.h"
#include "config/vars.h"
#include "memchat/error.h"
#include "net/redis.h"
#include "store/db.h"
#include "store/ledger.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/paths.h"

/* The user the command is about: only when --user (or --set
 * MEMCHAT_USER=...) was given, so that the default $LOGNAME does not turn a
 * tenant's limit into one user's. */
static const char *limits_user(const struct config *cfg)
{
    return config_origin(cfg, CFG_MEMCHAT_USER) == CFG_FROM_FLAG ? config_str(cfg, CFG_MEMCHAT_USER)
                                                                 : NULL;
}

/* "budget" is budget_usd; the rate limits keep their names. */
static const char *limits_name(const char *word)
{
    return strcmp(word, "budget") == 0 ? "budget_usd" : word;
}

/* Parses NAME=VALUE (set) or NAME (clear) words into changes. */
static int limits_parse(const struct cli_opts *o, bool clear, const char *tenant, const char *user,
                        struct mc_limits_change *ch, size_t *n)
{
    static const char *const all[] = {"rpm", "tpm", "budget_usd"};
    *n = 0;
    if (clear && o->n_args == 1) {
        for (size_t i = 0; i < 3; i++)
            ch[(*n)++] = (struct mc_limits_change){tenant, user, all[i], 0, true};
        return MC_EXIT_OK;
    }
    for (size_t i = 1; i < o->n_args && *n < 16; i++) {
        char *word = o->args[i];
        char *eq = strchr(word, '=');
        if (clear == (eq != NULL)) {
            session_error("limits %s: '%s': expected %s", clear ? "clear" : "set", word,
                          clear ? "rpm, tpm or budget"
                                : "NAME=VALUE (rpm=60, tpm=100000, "
                                  "budget=5.00)");
            return MC_EXIT_USAGE;
        }
        struct mc_limits_change c = {tenant, user, NULL, 0, clear};
        if (eq != NULL) {
            *eq = '\0';
            char *end = NULL;
            errno = 0;
            c.value = strtod(eq + 1, &end);
            if (errno != 0 || end == eq + 1 || *end != '\0' || !isfinite(c.value)) {
                session_error("limits set: %s: '%s' is not a number", word, eq + 1);
                return MC_EXIT_USAGE;
            }
        }
        c.name = limits_name(word);
        ch[(*n)++] = c;
    }
    if (*n == 0) {
        session_error("limits set: nothing to set (e.g. memchat limits set --tenant acme rpm=60)");
        return MC_EXIT_USAGE;
    }
    return MC_EXIT_OK;
}

/* set and clear: one engine job, answered by a result or an error. */
static int limits_change(const struct config *cfg, const struct cli_opts *o, bool clear)
{
    const char *tenant = config_str(cfg, CFG_MEMCHAT_TENANT);
    struct mc_limits_change ch[16];
    size_t n = 0;
    int rc = limits_parse(o, clear, tenant, limits_user(cfg), ch, &n);
    if (rc != MC_EXIT_OK)
        return rc;
    struct session s;
    rc = session_start(&s, cfg, o->json, NULL);
    if (rc != MC_EXIT_OK)
        return rc;
    char job[MC_UUID_STRLEN + 1], err[512] = "";
    if (mc_engine_submit_limits(s.eng, ch, n, job, err, sizeof err) != 0) {
        session_error("%s", err);
        session_stop(&s);
        return MC_EXIT_USAGE;
    }
    rc = session_job(&s, job);
    for (size_t i = 0; rc == MC_EXIT_OK && !o->json && i < n; i++) {
        printf("%s %s%s%s %s", ch[i].clear ? "cleared" : "set", ch[i].tenant,
               ch[i].user != NULL ? "/" : "", ch[i].user != NULL ? ch[i].user : "", ch[i].name);
        if (!ch[i].clear)
            printf(" = %g", ch[i].value);
        putchar('\n');
    }
    session_stop(&s);
    return rc;
}

/* One row of `show`. */
static void limits_row(bool json, const char *scope, const char *name, double configured,
                       double override, bool has_override)
{
    double effective = has_override ? override : configured;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "scope", scope);
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddNumberToObject(o, "configured", configured);
        if (has_override)
            cJSON_AddNumberToObject(o, "override", override);
        else
            cJSON_AddNullToObject(o, "override");
        cJSON_AddNumberToObject(o, "effective", effective);
        char *line = cJSON_PrintUnformatted(o);
        if (line != NULL)
            puts(line);
        xfree(line);
        cJSON_Delete(o);
        return;
    }
    char ov[32] = "-";
    if (has_override)
        snprintf(ov, sizeof ov, "%g", override);
    printf("%-7s %-11s %14g %14s %14g%s\n", scope, name, configured, ov, effective,
           effective == 0 ? "  (unlimited)" : "");
}

struct limits_find {
    const char *tenant, *user; /* user "" for the tenant scope */
    double value[3];
    bool has[3];
};

static int limits_collect(const struct ledger_override *o, void *ctx)
{
    struct limits_find *f = ctx;
    if (strcmp(o->tenant, f->tenant) != 0 || strcmp(o->user, f->user) != 0)
        return 0;
    static const char *const names[] = {"rpm", "tpm", "budget_usd"};
    for (int i = 0; i < 3; i++)
        if (strcmp(o->name, names[i]) == 0) {
            f->value[i] = o->value;
            f->has[i] = true;
        }
    return 0;
}

/* With RATE_LIMIT_BACKEND=redis the overrides every process enforces are
 * Redis's: a connection for reading them, or NULL (memory backend, or a
 * REDIS_URL the engine would refuse anyway). */
static struct redis *limits_shared_open(const struct config *cfg)
{
    if (strcmp(config_str(cfg, CFG_RATE_LIMIT_BACKEND), "redis") != 0)
        return NULL;
    struct redis_config rc = {
        .url = config_str(cfg, CFG_REDIS_URL),
        .timeout_ms = config_duration_ms(cfg, CFG_REDIS_TIMEOUT_MS),
        .retry_ms = config_duration_ms(cfg, CFG_REDIS_RETRY_MS),
        .prefix = config_str(cfg, CFG_REDIS_KEY_PREFIX),
    };
    char err[512] = "";
    struct redis *r = redis_new(&rc, err, sizeof err);
    if (r == NULL)
        session_error("warning: %s", err);
    return r;
}

/* Replaces f's overrides by Redis's; when Redis cannot be read, says so
 * and keeps this data file's. */
static void limits_shared_overrides(struct redis *r, struct limits_find *f)
{
    double v[3];
    bool has[3];
    char err[512] = "";
    if (ratelimit_redis_overrides_get(r, f->tenant, f->user[0] != '\0' ? f->user : NULL, v, has,
                                      err, sizeof err) != REDIS_ST_OK) {
        session_error("warning: %s; showing the overrides saved in this data file", err);
        return;
    }
    for (int i = 0; i < 3; i++) {
        f->value[i] = v[i];
        f->has[i] = has[i];
    }
}

/* show: the configured value, the stored override and the effective limit
 * of each limit for the tenant (and the user, with --user). */
static int limits_show(const struct config *cfg, const struct cli_opts *o)
{
    const char *tenant = config_str(cfg, CFG_MEMCHAT_TENANT);
    const char *user = limits_user(cfg);
    char *path = paths_join(config_str(cfg, CFG_MEMCHAT_DATA_DIR), "memchat.db");
    struct db *db = NULL;
    char err[512] = "";
    if (access(path, F_OK) == 0) {
        enum db_error why;
        db = db_open(path, &why, err, sizeof err);
        if (db == NULL) {
            session_error("%s", err);
            xfree(path);
            return MC_EXIT_RUNTIME;
        }
    }
    xfree(path);
    struct redis *shared = limits_shared_open(cfg);
    if (!o->json)
        printf("%-7s %-11s %14s %14s %14s\n", "SCOPE", "LIMIT", "CONFIGURED", "OVERRIDE",
               "EFFECTIVE");
    static const int cfg_ids[2][3] = {
        {CFG_TENANT_RATE_LIMIT_RPM, CFG_TENANT_RATE_LIMIT_TPM, CFG_TENANT_BUDGET_USD},
        {CFG_USER_RATE_LIMIT_RPM, CFG_USER_RATE_LIMIT_TPM, CFG_USER_BUDGET_USD}};
    static const char *const names[] = {"rpm", "tpm", "budget_usd"};
    int rc = MC_EXIT_OK;
    for (int sc = 0; sc < (user != NULL ? 2 : 1) && rc == MC_EXIT_OK; sc++) {
        struct limits_find f = {tenant, sc == 0 ? "" : user, {0}, {false}};
        if (db != NULL && ledger_overrides_each(db, limits_collect, &f, err, sizeof err) < 0) {
            session_error("%s", err);
            rc = MC_EXIT_RUNTIME;
            break;
        }
        if (shared != NULL)
            limits_shared_overrides(shared, &f);
        for (int i = 0; i < 3; i++) {
            double configured = i < 2 ? (double)config_int(cfg, cfg_ids[sc][i])
                                      : config_number(cfg, cfg_ids[sc][i]);
            limits_row(o->json, sc == 0 ? "tenant" : "user", names[i],
                       isnan(configured) ? 0 : configured, f.value[i], f.has[i]);
        }
    }
    db_close(db);
    redis_free(shared);
    if (!o->json && rc == MC_EXIT_OK)
        printf("(per %s; budgets per %s, UTC; 0 means unlimited or no budget)\n",
               "RATE_LIMIT_WINDOW_S", config_str(cfg, CFG_BUDGET_PERIOD));
    return rc;
}

int cmd_limits(const struct config *cfg, const struct cli_opts *o)
{
    const char *what = o->n_args > 0 ? o->args[0] : "show";
    if (strcmp(what, "show") == 0) {
        if (o->n_args > 1) {
            session_error("limits show takes no more arguments (got '%s')", o->args[1]);
            return MC_EXIT_USAGE;
        }
        return limits_show(cfg, o);
    }
    if (strcmp(what, "set") == 0 || strcmp(what, "clear") == 0)
        return limits_change(cfg, o, strcmp(what, "clear") == 0);
    session_error("limits: unknown action '%s' (accepted: show, set, clear)", what);
    return MC_EXIT_USAGE;
}

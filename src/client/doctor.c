/*
 * The checks of `memchat doctor` (doctor.h). Each check fills one item and
 * never stops the others: a dead embedder must not hide a wrong keystore
 * key. Network checks go through net/rest.h with one retry at most, so a
 * server that is down costs one timeout, and a failure's class (unreachable,
 * authentication, rate limit, server, refused) picks the fix, which names
 * the variable to change. Keys are sent, never shown.
 */
#include "config.h"

#include "client/doctor.h"

#include <stdio.h>
#include <string.h>

#include <cJSON.h>
#include <sqlite3.h>

#include "client/keys.h"
#include "config/config.h"
#include "config/vars.h"
#include "llm/provider.h"
#include "memory/embed.h"
#include "memory/manager.h"
#include "memory/store.h"
#include "net/redis.h"
#include "net/rest.h"
#include "store/db.h"
#include "util/alloc.h"

#define DOCTOR_TIMEOUT_MS 10000 /* one network check; a dead server costs this once */

/* The item being filled. */
struct doctor_item {
    const char *check;
    const char *status; /* "ok", "warn", "fail", "skip" */
    char what[320];     /* the component: "qdrant at http://..." */
    char detail[1024];
    char fix[512];
    int exit_code; /* of a failure */
};

static void doctor_add(cJSON *items, const struct doctor_item *it, int *worst)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || cJSON_AddStringToObject(o, "check", it->check) == NULL ||
        cJSON_AddStringToObject(o, "status", it->status) == NULL ||
        cJSON_AddStringToObject(o, "what", it->what) == NULL ||
        cJSON_AddStringToObject(o, "detail", it->detail) == NULL ||
        cJSON_AddStringToObject(o, "fix", it->fix) == NULL ||
        cJSON_AddNumberToObject(o, "exit", strcmp(it->status, "fail") == 0 ? it->exit_code : 0) ==
            NULL)
        alloc_die("doctor item");
    cJSON_AddItemToArray(items, o);
    if (strcmp(it->status, "fail") != 0)
        return;
    /* 2 (a setting) outranks 3 (a server), which outranks 1 (a file). */
    int rank[] = {0, 1, 3, 2};
    int e = it->exit_code >= 1 && it->exit_code <= 3 ? it->exit_code : 1;
    if (*worst == 0 || rank[e] > rank[*worst])
        *worst = e;
}

/* The fix for a failed call of class f, naming url_var and key_var. */
static void doctor_fix(int f, const char *url_var, const char *key_var, char *fix, size_t len)
{
    switch (f) {
    case REST_UNREACHABLE:
        snprintf(fix, len, "start the server, or set %s to where it runs", url_var);
        break;
    case REST_AUTH:
        snprintf(fix, len, "set %s to a valid key (memchat never shows it)", key_var);
        break;
    case REST_RATE:
        snprintf(fix, len, "the server is rate limiting: wait, or raise the account's limits");
        break;
    case REST_SERVER:
        snprintf(fix, len, "the server failed: look at its status or logs, then try again");
        break;
    default:
        snprintf(fix, len, "the server refused the request: check %s and the model name", url_var);
        break;
    }
}

static void doctor_config(const struct doctor_env *env, cJSON *items, int *worst)
{
    struct doctor_item it = {.check = "config", .status = "ok", .exit_code = 2};
    snprintf(it.what, sizeof it.what, "settings");
    size_t nw = config_warning_count(env->cfg);
    if (nw == 0) {
        snprintf(it.detail, sizeof it.detail, "loaded without warnings");
    } else {
        it.status = "warn";
        snprintf(it.detail, sizeof it.detail, "%zu warning%s; the first: %s", nw,
                 nw == 1 ? "" : "s", config_warning(env->cfg, 0));
        snprintf(it.fix, sizeof it.fix, "memchat config shows every setting and its source");
    }
    doctor_add(items, &it, worst);
}

static void doctor_data_file(const struct doctor_env *env, cJSON *items, int *worst)
{
    struct doctor_item it = {.check = "data_file", .status = "ok", .exit_code = 1};
    snprintf(it.what, sizeof it.what, "%s", db_path(env->db));
    sqlite3_stmt *st = NULL;
    const char *answer = NULL;
    if (sqlite3_prepare_v2(db_handle(env->db), "PRAGMA quick_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        answer = (const char *)sqlite3_column_text(st, 0);
    if (answer != NULL && strcmp(answer, "ok") == 0) {
        snprintf(it.detail, sizeof it.detail, "schema version %d, quick_check ok",
                 db_schema_version(env->db));
    } else {
        it.status = "fail";
        snprintf(it.detail, sizeof it.detail, "quick_check: %s",
                 answer != NULL ? answer : sqlite3_errmsg(db_handle(env->db)));
        snprintf(it.fix, sizeof it.fix,
                 "stop every memchat, copy the file aside, and restore it from a backup");
    }
    sqlite3_finalize(st);
    doctor_add(items, &it, worst);
}

/* GET base + path with one header line (may be NULL); the class of the
 * failure (REST_OK on any 2xx) and the message in err. */
static enum rest_fail doctor_get(const char *service, const char *base, const char *path,
                                 const char *header, const char *secret, char *err, size_t errlen)
{
    const char *headers[2] = {header, "anthropic-version: 2023-06-01"};
    struct rest_opts o = {.service = service,
                          .base_url = base,
                          .headers = headers,
                          .n_headers = header == NULL ? 0 : (strstr(header, "x-api-key") ? 2 : 1),
                          .secret = secret,
                          .timeout_ms = DOCTOR_TIMEOUT_MS,
                          .connect_timeout_ms = 3000,
                          .max_retries = 0};
    struct rest *r = rest_new(&o, err, errlen);
    if (r == NULL)
        return REST_REFUSED;
    cJSON *out = NULL;
    enum rest_fail f = rest_call(r, "GET", path, NULL, &out, NULL, err, errlen);
    cJSON_Delete(out);
    rest_free(r);
    return f;
}

/* The provider's models list (openai, anthropic) or version (ollama),
 * with the key this tenant's turns would send. */
static void doctor_provider_ping(const struct doctor_env *env, const struct llm_provider *p,
                                 struct doctor_item *it)
{
    const char *name = p->name, *base = NULL, *path = NULL, *url_var = NULL, *key_var = NULL;
    if (strcmp(name, "openai") == 0 && p->key_name != NULL) {
        base = config_str(env->cfg, CFG_OPENAI_BASE_URL);
        path = "/models";
        url_var = "OPENAI_BASE_URL";
        key_var = "OPENAI_API_KEY";
    } else if (strcmp(name, "anthropic") == 0) {
        base = config_str(env->cfg, CFG_ANTHROPIC_BASE_URL);
        path = "/v1/models";
        url_var = "ANTHROPIC_BASE_URL";
        key_var = "ANTHROPIC_API_KEY";
    } else if (strcmp(name, "ollama") == 0) {
        base = config_str(env->cfg, CFG_OLLAMA_BASE_URL);
        path = "/api/version";
        url_var = "OLLAMA_BASE_URL";
    } else {
        return; /* offline, or a local server `auto` just reached */
    }
    struct keys_secret key = {0};
    char err[1024] = "";
    const char *global =
        key_var != NULL ? config_str(env->cfg, strcmp(name, "openai") == 0 ? CFG_OPENAI_API_KEY
                                                                           : CFG_ANTHROPIC_API_KEY)
                        : "";
    if (p->key_name != NULL &&
        keys_resolve(env->keys, env->tenant, p->key_name, &key, err, sizeof err) != 0) {
        it->status = "fail";
        snprintf(it->detail, sizeof it->detail, "%s", err);
        snprintf(it->fix, sizeof it->fix, "memchat keys list shows the tenant's keys");
        return;
    }
    const char *value = key.value != NULL ? key.value : global;
    char header[1200] = "";
    if (value != NULL && value[0] != '\0')
        snprintf(header, sizeof header, "%s%s",
                 strcmp(name, "anthropic") == 0 ? "x-api-key: " : "Authorization: Bearer ", value);
    enum rest_fail f =
        doctor_get(name, base, path, header[0] != '\0' ? header : NULL, value, err, sizeof err);
    memset(header, 0, sizeof header);
    keys_secret_wipe(&key);
    if (f == REST_OK) {
        size_t used = strlen(it->detail);
        snprintf(it->detail + used, sizeof it->detail - used, "; %s%s answered", base, path);
        return;
    }
    it->status = "fail";
    it->exit_code = 3;
    snprintf(it->detail, sizeof it->detail, "%s", err);
    doctor_fix(f, url_var, key_var != NULL ? key_var : url_var, it->fix, sizeof it->fix);
}

static void doctor_provider(const struct doctor_env *env, cJSON *items, int *worst)
{
    struct doctor_item it = {.check = "provider", .status = "ok", .exit_code = 2};
    char err[512] = "";
    const char *want = config_str(env->cfg, CFG_MEMCHAT_PROVIDER);
    struct llm_provider *p = llm_provider_resolve(want, env->cfg, err, sizeof err);
    if (p == NULL) {
        it.status = "fail";
        snprintf(it.what, sizeof it.what, "%s", want);
        snprintf(it.detail, sizeof it.detail, "%s", err);
        snprintf(it.fix, sizeof it.fix, "correct the setting the message names");
        doctor_add(items, &it, worst);
        return;
    }
    snprintf(it.what, sizeof it.what, "%s", p->name);
    snprintf(it.detail, sizeof it.detail, "%s", p->detail != NULL ? p->detail : p->name);
    doctor_provider_ping(env, p, &it);
    llm_provider_free(p);
    doctor_add(items, &it, worst);
}

/* The variables of a remote embedder's URL and key, for fixes. */
static void doctor_embed_vars(const char *name, const char **url_var, const char **key_var)
{
    *url_var = "EMBEDDINGS_BASE_URL";
    *key_var = "OPENAI_API_KEY";
    if (strcmp(name, "cohere") == 0)
        *key_var = "COHERE_API_KEY";
    else if (strcmp(name, "huggingface") == 0)
        *key_var = "HF_API_TOKEN";
    else if (strcmp(name, "ollama") == 0)
        *key_var = *url_var;
}

static void doctor_embedder(const struct doctor_env *env, cJSON *items, int *worst)
{
    struct embedder *e = memory_embedder(env->memory);
    struct doctor_item it = {.check = "embedder", .status = "ok", .exit_code = 1};
    snprintf(it.what, sizeof it.what, "%s (model %s, %d dimensions)", e->name, e->model, e->dim);
    const char *texts[] = {"memchat doctor: is the embedder working?"};
    float *v = xcalloc((size_t)e->dim, sizeof *v);
    char err[1024] = "";
    if (embedder_embed(e, EMBED_QUERY, texts, 1, NULL, v, err, sizeof err) == 0) {
        snprintf(it.detail, sizeof it.detail, "embedded a test text into %d floats", e->dim);
    } else {
        it.status = "fail";
        snprintf(it.detail, sizeof it.detail, "%s", err);
        const char *url_var, *key_var;
        doctor_embed_vars(e->name, &url_var, &key_var);
        it.exit_code = e->remote ? 3 : 1;
        if (e->remote && e->last_fail == REST_BAD_REPLY)
            snprintf(it.fix, sizeof it.fix,
                     "set EMBEDDINGS_DIMENSION and EMBEDDINGS_MODEL to what the model gives");
        else if (e->remote)
            doctor_fix(e->last_fail, url_var, key_var, it.fix, sizeof it.fix);
    }
    xfree(v);
    doctor_add(items, &it, worst);
}

/* The variables of a remote store's URL and key, for fixes. */
static void doctor_store_vars(const char *name, const char **url_var, const char **key_var)
{
    static const char *const table[][3] = {
        {"pgvector", "PGVECTOR_URL", "PGVECTOR_URL"},
        {"qdrant", "QDRANT_URL", "QDRANT_API_KEY"},
        {"pinecone", "PINECONE_INDEX_HOST (or PINECONE_INDEX_NAME)", "PINECONE_API_KEY"},
        {"weaviate", "WEAVIATE_URL", "WEAVIATE_API_KEY"},
    };
    *url_var = *key_var = "VECTOR_DB_PROVIDER";
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i][0], name) == 0) {
            *url_var = table[i][1];
            *key_var = table[i][2];
        }
}

/* The server's own check (remote stores); false when it failed. */
static bool doctor_store_health(const struct doctor_env *env, struct vstore *s,
                                struct doctor_item *it)
{
    if (s->ops->health == NULL)
        return true;
    struct store_health h;
    memset(&h, 0, sizeof h);
    char err[1024] = "";
    if (s->ops->health(s, &h, err, sizeof err) != 0) {
        const char *url_var, *key_var;
        doctor_store_vars(s->name, &url_var, &key_var);
        it->status = "fail";
        it->exit_code = 3;
        snprintf(it->detail, sizeof it->detail, "%s", err);
        doctor_fix(s->last_fail, url_var, key_var, it->fix, sizeof it->fix);
        return false;
    }
    snprintf(it->what, sizeof it->what, "%s at %s", s->name, h.where);
    long long dim = config_int(env->cfg, CFG_EMBEDDINGS_DIMENSION);
    if (h.fixed_dim > 0 && h.fixed_dim != dim) {
        it->status = "fail";
        it->exit_code = 2;
        snprintf(it->detail, sizeof it->detail,
                 "the index holds %d-dimensional vectors; EMBEDDINGS_DIMENSION is %lld",
                 h.fixed_dim, dim);
        snprintf(it->fix, sizeof it->fix,
                 "set EMBEDDINGS_DIMENSION=%d (and a model that gives it), or use an index of %lld",
                 h.fixed_dim, dim);
        return false;
    }
    snprintf(it->detail, sizeof it->detail, "%s answered",
             h.server[0] != '\0' ? h.server : s->name);
    return true;
}

static void doctor_store(const struct doctor_env *env, cJSON *items, int *worst)
{
    struct vstore *s = memory_store(env->memory);
    struct doctor_item it = {.check = "vector_store", .status = "ok", .exit_code = 1};
    snprintf(it.what, sizeof it.what, "%s", s->name);
    if (!doctor_store_health(env, s, &it)) {
        doctor_add(items, &it, worst);
        return;
    }
    char err[1024] = "";
    struct store_ns ns;
    int rc = s->ops->ns_get(s, env->tenant, &ns, err, sizeof err);
    size_t used = strlen(it.detail);
    char *d = it.detail + used;
    size_t dl = sizeof it.detail - used;
    const char *sep = used > 0 ? "; " : "";
    if (rc == 1) {
        snprintf(d, dl, "%stenant %s has no memories yet", sep, env->tenant);
    } else if (rc != 0) {
        it.status = "fail";
        it.exit_code = s->remote ? 3 : 1;
        snprintf(it.detail, sizeof it.detail, "%s", err);
        const char *url_var, *key_var;
        doctor_store_vars(s->name, &url_var, &key_var);
        if (s->remote)
            doctor_fix(s->last_fail, url_var, key_var, it.fix, sizeof it.fix);
    } else if (memory_check(env->memory, env->tenant, err, sizeof err) == MEMORY_ERR_MISMATCH) {
        it.status = "fail";
        it.exit_code = 2;
        snprintf(it.detail, sizeof it.detail, "%s", err);
        snprintf(it.fix, sizeof it.fix,
                 "set EMBEDDINGS_PROVIDER, EMBEDDINGS_MODEL and EMBEDDINGS_DIMENSION back to the "
                 "namespace's, or re-embed tenant %s's memories with the configured embedder: "
                 "memchat memory reembed --tenant %s",
                 env->tenant, env->tenant);
    } else {
        snprintf(d, dl, "%stenant %s: %zu memories (%s %s, %d dimensions)", sep, env->tenant,
                 ns.count, ns.embedder, ns.model, ns.dim);
    }
    doctor_add(items, &it, worst);
}

static void doctor_keystore(const struct doctor_env *env, cJSON *items, int *worst)
{
    struct doctor_item it = {.check = "keystore", .status = "ok", .exit_code = 2};
    snprintf(it.what, sizeof it.what, "keystore of tenant %s", env->tenant);
    struct keys_secret key = {0};
    char err[1024] = "";
    if (keys_resolve(env->keys, env->tenant, "openai", &key, err, sizeof err) != 0) {
        it.status = "fail";
        snprintf(it.detail, sizeof it.detail, "%s", err);
        snprintf(it.fix, sizeof it.fix,
                 "set MEMCHAT_MASTER_KEY (or master.key) to the key the keystore was made with");
    } else {
        snprintf(it.detail, sizeof it.detail, "opens; the openai key of %s is %s", env->tenant,
                 keys_source_name(key.source));
    }
    keys_secret_wipe(&key);
    doctor_add(items, &it, worst);
}

static void doctor_opik(const struct doctor_env *env, cJSON *items, int *worst)
{
    struct doctor_item it = {.check = "opik", .status = "skip", .exit_code = 3};
    const char *base = config_str(env->cfg, CFG_OPIK_URL_OVERRIDE);
    snprintf(it.what, sizeof it.what, "Opik trace export");
    if (base[0] == '\0') {
        snprintf(it.detail, sizeof it.detail, "not configured (traces stay in traces/)");
        doctor_add(items, &it, worst);
        return;
    }
    const char *key = config_str(env->cfg, CFG_OPIK_API_KEY);
    char header[1200] = "", err[1024] = "";
    if (key[0] != '\0')
        snprintf(header, sizeof header, "authorization: %s", key);
    /* Any answer but 401/403 shows the server is there and takes the key. */
    enum rest_fail f = doctor_get("opik", base, "/v1/private/projects?size=1",
                                  header[0] != '\0' ? header : NULL, key, err, sizeof err);
    memset(header, 0, sizeof header);
    if (f == REST_OK || f == REST_REFUSED) {
        it.status = "ok";
        snprintf(it.detail, sizeof it.detail, "%s answered", base);
    } else {
        it.status = "fail";
        snprintf(it.detail, sizeof it.detail, "%s", err);
        doctor_fix(f, "OPIK_URL_OVERRIDE", "OPIK_API_KEY", it.fix, sizeof it.fix);
    }
    doctor_add(items, &it, worst);
}

/* What lives on Redis, for the item's words. */
static void doctor_redis_roles(const struct config *cfg, char *out, size_t n)
{
    bool limits = strcmp(config_str(cfg, CFG_RATE_LIMIT_BACKEND), "redis") == 0;
    bool cache = strcmp(config_str(cfg, CFG_CACHE_BACKEND), "redis") == 0;
    snprintf(out, n, "%s%s%s", limits ? "rate limits and budgets" : "", limits && cache ? ", " : "",
             cache ? "the response cache" : "");
}

static void doctor_redis(const struct doctor_env *env, cJSON *items, int *worst)
{
    struct doctor_item it = {.check = "redis", .status = "skip", .exit_code = 3};
    if (env->redis == NULL) {
        snprintf(it.what, sizeof it.what, "Redis");
        snprintf(it.detail, sizeof it.detail,
                 "not used (RATE_LIMIT_BACKEND and CACHE_BACKEND are memory)");
        doctor_add(items, &it, worst);
        return;
    }
    char roles[96], version[32], err[512] = "";
    doctor_redis_roles(env->cfg, roles, sizeof roles);
    snprintf(it.what, sizeof it.what, "Redis at %s (%s)", redis_where(env->redis), roles);
    double rtt = 0;
    enum redis_status st = redis_ping(env->redis, version, sizeof version, &rtt, err, sizeof err);
    if (st == REDIS_ST_OK) {
        it.status = "ok";
        snprintf(it.detail, sizeof it.detail, "Redis %s answered PING in %.2f ms",
                 version[0] != '\0' ? version : "(version unknown)", rtt);
        doctor_add(items, &it, worst);
        return;
    }
    bool closed = strcmp(config_str(env->cfg, CFG_REDIS_FAILURE), "closed") == 0;
    /* Under REDIS_FAILURE=open turns still run, on this process's own
     * limits and cache: worth a warning, not a failure. */
    it.status = closed ? "fail" : "warn";
    it.exit_code = st == REDIS_ST_FAILED ? 2 : 3;
    snprintf(it.detail, sizeof it.detail, "%s", err);
    snprintf(it.fix, sizeof it.fix, "%s%s",
             st == REDIS_ST_FAILED
                 ? "check the user name, password and database in REDIS_URL"
                 : "start Redis (apt-get install redis-server) or correct REDIS_URL",
             closed ? "; meanwhile REDIS_FAILURE=closed refuses every turn"
                    : "; meanwhile turns use this process's own limits and cache");
    doctor_add(items, &it, worst);
}

cJSON *doctor_run(const struct doctor_env *env, int *exit_code)
{
    cJSON *items = cJSON_CreateArray();
    if (items == NULL)
        alloc_die("doctor items");
    int worst = 0;
    doctor_config(env, items, &worst);
    doctor_data_file(env, items, &worst);
    doctor_provider(env, items, &worst);
    doctor_embedder(env, items, &worst);
    doctor_store(env, items, &worst);
    doctor_keystore(env, items, &worst);
    doctor_opik(env, items, &worst);
    doctor_redis(env, items, &worst);
    *exit_code = worst;
    return items;
}

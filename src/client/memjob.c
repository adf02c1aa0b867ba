/*
 * The memory jobs of memjob.h. Each op is one small function that turns
 * the manager's or a store module's answer into result items; the mapping
 * of memory_status to error codes lives in one place, so every verb exits
 * the same way for the same cause.
 */
#include "config.h"

#include "client/memjob.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "client/cache.h"
#include "config/config.h"
#include "config/vars.h"
#include "memory/embed.h"
#include "memory/filter.h"
#include "memory/manager.h"
#include "memory/move.h"
#include "memory/store.h"
#include "store/convstore.h"
#include "store/db.h"
#include "store/memhist.h"
#include "store/pending.h"
#include "store/tracelog.h"
#include "util/alloc.h"
#include "util/log.h"

/* Rows an export reads per page. */
#define MEMJOB_EXPORT_PAGE 1000

/* The error of a failed memory operation. A remote embedder or store that
 * failed is a network error (exit 3), so a script can tell "the server is
 * down" from "the data file is broken". */
static enum mc_error memjob_status_error(const struct memjob_env *env, enum memory_status st)
{
    switch (st) {
    case MEMORY_OK:
        return MC_ERR_NONE;
    case MEMORY_ERR_INPUT:
        return MC_ERR_INPUT;
    case MEMORY_ERR_MISMATCH:
        return MC_ERR_CONFIG;
    case MEMORY_ERR_NOT_FOUND:
        return MC_ERR_USAGE;
    case MEMORY_ERR_CANCELLED:
        return MC_ERR_CANCELLED;
    case MEMORY_ERR_EMBED:
    case MEMORY_ERR_STORE:
        break;
    }
    return memory_failure_remote(env->memory, st) ? MC_ERR_MEMORY_BACKEND : MC_ERR_IO;
}

/* cJSON_Add* that never returns NULL to its caller: out of memory ends
 * the program, as for events (client/emit.c). */
static cJSON *memjob_check(cJSON *it)
{
    if (it == NULL)
        alloc_die("cJSON result item");
    return it;
}

static cJSON *memjob_item(cJSON *items)
{
    cJSON *it = memjob_check(cJSON_CreateObject());
    cJSON_AddItemToArray(items, it);
    return it;
}

static void memjob_num(cJSON *obj, const char *name, double v)
{
    memjob_check(cJSON_AddNumberToObject(obj, name, v));
}

static void memjob_str(cJSON *obj, const char *name, const char *v)
{
    memjob_check(v != NULL ? cJSON_AddStringToObject(obj, name, v)
                           : cJSON_AddNullToObject(obj, name));
}

/* Parses the job's filter (NULL when none). -1 with a message naming the
 * option when it does not parse. */
static int memjob_filter(const struct mc_memory_job *job, struct mem_filter **out, char *err,
                         size_t errlen)
{
    *out = NULL;
    if (job->filter == NULL)
        return 0;
    char why[512] = "";
    *out = filter_parse(job->filter, why, sizeof why);
    if (*out != NULL)
        return 0;
    snprintf(err, errlen, "--filter: %s", why);
    return -1;
}

static const char *memjob_user(const struct memjob_env *env, const struct mc_memory_job *job)
{
    return job->user != NULL ? job->user : config_str(env->cfg, CFG_MEMCHAT_USER);
}

static const char *memjob_agent(const struct memjob_env *env, const struct mc_memory_job *job)
{
    return job->agent != NULL ? job->agent : config_str(env->cfg, CFG_MEMCHAT_AGENT);
}

static enum mc_error memjob_add(const struct memjob_env *env, const struct mc_memory_job *job,
                                cJSON *items, char *err, size_t errlen)
{
    struct memory_add a = {
        .tenant = job->tenant,
        .user = memjob_user(env, job),
        .agent = memjob_agent(env, job),
        .kind = "note",
        .text = job->text != NULL ? job->text : "",
        .metadata = job->metadata,
    };
    struct memory_added out;
    enum memory_status st = memory_add(env->memory, &a, &out, err, errlen);
    if (st != MEMORY_OK)
        return memjob_status_error(env, st);
    cJSON *it = memjob_item(items);
    memjob_str(it, "id", out.id);
    memjob_check(cJSON_AddBoolToObject(it, "refreshed", out.refreshed));
    memjob_num(it, "chunks", (double)out.chunks);
    return MC_ERR_NONE;
}

static enum mc_error memjob_search(const struct memjob_env *env, const struct mc_memory_job *job,
                                   cJSON *items, char *err, size_t errlen)
{
    int method = -1;
    if (job->method != NULL) {
        enum memory_method m;
        if (memory_method_parse(job->method, &m) != 0) {
            snprintf(err, errlen, "--method: unknown method '%s' (accepted: similarity|mmr|hybrid)",
                     job->method);
            return MC_ERR_USAGE;
        }
        method = (int)m;
    }
    struct mem_filter *f = NULL;
    if (memjob_filter(job, &f, err, errlen) != 0)
        return MC_ERR_USAGE;
    /* --user narrows an explicit search to one user, whatever MEMORY_SCOPE
     * says about turns. */
    if (job->user != NULL) {
        struct mem_filter *u = filter_eq("user_id", job->user);
        struct mem_filter *both = filter_and(f, u);
        filter_free(u);
        filter_free(f);
        f = both;
    }
    struct memory_result r;
    enum memory_status st =
        memory_retrieve(env->memory, job->tenant, NULL, job->text != NULL ? job->text : "",
                        job->k > 0 ? (size_t)job->k : 0, method, f, &r, err, errlen);
    filter_free(f);
    if (st != MEMORY_OK)
        return memjob_status_error(env, st);
    for (size_t i = 0; i < r.n_kept; i++)
        cJSON_AddItemToArray(
            items, memjob_check(memory_record_json(&r.hits[i].rec, &r.hits[i], false, 0)));
    memory_result_free(&r);
    return MC_ERR_NONE;
}

static enum mc_error memjob_forget(const struct memjob_env *env, const struct mc_memory_job *job,
                                   cJSON *items, char *err, size_t errlen)
{
    if ((job->id == NULL) == (job->filter == NULL)) {
        snprintf(err, errlen, "memory forget takes exactly one of --id and --filter");
        return MC_ERR_USAGE;
    }
    struct mem_filter *f = NULL;
    if (memjob_filter(job, &f, err, errlen) != 0)
        return MC_ERR_USAGE;
    size_t deleted = 0;
    enum memory_status st =
        memory_delete(env->memory, job->tenant, job->id, f, memjob_user(env, job),
                      memjob_agent(env, job), &deleted, err, errlen);
    filter_free(f);
    if (st != MEMORY_OK)
        return memjob_status_error(env, st);
    memjob_num(memjob_item(items), "deleted", (double)deleted);
    return MC_ERR_NONE;
}

static enum mc_error memjob_stats(const struct memjob_env *env, const struct mc_memory_job *job,
                                  cJSON *items, char *err, size_t errlen)
{
    cJSON *st_json = NULL;
    enum memory_status st = memory_stats(env->memory, job->tenant, &st_json, err, errlen);
    if (st != MEMORY_OK)
        return memjob_status_error(env, st);
    if (cJSON_IsArray(st_json)) {
        cJSON *it;
        while ((it = cJSON_DetachItemFromArray(st_json, 0)) != NULL)
            cJSON_AddItemToArray(items, it);
        cJSON_Delete(st_json);
    } else if (st_json != NULL) {
        cJSON_AddItemToArray(items, st_json);
    }
    return MC_ERR_NONE;
}

/* A graph's build progress as the "index" stage. */
static void memjob_index_progress(void *ud, size_t done, size_t total)
{
    const struct memjob_env *env = *(const struct memjob_env **)ud;
    if (env->progress != NULL)
        env->progress(env->progress_ud, "index", done, total);
}

/* memchat memory index: one item describing the index after the job. */
static enum mc_error memjob_index(const struct memjob_env *env, const struct mc_memory_job *job,
                                  cJSON *items, char *err, size_t errlen)
{
    struct store_index_info info;
    const struct memjob_env *ud = env;
    enum memory_status st = memory_index(env->memory, job->tenant, job->rebuild,
                                         memjob_index_progress, &ud, &info, err, errlen);
    if (st != MEMORY_OK)
        return memjob_status_error(env, st);
    cJSON *it = memjob_item(items);
    memjob_str(it, "tenant", job->tenant);
    memjob_str(it, "search", info.hnsw ? "hnsw" : "exact");
    memjob_check(cJSON_AddBoolToObject(it, "wanted", info.wanted));
    memjob_check(cJSON_AddBoolToObject(it, "built", info.built));
    memjob_num(it, "count", (double)info.count);
    memjob_num(it, "tombstones", (double)info.tombstones);
    memjob_num(it, "threshold", (double)info.threshold);
    memjob_num(it, "m", info.m);
    memjob_num(it, "ef_construction", info.ef_construction);
    memjob_num(it, "ef_search", (double)info.ef_search);
    memjob_num(it, "generation", (double)info.generation);
    if (info.file_generation >= 0)
        memjob_num(it, "file_generation", (double)info.file_generation);
    else
        memjob_str(it, "file_generation", NULL);
    memjob_num(it, "caught_up", (double)info.caught_up);
    memjob_num(it, "bytes_in_memory", (double)info.bytes_in_memory);
    memjob_num(it, "bytes_on_disk", (double)info.bytes_on_disk);
    memjob_str(it, "path", info.path[0] != '\0' ? info.path : NULL);
    memjob_str(it, "note", info.note[0] != '\0' ? info.note : NULL);
    return MC_ERR_NONE;
}

static enum mc_error memjob_export(const struct memjob_env *env, const struct mc_memory_job *job,
                                   cJSON *items, char *err, size_t errlen)
{
    struct mem_filter *f = NULL;
    if (memjob_filter(job, &f, err, errlen) != 0)
        return MC_ERR_USAGE;
    char after[MC_UUID_STRLEN + 1] = "";
    enum memory_status st = MEMORY_OK;
    int dim = memory_embedder(env->memory)->dim;
    for (;;) {
        struct mem_records page = {0};
        st = memory_list(env->memory, job->tenant, f, after[0] != '\0' ? after : NULL,
                         MEMJOB_EXPORT_PAGE, true, &page, err, errlen);
        if (st != MEMORY_OK || page.n == 0) {
            mem_records_free(&page);
            break;
        }
        for (size_t i = 0; i < page.n; i++)
            cJSON_AddItemToArray(items,
                                 memjob_check(memory_record_json(&page.v[i], NULL, true, dim)));
        snprintf(after, sizeof after, "%s", page.v[page.n - 1].id);
        bool last = page.n < MEMJOB_EXPORT_PAGE;
        mem_records_free(&page);
        if (last)
            break;
    }
    filter_free(f);
    return memjob_status_error(env, st);
}

/* One transaction for the whole batch: every line is parsed first, so a
 * bad line stores nothing and names its number. */
static enum mc_error memjob_import(const struct memjob_env *env, const struct mc_memory_job *job,
                                   cJSON *items, char *err, size_t errlen)
{
    size_t n = job->n_lines;
    struct memory_add *a = xcalloc(n ? n : 1, sizeof *a);
    struct memory_added *out = xcalloc(n ? n : 1, sizeof *out);
    cJSON **hold = xcalloc(n ? n : 1, sizeof *hold);
    float **vecs = xcalloc(n ? n : 1, sizeof *vecs);
    enum mc_error rc = MC_ERR_NONE;
    for (size_t i = 0; i < n && rc == MC_ERR_NONE; i++) {
        size_t vlen = 0;
        char why[512] = "";
        if (memory_parse_import_line(job->lines[i], &a[i], &hold[i], &vecs[i], &vlen, why,
                                     sizeof why) != 0) {
            snprintf(err, errlen, "line %zu: %s", job->first_line + i, why);
            rc = MC_ERR_INPUT;
            break;
        }
        a[i].tenant = job->tenant;
        if (a[i].user == NULL)
            a[i].user = memjob_user(env, job);
        if (a[i].agent == NULL)
            a[i].agent = memjob_agent(env, job);
        a[i].no_dedup = true; /* an import keeps every record it is given */
    }
    if (rc == MC_ERR_NONE) {
        enum memory_status st = memory_add_batch(env->memory, a, n, out, err, errlen);
        rc = memjob_status_error(env, st);
    }
    if (rc == MC_ERR_NONE) {
        size_t refreshed = 0;
        for (size_t i = 0; i < n; i++)
            refreshed += out[i].refreshed ? 1 : 0;
        cJSON *it = memjob_item(items);
        memjob_num(it, "imported", (double)n);
        memjob_num(it, "refreshed", (double)refreshed);
    }
    for (size_t i = 0; i < n; i++) {
        cJSON_Delete(hold[i]);
        xfree(vecs[i]);
    }
    xfree(hold);
    xfree(vecs);
    xfree(out);
    xfree(a);
    return rc;
}

static enum mc_error memjob_history(const struct memjob_env *env, const struct mc_memory_job *job,
                                    cJSON *items, char *err, size_t errlen)
{
    struct memhist_row *rows = NULL;
    size_t n = 0;
    if (memhist_list(env->db, job->tenant, 0, job->k > 0 ? (size_t)job->k : 0, &rows, &n, err,
                     errlen) != 0)
        return MC_ERR_IO;
    for (size_t i = 0; i < n; i++) {
        cJSON *it = memjob_item(items);
        memjob_num(it, "seq", (double)rows[i].seq);
        memjob_num(it, "ts_ms", (double)rows[i].ts_ms);
        memjob_str(it, "op", rows[i].op);
        memjob_str(it, "memory_id", rows[i].memory_id);
        memjob_str(it, "user_id", rows[i].user_id);
        memjob_str(it, "agent", rows[i].agent);
        cJSON *d = cJSON_Parse(rows[i].detail != NULL ? rows[i].detail : "{}");
        cJSON_AddItemToObject(it, "detail", d != NULL ? d : memjob_check(cJSON_CreateObject()));
    }
    memhist_rows_free(rows, n);
    return MC_ERR_NONE;
}

static enum mc_error memjob_conversations(const struct memjob_env *env,
                                          const struct mc_memory_job *job, cJSON *items, char *err,
                                          size_t errlen)
{
    struct conv_info *c = NULL;
    size_t n = 0;
    if (convstore_list(env->db, job->tenant, job->user, job->k > 0 ? (size_t)job->k : 0, &c, &n,
                       err, errlen) != 0)
        return MC_ERR_IO;
    for (size_t i = 0; i < n; i++) {
        cJSON *it = memjob_item(items);
        memjob_str(it, "id", c[i].id);
        memjob_str(it, "tenant", c[i].tenant);
        memjob_str(it, "user_id", c[i].user_id);
        memjob_str(it, "agent", c[i].agent);
        memjob_str(it, "title", c[i].title);
        memjob_num(it, "created_ms", (double)c[i].created_ms);
        memjob_num(it, "updated_ms", (double)c[i].updated_ms);
        memjob_num(it, "turns", (double)c[i].turns);
    }
    xfree(c);
    return MC_ERR_NONE;
}

static enum mc_error memjob_conv_remove(const struct memjob_env *env,
                                        const struct mc_memory_job *job, cJSON *items, char *err,
                                        size_t errlen)
{
    if (job->id == NULL) {
        snprintf(err, errlen, "conversations rm needs a conversation id");
        return MC_ERR_USAGE;
    }
    int rc = convstore_remove(env->db, job->tenant, job->id, err, errlen);
    if (rc < 0)
        return MC_ERR_IO;
    if (rc == 1) {
        snprintf(err, errlen, "no conversation %s in tenant %s", job->id, job->tenant);
        return MC_ERR_USAGE;
    }
    memjob_str(memjob_item(items), "id", job->id);
    return MC_ERR_NONE;
}

/* Everything of a tenant (or one user of it) that holds text: memories
 * with their frequencies and history, conversations, memories waiting to
 * be stored, traces and cached replies. The ledger keeps its amounts,
 * which hold no text. Each part commits on its own, so a failure leaves
 * what was already removed removed, and running it again finishes. */
static enum mc_error memjob_purge(const struct memjob_env *env, const struct mc_memory_job *job,
                                  cJSON *items, char *err, size_t errlen)
{
    size_t memories = 0, convs = 0, pending = 0, traces = 0, cached = 0;
    enum memory_status st =
        memory_purge(env->memory, job->tenant, job->user, &memories, err, errlen);
    if (st != MEMORY_OK)
        return memjob_status_error(env, st);
    size_t copied = 0; /* a reembed's copy: the same memories, not counted again */
    if (convstore_purge(env->db, job->tenant, job->user, &convs, err, errlen) != 0 ||
        pending_purge(env->db, job->tenant, job->user, &pending, err, errlen) != 0 ||
        (job->user == NULL && move_purge(env->db, job->tenant, &copied, err, errlen) != 0))
        return MC_ERR_IO;
    if (env->trace_dir != NULL &&
        tracelog_purge(env->trace_dir, job->tenant, job->user, &traces, err, errlen) != 0)
        return MC_ERR_IO;
    char why[384] = "";
    if (env->cache != NULL &&
        cache_purge(env->cache, job->tenant, job->user, &cached, why, sizeof why) != 0) {
        snprintf(err, errlen,
                 "purge of %s: memories, conversations and traces were removed, but the "
                 "shared cache could not be: %s; run purge again when Redis is back",
                 job->tenant, why);
        return MC_ERR_NETWORK;
    }
    /* Old page images of the purged rows leave the WAL too; a reader of
     * another process may hold it, in which case its next checkpoint does. */
    char cerr[256] = "";
    if (db_checkpoint_truncate(env->db, cerr, sizeof cerr) < 0)
        log_warn("purge of %s: %s", job->tenant, cerr);
    cJSON *it = memjob_item(items);
    memjob_num(it, "memories", (double)memories);
    memjob_num(it, "conversations", (double)convs);
    memjob_num(it, "pending", (double)pending);
    memjob_num(it, "traces", (double)traces);
    memjob_num(it, "cache", (double)cached);
    return MC_ERR_NONE;
}

/* The error of a failed move: its side's server failing is a network
 * error, as for the manager's operations. */
static enum mc_error memjob_move_error(enum memory_status st, const struct move_report *r)
{
    if (st == MEMORY_ERR_STORE || st == MEMORY_ERR_EMBED)
        return r->remote ? MC_ERR_MEMORY_BACKEND : MC_ERR_IO;
    return memjob_status_error(NULL, st); /* needs env only for the two above */
}

/* The move options of a job. */
static void memjob_move_opts(const struct memjob_env *env, const struct mc_memory_job *job,
                             struct move_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch = job->batch > 0 ? (size_t)job->batch : 0;
    o->restart = job->restart;
    o->force = job->force;
    o->cancel = env->cancel;
    o->progress = env->progress;
    o->ud = env->progress_ud;
}

/* What migrate and reembed both report. */
static cJSON *memjob_move_item(cJSON *items, const char *tenant, const struct move_report *r)
{
    cJSON *it = memjob_item(items);
    memjob_str(it, "tenant", tenant);
    memjob_str(it, "from", r->source);
    memjob_str(it, "to", r->target);
    memjob_num(it, "total", (double)r->total);
    memjob_num(it, "done", (double)r->done);
    memjob_check(cJSON_AddBoolToObject(it, "resumed", r->resumed));
    memjob_num(it, "resumed_from", (double)r->resumed_from);
    memjob_num(it, "target_count", (double)r->target_count);
    return it;
}

/* The store called name: the manager's when it is that one, else a new
 * one in *own (the caller frees it). */
static struct vstore *memjob_store(const struct memjob_env *env, const char *name,
                                   struct vstore **own, char *err, size_t errlen)
{
    *own = NULL;
    struct vstore *cur = env->memory != NULL ? memory_store(env->memory) : NULL;
    if (cur != NULL && strcmp(cur->name, name) == 0)
        return cur;
    *own = store_new_named(env->cfg, name, env->db, env->store_cache, err, errlen);
    return *own;
}

/* memchat memory migrate: one item. */
static enum mc_error memjob_migrate(const struct memjob_env *env, const struct mc_memory_job *job,
                                    cJSON *items, char *err, size_t errlen)
{
    struct vstore *own_from = NULL, *own_to = NULL;
    struct vstore *from = memjob_store(env, job->from, &own_from, err, errlen);
    struct vstore *to = from != NULL ? memjob_store(env, job->to, &own_to, err, errlen) : NULL;
    enum mc_error rc = MC_ERR_CONFIG; /* a store's malformed setting */
    if (to != NULL) {
        struct move_opts o;
        struct move_report r;
        memjob_move_opts(env, job, &o);
        store_set_cancel(from, env->cancel);
        store_set_cancel(to, env->cancel);
        enum memory_status st = move_migrate(env->db, from, to, job->tenant, &o, &r, err, errlen);
        store_set_cancel(from, NULL);
        store_set_cancel(to, NULL);
        rc = memjob_move_error(st, &r);
        if (st == MEMORY_OK) {
            cJSON *it = memjob_move_item(items, job->tenant, &r);
            memjob_num(it, "target_before", (double)r.target_before);
            memjob_num(it, "source_count", (double)r.source_count);
        }
    }
    store_free(own_to);
    store_free(own_from);
    return rc;
}

/* memchat memory reembed: one item. */
static enum mc_error memjob_reembed(const struct memjob_env *env, const struct mc_memory_job *job,
                                    cJSON *items, char *err, size_t errlen)
{
    struct move_opts o;
    struct move_report r;
    memjob_move_opts(env, job, &o);
    struct vstore *s = memory_store(env->memory);
    struct embedder *e = memory_embedder(env->memory);
    /* Ctrl-C ends a server call at once, not only at the next page. */
    store_set_cancel(s, env->cancel);
    embedder_set_cancel(e, env->cancel);
    enum memory_status st = move_reembed(env->db, s, e, job->tenant, &o, &r, err, errlen);
    store_set_cancel(s, NULL);
    embedder_set_cancel(e, NULL);
    if (st != MEMORY_OK)
        return memjob_move_error(st, &r);
    cJSON *it = memjob_move_item(items, job->tenant, &r);
    memjob_str(it, "store", s->name);
    memjob_check(cJSON_AddBoolToObject(it, "nothing_to_do", r.nothing_to_do));
    return MC_ERR_NONE;
}

typedef enum mc_error (*memjob_fn)(const struct memjob_env *env, const struct mc_memory_job *job,
                                   cJSON *items, char *err, size_t errlen);

/* Each op's function, result kind, and whether it needs the memory
 * manager; in the order of enum mc_memory_op. */
static const struct {
    memjob_fn fn;
    const char *kind;
    bool needs_memory;
} memjob_ops[] = {
    [MC_MEM_ADD] = {memjob_add, "add", true},
    [MC_MEM_SEARCH] = {memjob_search, "search", true},
    [MC_MEM_FORGET] = {memjob_forget, "forget", true},
    [MC_MEM_STATS] = {memjob_stats, "stats", true},
    [MC_MEM_EXPORT] = {memjob_export, "export", true},
    [MC_MEM_IMPORT] = {memjob_import, "import", true},
    [MC_MEM_HISTORY] = {memjob_history, "history", false},
    [MC_CONV_LIST] = {memjob_conversations, "conversations", false},
    [MC_CONV_REMOVE] = {memjob_conv_remove, "conversation_removed", false},
    [MC_PURGE] = {memjob_purge, "purge", true},
    [MC_MEM_INDEX] = {memjob_index, "index", true},
    [MC_MEM_MIGRATE] = {memjob_migrate, "migrate", false},
    [MC_MEM_REEMBED] = {memjob_reembed, "reembed", true},
};

enum mc_error memjob_run(const struct memjob_env *env, const struct mc_memory_job *job,
                         const char **kind, struct cJSON **items, char *err, size_t errlen)
{
    *items = NULL;
    *kind = NULL;
    if ((size_t)job->op >= sizeof memjob_ops / sizeof memjob_ops[0]) {
        snprintf(err, errlen, "unknown memory job %d", (int)job->op);
        return MC_ERR_INTERNAL;
    }
    if (memjob_ops[job->op].needs_memory && env->memory == NULL) {
        snprintf(err, errlen, "the memory store is not available");
        return MC_ERR_IO;
    }
    cJSON *arr = memjob_check(cJSON_CreateArray());
    enum mc_error rc = memjob_ops[job->op].fn(env, job, arr, err, errlen);
    if (rc != MC_ERR_NONE) {
        cJSON_Delete(arr);
        return rc;
    }
    *kind = memjob_ops[job->op].kind;
    *items = arr;
    return MC_ERR_NONE;
}

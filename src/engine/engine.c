/*
 * The engine of include/memchat/engine.h (DESIGN.md, Threads).
 *
 * Two workers, each with its own data-file connection:
 * - the turn worker pops jobs (turns, conversation resets) from an
 *   unbounded queue, so a submitter never waits, and runs them one at a
 *   time in submission order;
 * - the background worker pops store jobs from a queue bounded by
 *   MEMORY_STORE_QUEUE_MAX and reports each turn's memory store stage, so a
 *   slow store never delays the next turn.
 *
 * Events go to one unbounded list under ev_lock. A turn's seq counter lives
 * in its store job, which the turn worker hands to the background worker
 * when the turn ends; both number events from it under ev_lock at the
 * moment they queue them, so a turn's seq is gap-free and in queue order
 * whichever worker sends. Every push writes one byte to the wake-up pipe.
 *
 * Cancel: every job gets a serial number at submission. mc_engine_cancel
 * records the last serial handed out; the turn worker treats every job at
 * or below it as cancelled, and the running turn sees turn_cancel, which
 * its provider checks (and may be woken for through its interrupt hook).
 * So one cancel stops the running turn and everything queued behind it,
 * and nothing submitted afterwards.
 */
#include "config.h"

#include "memchat/engine.h"
#include "engine/engine_internal.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/cache.h"
#include "client/budget.h"
#include "client/conversation.h"
#include "client/doctor.h"
#include "client/keys.h"
#include "client/ratelimit.h"
#include "client/ratelimit_redis.h"
#include "client/emit.h"
#include "client/turn.h"
#include "client/memjob.h"
#include "agents/agent.h"
#include "agents/run.h"
#include "config/config.h"
#include "config/vars.h"
#include "engine/queue.h"
#include "llm/prices.h"
#include "llm/tokens.h"
#include "llm/provider.h"
#include "memory/manager.h"
#include "memory/move.h"
#include "memory/store.h"
#include "net/opik.h"
#include "net/redis.h"
#include "rollout/rollout.h"
#include "rollout/status.h"
#include "store/db.h"
#include "store/keystore.h"
#include "store/ledger.h"
#include "store/metrics.h"
#include "store/pending.h"
#include "store/tracelog.h"
#include "tools/registry.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/ident.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/utf8.h"
#include "util/uuid.h"

enum engine_job_kind {
    ENGINE_JOB_TURN,
    ENGINE_JOB_RESET,
    ENGINE_JOB_LIMITS,
    ENGINE_JOB_MEMORY,
    ENGINE_JOB_ROLLOUT,
    ENGINE_JOB_DOCTOR,
};

/* One stored-limit change of a limits job; owns its strings. */
struct engine_limit {
    char tenant[IDENT_MAX + 1];
    char user[IDENT_MAX + 1]; /* "" for the tenant's own limit */
    char name[16];
    double value;
    bool clear;
};

/* A job of the turn worker; owns its strings. */
struct engine_job {
    enum engine_job_kind kind;
    uint64_t serial; /* from 1, in submission order */
    char turn[MC_UUID_STRLEN + 1];
    char *tenant, *user, *agent, *text;
    enum mc_memory_override memory;
    bool continue_conversation;
    char *conversation; /* turns: --conversation ID */
    bool continue_latest;
    char *provider, *model;      /* turns: the session's choice, or NULL */
    struct engine_limit *limits; /* ENGINE_JOB_LIMITS */
    size_t n_limits;
    struct mc_rollout_change rollout; /* ENGINE_JOB_ROLLOUT; its tenant is the job's */
    /* ENGINE_JOB_MEMORY: the job, its strings owned by the fields below */
    struct mc_memory_job mem;
    char *m_metadata, *m_filter, *m_id, *m_method, *m_from, *m_to;
    char **m_lines;
};

/* A turn's store stage, and the turn's seq counter, which outlives the turn
 * worker's part of the turn. Owned by whichever queue or worker holds it. */
struct engine_store_job {
    char turn[MC_UUID_STRLEN + 1];
    int64_t seq;             /* guarded by ev_lock */
    struct turn_outcome out; /* how the turn went: the store stage's reason */
};

struct engine_event {
    struct mc_event *ev;
    struct engine_event *next;
};

/* A provider an agent chose instead of the configured one, made on first
 * use by the turn worker and kept for the engine's life. */
struct engine_alt_provider {
    char *name;
    struct llm_provider *p;
};
#define ENGINE_ALT_PROVIDERS 8

struct mc_engine {
    const struct config *cfg;
    struct llm_provider *provider;
    char *model;
    struct agents *agents; /* the agent registry, read-only after the start */
    struct engine_alt_provider alt[ENGINE_ALT_PROVIDERS]; /* the turn worker's */
    struct db *db_turn;    /* the turn worker's: metrics and ledger rows */
    struct prices *prices; /* the price table, shipped and overridden */
    struct cache *cache;   /* the response cache, shared by the session's turns */
    enum cache_policy cache_policy;
    struct ratelimit *ratelimit; /* token buckets, global/tenant/user */
    struct redis *redis;         /* the shared limits and cache (issue 12); NULL: none */
    bool limits_shared;          /* RATE_LIMIT_BACKEND=redis */
    struct budget *budget;       /* USD per period, loaded from the ledger */
    struct conversation *conv;   /* the turn worker's only */
    struct turn_conv conv_state; /* which conversation conv holds: the turn worker's */
    /* Memory: one manager per worker, each on its worker's connection,
     * sharing one cache of in-memory indexes. */
    struct store_cache *mem_cache;
    struct memory_manager *mem_turn; /* retrieval and memory jobs */
    struct memory_manager *mem_bg;   /* stores */
    struct db *db_bg;                /* the background worker's connection */
    struct keys *keys;               /* tenants' own keys: the turn worker's only */
    const char *trace_project;       /* OPIK_PROJECT_NAME when traces are kept; NULL: none */
    /* The background worker's: the trace file (opened on first use) and
     * the Opik exporter (OPIK_URL_OVERRIDE set). */
    char *trace_dir;
    struct tracelog *tracelog;
    bool tracelog_failed; /* said once in the log; retried at each record */
    struct opik *opik;
    atomic_bool closing; /* mc_engine_free began: no more export retries */

    struct queue *jobs;
    struct queue *stores;
    pthread_t turn_thread, bg_thread;
    bool turn_started, bg_started;

    pthread_mutex_t lock; /* serials and cancel state */
    uint64_t last_serial;
    uint64_t cancel_upto;
    uint64_t running_serial;    /* 0 when no turn runs */
    atomic_bool turn_cancel;    /* the running turn's flag */
    pthread_cond_t cancel_cond; /* signalled by cancel; a retry's backoff waits on it */
    /* Stage 9: the tool registry (the turn worker's) and the answer to a
     * tool.confirm, under lock: answer -1 while waiting, else 0 or 1 for
     * the call in confirm_id. */
    struct tool_registry *tools;
    enum mc_tool_confirm tool_confirm;
    char confirm_id[128];
    int confirm_answer;

    pthread_mutex_t ev_lock; /* the event list and the counters below */
    struct engine_event *ev_head, *ev_tail;
    int64_t global_seq; /* events outside a turn */
    int64_t last_ts_ms;
    int wake[2];

    bool log_ref; /* holds a reference on the process log */
};

/* The process log is shared by every engine of the process: the first one
 * opens it in its data dir and the last one closes it. util/log has no
 * query for "already open", so a front end that opens the log itself must
 * do so after the engine or not at all. */
static pthread_mutex_t engine_log_lock = PTHREAD_MUTEX_INITIALIZER;
static int engine_log_users;

static void engine_log_acquire(struct mc_engine *eng, const char *data_dir)
{
    pthread_mutex_lock(&engine_log_lock);
    if (engine_log_users == 0) {
        char *path = paths_join(data_dir, "memchat.log");
        int level = log_level_from_name(config_str(eng->cfg, CFG_MEMCHAT_LOG_LEVEL));
        char err[512];
        /* A log that cannot be opened is not a reason to refuse to chat. */
        if (log_open(path, level < 0 ? LOG_INFO : (enum log_level)level, err, sizeof err) == 0) {
            engine_log_users = 1;
            eng->log_ref = true;
        }
        xfree(path);
    } else {
        engine_log_users++;
        eng->log_ref = true;
    }
    pthread_mutex_unlock(&engine_log_lock);
}

static void engine_log_release(struct mc_engine *eng)
{
    if (!eng->log_ref)
        return;
    pthread_mutex_lock(&engine_log_lock);
    if (--engine_log_users == 0)
        log_close();
    pthread_mutex_unlock(&engine_log_lock);
    eng->log_ref = false;
}

/* --- events ---------------------------------------------------------------- */

/* The emit sink: numbers ev and queues it under one lock (see the top of
 * the file), then wakes the reader. ts_ms never goes backwards in queue
 * order, even if the wall clock is stepped back. */
static void engine_sink(void *ud, struct mc_event *ev, int64_t *seq)
{
    struct mc_engine *eng = ud;
    struct engine_event *node = xmalloc(sizeof *node);
    node->ev = ev;
    node->next = NULL;
    pthread_mutex_lock(&eng->ev_lock);
    int64_t n = seq != NULL ? (*seq)++ : eng->global_seq++;
    int64_t ts = clock_wall_ms();
    if (ts < eng->last_ts_ms)
        ts = eng->last_ts_ms;
    eng->last_ts_ms = ts;
    emit_stamp(ev, n, ts);
    if (eng->ev_tail != NULL)
        eng->ev_tail->next = node;
    else
        eng->ev_head = node;
    eng->ev_tail = node;
    pthread_mutex_unlock(&eng->ev_lock);
    /* One byte per event; when the pipe is full (EAGAIN) the reader is
     * already woken, and it drains the list, not the pipe. */
    ssize_t w;
    do
        w = write(eng->wake[1], "e", 1);
    while (w < 0 && errno == EINTR);
}

static struct mc_event *engine_pop_event(struct mc_engine *eng)
{
    pthread_mutex_lock(&eng->ev_lock);
    struct engine_event *node = eng->ev_head;
    if (node != NULL) {
        eng->ev_head = node->next;
        if (eng->ev_head == NULL)
            eng->ev_tail = NULL;
    }
    pthread_mutex_unlock(&eng->ev_lock);
    if (node == NULL)
        return NULL;
    struct mc_event *ev = node->ev;
    xfree(node);
    return ev;
}

static void engine_drain_wake(struct mc_engine *eng)
{
    char sink[256];
    for (;;) {
        ssize_t r = read(eng->wake[0], sink, sizeof sink);
        if (r > 0)
            continue;
        if (r < 0 && errno == EINTR)
            continue;
        break; /* EAGAIN: empty */
    }
}

struct mc_event *mc_engine_next_event(struct mc_engine *eng)
{
    struct mc_event *ev = engine_pop_event(eng);
    if (ev != NULL)
        return ev;
    /* The list looked empty: drain the pipe, then look again. A byte
     * written after the drain belongs to an event pushed after it, which
     * either is found by the second look or wakes the next poll(); so a
     * reader never sleeps while an event waits. */
    engine_drain_wake(eng);
    return engine_pop_event(eng);
}

int mc_engine_wake_fd(const struct mc_engine *eng)
{
    return eng->wake[0];
}

/* --- workers --------------------------------------------------------------- */

static void engine_job_free(void *p)
{
    struct engine_job *job = p;
    if (job == NULL)
        return;
    xfree(job->tenant);
    xfree(job->user);
    xfree(job->agent);
    xfree(job->text);
    xfree(job->conversation);
    xfree(job->provider);
    xfree(job->model);
    xfree(job->limits);
    xfree(job->m_metadata);
    xfree(job->m_filter);
    xfree(job->m_id);
    xfree(job->m_method);
    xfree(job->m_from);
    xfree(job->m_to);
    for (size_t i = 0; job->m_lines != NULL && i < job->mem.n_lines; i++)
        xfree(job->m_lines[i]);
    xfree(job->m_lines);
    xfree(job);
}

/* Why the store stage stores nothing for sj. Memory off comes first: the
 * contract promises memory_off for every memory-off turn. */
static const char *engine_store_reason(const struct engine_store_job *sj)
{
    if (!sj->out.memory)
        return "memory_off";
    return sj->out.store_skip != NULL ? sj->out.store_skip : "not_recorded";
}

/* Reports the store stage of a turn that stores nothing. */
static void engine_store_report(struct mc_engine *eng, struct engine_store_job *sj,
                                const char *reason, const char *message)
{
    struct emit em = {.turn = sj->turn, .seq = &sj->seq, .sink = engine_sink, .sink_ud = eng};
    emit_memory_skipped_msg(&em, "store", reason, message);
}

/* The delay before the next try of a memory that failed attempts times:
 * 2, 4, 8 ... s, at most 5 minutes. */
static int64_t engine_pending_delay_ms(int attempts)
{
    int64_t ms = 2000;
    for (int i = 1; i < attempts && ms < 300000; i++)
        ms *= 2;
    return ms < 300000 ? ms : 300000;
}

/* Stores one waiting exchange with the background worker's manager, then
 * removes its pending row. The first id stored goes to id_out. */
static enum memory_status engine_store_row(struct mc_engine *eng, const struct pending_row *r,
                                           char id_out[MC_UUID_STRLEN + 1], char *err,
                                           size_t errlen)
{
    cJSON *p = cJSON_Parse(r->payload);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(p, "message");
    const cJSON *reply = cJSON_GetObjectItemCaseSensitive(p, "reply");
    const cJSON *conv = cJSON_GetObjectItemCaseSensitive(p, "conversation");
    if (!cJSON_IsString(msg) || !cJSON_IsString(reply)) {
        cJSON_Delete(p);
        snprintf(err, errlen, "pending memory of turn %s is damaged (no message or reply)",
                 r->turn);
        return MEMORY_ERR_INPUT;
    }
    cJSON *mo = cJSON_CreateObject();
    if (mo != NULL) {
        cJSON_AddStringToObject(mo, "turn", r->turn);
        if (cJSON_IsString(conv) && conv->valuestring[0] != '\0')
            cJSON_AddStringToObject(mo, "conversation", conv->valuestring);
    }
    char *meta = mo != NULL ? cJSON_PrintUnformatted(mo) : NULL;
    cJSON_Delete(mo);
    struct memory_added added;
    enum memory_status st =
        memory_add_conversation(eng->mem_bg, r->tenant, r->user_id, r->agent, msg->valuestring,
                                reply->valuestring, meta, &added, err, errlen);
    /* A crash before the row goes leaves it for a retry, which finds the
     * stored copy as a near-duplicate and refreshes it: stored once. */
    char derr[512] = "";
    if (st == MEMORY_OK && pending_done(eng->db_bg, r->seq, derr, sizeof derr) != 0)
        log_warn("memory of turn %s stored, but its pending row stays: %s", r->turn, derr);
    cJSON_free(meta);
    cJSON_Delete(p);
    if (st == MEMORY_OK)
        memcpy(id_out, added.id, MC_UUID_STRLEN + 1);
    return st;
}

/* Counts a failed try of r, so it is retried later. */
static void engine_store_failed(struct mc_engine *eng, const struct pending_row *r, const char *why)
{
    char err[512] = "";
    int64_t next = clock_wall_ms() + engine_pending_delay_ms(r->attempts + 1);
    if (pending_failed(eng->db_bg, r->seq, why, next, err, sizeof err) != 0)
        log_warn("memory of turn %s: %s", r->turn, err);
}

/* The store stage of a turn whose exchange waits in pending_memories. */
static void engine_store_turn(struct mc_engine *eng, struct engine_store_job *sj)
{
    struct emit em = {.turn = sj->turn, .seq = &sj->seq, .sink = engine_sink, .sink_ud = eng};
    char err[1024] = "";
    struct pending_row r = {0};
    int rc = pending_get_turn(eng->db_bg, sj->turn, &r, err, sizeof err);
    if (rc != 0) {
        /* 1: a retry (of this or another process) stored it already. */
        if (rc < 0)
            log_warn("turn %s: %s", sj->turn, err);
        emit_memory_skipped_msg(&em, "store", rc > 0 ? "stored_by_retry" : "store_down",
                                rc > 0 ? NULL : err);
        return;
    }
    int64_t t0 = clock_mono_ns();
    char id[MC_UUID_STRLEN + 1] = "";
    enum memory_status st = engine_store_row(eng, &r, id, err, sizeof err);
    double ms = clock_since_ms(t0);
    /* The metrics row first: a front end that saw the event reads it. */
    char merr[256] = "";
    if (metrics_set_store(eng->db_bg, sj->turn, st == MEMORY_OK, ms, merr, sizeof merr) != 0)
        log_warn("turn %s: %s", sj->turn, merr);
    if (st == MEMORY_OK) {
        const char *ids[] = {id};
        emit_memory_stored(&em, ids, 1, ms);
    } else {
        log_warn("turn %s: memory not stored yet (it waits in pending_memories): %s", sj->turn,
                 err);
        engine_store_failed(eng, &r, err);
        emit_memory_skipped_msg(&em, "store", memory_status_reason(st), err);
    }
    xfree(r.payload);
}

/* Retries the memories that wait and are due (a store that was down, a
 * full queue, a crash before the store), a few at a time. */
static void engine_retry_pending(struct mc_engine *eng)
{
    struct pending_row *rows = NULL;
    size_t n = 0;
    char err[1024] = "";
    if (pending_due(eng->db_bg, clock_wall_ms(), 16, &rows, &n, err, sizeof err) != 0) {
        log_warn("pending memories: %s", err);
        return;
    }
    for (size_t i = 0; i < n && !atomic_load(&eng->closing); i++) {
        char id[MC_UUID_STRLEN + 1];
        if (engine_store_row(eng, &rows[i], id, err, sizeof err) == MEMORY_OK)
            log_info("memory of turn %s stored after %d failed tries", rows[i].turn,
                     rows[i].attempts);
        else
            engine_store_failed(eng, &rows[i], err);
    }
    pending_rows_free(rows, n);
}

/* Sleeps ms on the engine's condition variable, ending early once *stop is
 * set (cancel and close broadcast it). False when *stop is set. */
static bool engine_wait(struct mc_engine *eng, long long ms, const atomic_bool *stop)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&eng->lock);
    int rc = 0;
    while (!atomic_load(stop) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&eng->cancel_cond, &eng->lock, &until);
    pthread_mutex_unlock(&eng->lock);
    return !atomic_load(stop);
}

/* The wait before a retry (turn_env.backoff): a cancel ends it at once.
 * False when cancelled. */
static bool engine_backoff(void *ud, long long ms)
{
    struct mc_engine *eng = ud;
    return engine_wait(eng, ms, &eng->turn_cancel);
}

static void engine_store_free(void *p)
{
    struct engine_store_job *sj = p;
    if (sj != NULL)
        cJSON_Delete(sj->out.trace);
    xfree(sj);
}

/* The provider and model of a turn: the session's choice (/provider,
 * /model), else the agent's own, else the configured ones. A provider
 * other than the configured one is made once and kept. An agent's model
 * applies only to the agent's provider. NULL with err when the provider
 * cannot be set up. */
/* Who answers a turn, by the rules above, without making a provider: the
 * provider's name (NULL: the configured one) and the model asked for
 * (NULL: that provider's default). Shared by turns and estimates. */
static const char *engine_turn_choice(const struct agent *a, const char *provider,
                                      const char *model, const char **want)
{
    const char *name = provider != NULL ? provider : a != NULL ? a->provider : NULL;
    const char *agent_model =
        a != NULL && (a->provider == NULL || name == NULL || strcmp(a->provider, name) == 0)
            ? a->model
            : NULL;
    *want = model != NULL ? model : agent_model;
    return name;
}

static struct llm_provider *engine_turn_provider(struct mc_engine *eng, const struct agent *a,
                                                 const struct engine_job *job, const char **model,
                                                 char *err, size_t errlen)
{
    const char *want;
    const char *name = engine_turn_choice(a, job->provider, job->model, &want);
    if (name == NULL || strcmp(name, eng->provider->name) == 0) {
        *model = want != NULL ? want : eng->model;
        return eng->provider;
    }
    size_t i = 0;
    while (i < ENGINE_ALT_PROVIDERS && eng->alt[i].name != NULL &&
           strcmp(eng->alt[i].name, name) != 0)
        i++;
    if (i == ENGINE_ALT_PROVIDERS) {
        snprintf(err, errlen, "provider %s: too many providers in one session", name);
        return NULL;
    }
    if (eng->alt[i].name == NULL) {
        eng->alt[i].p = llm_provider_resolve(name, eng->cfg, err, errlen);
        if (eng->alt[i].p == NULL)
            return NULL;
        eng->alt[i].name = xstrdup(name);
    }
    *model = want != NULL ? want : eng->alt[i].p->default_model;
    return eng->alt[i].p;
}

/* Stage 9's question to the user (turn_env.confirm): the front end's
 * standing answer, or the tool.confirm event's answer through
 * mc_engine_answer_tool(), waited for until it comes or the turn is
 * cancelled. */
static int engine_confirm(void *ud, const char *call_id, const char *name)
{
    struct mc_engine *eng = ud;
    (void)name;
    if (eng->tool_confirm != MC_TOOL_CONFIRM_ASK)
        return eng->tool_confirm == MC_TOOL_CONFIRM_YES;
    pthread_mutex_lock(&eng->lock);
    snprintf(eng->confirm_id, sizeof eng->confirm_id, "%s", call_id);
    eng->confirm_answer = -1;
    while (eng->confirm_answer < 0 && !atomic_load(&eng->turn_cancel))
        pthread_cond_wait(&eng->cancel_cond, &eng->lock);
    int answer = atomic_load(&eng->turn_cancel) ? -1 : eng->confirm_answer;
    eng->confirm_id[0] = '\0';
    eng->confirm_answer = -1;
    pthread_mutex_unlock(&eng->lock);
    return answer;
}

static void engine_tool_creds_free(struct tooluse_creds *c)
{
    struct keys_tool_creds *kc = c->owner;
    keys_tool_creds_wipe(kc);
    xfree(kc);
    memset(c, 0, sizeof *c);
}

/* A tool's credentials for the turn's tenant (turn_env.tool_credentials),
 * from the keystore; the values live in locked memory until the call is
 * done. */
static int engine_tool_credentials(void *ud, const char *tenant, const struct tool_def *t,
                                   struct tooluse_creds *out, char *err, size_t errlen)
{
    struct mc_engine *eng = ud;
    struct keys_tool_creds *kc = xcalloc(1, sizeof *kc);
    if (keys_tool_credentials(eng->keys, tenant, t->name, (const char *const *)t->credentials,
                              t->n_credentials, kc, err, errlen) != 0) {
        xfree(kc);
        return -1;
    }
    *out = (struct tooluse_creds){kc->names, kc->values, kc->n, engine_tool_creds_free, kc};
    return 0;
}

/* What every turn of one job shares: the engine, the job, and the turn
 * environment with the agent's provider and model. */
struct engine_turn_ctx {
    struct mc_engine *eng;
    struct engine_job *job;
    struct turn_env env;
};

/* Hands a finished turn's store stage to the background worker. */
static void engine_store_handoff(struct mc_engine *eng, struct engine_store_job *sj)
{
    /* From here the background worker owns sj (and the turn's counter). */
    if (queue_try_push(eng->stores, sj) == 0)
        return;
    /* The store queue is full (or closed). A turn's exchange waits in
     * pending_memories, written with its ledger row, so nothing is lost:
     * the background worker stores it when it is due. */
    engine_store_report(eng, sj, sj->out.pending ? "queued" : engine_store_reason(sj), NULL);
    if (sj->out.trace != NULL)
        log_warn("turn %s: trace record dropped: the background queue is full", sj->turn);
    engine_store_free(sj);
}

/* One turn of a job (the only one, or one agent step): its events, its
 * rows, then its store stage. agents/run.c's hook. */
static void engine_turn_hook(void *ud, const struct turn_input *in, struct turn_outcome *out)
{
    struct engine_turn_ctx *c = ud;
    struct engine_store_job *sj = xcalloc(1, sizeof *sj);
    memcpy(sj->turn, in->turn, sizeof sj->turn);
    struct emit em = {.turn = sj->turn, .seq = &sj->seq, .sink = engine_sink, .sink_ud = c->eng};
    client_turn_run(&c->env, in, &em, &sj->out);
    /* The caller gets the outcome; the store stage keeps its own copy
     * without the reply (and the trace record, which it writes). */
    *out = sj->out;
    out->trace = NULL;
    sj->out.reply = NULL;
    engine_store_handoff(c->eng, sj);
}

/* A turn that cannot start (its agent's provider cannot be set up): the
 * events of a failed turn, and its store stage's report. */
static void engine_fail_turn(struct mc_engine *eng, const struct engine_job *job,
                             const char *provider, const char *model, const char *msg)
{
    struct engine_store_job *sj = xcalloc(1, sizeof *sj);
    memcpy(sj->turn, job->turn, sizeof sj->turn);
    struct emit em = {.turn = sj->turn, .seq = &sj->seq, .sink = engine_sink, .sink_ud = eng};
    double lat[MC_STAGE__COUNT];
    for (int i = 0; i < MC_STAGE__COUNT; i++)
        lat[i] = -1.0;
    emit_turn_start(&em, job->tenant, job->user, job->agent, provider, model, false, NULL, NULL);
    emit_error(&em, MC_ERR_CONFIG, msg);
    emit_turn_done(&em, lat);
    engine_store_report(eng, sj, "turn_failed", NULL);
    engine_store_free(sj);
}

static void engine_run_turn(struct mc_engine *eng, struct engine_job *job)
{
    pthread_mutex_lock(&eng->lock);
    eng->running_serial = job->serial;
    atomic_store(&eng->turn_cancel, job->serial <= eng->cancel_upto);
    pthread_mutex_unlock(&eng->lock);

    const struct agent *agent = agents_find(eng->agents, job->agent);
    char err[512] = "";
    const char *model = NULL;
    struct llm_provider *provider = engine_turn_provider(eng, agent, job, &model, err, sizeof err);
    struct engine_turn_ctx c = {
        .eng = eng,
        .job = job,
        .env =
            {
                .cfg = eng->cfg,
                .provider = provider,
                .model = model,
                .conv = eng->conv,
                .cancel = &eng->turn_cancel,
                .backoff = engine_backoff,
                .backoff_ud = eng,
                .db = eng->db_turn,
                .prices = eng->prices,
                .cache = eng->cache,
                .cache_policy = eng->cache_policy,
                .ratelimit = eng->ratelimit,
                .budget = eng->budget,
                .keys = eng->keys,
                .trace_project = eng->trace_project,
                .conv_state = &eng->conv_state,
                .memory = eng->mem_turn,
                .tools = eng->tools,
                .confirm = engine_confirm,
                .confirm_ud = eng,
                .tool_credentials = engine_tool_credentials,
                .tool_credentials_ud = eng,
            },
    };
    struct turn_input in = {
        .turn = job->turn,
        .tenant = job->tenant,
        .user = job->user,
        .agent = job->agent,
        .text = job->text,
        .memory = job->memory,
        .continue_conversation = job->continue_conversation,
        .conversation = job->conversation,
        .continue_latest = job->continue_latest,
    };
    if (provider == NULL) {
        engine_fail_turn(eng, job,
                         job->provider != NULL ? job->provider
                         : agent != NULL       ? agent->provider
                                               : NULL,
                         NULL, err);
    } else if (agent == NULL) {
        /* mc_engine_submit_turn refuses unknown agents; a plain turn
         * keeps this path safe anyway. */
        struct turn_outcome last;
        engine_turn_hook(&c, &in, &last);
        xfree(last.reply);
    } else {
        struct agent_run_hooks h = {.turn = engine_turn_hook, .ud = &c};
        struct turn_outcome last;
        agent_run(agent, &in, &h, &last);
    }

    pthread_mutex_lock(&eng->lock);
    eng->running_serial = 0;
    pthread_mutex_unlock(&eng->lock);
}

static int engine_apply_override(const struct ledger_override *o, void *ctx);

/* Only the overrides of one key, for refreshing it after a change. */
struct engine_key_filter {
    struct mc_engine *eng;
    const struct engine_limit *key;
};

static int engine_apply_key_override(const struct ledger_override *o, void *ctx)
{
    const struct engine_key_filter *f = ctx;
    if (strcmp(o->tenant, f->key->tenant) != 0 || strcmp(o->user, f->key->user) != 0)
        return 0;
    return engine_apply_override(o, f->eng);
}

/* Stores a limits job's changes in one transaction. 0, or -1 with err. */
static int engine_store_limits(struct mc_engine *eng, const struct engine_job *job, char *err,
                               size_t errlen)
{
    if (db_begin(eng->db_turn, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < job->n_limits; i++) {
        const struct engine_limit *l = &job->limits[i];
        enum ledger_scope scope = l->user[0] != '\0' ? LEDGER_SCOPE_USER : LEDGER_SCOPE_TENANT;
        int rc = l->clear ? ledger_override_clear(eng->db_turn, scope, l->tenant, l->user, l->name,
                                                  err, errlen)
                          : ledger_override_set(eng->db_turn, scope, l->tenant, l->user, l->name,
                                                l->value, clock_wall_ms(), err, errlen);
        if (rc < 0) { /* 1 (nothing to clear) is fine */
            db_rollback(eng->db_turn);
            return -1;
        }
    }
    return db_commit(eng->db_turn, err, errlen) != 0 ? (db_rollback(eng->db_turn), -1) : 0;
}

/* With RATE_LIMIT_BACKEND=redis, a limits job's changes also go to the
 * overrides on Redis, which every process's scripts read. 0, or -1 with
 * err naming the server. */
static int engine_share_limits(struct mc_engine *eng, const struct engine_job *job, char *err,
                               size_t errlen)
{
    if (!eng->limits_shared)
        return 0;
    for (size_t i = 0; i < job->n_limits; i++) {
        const struct engine_limit *l = &job->limits[i];
        char why[256];
        if (ratelimit_redis_override(eng->redis, l->tenant, l->user[0] != '\0' ? l->user : NULL,
                                     l->name, l->value, l->clear, why, sizeof why) != REDIS_ST_OK) {
            snprintf(err, errlen,
                     "the change is saved in this data file and applies to this process, but "
                     "was not shared with the other processes: %s; run it again when Redis is "
                     "back",
                     why);
            return -1;
        }
    }
    return 0;
}

/* A limits job: store, then make the running limiter and budgets match
 * what is stored for each key it touched, share the change on Redis when
 * the limits live there, and answer with `result`. */
static void engine_run_limits(struct mc_engine *eng, const struct engine_job *job)
{
    struct emit em = {.turn = NULL, .seq = NULL, .sink = engine_sink, .sink_ud = eng};
    char err[512] = "";
    if (engine_store_limits(eng, job, err, sizeof err) != 0) {
        emit_job_error(&em, job->turn, MC_ERR_IO, err);
        return;
    }
    cJSON *items = cJSON_CreateArray();
    for (size_t i = 0; i < job->n_limits; i++) {
        const struct engine_limit *l = &job->limits[i];
        const char *user = l->user[0] != '\0' ? l->user : NULL;
        (void)ratelimit_clear_override(eng->ratelimit, l->tenant, user);
        (void)budget_clear_override(eng->budget, l->tenant, user);
        struct engine_key_filter f = {eng, l};
        if (ledger_overrides_each(eng->db_turn, engine_apply_key_override, &f, err, sizeof err) < 0)
            log_warn("limits: reloading overrides of %s: %s", l->tenant, err);
        cJSON *it = cJSON_CreateObject();
        cJSON_AddStringToObject(it, "tenant", l->tenant);
        if (user != NULL)
            cJSON_AddStringToObject(it, "user", user);
        else
            cJSON_AddNullToObject(it, "user");
        cJSON_AddStringToObject(it, "name", l->name);
        if (l->clear)
            cJSON_AddNullToObject(it, "value");
        else
            cJSON_AddNumberToObject(it, "value", l->value);
        cJSON_AddItemToArray(items, it);
    }
    if (engine_share_limits(eng, job, err, sizeof err) != 0) {
        cJSON_Delete(items);
        emit_job_error(&em, job->turn, MC_ERR_LIMITER_UNAVAILABLE, err);
        return;
    }
    emit_result(&em, job->turn, "limits", items);
}

/* The window of a status job when it names none: the last 7 days, as
 * `memchat rollout status` shows by default. */
#define ENGINE_STATUS_WINDOW_MS (7LL * 24 * 3600 * 1000)

/* A status job: read the settings and figures, answer with the view. */
static void engine_run_rollout_status(struct mc_engine *eng, const struct engine_job *job,
                                      struct emit *em)
{
    int64_t now = clock_wall_ms();
    int64_t since =
        job->rollout.since_ms != 0 ? job->rollout.since_ms : now - ENGINE_STATUS_WINDOW_MS;
    struct rollout_view v;
    char err[1024] = "", warn[1024] = "";
    if (rollout_view_build(eng->db_turn, config_bool(eng->cfg, CFG_RAG_ENABLED), since, now, &v,
                           warn, sizeof warn, err, sizeof err) != 0) {
        emit_job_error(em, job->turn, MC_ERR_IO, err);
        return;
    }
    if (warn[0] != '\0')
        log_warn("rollout status: %s", warn);
    cJSON *items = cJSON_CreateArray();
    cJSON_AddItemToArray(items, rollout_view_json(&v));
    rollout_view_free(&v);
    emit_result(em, job->turn, "rollout_status", items);
}

/* A rollout job: store the change and answer with what is now set. */
static void engine_run_rollout(struct mc_engine *eng, const struct engine_job *job)
{
    struct emit em = {.turn = NULL, .seq = NULL, .sink = engine_sink, .sink_ud = eng};
    const struct mc_rollout_change *c = &job->rollout;
    if (c->op == MC_ROLLOUT_STATUS) {
        engine_run_rollout_status(eng, job, &em);
        return;
    }
    char err[512] = "";
    bool had = false;
    int rc = 0;
    static const char *const names[] = {"global", "tenant", "reset", "percent"};
    switch (c->op) {
    case MC_ROLLOUT_GLOBAL:
        rc = rollout_set_global(eng->db_turn, c->on, err, sizeof err);
        break;
    case MC_ROLLOUT_TENANT:
        rc = rollout_set_tenant(eng->db_turn, job->tenant, c->on, err, sizeof err);
        break;
    case MC_ROLLOUT_RESET:
        rc = rollout_reset_tenant(eng->db_turn, job->tenant, &had, err, sizeof err);
        break;
    case MC_ROLLOUT_PERCENT:
        rc = rollout_set_percent(eng->db_turn, c->percent, err, sizeof err);
        break;
    case MC_ROLLOUT_STATUS:
        break;
    }
    if (rc != 0) {
        emit_job_error(&em, job->turn, MC_ERR_IO, err);
        return;
    }
    cJSON *it = cJSON_CreateObject();
    cJSON_AddStringToObject(it, "op", names[c->op]);
    if (job->tenant != NULL)
        cJSON_AddStringToObject(it, "tenant", job->tenant);
    else
        cJSON_AddNullToObject(it, "tenant");
    if (c->op == MC_ROLLOUT_GLOBAL || c->op == MC_ROLLOUT_TENANT)
        cJSON_AddBoolToObject(it, "memory", c->on);
    else
        cJSON_AddNullToObject(it, "memory");
    if (c->op == MC_ROLLOUT_PERCENT && c->percent >= 0)
        cJSON_AddNumberToObject(it, "percent", c->percent);
    else
        cJSON_AddNullToObject(it, "percent");
    cJSON_AddBoolToObject(it, "had", had);
    cJSON *items = cJSON_CreateArray();
    cJSON_AddItemToArray(items, it);
    emit_result(&em, job->turn, "rollout", items);
}

/* A doctor job: every backend checked, one item each (client/doctor.h). */
static void engine_run_doctor(struct mc_engine *eng, const struct engine_job *job)
{
    struct emit em = {.turn = NULL, .seq = NULL, .sink = engine_sink, .sink_ud = eng};
    struct doctor_env env = {.cfg = eng->cfg,
                             .db = eng->db_turn,
                             .memory = eng->mem_turn,
                             .keys = eng->keys,
                             .tenant = job->tenant,
                             .redis = eng->redis};
    int exit_code = 0;
    emit_result(&em, job->turn, "doctor", doctor_run(&env, &exit_code));
}

/* A job's progress as events, at most one per whole percent. */
struct engine_progress {
    const struct emit *em;
    const char *job;
    const char *stage;
    size_t shown; /* the last percent emitted, plus one; 0: none yet */
};

/* One event per percent of each stage, so a million memories make at
 * most a hundred events a stage. */
static void engine_progress(void *ud, const char *stage, size_t done, size_t total)
{
    struct engine_progress *p = ud;
    size_t pct = total > 0 ? (done >= total ? 100 : done * 100 / total) : 100;
    if (p->stage == NULL || strcmp(p->stage, stage) != 0)
        p->shown = 0;
    p->stage = stage;
    if (pct + 1 == p->shown)
        return;
    p->shown = pct + 1;
    emit_progress(p->em, p->job, p->stage, done, total);
}

/* A memory job: run it on the turn worker's manager and connection, and
 * answer with its result or its error. */
static void engine_run_memory(struct mc_engine *eng, const struct engine_job *job)
{
    struct emit em = {.turn = NULL, .seq = NULL, .sink = engine_sink, .sink_ud = eng};
    struct engine_progress prog = {.em = &em, .job = job->turn};
    /* The turn's cancel flag serves long jobs too (migrate, reembed stop
     * at their next checkpoint); the others never look at it. */
    pthread_mutex_lock(&eng->lock);
    eng->running_serial = job->serial;
    atomic_store(&eng->turn_cancel, job->serial <= eng->cancel_upto);
    pthread_mutex_unlock(&eng->lock);
    struct memjob_env env = {
        .progress = engine_progress,
        .progress_ud = &prog,
        .cfg = eng->cfg,
        .memory = eng->mem_turn,
        .db = eng->db_turn,
        .store_cache = eng->mem_cache,
        .cancel = &eng->turn_cancel,
        .trace_dir = eng->trace_dir,
        .cache = eng->cache,
    };
    const char *kind = NULL;
    cJSON *items = NULL;
    char err[1024] = "";
    enum mc_error rc = memjob_run(&env, &job->mem, &kind, &items, err, sizeof err);
    pthread_mutex_lock(&eng->lock);
    eng->running_serial = 0;
    pthread_mutex_unlock(&eng->lock);
    if (rc != MC_ERR_NONE)
        emit_job_error(&em, job->turn, rc, err);
    else
        emit_result(&em, job->turn, kind, items);
}

static void *engine_turn_main(void *arg)
{
    struct mc_engine *eng = arg;
    struct engine_job *job;
    while ((job = queue_pop(eng->jobs)) != NULL) {
        if (job->kind == ENGINE_JOB_RESET) {
            /* chat's /new: the next turn opens a new conversation */
            conversation_clear(eng->conv);
            eng->conv_state.id[0] = '\0';
        } else if (job->kind == ENGINE_JOB_MEMORY) {
            engine_run_memory(eng, job);
        } else if (job->kind == ENGINE_JOB_LIMITS) {
            engine_run_limits(eng, job);
        } else if (job->kind == ENGINE_JOB_ROLLOUT) {
            engine_run_rollout(eng, job);
        } else if (job->kind == ENGINE_JOB_DOCTOR) {
            engine_run_doctor(eng, job);
        } else
            engine_run_turn(eng, job);
        engine_job_free(job);
    }
    return NULL;
}

/* Appends a turn's trace record to traces/; a failure is logged (once
 * until it works again) and never reaches the turn. */
static void engine_trace_write(struct mc_engine *eng, const cJSON *rec)
{
    char err[512] = "";
    if (eng->tracelog == NULL)
        eng->tracelog =
            tracelog_open(eng->trace_dir, config_int(eng->cfg, CFG_MEMCHAT_TRACE_MAX_BYTES),
                          (int)config_int(eng->cfg, CFG_MEMCHAT_TRACE_KEEP), err, sizeof err);
    int rc = eng->tracelog != NULL ? tracelog_write(eng->tracelog, rec, err, sizeof err) : -1;
    if (rc != 0 && !eng->tracelog_failed)
        log_warn("traces: %s", err);
    eng->tracelog_failed = rc != 0;
}

/* The wait before an export retry: none once the engine is closing, so
 * that quitting never waits for an Opik server. */
static bool engine_export_sleep(void *ud, long long ms)
{
    struct mc_engine *eng = ud;
    return engine_wait(eng, ms, &eng->closing);
}

/* Exports what waits, once no other job does: batches form by themselves
 * while turns arrive faster than the server answers. */
static void engine_export(struct mc_engine *eng)
{
    if (eng->opik == NULL || opik_pending(eng->opik) == 0 || queue_len(eng->stores) > 0)
        return;
    char err[512] = "";
    if (opik_flush(eng->opik, engine_export_sleep, eng, err, sizeof err) != 0)
        log_warn("opik export: %s (%zu traces wait)", err, opik_pending(eng->opik));
}

/* How often an idle background worker looks for memories due for a
 * retry. */
#define ENGINE_PENDING_POLL_MS 5000

static void *engine_bg_main(void *arg)
{
    struct mc_engine *eng = arg;
    for (;;) {
        bool idle = false;
        struct engine_store_job *sj = queue_pop_timed(eng->stores, ENGINE_PENDING_POLL_MS, &idle);
        if (sj == NULL) {
            if (!idle)
                break; /* closed and drained */
            engine_retry_pending(eng);
            continue;
        }
        if (sj->out.pending)
            engine_store_turn(eng, sj);
        else
            engine_store_report(eng, sj, engine_store_reason(sj), NULL);
        if (sj->out.trace != NULL) {
            if (eng->trace_dir != NULL)
                engine_trace_write(eng, sj->out.trace);
            if (eng->opik != NULL)
                opik_enqueue(eng->opik, sj->out.trace);
        }
        engine_store_free(sj);
        engine_export(eng);
    }
    return NULL;
}

/* Starts a worker with every signal blocked, so signals reach the UI
 * thread's handlers and never interrupt a worker's system calls; all but
 * the faults, which belong to the thread that caused them: one blocked
 * there makes the kernel end the process at once, past the handler that
 * puts the terminal back (tui/term.c). The thread gets a name (top -H,
 * gdb, and the tests that tell the workers from a sanitizer's threads). */
static int engine_start_thread(pthread_t *t, const char *name, void *(*fn)(void *),
                               struct mc_engine *eng)
{
    sigset_t all, old;
    sigfillset(&all);
    static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigdelset(&all, faults[i]);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(t, NULL, fn, eng);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        pthread_setname_np(*t, name); /* a failure costs only the name */
    return rc;
}

/* --- life cycle ------------------------------------------------------------ */

static void engine_fail(int *code, enum mc_error e)
{
    if (code != NULL)
        *code = (int)e;
}

static struct db *engine_open_db(const char *path, int *code, char *err, size_t errlen)
{
    enum db_error why = DB_OK;
    struct db *db = db_open(path, &why, err, errlen);
    if (db == NULL)
        engine_fail(code, why == DB_ERR_IO ? MC_ERR_IO : MC_ERR_DATA_FILE);
    return db;
}

/* The price table: the shipped one (MEMCHAT_SHARE_DIR, the installed copy,
 * or the source tree's) with prices.json of the config dir over it. A
 * malformed override stops the start, naming the file and the field. */
static int engine_load_prices(struct mc_engine *eng, int *code, char *err, size_t errlen)
{
    char shipped[4096];
    if (prices_shipped_path(config_str(eng->cfg, CFG_MEMCHAT_SHARE_DIR), shipped, sizeof shipped) !=
        0) {
        snprintf(err, errlen, "MEMCHAT_SHARE_DIR is too long a path");
        engine_fail(code, MC_ERR_CONFIG);
        return -1;
    }
    char *override = paths_join(config_str(eng->cfg, CFG_MEMCHAT_CONFIG_DIR), "prices.json");
    int rc = prices_load(&eng->prices, shipped, override, err, errlen);
    xfree(override);
    if (rc != 0)
        engine_fail(code, MC_ERR_CONFIG);
    return rc;
}

/* The agents: the shipped ones and the config dir's. A malformed file is
 * logged and skipped (memchat agents shows the same warnings); only an
 * unreadable directory stops the start. */
static int engine_load_agents(struct mc_engine *eng, int *code, char *err, size_t errlen)
{
    char *warnings = NULL;
    eng->agents = agents_load(config_str(eng->cfg, CFG_MEMCHAT_SHARE_DIR),
                              config_str(eng->cfg, CFG_MEMCHAT_CONFIG_DIR), &warnings, err, errlen);
    log_warn_lines(__func__, "agents", warnings);
    xfree(warnings);
    if (eng->agents != NULL)
        return 0;
    engine_fail(code, MC_ERR_CONFIG);
    return -1;
}

/* The tool registry: the shipped and the user's tool files, time_now and
 * memory_search; read on a turn's first use and then once a
 * TOOL_REGISTRY_CACHE_TTL. */
static int engine_tools_new(struct mc_engine *eng, int *code, char *err, size_t errlen)
{
    eng->tools = tool_registry_new(config_str(eng->cfg, CFG_MEMCHAT_SHARE_DIR),
                                   config_str(eng->cfg, CFG_MEMCHAT_CONFIG_DIR),
                                   config_duration_ms(eng->cfg, CFG_TOOL_REGISTRY_CACHE_TTL));
    if (client_turn_tools_register(eng->tools, err, errlen) == 0)
        return 0;
    engine_fail(code, MC_ERR_INTERNAL);
    return -1;
}

/* The budget's loader: what scope spent in [start, end) by the ledger.
 * Called from the turn worker (budget_reserve), on its connection. */
static int engine_budget_load(void *ud, const char *tenant, const char *user, int64_t start_ms,
                              int64_t end_ms, double *usd, char *err, size_t errlen)
{
    struct mc_engine *eng = ud;
    long long unknown = 0;
    enum ledger_scope scope =
        user != NULL && user[0] != '\0' ? LEDGER_SCOPE_USER : LEDGER_SCOPE_TENANT;
    return ledger_spent_usd(eng->db_turn, scope, tenant, user, start_ms, end_ms, usd, &unknown, err,
                            errlen);
}

/* Applies one stored override (memchat limits set) to the limiter or the
 * budget: names rpm, tpm and budget_usd. */
static int engine_apply_override(const struct ledger_override *o, void *ctx)
{
    struct mc_engine *eng = ctx;
    const char *user = o->scope == LEDGER_SCOPE_USER ? o->user : NULL;
    char err[256];
    if (strcmp(o->name, "budget_usd") == 0)
        return budget_set_override(eng->budget, o->tenant, user, o->value, err, sizeof err) != 0;
    long long rpm = -1, tpm = -1;
    (void)ratelimit_get_override(eng->ratelimit, o->tenant, user, &rpm, &tpm);
    if (strcmp(o->name, "rpm") == 0)
        rpm = (long long)o->value;
    else if (strcmp(o->name, "tpm") == 0)
        tpm = (long long)o->value;
    else
        return 0; /* a name a newer memchat knows: ignored */
    if (ratelimit_set_override(eng->ratelimit, o->tenant, user, rpm, tpm, err, sizeof err) != 0)
        log_warn("limit override for %s/%s ignored: %s", o->tenant, o->user, err);
    return 0;
}

/* The rate limiter and the budgets, from the configuration and the
 * overrides stored in the data file. */
static int engine_limits_new(struct mc_engine *eng, int *code, char *err, size_t errlen)
{
    struct ratelimit_limits rl;
    ratelimit_limits_from_config(eng->cfg, &rl);
    struct budget_limits bl;
    budget_limits_from_config(eng->cfg, &bl);
    eng->ratelimit = ratelimit_new(&rl, err, errlen);
    eng->budget = eng->ratelimit != NULL ? budget_new(&bl, err, errlen) : NULL;
    if (eng->budget == NULL) {
        engine_fail(code, MC_ERR_CONFIG);
        return -1;
    }
    budget_set_loader(eng->budget, engine_budget_load, eng);
    if (ledger_overrides_each(eng->db_turn, engine_apply_override, eng, err, errlen) < 0) {
        engine_fail(code, MC_ERR_DATA_FILE);
        return -1;
    }
    if (eng->limits_shared) {
        bool closed = strcmp(config_str(eng->cfg, CFG_REDIS_FAILURE), "closed") == 0;
        ratelimit_use_redis(eng->ratelimit, eng->redis, closed, true);
        budget_use_redis(eng->budget, eng->redis, closed);
    }
    return 0;
}

/* The Redis connection, when a backend lives there. A bad REDIS_URL stops
 * the front end here; an unreachable server does not (turns fall back or
 * are refused as REDIS_FAILURE says, and find it again when it is back). */
static int engine_redis_new(struct mc_engine *eng, int *code, char *err, size_t errlen)
{
    eng->limits_shared = strcmp(config_str(eng->cfg, CFG_RATE_LIMIT_BACKEND), "redis") == 0;
    bool cache_shared = strcmp(config_str(eng->cfg, CFG_CACHE_BACKEND), "redis") == 0;
    if (!eng->limits_shared && !cache_shared)
        return 0;
    struct redis_config rc = {
        .url = config_str(eng->cfg, CFG_REDIS_URL),
        .timeout_ms = config_duration_ms(eng->cfg, CFG_REDIS_TIMEOUT_MS),
        .retry_ms = config_duration_ms(eng->cfg, CFG_REDIS_RETRY_MS),
        .prefix = config_str(eng->cfg, CFG_REDIS_KEY_PREFIX),
    };
    eng->redis = redis_new(&rc, err, errlen);
    if (eng->redis == NULL) {
        engine_fail(code, MC_ERR_CONFIG);
        return -1;
    }
    return 0;
}

static void engine_keys_new(struct mc_engine *eng, const char *data_dir)
{
    char *path = paths_join(data_dir, KEYSTORE_FILE_NAME);
    struct keys_config kc = {
        .keystore_path = path,
        .config_dir = config_str(eng->cfg, CFG_MEMCHAT_CONFIG_DIR),
        .master_env = config_str(eng->cfg, CFG_MEMCHAT_MASTER_KEY),
        .tool_key_env = config_str(eng->cfg, CFG_TOOL_CREDENTIALS_ENCRYPTION_KEY),
        .command_timeout_ms = config_duration_ms(eng->cfg, CFG_MEMCHAT_KEY_COMMAND_TIMEOUT_S),
    };
    eng->keys = keys_new(&kc);
    xfree(path);
}

/* Connect and whole-request limits of an Opik export: short, because the
 * last export runs while the program quits. */
#define ENGINE_OPIK_CONNECT_MS 2000
#define ENGINE_OPIK_TIMEOUT_MS 5000

/* Traces: kept when MEMCHAT_TRACE is on or an Opik server is set. A bad
 * OPIK_URL_OVERRIDE is a configuration error, found before any turn. */
static int engine_traces_new(struct mc_engine *eng, const char *data_dir, int *code, char *err,
                             size_t errlen)
{
    const char *url = config_str(eng->cfg, CFG_OPIK_URL_OVERRIDE);
    bool file = config_bool(eng->cfg, CFG_MEMCHAT_TRACE);
    if (!file && url[0] == '\0')
        return 0;
    eng->trace_project = config_str(eng->cfg, CFG_OPIK_PROJECT_NAME);
    if (file)
        eng->trace_dir = paths_join(data_dir, "traces");
    if (url[0] == '\0')
        return 0;
    struct opik_config oc = {
        .base_url = url,
        .api_key = config_str(eng->cfg, CFG_OPIK_API_KEY),
        .workspace = config_str(eng->cfg, CFG_OPIK_WORKSPACE),
        .queue_max = (size_t)config_int(eng->cfg, CFG_OPIK_QUEUE_MAX),
        .max_retries = (int)config_int(eng->cfg, CFG_MEMCHAT_MAX_RETRIES),
        .connect_timeout_ms = ENGINE_OPIK_CONNECT_MS,
        .timeout_ms = ENGINE_OPIK_TIMEOUT_MS,
    };
    eng->opik = opik_new(&oc, err, errlen);
    if (eng->opik == NULL) {
        engine_fail(code, MC_ERR_CONFIG);
        return -1;
    }
    return 0;
}

/* The memory managers of both workers over one index cache. */
static int engine_memory_new(struct mc_engine *eng, int *code, char *err, size_t errlen)
{
    eng->mem_cache = store_cache_new();
    eng->mem_turn = memory_new_from_config(eng->cfg, eng->db_turn, eng->mem_cache, err, errlen);
    if (eng->mem_turn != NULL)
        eng->mem_bg = memory_new_from_config(eng->cfg, eng->db_bg, eng->mem_cache, err, errlen);
    if (eng->mem_bg != NULL)
        return 0;
    engine_fail(code, MC_ERR_CONFIG);
    return -1;
}

struct mc_engine *engine_new_with_provider(const struct config *cfg, struct llm_provider *provider,
                                           int *code, char *err, size_t errlen)
{
    struct mc_engine *eng = xcalloc(1, sizeof *eng);
    eng->cfg = cfg;
    eng->provider = provider;
    eng->wake[0] = eng->wake[1] = -1;
    pthread_mutex_init(&eng->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&eng->cancel_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&eng->ev_lock, NULL);
    atomic_init(&eng->turn_cancel, false);
    atomic_init(&eng->closing, false);
    eng->conv = conversation_new();

    const char *data_dir = config_str(cfg, CFG_MEMCHAT_DATA_DIR);
    if (data_dir[0] == '\0') {
        snprintf(err, errlen,
                 "MEMCHAT_DATA_DIR is not set, and neither XDG_DATA_HOME nor HOME "
                 "gives a default: set MEMCHAT_DATA_DIR to a directory");
        engine_fail(code, MC_ERR_CONFIG);
        goto fail;
    }
    if (paths_mkdir_p(data_dir, 0700, err, errlen) != 0) {
        engine_fail(code, MC_ERR_IO);
        goto fail;
    }
    engine_log_acquire(eng, data_dir);

    if (eng->provider == NULL) {
        eng->provider =
            llm_provider_resolve(config_str(cfg, CFG_MEMCHAT_PROVIDER), cfg, err, errlen);
        if (eng->provider == NULL) {
            engine_fail(code, MC_ERR_CONFIG);
            goto fail;
        }
    }
    const char *model = config_str(cfg, CFG_MEMCHAT_MODEL);
    eng->model = xstrdup(model[0] != '\0' ? model : eng->provider->default_model);

    /* The turn worker's connection is opened here, so that a damaged,
     * foreign or newer data file stops the front end before any turn. */
    char *db_path = paths_join(data_dir, "memchat.db");
    eng->db_turn = engine_open_db(db_path, code, err, errlen);
    if (eng->db_turn != NULL)
        eng->db_bg = engine_open_db(db_path, code, err, errlen);
    xfree(db_path);
    if (eng->db_turn == NULL || eng->db_bg == NULL)
        goto fail;
    if (engine_memory_new(eng, code, err, errlen) != 0)
        goto fail;
    if (engine_load_prices(eng, code, err, errlen) != 0)
        goto fail;
    if (engine_load_agents(eng, code, err, errlen) != 0)
        goto fail;
    if (engine_tools_new(eng, code, err, errlen) != 0)
        goto fail;
    if (!cache_policy_parse(config_str(cfg, CFG_CACHE_POLICY), &eng->cache_policy))
        eng->cache_policy = CACHE_POLICY_OFF; /* config validated the name */
    eng->cache = cache_new((size_t)config_int(cfg, CFG_CACHE_MAX_BYTES),
                           config_duration_ms(cfg, CFG_CACHE_TTL));
    if (engine_redis_new(eng, code, err, errlen) != 0)
        goto fail;
    if (eng->redis != NULL && strcmp(config_str(cfg, CFG_CACHE_BACKEND), "redis") == 0)
        cache_use_redis(eng->cache, eng->redis);
    if (engine_limits_new(eng, code, err, errlen) != 0)
        goto fail;
    engine_keys_new(eng, data_dir);
    if (engine_traces_new(eng, data_dir, code, err, errlen) != 0)
        goto fail;

    if (pipe2(eng->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot create the engine's wake-up pipe: %s", strerror(errno));
        eng->wake[0] = eng->wake[1] = -1;
        engine_fail(code, MC_ERR_INTERNAL);
        goto fail;
    }

    eng->jobs = queue_new(SIZE_MAX);
    eng->stores = queue_new((size_t)config_int(cfg, CFG_MEMORY_STORE_QUEUE_MAX));
    int rc = engine_start_thread(&eng->turn_thread, "mc-turn", engine_turn_main, eng);
    eng->turn_started = rc == 0;
    if (rc == 0) {
        rc = engine_start_thread(&eng->bg_thread, "mc-background", engine_bg_main, eng);
        eng->bg_started = rc == 0;
    }
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the engine's workers: %s", strerror(rc));
        engine_fail(code, MC_ERR_INTERNAL);
        goto fail;
    }
    engine_fail(code, MC_ERR_NONE);
    log_info("engine started: provider %s, model %s, data dir %s", eng->provider->name, eng->model,
             data_dir);
    return eng;

fail:
    mc_engine_free(eng);
    return NULL;
}

struct mc_engine *mc_engine_new(const struct config *cfg, int *code, char *err, size_t errlen)
{
    return engine_new_with_provider(cfg, NULL, code, err, errlen);
}

void mc_engine_free(struct mc_engine *eng)
{
    if (eng == NULL)
        return;
    /* Cancel the running turn and every queued one: they still report
     * turn.start, turn.cancelled and turn.done (quickly), then the workers
     * see their closed queues and end. The turn worker is joined before the
     * store queue closes because it feeds that queue. */
    mc_engine_cancel(eng);
    if (eng->jobs != NULL)
        queue_close(eng->jobs);
    if (eng->turn_started)
        pthread_join(eng->turn_thread, NULL);
    /* The background worker still writes and exports what is queued, but
     * no longer waits to retry an export. */
    pthread_mutex_lock(&eng->lock);
    atomic_store(&eng->closing, true);
    pthread_cond_broadcast(&eng->cancel_cond);
    pthread_mutex_unlock(&eng->lock);
    if (eng->stores != NULL)
        queue_close(eng->stores);
    if (eng->bg_started)
        pthread_join(eng->bg_thread, NULL);
    queue_free(eng->jobs, engine_job_free);
    queue_free(eng->stores, engine_store_free);

    struct engine_event *node = eng->ev_head;
    while (node != NULL) {
        struct engine_event *next = node->next;
        mc_event_free(node->ev);
        xfree(node);
        node = next;
    }
    if (eng->wake[0] >= 0)
        close(eng->wake[0]);
    if (eng->wake[1] >= 0)
        close(eng->wake[1]);
    prices_free(eng->prices);
    cache_free(eng->cache);
    ratelimit_free(eng->ratelimit);
    budget_free(eng->budget);
    redis_free(eng->redis);
    memory_free(eng->mem_turn);
    memory_free(eng->mem_bg);
    store_cache_free(eng->mem_cache);
    db_close(eng->db_turn);
    db_close(eng->db_bg);
    conversation_free(eng->conv);
    keys_free(eng->keys);
    tracelog_free(eng->tracelog);
    opik_free(eng->opik);
    xfree(eng->trace_dir);
    llm_provider_free(eng->provider);
    for (size_t i = 0; i < ENGINE_ALT_PROVIDERS; i++) {
        xfree(eng->alt[i].name);
        llm_provider_free(eng->alt[i].p);
    }
    agents_free(eng->agents);
    tool_registry_free(eng->tools);
    xfree(eng->model);
    engine_log_release(eng);
    pthread_mutex_destroy(&eng->ev_lock);
    pthread_cond_destroy(&eng->cancel_cond);
    pthread_mutex_destroy(&eng->lock);
    xfree(eng);
}

/* --- jobs ------------------------------------------------------------------ */

/* Writes a printable excerpt of s (at most 64 bytes, other bytes as '?')
 * into out, for messages about a rejected id. */
static const char *engine_excerpt(const char *s, char *out, size_t outlen)
{
    size_t n = 0;
    for (; s[n] != '\0' && n < 64 && n + 1 < outlen; n++)
        out[n] = (s[n] >= 0x20 && s[n] < 0x7f) ? s[n] : '?';
    out[n] = '\0';
    return out;
}

/* The id to use for one of tenant/user/agent: the request's, else the
 * configured default. NULL with a message when invalid. */
static const char *engine_pick_id(const struct mc_engine *eng, const char *what, const char *given,
                                  int dflt_var, char *err, size_t errlen)
{
    const char *id = given != NULL ? given : config_str(eng->cfg, dflt_var);
    if (ident_valid(id))
        return id;
    char shown[80];
    snprintf(err, errlen,
             "%s id \"%s\" is not valid: use 1 to %d characters from A-Z a-z 0-9 _ -%s", what,
             engine_excerpt(id, shown, sizeof shown), IDENT_MAX,
             given != NULL ? "" : " (check the configured default)");
    return NULL;
}

/* Queues job with the next serial. Under eng->lock, so serial order and
 * queue order agree; the job queue is unbounded, so this never waits. */
static int engine_enqueue(struct mc_engine *eng, struct engine_job *job)
{
    pthread_mutex_lock(&eng->lock);
    job->serial = ++eng->last_serial;
    int rc = queue_push(eng->jobs, job);
    pthread_mutex_unlock(&eng->lock);
    return rc;
}

/* Checks that a turn's or a job's text is valid UTF-8 within MEMCHAT_MAX_INPUT_BYTES;
 * what names it in the message. */
static bool engine_text_valid(const struct mc_engine *eng, const char *what, const char *s,
                              char *err, size_t errlen)
{
    size_t len = strlen(s), bad = 0;
    long long max = config_int(eng->cfg, CFG_MEMCHAT_MAX_INPUT_BYTES);
    if ((long long)len > max) {
        snprintf(err, errlen, "input: %s is %zu bytes; MEMCHAT_MAX_INPUT_BYTES allows at most %lld",
                 what, len, max);
        return false;
    }
    if (!utf8_valid(s, len, &bad)) {
        snprintf(err, errlen, "input: %s is not valid UTF-8 (first bad byte at offset %zu)", what,
                 bad);
        return false;
    }
    return true;
}

int mc_engine_submit_turn(struct mc_engine *eng, const struct mc_turn_request *req,
                          char turn_id[MC_UUID_STRLEN + 1], char *err, size_t errlen)
{
    const char *tenant =
        engine_pick_id(eng, "tenant", req->tenant, CFG_MEMCHAT_TENANT, err, errlen);
    if (tenant == NULL)
        return -1;
    const char *user = engine_pick_id(eng, "user", req->user, CFG_MEMCHAT_USER, err, errlen);
    if (user == NULL)
        return -1;
    const char *agent = engine_pick_id(eng, "agent", req->agent, CFG_MEMCHAT_AGENT, err, errlen);
    if (agent == NULL)
        return -1;
    if (mc_engine_check_agent(eng, agent, err, errlen) != 0)
        return -1;
    if (req->text == NULL) {
        snprintf(err, errlen, "input: the turn has no message text");
        return -1;
    }
    if (!engine_text_valid(eng, "the message", req->text, err, errlen))
        return -1;
    if (req->conversation != NULL && !uuid_valid(req->conversation)) {
        char ex[80];
        snprintf(err, errlen,
                 "conversation id '%s' is not a UUID (memchat conversations lists them)",
                 engine_excerpt(req->conversation, ex, sizeof ex));
        return -1;
    }
    if (req->conversation != NULL && req->continue_latest) {
        snprintf(err, errlen, "a turn continues either a given conversation or the latest one");
        return -1;
    }
    if (req->provider != NULL && !llm_provider_known(req->provider, err, errlen))
        return -1;
    if (req->model != NULL && (req->model[0] == '\0' || strlen(req->model) > 200 ||
                               !utf8_valid(req->model, strlen(req->model), NULL))) {
        snprintf(err, errlen, "the model name must be 1 to 200 bytes of UTF-8");
        return -1;
    }
    if (req->memory != MC_MEMORY_DEFAULT && req->memory != MC_MEMORY_OFF &&
        req->memory != MC_MEMORY_ON) {
        snprintf(err, errlen, "the turn's memory setting %d is not one of default, off, on",
                 (int)req->memory);
        return -1;
    }

    struct engine_job *job = xcalloc(1, sizeof *job);
    job->kind = ENGINE_JOB_TURN;
    uuid7_new(job->turn);
    job->tenant = xstrdup(tenant);
    job->user = xstrdup(user);
    job->agent = xstrdup(agent);
    job->text = xstrdup(req->text);
    job->memory = req->memory;
    job->continue_conversation = req->continue_conversation;
    job->conversation = req->conversation != NULL ? xstrdup(req->conversation) : NULL;
    job->continue_latest = req->continue_latest;
    job->provider = req->provider != NULL ? xstrdup(req->provider) : NULL;
    job->model = req->model != NULL ? xstrdup(req->model) : NULL;
    memcpy(turn_id, job->turn, MC_UUID_STRLEN + 1);
    if (engine_enqueue(eng, job) != 0) {
        engine_job_free(job);
        snprintf(err, errlen, "the engine is shutting down");
        return -1;
    }
    return 0;
}

/* Validates a memory job's ids and texts. */
/* A migrate names two different known stores. */
static bool engine_migrate_valid(const struct mc_memory_job *j, char *err, size_t errlen)
{
    const char *const names[2] = {j->from, j->to}, *const opts[2] = {"--from", "--to"};
    for (int i = 0; i < 2; i++) {
        if (names[i] == NULL) {
            snprintf(err, errlen, "memory migrate needs %s STORE (%s)", opts[i], STORE_NAMES);
            return false;
        }
        if (!store_known(names[i])) {
            char ex[80];
            snprintf(err, errlen, "memory migrate: %s '%s' is not a vector store (accepted: %s)",
                     opts[i], engine_excerpt(names[i], ex, sizeof ex), STORE_NAMES);
            return false;
        }
    }
    if (strcmp(j->from, j->to) == 0) {
        snprintf(err, errlen, "memory migrate: --from and --to both name the %s store", j->from);
        return false;
    }
    return true;
}

static bool engine_memory_job_valid(const struct mc_engine *eng, const struct mc_memory_job *j,
                                    char *err, size_t errlen)
{
    if ((size_t)j->op > (size_t)MC_MEM_REEMBED) {
        snprintf(err, errlen, "unknown memory job %d", (int)j->op);
        return false;
    }
    if (j->tenant == NULL && j->op != MC_MEM_STATS) {
        snprintf(err, errlen, "this command needs --tenant");
        return false;
    }
    if ((j->tenant != NULL && engine_pick_id(eng, "tenant", j->tenant, 0, err, errlen) == NULL) ||
        (j->user != NULL && engine_pick_id(eng, "user", j->user, 0, err, errlen) == NULL) ||
        (j->agent != NULL && engine_pick_id(eng, "agent", j->agent, 0, err, errlen) == NULL))
        return false;
    if ((j->op == MC_MEM_ADD || j->op == MC_MEM_SEARCH) &&
        (j->text == NULL || j->text[0] == '\0')) {
        snprintf(err, errlen, "input: the %s is empty",
                 j->op == MC_MEM_ADD ? "memory's text" : "search query");
        return false;
    }
    if (j->id != NULL && !uuid_valid(j->id)) {
        char ex[80];
        snprintf(err, errlen, "input: the %s id '%s' is not a UUID",
                 j->op == MC_CONV_REMOVE ? "conversation" : "memory",
                 engine_excerpt(j->id, ex, sizeof ex));
        return false;
    }
    if (j->text != NULL && !engine_text_valid(eng, "the text", j->text, err, errlen))
        return false;
    if (j->op == MC_MEM_MIGRATE && !engine_migrate_valid(j, err, errlen))
        return false;
    if (j->batch < 0 || j->batch > MOVE_BATCH_MAX) {
        snprintf(err, errlen, "--batch must be from 1 to %d memories", MOVE_BATCH_MAX);
        return false;
    }
    for (size_t i = 0; i < j->n_lines; i++) {
        char what[64];
        snprintf(what, sizeof what, "line %zu", j->first_line + i);
        if (j->lines[i] == NULL || !engine_text_valid(eng, what, j->lines[i], err, errlen))
            return false;
    }
    return true;
}

static char *engine_dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

int mc_engine_submit_memory(struct mc_engine *eng, const struct mc_memory_job *req,
                            char job_id[MC_UUID_STRLEN + 1], char *err, size_t errlen)
{
    if (!engine_memory_job_valid(eng, req, err, errlen))
        return -1;
    struct engine_job *job = xcalloc(1, sizeof *job);
    job->kind = ENGINE_JOB_MEMORY;
    uuid7_new(job->turn);
    job->mem = *req;
    job->tenant = engine_dup_or_null(req->tenant);
    job->user = engine_dup_or_null(req->user);
    job->agent = engine_dup_or_null(req->agent);
    job->text = engine_dup_or_null(req->text);
    job->m_metadata = engine_dup_or_null(req->metadata);
    job->m_filter = engine_dup_or_null(req->filter);
    job->m_id = engine_dup_or_null(req->id);
    job->m_method = engine_dup_or_null(req->method);
    job->m_from = engine_dup_or_null(req->from);
    job->m_to = engine_dup_or_null(req->to);
    job->m_lines = req->n_lines ? xcalloc(req->n_lines, sizeof *job->m_lines) : NULL;
    for (size_t i = 0; i < req->n_lines; i++)
        job->m_lines[i] = xstrdup(req->lines[i]);
    job->mem.tenant = job->tenant;
    job->mem.user = job->user;
    job->mem.agent = job->agent;
    job->mem.text = job->text;
    job->mem.metadata = job->m_metadata;
    job->mem.filter = job->m_filter;
    job->mem.id = job->m_id;
    job->mem.method = job->m_method;
    job->mem.from = job->m_from;
    job->mem.to = job->m_to;
    job->mem.lines = (const char *const *)job->m_lines;
    memcpy(job_id, job->turn, MC_UUID_STRLEN + 1);
    if (engine_enqueue(eng, job) != 0) {
        engine_job_free(job);
        snprintf(err, errlen, "the engine is shutting down");
        return -1;
    }
    return 0;
}

void mc_engine_reset_conversation(struct mc_engine *eng)
{
    struct engine_job *job = xcalloc(1, sizeof *job);
    job->kind = ENGINE_JOB_RESET;
    if (engine_enqueue(eng, job) != 0)
        engine_job_free(job);
}

/* A change is valid when its ids are, its name is known, and its value is a
 * finite limit (whole for rpm and tpm). */
static bool engine_limit_valid(const struct mc_limits_change *c, char *err, size_t errlen)
{
    if (c->tenant == NULL || !ident_valid(c->tenant) ||
        (c->user != NULL && !ident_valid(c->user))) {
        snprintf(err, errlen,
                 "limits: a tenant (and a user, when given) must be an id "
                 "([A-Za-z0-9_-]{1,64})");
        return false;
    }
    bool rate = c->name != NULL && (strcmp(c->name, "rpm") == 0 || strcmp(c->name, "tpm") == 0);
    if (!rate && (c->name == NULL || strcmp(c->name, "budget_usd") != 0)) {
        snprintf(err, errlen, "limits: unknown limit '%s' (accepted: rpm, tpm, budget_usd)",
                 c->name != NULL ? c->name : "");
        return false;
    }
    if (!c->clear && (!isfinite(c->value) || c->value < 0 || c->value > 1e9 ||
                      (rate && c->value != floor(c->value)))) {
        snprintf(err, errlen, "limits: %s must be %s from 0 to 1000000000 (0 = %s)", c->name,
                 rate ? "a whole number" : "a number of USD", rate ? "unlimited" : "no budget");
        return false;
    }
    return true;
}

int mc_engine_submit_limits(struct mc_engine *eng, const struct mc_limits_change *changes, size_t n,
                            char job_id[MC_UUID_STRLEN + 1], char *err, size_t errlen)
{
    if (n == 0 || n > 64) {
        snprintf(err, errlen, "limits: between 1 and 64 changes at once");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!engine_limit_valid(&changes[i], err, errlen))
            return -1;
    struct engine_job *job = xcalloc(1, sizeof *job);
    job->kind = ENGINE_JOB_LIMITS;
    job->limits = xcalloc(n, sizeof *job->limits);
    job->n_limits = n;
    for (size_t i = 0; i < n; i++) {
        struct engine_limit *l = &job->limits[i];
        snprintf(l->tenant, sizeof l->tenant, "%s", changes[i].tenant);
        snprintf(l->user, sizeof l->user, "%s", changes[i].user != NULL ? changes[i].user : "");
        snprintf(l->name, sizeof l->name, "%s", changes[i].name);
        l->value = changes[i].value;
        l->clear = changes[i].clear;
    }
    uuid7_new(job->turn);
    memcpy(job_id, job->turn, sizeof job->turn);
    if (engine_enqueue(eng, job) != 0) {
        engine_job_free(job);
        snprintf(err, errlen, "limits: the engine is shutting down");
        return -1;
    }
    return 0;
}

int mc_engine_submit_rollout(struct mc_engine *eng, const struct mc_rollout_change *c,
                             char job_id[MC_UUID_STRLEN + 1], char *err, size_t errlen)
{
    bool needs_tenant = c->op == MC_ROLLOUT_TENANT || c->op == MC_ROLLOUT_RESET;
    if ((unsigned)c->op > MC_ROLLOUT_STATUS) {
        snprintf(err, errlen, "rollout: unknown change %d", (int)c->op);
        return -1;
    }
    if (needs_tenant && (c->tenant == NULL || !ident_valid(c->tenant))) {
        snprintf(err, errlen, "rollout: the tenant must be an id ([A-Za-z0-9_-]{1,64})");
        return -1;
    }
    if (c->op == MC_ROLLOUT_PERCENT && (c->percent < -1 || c->percent > 100)) {
        snprintf(err, errlen, "rollout: the percentage must be 0 to 100 (or off), not %d",
                 c->percent);
        return -1;
    }
    struct engine_job *job = xcalloc(1, sizeof *job);
    job->kind = ENGINE_JOB_ROLLOUT;
    job->rollout = *c;
    job->tenant = needs_tenant ? xstrdup(c->tenant) : NULL;
    job->rollout.tenant = NULL;
    uuid7_new(job->turn);
    memcpy(job_id, job->turn, sizeof job->turn);
    if (engine_enqueue(eng, job) != 0) {
        engine_job_free(job);
        snprintf(err, errlen, "rollout: the engine is shutting down");
        return -1;
    }
    return 0;
}

int mc_engine_submit_doctor(struct mc_engine *eng, const char *tenant,
                            char job_id[MC_UUID_STRLEN + 1], char *err, size_t errlen)
{
    if (tenant == NULL || !ident_valid(tenant)) {
        snprintf(err, errlen, "doctor: the tenant must be an id ([A-Za-z0-9_-]{1,64})");
        return -1;
    }
    struct engine_job *job = xcalloc(1, sizeof *job);
    job->kind = ENGINE_JOB_DOCTOR;
    job->tenant = xstrdup(tenant);
    uuid7_new(job->turn);
    memcpy(job_id, job->turn, sizeof job->turn);
    if (engine_enqueue(eng, job) != 0) {
        engine_job_free(job);
        snprintf(err, errlen, "doctor: the engine is shutting down");
        return -1;
    }
    return 0;
}

/* The longest wait any bucket of view would impose on one request of
 * `tokens` tokens, into out (refused: a bucket can never hold it). */
static void engine_estimate_limits(const struct ratelimit_view *view, long long tokens,
                                   struct mc_estimate *out)
{
    for (int sc = 0; sc < RATELIMIT_SCOPE__COUNT; sc++) {
        for (int k = 0; k < RATELIMIT_KIND__COUNT; k++) {
            const struct ratelimit_bucket_view *b = &view->b[sc][k];
            long long need = k == RATELIMIT_REQUESTS ? 1 : tokens;
            if (b->capacity <= 0 || b->level >= need)
                continue;
            bool never = need > b->capacity;
            long long wait = never ? 0
                                   : (long long)ceil((double)(need - b->level) *
                                                     (double)view->window_ms / (double)b->capacity);
            if (!(never && !out->refused) && (out->refused || wait <= out->wait_ms))
                continue;
            out->refused = out->refused || never;
            out->wait_ms = wait;
            snprintf(out->limit, sizeof out->limit, "%s %s %lld/%llds",
                     ratelimit_scope_name((enum ratelimit_scope)sc),
                     ratelimit_kind_name((enum ratelimit_kind)k), b->capacity,
                     view->window_ms / 1000);
        }
    }
}

int mc_engine_estimate(struct mc_engine *eng, const struct mc_turn_request *req,
                       struct mc_estimate *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *tenant =
        engine_pick_id(eng, "tenant", req->tenant, CFG_MEMCHAT_TENANT, err, errlen);
    const char *user = tenant != NULL
                           ? engine_pick_id(eng, "user", req->user, CFG_MEMCHAT_USER, err, errlen)
                           : NULL;
    const char *agent_id =
        user != NULL ? engine_pick_id(eng, "agent", req->agent, CFG_MEMCHAT_AGENT, err, errlen)
                     : NULL;
    if (agent_id == NULL)
        return -1;
    const struct agent *a = agents_find(eng->agents, agent_id);
    const char *text = req->text != NULL ? req->text : "";
    out->tokens = tokens_estimate(text, strlen(text)) + TOKENS_PER_MESSAGE + TOKENS_PER_REQUEST;
    /* Another provider's default model is unknown until it is made. */
    const char *want;
    const char *name = engine_turn_choice(a, req->provider, req->model, &want);
    bool configured = name == NULL || strcmp(name, eng->provider->name) == 0;
    const char *model = want != NULL ? want : configured ? eng->model : "";
    snprintf(out->provider, sizeof out->provider, "%s", configured ? eng->provider->name : name);
    snprintf(out->model, sizeof out->model, "%s", model);
    struct model_price price;
    struct llm_usage usage = {
        .prompt_tokens = out->tokens, .completion_tokens = 0, .cached_tokens = 0};
    out->usd = prices_lookup(eng->prices, out->provider, model, &price)
                   ? prices_cost(&price, &usage)
                   : (double)NAN;
    int64_t now = clock_mono_ms();
    struct ratelimit_view rv;
    ratelimit_snapshot(eng->ratelimit, tenant, user, now, &rv);
    engine_estimate_limits(&rv, out->tokens, out);
    for (int sc = 0; sc < RATELIMIT_SCOPE__COUNT && sc < 3; sc++)
        for (int k = 0; k < RATELIMIT_KIND__COUNT && k < 2; k++) {
            out->bucket[sc][k].capacity = rv.b[sc][k].capacity;
            out->bucket[sc][k].level = rv.b[sc][k].level;
        }
    struct budget_view bv;
    budget_snapshot(eng->budget, tenant, user, clock_wall_ms(), &bv);
    for (int sc = 0; sc < BUDGET_SCOPE__COUNT; sc++) {
        const struct budget_scope_view *b = &bv.s[sc];
        if (!b->limited || (out->budget && b->remaining_usd >= out->budget_remaining_usd))
            continue;
        out->budget = true;
        out->budget_remaining_usd = b->remaining_usd;
        snprintf(out->budget_scope, sizeof out->budget_scope, "%s",
                 budget_scope_name((enum budget_scope)sc));
    }
    return 0;
}

const char *mc_engine_model_at(const struct mc_engine *eng, const char *provider, size_t i)
{
    const char *id, *prov;
    for (size_t j = 0; (id = prices_model_at(eng->prices, j, &prov)) != NULL; j++)
        if ((provider == NULL || strcmp(prov, provider) == 0) && i-- == 0)
            return id;
    return NULL;
}

const char *mc_engine_agent_at(const struct mc_engine *eng, size_t i)
{
    return i < agents_count(eng->agents) ? agents_at(eng->agents, i)->name : NULL;
}

int mc_engine_check_agent(const struct mc_engine *eng, const char *name, char *err, size_t errlen)
{
    if (agents_find(eng->agents, name) != NULL)
        return 0;
    char names[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < agents_count(eng->agents) && used < sizeof names; i++) {
        int n = snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                         agents_at(eng->agents, i)->name);
        used += n > 0 ? (size_t)n : 0;
    }
    char ex[80];
    snprintf(err, errlen, "unknown agent '%s' (agents: %s; memchat agents describes them)",
             engine_excerpt(name, ex, sizeof ex), names);
    return -1;
}

const char *mc_engine_agent_scope(const struct mc_engine *eng, const char *name)
{
    const struct agent *a = agents_find(eng->agents, name);
    return a != NULL ? agent_scope_name(a->scope) : NULL;
}

void mc_engine_set_passphrase(struct mc_engine *eng, const char *pass, size_t len)
{
    keys_set_passphrase(eng->keys, pass, len);
}

const char *mc_engine_describe(const struct mc_engine *eng, char *out, size_t outlen)
{
    const char *detail = eng->provider->detail;
    if (detail != NULL && detail[0] != '\0')
        snprintf(out, outlen, "provider %s, model %s (%s)", eng->provider->name, eng->model,
                 detail);
    else
        snprintf(out, outlen, "provider %s, model %s", eng->provider->name, eng->model);
    return out;
}

void mc_engine_set_tool_confirm(struct mc_engine *eng, enum mc_tool_confirm mode)
{
    eng->tool_confirm = mode;
}

void mc_engine_answer_tool(struct mc_engine *eng, const char *call_id, bool allow)
{
    pthread_mutex_lock(&eng->lock);
    if (call_id != NULL && eng->confirm_id[0] != '\0' && strcmp(call_id, eng->confirm_id) == 0) {
        eng->confirm_answer = allow ? 1 : 0;
        pthread_cond_broadcast(&eng->cancel_cond);
    }
    pthread_mutex_unlock(&eng->lock);
}

void mc_engine_cancel(struct mc_engine *eng)
{
    pthread_mutex_lock(&eng->lock);
    eng->cancel_upto = eng->last_serial;
    if (eng->running_serial != 0)
        atomic_store(&eng->turn_cancel, true);
    pthread_cond_broadcast(&eng->cancel_cond);
    pthread_mutex_unlock(&eng->lock);
    /* After the flag, so a provider woken here sees it set. Harmless when
     * nothing runs. */
    if (eng->provider != NULL && eng->provider->interrupt != NULL)
        eng->provider->interrupt(eng->provider);
}

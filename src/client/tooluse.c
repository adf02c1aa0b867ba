/*
 * The tool rounds of tooluse.h. The messages the rounds add point at
 * copies this module owns (the provider's calls live only until its next
 * chat(), the runner's output until its result is freed), kept in one
 * list of allocations freed together with the turn.
 */
#include "config.h"

#include "client/tooluse.h"

#include <stdio.h>
#include <string.h>

#include "tools/runner.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"

/* What tu owns besides its arrays: strings, copied call arrays and the
 * last request's message array. */
struct tooluse_owned {
    char **strs;
    size_t n_strs, cap_strs;
    struct llm_tool_call **call_sets;
    size_t *call_counts;
    size_t n_sets, cap_sets;
    struct llm_message *req_msgs;
};

static const char *tu_keep(struct tooluse *tu, char *s)
{
    struct tooluse_owned *o = tu->owned;
    if (o->n_strs == o->cap_strs) {
        o->cap_strs = o->cap_strs ? o->cap_strs * 2 : 16;
        o->strs = xrealloc(o->strs, o->cap_strs * sizeof *o->strs);
    }
    o->strs[o->n_strs++] = s;
    return s;
}

static struct llm_message *tu_push_msg(struct tooluse *tu)
{
    if (tu->n_msgs == tu->cap_msgs) {
        tu->cap_msgs = tu->cap_msgs ? tu->cap_msgs * 2 : 8;
        tu->msgs = xrealloc(tu->msgs, tu->cap_msgs * sizeof *tu->msgs);
    }
    struct llm_message *m = &tu->msgs[tu->n_msgs++];
    memset(m, 0, sizeof *m);
    return m;
}

static struct tooluse_call *tu_push_call(struct tooluse *tu)
{
    if (tu->n_calls == tu->cap_calls) {
        tu->cap_calls = tu->cap_calls ? tu->cap_calls * 2 : 8;
        tu->calls = xrealloc(tu->calls, tu->cap_calls * sizeof *tu->calls);
    }
    struct tooluse_call *c = &tu->calls[tu->n_calls++];
    memset(c, 0, sizeof *c);
    return c;
}

/* A copy of the provider's calls that lives as long as tu. */
static const struct llm_tool_call *tu_copy_calls(struct tooluse *tu,
                                                 const struct llm_tool_call *calls, size_t n)
{
    struct tooluse_owned *o = tu->owned;
    if (o->n_sets == o->cap_sets) {
        o->cap_sets = o->cap_sets ? o->cap_sets * 2 : 4;
        o->call_sets = xrealloc(o->call_sets, o->cap_sets * sizeof *o->call_sets);
        o->call_counts = xrealloc(o->call_counts, o->cap_sets * sizeof *o->call_counts);
    }
    struct llm_tool_call *copy = xcalloc(n ? n : 1, sizeof *copy);
    for (size_t i = 0; i < n; i++) {
        copy[i].index = calls[i].index;
        copy[i].id = xstrdup(calls[i].id != NULL ? calls[i].id : "");
        copy[i].name = xstrdup(calls[i].name != NULL ? calls[i].name : "");
        /* A model calling a tool without parameters may send no
         * arguments at all: that means {}. */
        size_t len = calls[i].arguments.len;
        buf_init(&copy[i].arguments, len + 3);
        buf_append(&copy[i].arguments, len > 0 ? buf_cstr(&calls[i].arguments) : "{}",
                   len > 0 ? len : 2);
        copy[i].arguments_valid = calls[i].arguments_valid;
    }
    o->call_sets[o->n_sets] = copy;
    o->call_counts[o->n_sets++] = n;
    return copy;
}

void tooluse_begin(struct tooluse *tu, const struct tooluse_env *env, const char *const *names,
                   size_t n)
{
    memset(tu, 0, sizeof *tu);
    tu->env = env;
    tu->owned = xcalloc(1, sizeof *tu->owned);
    if (env->registry == NULL || n == 0)
        return;
    char err[512];
    if (tool_registry_refresh(env->registry, env->now_ms, false, err, sizeof err) != 0)
        log_warn("tools: %s", err);
    tu->specs = xcalloc(n, sizeof *tu->specs);
    for (size_t i = 0; i < n; i++) {
        const struct tool_def *t = tool_registry_find(env->registry, names[i]);
        if (t == NULL) {
            log_warn("tools: the agent allows %s, which no tool file or built-in defines",
                     names[i]);
            continue;
        }
        tu->specs[tu->n_specs++] = (struct llm_tool_spec){t->name, t->description, t->parameters};
    }
}

void tooluse_free(struct tooluse *tu)
{
    struct tooluse_owned *o = tu->owned;
    if (o != NULL) {
        for (size_t i = 0; i < o->n_strs; i++)
            xfree(o->strs[i]);
        for (size_t s = 0; s < o->n_sets; s++) {
            for (size_t i = 0; i < o->call_counts[s]; i++) {
                xfree(o->call_sets[s][i].id);
                xfree(o->call_sets[s][i].name);
                buf_free(&o->call_sets[s][i].arguments);
            }
            xfree(o->call_sets[s]);
        }
        xfree(o->strs);
        xfree(o->call_sets);
        xfree(o->call_counts);
        xfree(o->req_msgs);
        xfree(o);
    }
    for (size_t i = 0; i < tu->n_calls; i++) {
        xfree(tu->calls[i].call_id);
        xfree(tu->calls[i].name);
    }
    xfree(tu->calls);
    xfree(tu->msgs);
    xfree(tu->specs);
    memset(tu, 0, sizeof *tu);
}

bool tooluse_more(const struct tooluse *tu)
{
    return tu->rounds < tu->env->max_rounds;
}

/* True when the turn offered a tool of that name (a model may ask for a
 * tool it was not given: it is refused, whatever the registry holds). */
static const struct tool_def *tu_offered(const struct tooluse *tu, const char *name)
{
    for (size_t i = 0; i < tu->n_specs; i++)
        if (strcmp(tu->specs[i].name, name) == 0)
            return tool_registry_find(tu->env->registry, name);
    return NULL;
}

/* The result of a call that did not run: status, and the line the model
 * and the user get. */
struct tu_outcome {
    bool ok;
    const char *status;
    char *text; /* the output (ok) or the error line; owned */
};

/* Asks the user for a tool that is not read-only. 1 yes, 0 no, -1
 * cancelled. */
static int tu_confirm(struct tooluse *tu, const struct llm_tool_call *c)
{
    const struct tooluse_env *env = tu->env;
    emit_tool_confirm(env->em, c->id, c->name, buf_cstr(&c->arguments));
    if (env->confirm == NULL)
        return 0;
    return env->confirm(env->confirm_ud, c->id, c->name);
}

static void tu_run_tool(struct tooluse *tu, const struct tool_def *t, const struct llm_tool_call *c,
                        struct tu_outcome *out)
{
    const struct tooluse_env *env = tu->env;
    struct tooluse_creds creds = {0};
    char err[768];
    if (t->n_credentials > 0 &&
        (env->credentials == NULL ||
         env->credentials(env->credentials_ud, t, &creds, err, sizeof err) != 0)) {
        if (env->credentials == NULL)
            snprintf(err, sizeof err, "tool %s needs credentials, which this session cannot read",
                     t->name);
        out->status = "no_credentials";
        out->text = xstrdup(err);
        return;
    }
    struct tool_env te = {
        .ctx = env->ctx,
        .cred_names = creds.names,
        .cred_values = (const char *const *)creds.values,
        .n_creds = creds.n,
        .cancel = env->cancel,
    };
    struct tool_result res;
    tool_result_init(&res);
    enum tool_status st = tool_run(t, buf_cstr(&c->arguments), &te, &res);
    if (creds.free != NULL)
        creds.free(&creds);
    out->ok = st == TOOL_OK;
    out->status = tool_status_name(st);
    out->text = out->ok ? buf_take(&res.output) : xstrdup(res.error);
    tool_result_free(&res);
}

/* One call: announced, checked, confirmed, run and reported. -1 when the
 * turn was cancelled while it waited or ran. */
static int tu_call(struct tooluse *tu, const struct llm_tool_call *c)
{
    const struct tooluse_env *env = tu->env;
    int64_t t0 = clock_mono_ns();
    struct tooluse_call *rec = tu_push_call(tu);
    rec->call_id = xstrdup(c->id);
    rec->name = xstrdup(c->name);
    rec->start_ms = (double)(t0 - tu->first_ns) / 1e6;
    emit_tool_call(env->em, c->id, c->name, buf_cstr(&c->arguments));

    struct tu_outcome out = {false, NULL, NULL};
    const struct tool_def *t = tu_offered(tu, c->name);
    if (t == NULL) {
        out.status = "unknown";
        out.text = xasprintf("tool %s is not available in this conversation", c->name);
    } else if (!t->read_only) {
        int yes = tu_confirm(tu, c);
        if (yes < 0)
            return -1;
        if (yes == 0) {
            out.status = "refused";
            out.text = xasprintf("the user did not allow tool %s to run", c->name);
        }
    }
    if (out.status == NULL)
        tu_run_tool(tu, t, c, &out);
    if (atomic_load(env->cancel)) {
        xfree(out.text);
        return -1;
    }
    rec->ok = out.ok;
    rec->status = out.status;
    rec->latency_ms = clock_since_ms(t0);
    emit_tool_result(env->em, c->id, c->name, out.ok, out.status, out.ok ? out.text : NULL,
                     out.ok ? NULL : out.text, rec->latency_ms);
    struct llm_message *m = tu_push_msg(tu);
    m->role = "tool";
    m->content = tu_keep(tu, out.text);
    m->tool_call_id = c->id;
    m->tool_name = c->name;
    m->tool_error = !out.ok;
    return 0;
}

int tooluse_round(struct tooluse *tu, const char *text, const struct llm_tool_call *calls, size_t n)
{
    int64_t t0 = clock_mono_ns();
    if (tu->first_ns == 0)
        tu->first_ns = t0;
    const struct llm_tool_call *mine = tu_copy_calls(tu, calls, n);
    struct llm_message *a = tu_push_msg(tu);
    a->role = "assistant";
    a->content = tu_keep(tu, xstrdup(text != NULL ? text : ""));
    a->tool_calls = mine;
    a->n_tool_calls = n;
    tu->rounds++;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = tu_call(tu, &mine[i]);
    tu->total_ms += clock_since_ms(t0);
    return rc;
}

void tooluse_request(struct tooluse *tu, const struct llm_message *base, size_t n_base,
                     struct llm_request *req)
{
    req->tools = tu->n_specs > 0 ? tu->specs : NULL;
    req->n_tools = tu->n_specs;
    req->tools_none = tu->n_specs > 0 && !tooluse_more(tu);
    if (tu->n_msgs == 0)
        return;
    struct tooluse_owned *o = tu->owned;
    xfree(o->req_msgs);
    o->req_msgs = xcalloc(n_base + tu->n_msgs, sizeof *o->req_msgs);
    memcpy(o->req_msgs, base, n_base * sizeof *base);
    memcpy(o->req_msgs + n_base, tu->msgs, tu->n_msgs * sizeof *tu->msgs);
    req->messages = o->req_msgs;
    req->n_messages = n_base + tu->n_msgs;
}

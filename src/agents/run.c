/*
 * The runs of agents/run.h. Every step repeats the user's request, so a
 * step reads well on its own in the conversation, in traces and in the
 * memory it stores; the previous step's output follows it, JSON already
 * minified by the turn (client/turn.c, want_json), so a plan handed from
 * step to step costs no indentation tokens.
 */
#include "config.h"

#include "agents/run.h"

#include <math.h>
#include <string.h>

#include "util/alloc.h"
#include "util/uuid.h"

static enum turn_scope run_scope(enum agent_scope s)
{
    switch (s) {
    case AGENT_SCOPE_TENANT:
        return TURN_SCOPE_TENANT;
    case AGENT_SCOPE_USER:
        return TURN_SCOPE_USER;
    case AGENT_SCOPE_AGENT:
        return TURN_SCOPE_AGENT;
    case AGENT_SCOPE_DEFAULT:
        break;
    }
    return TURN_SCOPE_DEFAULT;
}

void agent_apply(const struct agent *a, struct turn_input *in)
{
    in->system_prompt = a->system_prompt;
    in->agent_memory_off = !a->memory;
    in->k = a->k;
    in->scope = run_scope(a->scope);
    in->has_temperature = !isnan(a->temperature);
    in->temperature = a->temperature;
    in->max_tokens = a->max_tokens;
    in->want_json = a->format == AGENT_FORMAT_JSON;
    in->tools = (const char *const *)a->tools;
    in->n_tools = a->n_tools;
}

char *agent_step_system(const struct agent *a, size_t i)
{
    const struct agent_step *st = &a->steps[i];
    return xasprintf("%s\n\nThis turn is step %zu of %zu (\"%s\") of a multi-step run; each "
                     "step is its own turn.%s\n%s",
                     a->system_prompt, i + 1, a->n_steps, st->name,
                     st->format == AGENT_FORMAT_JSON
                         ? " Answer with one JSON value only, no prose and no Markdown fence."
                         : "",
                     st->prompt);
}

char *agent_step_text(const struct agent *a, size_t i, const char *user_text, const char *prev)
{
    if (i == 0 || prev == NULL)
        return xstrdup(user_text);
    return xasprintf("%s\n\nThe previous step (\"%s\") answered:\n%s", user_text,
                     a->steps[i - 1].name, prev);
}

size_t agent_run(const struct agent *a, const struct turn_input *in,
                 const struct agent_run_hooks *h, struct turn_outcome *last)
{
    struct turn_input t = *in;
    agent_apply(a, &t);
    if (a->n_steps == 0) {
        h->turn(h->ud, &t, last);
        xfree(last->reply);
        last->reply = NULL;
        return 1;
    }
    char *prev = NULL;
    char conv[MC_UUID_STRLEN + 1] = "";
    char turn_id[MC_UUID_STRLEN + 1];
    size_t ran = 0;
    for (size_t i = 0; i < a->n_steps; i++) {
        struct turn_step step = {(int)i + 1, (int)a->n_steps, a->steps[i].name, in->turn};
        char *system = agent_step_system(a, i);
        char *text = agent_step_text(a, i, in->text, prev);
        if (i > 0)
            uuid7_new(turn_id);
        t.turn = i == 0 ? in->turn : turn_id;
        t.text = text;
        t.system_prompt = system;
        t.step = &step;
        t.want_json = a->steps[i].format == AGENT_FORMAT_JSON;
        t.keep_reply = true;
        if (i > 0 && conv[0] != '\0') {
            /* The later steps continue the conversation the first opened. */
            t.conversation = conv;
            t.continue_latest = false;
        }
        memset(last, 0, sizeof *last);
        h->turn(h->ud, &t, last);
        ran++;
        xfree(system);
        xfree(text);
        xfree(prev);
        prev = last->reply;
        last->reply = NULL;
        if (last->conversation[0] != '\0')
            memcpy(conv, last->conversation, sizeof conv);
        if (last->status != TURN_OK || prev == NULL)
            break;
    }
    xfree(prev);
    return ran;
}

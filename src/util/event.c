/*
 * The event object of include/memchat/event.h: a cJSON object whose first
 * four members are the contract's header ("event", "turn", "seq", "ts_ms"),
 * mirrored in struct mc_event for cheap dispatch. It lives in util/ because
 * every layer from client/ up produces or consumes events.
 */
#include "config.h"

#include "memchat/event.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/json.h"

static const char *const event_names[] = {
#define MC_X_NAME(e, name) [e] = name,
    MC_EVENT_LIST(MC_X_NAME)
#undef MC_X_NAME
};

static const char *const stage_names[] = {
#define MC_X_NAME(e, name) [e] = name,
    MC_STAGE_LIST(MC_X_NAME)
#undef MC_X_NAME
};

const char *mc_event_kind_name(enum mc_event_kind kind)
{
    return (unsigned)kind < MC_EV__COUNT ? event_names[kind] : "unknown";
}

int mc_event_kind_from_name(const char *name)
{
    for (int i = 0; i < MC_EV__COUNT; i++)
        if (strcmp(event_names[i], name) == 0)
            return i;
    return -1;
}

const char *mc_stage_name(enum mc_stage s)
{
    return (unsigned)s < MC_STAGE__COUNT ? stage_names[s] : "unknown";
}

/* cJSON reports allocation failure as NULL; our policy for small objects is
 * to abort, so every construction goes through this check. */
static cJSON *event_json_check(cJSON *item)
{
    if (item == NULL)
        alloc_die("cJSON");
    return item;
}

struct mc_event *mc_event_new(enum mc_event_kind kind, const char *turn, int64_t seq, int64_t ts_ms)
{
    struct mc_event *ev = xcalloc(1, sizeof *ev);
    ev->kind = kind;
    ev->seq = seq;
    ev->ts_ms = ts_ms;
    if (turn != NULL)
        snprintf(ev->turn, sizeof ev->turn, "%s", turn);
    ev->json = event_json_check(cJSON_CreateObject());
    event_json_check(cJSON_AddStringToObject(ev->json, "event", mc_event_kind_name(kind)));
    if (ev->turn[0] != '\0')
        event_json_check(cJSON_AddStringToObject(ev->json, "turn", ev->turn));
    else
        event_json_check(cJSON_AddNullToObject(ev->json, "turn"));
    event_json_check(cJSON_AddNumberToObject(ev->json, "seq", (double)seq));
    event_json_check(cJSON_AddNumberToObject(ev->json, "ts_ms", (double)ts_ms));
    return ev;
}

void mc_event_free(struct mc_event *ev)
{
    if (ev == NULL)
        return;
    cJSON_Delete(ev->json);
    xfree(ev);
}

char *mc_event_to_json(const struct mc_event *ev)
{
    char *s = cJSON_PrintUnformatted(ev->json);
    if (s == NULL)
        alloc_die("cJSON print");
    return s;
}

/* True when item is a JSON number holding an integer that a double
 * represents exactly (|v| <= 2^53), so converting it to int64_t is defined
 * and loses nothing; a hostile line could carry 1e300 or 1.5. */
static bool event_json_is_int(const cJSON *item)
{
    if (!cJSON_IsNumber(item))
        return false;
    double v = item->valuedouble;
    return v >= -9007199254740992.0 && v <= 9007199254740992.0 && v == floor(v);
}

struct mc_event *mc_event_parse(const char *line, char *err, size_t errlen)
{
    cJSON *root = json_parse_str(line);
    if (root == NULL && errno == ENOMEM) {
        snprintf(err, errlen, "out of memory reading the event");
        return NULL;
    }
    if (root == NULL || !cJSON_IsObject(root)) {
        snprintf(err, errlen, "not a JSON object");
        cJSON_Delete(root);
        return NULL;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "event");
    int kind = cJSON_IsString(name) ? mc_event_kind_from_name(name->valuestring) : -1;
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(root, "seq");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(root, "ts_ms");
    const cJSON *turn = cJSON_GetObjectItemCaseSensitive(root, "turn");
    const char *why = NULL;
    if (kind < 0)
        why = cJSON_IsString(name) ? "unknown \"event\" name" : "no \"event\" string";
    else if (!event_json_is_int(seq))
        why = "\"seq\" is missing or not an integer";
    else if (!event_json_is_int(ts))
        why = "\"ts_ms\" is missing or not an integer";
    else if (!cJSON_IsString(turn) && !cJSON_IsNull(turn))
        why = "\"turn\" is missing or neither a string nor null";
    if (why != NULL) {
        snprintf(err, errlen, "not a memchat event: %s", why);
        cJSON_Delete(root);
        return NULL;
    }
    struct mc_event *ev = xcalloc(1, sizeof *ev);
    ev->kind = (enum mc_event_kind)kind;
    ev->seq = (int64_t)seq->valuedouble;
    ev->ts_ms = (int64_t)ts->valuedouble;
    if (cJSON_IsString(turn))
        snprintf(ev->turn, sizeof ev->turn, "%s", turn->valuestring);
    ev->json = root;
    return ev;
}

/* The member field of o, or NULL when o is not an object. */
static const cJSON *event_member(const cJSON *o, const char *field)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, field) : NULL;
}

const char *mc_json_str(const cJSON *o, const char *field, const char *dflt)
{
    const cJSON *it = event_member(o, field);
    return cJSON_IsString(it) ? it->valuestring : dflt;
}

double mc_json_num(const cJSON *o, const char *field, double dflt)
{
    const cJSON *it = event_member(o, field);
    return cJSON_IsNumber(it) && isfinite(it->valuedouble) ? it->valuedouble : dflt;
}

bool mc_json_bool(const cJSON *o, const char *field, bool dflt)
{
    const cJSON *it = event_member(o, field);
    return cJSON_IsBool(it) ? cJSON_IsTrue(it) : dflt;
}

const char *mc_event_str(const struct mc_event *ev, const char *field, const char *dflt)
{
    return mc_json_str(ev->json, field, dflt);
}

double mc_event_num(const struct mc_event *ev, const char *field, double dflt)
{
    return mc_json_num(ev->json, field, dflt);
}

bool mc_event_bool(const struct mc_event *ev, const char *field, bool dflt)
{
    return mc_json_bool(ev->json, field, dflt);
}

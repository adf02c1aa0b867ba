/* Placeholder: the rollout rules (helper B replaces this file). */
#include "config.h"

#include "rollout/rollout.h"

#include <string.h>

int rollout_decide(struct db *db, const struct rollout_input *in, struct rollout_decision *out,
                   char *err, size_t errlen)
{
    (void)db;
    (void)err;
    (void)errlen;
    if (in->session != ROLLOUT_UNSET) {
        out->memory = in->session == ROLLOUT_ON;
        out->reason = "session";
        return 0;
    }
    if (in->agent == ROLLOUT_OFF) {
        out->memory = false;
        out->reason = "agent";
        return 0;
    }
    out->memory = in->rag_enabled;
    out->reason = "env";
    return 0;
}

int rollout_bucket(const char *tenant)
{
    (void)tenant;
    return 0;
}

int rollout_set_global(struct db *db, bool on, char *err, size_t errlen)
{
    (void)db;
    (void)on;
    (void)err;
    (void)errlen;
    return -1;
}

int rollout_set_tenant(struct db *db, const char *tenant, bool on, char *err, size_t errlen)
{
    (void)db;
    (void)tenant;
    (void)on;
    (void)err;
    (void)errlen;
    return -1;
}

int rollout_reset_tenant(struct db *db, const char *tenant, bool *had, char *err, size_t errlen)
{
    (void)db;
    (void)tenant;
    (void)had;
    (void)err;
    (void)errlen;
    return -1;
}

int rollout_set_percent(struct db *db, int percent, char *err, size_t errlen)
{
    (void)db;
    (void)percent;
    (void)err;
    (void)errlen;
    return -1;
}

int rollout_state_read(struct db *db, struct rollout_state *out, char *err, size_t errlen)
{
    (void)db;
    (void)err;
    (void)errlen;
    memset(out, 0, sizeof *out);
    return 0;
}

void rollout_state_free(struct rollout_state *s)
{
    (void)s;
}

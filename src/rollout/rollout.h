/*
 * Is memory on for this turn? The per-tenant rollout of memory (DESIGN.md,
 * "Is memory on for this turn?"): six rules, strongest first, of which
 * the tenant's own setting, the percentage and the global setting are
 * persisted in the data file (migration 5: rollout_tenants, and the
 * settings keys rollout.global and rollout.percent), so every process and
 * every later run sees what `memchat rollout` set. rollout_decide() says
 * which rule decided, for the turn's rollout event and its metrics row.
 */
#ifndef MEMCHAT_ROLLOUT_ROLLOUT_H
#define MEMCHAT_ROLLOUT_ROLLOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/ident.h"

struct db;

/* A setting that may be absent: unset, off or on. */
enum rollout_tri { ROLLOUT_UNSET = -1, ROLLOUT_OFF = 0, ROLLOUT_ON = 1 };

/* What a turn brings to the decision besides the data file. */
struct rollout_input {
    const char *tenant;       /* a valid id */
    enum rollout_tri session; /* rule 1: --no-memory, /memory off|on */
    enum rollout_tri agent;   /* rule 2: the agent's "memory" (OFF for memory: false; an
                                 agent's memory: true does not decide, so ON is treated as
                                 UNSET) */
    bool rag_enabled;         /* rule 6: RAG_ENABLED */
};

/* The answer and the rule that gave it: reason is one of "session",
 * "agent", "tenant", "percent", "global", "env" (the rollout event's
 * reason; static strings). */
struct rollout_decision {
    bool memory;
    const char *reason;
};

/* The persisted state, for `rollout status`. */
struct rollout_tenant_setting {
    char tenant[IDENT_MAX + 1];
    bool memory;
    int64_t updated_ms;
};
struct rollout_state {
    enum rollout_tri global;                /* rollout.global; UNSET when never set */
    int percent;                            /* rollout.percent, 0..100; -1 when none is set */
    struct rollout_tenant_setting *tenants; /* sorted by tenant; owned */
    size_t n_tenants;
};

/* Decides for one turn, reading the tenant's own setting, the percentage
 * and the global setting from db (no writes; db NULL: none of them is
 * set, for pipeline tests without a data file). On a read error the
 * decision falls through to the rules below it and err says what failed
 * (the turn still runs); returns 0, or -1 after such a fall-through. */
int rollout_decide(struct db *db, const struct rollout_input *in, struct rollout_decision *out,
                   char *err, size_t errlen);

/* The tenant's bucket, 0..99: the first 8 bytes of the unkeyed
 * BLAKE2b-256 of the tenant id, read little-endian, mod 100. The
 * percentage rollout turns memory on where bucket < N. -1 for NULL. */
int rollout_bucket(const char *tenant);

/* `rollout global on|off`. 0, or -1 with a message. */
int rollout_set_global(struct db *db, bool on, char *err, size_t errlen);
/* `rollout enable|disable TENANT` (tenant must be a valid id). */
int rollout_set_tenant(struct db *db, const char *tenant, bool on, char *err, size_t errlen);
/* `rollout reset TENANT`: clears the tenant's own setting; *had says
 * whether there was one. */
int rollout_reset_tenant(struct db *db, const char *tenant, bool *had, char *err, size_t errlen);
/* `rollout percent N` (0..100), or -1 for `rollout percent off`. */
int rollout_set_percent(struct db *db, int percent, char *err, size_t errlen);
/* Reads the persisted state into *out; free it with rollout_state_free. */
int rollout_state_read(struct db *db, struct rollout_state *out, char *err, size_t errlen);
/* Frees what rollout_state_read allocated and zeroes *s; NULL is a no-op. */
void rollout_state_free(struct rollout_state *s);

#endif

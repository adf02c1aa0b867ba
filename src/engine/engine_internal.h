/*
 * The engine's test seam, private to engine/ and the unit tests: an engine
 * on a given provider instead of the configured one, so tests can drive
 * the turn worker with a provider that blocks until it is cancelled (the
 * cancel and shutdown paths) without a network and without sleeping.
 */
#ifndef MEMCHAT_ENGINE_ENGINE_INTERNAL_H
#define MEMCHAT_ENGINE_ENGINE_INTERNAL_H

#include <stddef.h>

#include "memchat/engine.h"

struct llm_provider;

/* mc_engine_new() with provider (taken over, also on failure, and freed by
 * mc_engine_free()) in place of MEMCHAT_PROVIDER; NULL resolves it as
 * mc_engine_new() does. For tests. */
struct mc_engine *engine_new_with_provider(const struct config *cfg, struct llm_provider *provider,
                                           int *code, char *err, size_t errlen);

#endif

/*
 * memchat's variables: the one list every getter, `memchat config`,
 * .env.example and docs/configuration.md follow. Each issue that adds a
 * capability adds its variables here, with its default and range.
 *
 * X(id, name, type, default, min, max, choices, flags, doc)
 */
#ifndef MEMCHAT_CONFIG_VARS_H
#define MEMCHAT_CONFIG_VARS_H

#include "config/config.h"

#define MC_CONFIG_VARS(X)                                                                          \
    X(CFG_MEMCHAT_TENANT, "MEMCHAT_TENANT", CFG_ID, "default", 0, 0, NULL, 0,                      \
      "tenant whose memories, keys and quotas a turn uses")                                        \
    X(CFG_MEMCHAT_USER, "MEMCHAT_USER", CFG_ID, NULL, 0, 0, NULL, 0,                               \
      "user id; defaults to $LOGNAME, or \"user\" when that is not a valid id")                    \
    X(CFG_MEMCHAT_AGENT, "MEMCHAT_AGENT", CFG_ID, "assistant", 0, 0, NULL, 0,                      \
      "agent that answers")                                                                        \
    X(CFG_MEMCHAT_PROVIDER, "MEMCHAT_PROVIDER", CFG_ENUM, "auto", 0, 0, "auto|offline", 0,         \
      "model provider; auto picks the best one available")                                         \
    X(CFG_MEMCHAT_MODEL, "MEMCHAT_MODEL", CFG_STRING, "", 0, 0, NULL, 0,                           \
      "model name; empty means the provider's default")                                            \
    X(CFG_MEMCHAT_DATA_DIR, "MEMCHAT_DATA_DIR", CFG_PATH, NULL, 0, 0, NULL, 0,                     \
      "data dir: memchat.db, keystore, index/, traces/, memchat.log, history/")                    \
    X(CFG_MEMCHAT_CONFIG_DIR, "MEMCHAT_CONFIG_DIR", CFG_PATH, NULL, 0, 0, NULL, CFG_F_NO_FILE,     \
      "config dir: config.env, master.key, agents/, tools/, themes/, prices.json")                 \
    X(CFG_MEMCHAT_SHARE_DIR, "MEMCHAT_SHARE_DIR", CFG_PATH, "", 0, 0, NULL, 0,                     \
      "shipped files (agents, themes, prices); empty means the installed or source copy")          \
    X(CFG_MEMCHAT_LOG_LEVEL, "MEMCHAT_LOG_LEVEL", CFG_ENUM, "info", 0, 0, "error|warn|info|debug", \
      0, "threshold of memchat.log")                                                               \
    X(CFG_MEMCHAT_MAX_INPUT_BYTES, "MEMCHAT_MAX_INPUT_BYTES", CFG_INT, "1048576", 1, 67108864,     \
      NULL, 0, "largest message accepted from arguments, stdin or the input line")                 \
    X(CFG_RAG_ENABLED, "RAG_ENABLED", CFG_BOOL, "true", 0, 0, NULL, 0,                             \
      "memory for turns no stronger rollout rule decides")                                         \
    X(CFG_MEMORY_HISTORY_TURNS, "MEMORY_HISTORY_TURNS", CFG_INT, "3", 0, 100, NULL, 0,             \
      "exchanges of the conversation a turn carries when memory is on")                            \
    X(CFG_MEMORY_STORE_QUEUE_MAX, "MEMORY_STORE_QUEUE_MAX", CFG_INT, "1024", 1, 1000000, NULL, 0,  \
      "memory stores that may wait for the background worker")

enum cfg_id {
#define MC_X_ENUM(id, ...) id,
    MC_CONFIG_VARS(MC_X_ENUM)
#undef MC_X_ENUM
        CFG__COUNT
};

/* memchat's table, CFG__COUNT entries. */
extern const struct cfg_var config_vars[];

#endif

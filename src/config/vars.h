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
    X(CFG_MEMCHAT_PROVIDER, "MEMCHAT_PROVIDER", CFG_ENUM, "auto", 0, 0,                            \
      "auto|offline|openai|anthropic|ollama", 0,                                                   \
      "model provider; auto picks the best one available")                                         \
    X(CFG_MEMCHAT_MODEL, "MEMCHAT_MODEL", CFG_STRING, "", 0, 0, NULL, 0,                           \
      "model name; empty means the provider's default")                                            \
    X(CFG_MEMCHAT_TEMPERATURE, "MEMCHAT_TEMPERATURE", CFG_NUMBER, "", 0, 2, NULL, 0,               \
      "sampling temperature; empty means the provider's default")                                  \
    X(CFG_MEMCHAT_MAX_TOKENS, "MEMCHAT_MAX_TOKENS", CFG_INT, "0", 0, 1000000, NULL, 0,             \
      "cap on reply tokens; 0 means the provider's default (4096 for Anthropic)")                  \
    X(CFG_MEMCHAT_STREAM, "MEMCHAT_STREAM", CFG_BOOL, "true", 0, 0, NULL, 0,                       \
      "stream replies as they are written; false asks for one whole answer")                       \
    X(CFG_MEMCHAT_MINIFY_JSON, "MEMCHAT_MINIFY_JSON", CFG_BOOL, "true", 0, 0, NULL, 0,             \
      "take insignificant whitespace out of JSON inside messages before sending")                  \
    X(CFG_CACHE_POLICY, "CACHE_POLICY", CFG_ENUM, "temperature0", 0, 0, "off|temperature0|always", \
      0,                                                                                           \
      "which turns the response cache answers: temperature0 only when the temperature is set to "  \
      "0")                                                                                         \
    X(CFG_CACHE_TTL, "CACHE_TTL", CFG_DURATION, "1h", 0, 2592000000, NULL, 0,                      \
      "how long a cached reply is served; 0 means until evicted")                                  \
    X(CFG_CACHE_MAX_BYTES, "CACHE_MAX_BYTES", CFG_INT, "67108864", 0, 1099511627776, NULL, 0,      \
      "byte budget of the in-process response cache; 0 stores nothing")                            \
    X(CFG_RATE_LIMIT_RPM, "RATE_LIMIT_RPM", CFG_INT, "0", 0, 1000000000, NULL, 0,                  \
      "requests per window for everyone together; 0 = unlimited")                                  \
    X(CFG_RATE_LIMIT_TPM, "RATE_LIMIT_TPM", CFG_INT, "0", 0, 1000000000, NULL, 0,                  \
      "tokens per window for everyone together; 0 = unlimited")                                    \
    X(CFG_TENANT_RATE_LIMIT_RPM, "TENANT_RATE_LIMIT_RPM", CFG_INT, "0", 0, 1000000000, NULL, 0,    \
      "requests per window per tenant; 0 = unlimited")                                             \
    X(CFG_TENANT_RATE_LIMIT_TPM, "TENANT_RATE_LIMIT_TPM", CFG_INT, "0", 0, 1000000000, NULL, 0,    \
      "tokens per window per tenant; 0 = unlimited")                                               \
    X(CFG_USER_RATE_LIMIT_RPM, "USER_RATE_LIMIT_RPM", CFG_INT, "0", 0, 1000000000, NULL, 0,        \
      "requests per window per user; 0 = unlimited")                                               \
    X(CFG_USER_RATE_LIMIT_TPM, "USER_RATE_LIMIT_TPM", CFG_INT, "0", 0, 1000000000, NULL, 0,        \
      "tokens per window per user; 0 = unlimited")                                                 \
    X(CFG_RATE_LIMIT_WINDOW_S, "RATE_LIMIT_WINDOW_S", CFG_DURATION, "60", 1000, 604800000, NULL,   \
      0, "refill period of the rate-limit buckets; capacity is the per-window value")              \
    X(CFG_RATE_LIMIT_MAX_WAIT_MS, "RATE_LIMIT_MAX_WAIT_MS", CFG_DURATION, "30000", 0, 600000,      \
      NULL, 0, "longest a turn waits for a rate limit before it is refused")                       \
    X(CFG_TENANT_BUDGET_USD, "TENANT_BUDGET_USD", CFG_NUMBER, "0", 0, 1000000000, NULL, 0,         \
      "USD per budget period per tenant; 0 = no budget")                                           \
    X(CFG_USER_BUDGET_USD, "USER_BUDGET_USD", CFG_NUMBER, "0", 0, 1000000000, NULL, 0,             \
      "USD per budget period per user; 0 = no budget")                                             \
    X(CFG_BUDGET_PERIOD, "BUDGET_PERIOD", CFG_ENUM, "month", 0, 0, "day|week|month", 0,            \
      "budget period, calendar, UTC (weeks start on Monday)")                                      \
    X(CFG_RATE_LIMIT_BACKEND, "RATE_LIMIT_BACKEND", CFG_ENUM, "memory", 0, 0, "memory|redis", 0,   \
      "where rate limits, budgets and their overrides live: redis shares them across processes")   \
    X(CFG_CACHE_BACKEND, "CACHE_BACKEND", CFG_ENUM, "memory", 0, 0, "memory|redis", 0,             \
      "where the response cache lives: redis shares answers across processes")                     \
    X(CFG_REDIS_URL, "REDIS_URL", CFG_STRING, "redis://127.0.0.1:6379/0", 0, 0, NULL,              \
      CFG_F_SECRET,                                                                                \
      "Redis server: redis://[user:password@]host[:port][/db] or a Unix socket path")              \
    X(CFG_REDIS_FAILURE, "REDIS_FAILURE", CFG_ENUM, "open", 0, 0, "open|closed", 0,                \
      "Redis unreachable: open runs turns on in-process limits; closed refuses them (exit 4)")     \
    X(CFG_REDIS_TIMEOUT_MS, "REDIS_TIMEOUT_MS", CFG_DURATION, "500", 1, 60000, NULL, 0,            \
      "time allowed to connect to Redis and for each command")                                     \
    X(CFG_REDIS_RETRY_MS, "REDIS_RETRY_MS", CFG_DURATION, "1000", 0, 3600000, NULL, 0,             \
      "after a failed connection, how long turns use the fallback before trying Redis again")      \
    X(CFG_REDIS_KEY_PREFIX, "REDIS_KEY_PREFIX", CFG_STRING, "memchat:", 0, 0, NULL, 0,             \
      "put before every Redis key memchat uses, so teams or tests can share one server")           \
    X(CFG_OPENAI_API_KEY, "OPENAI_API_KEY", CFG_STRING, "", 0, 0, NULL, CFG_F_SECRET,              \
      "key for the openai provider; auto picks openai when it is set")                             \
    X(CFG_OPENAI_BASE_URL, "OPENAI_BASE_URL", CFG_STRING, "https://api.openai.com/v1", 0, 0, NULL, \
      0, "base URL of the openai provider (any OpenAI-compatible server)")                         \
    X(CFG_ANTHROPIC_API_KEY, "ANTHROPIC_API_KEY", CFG_STRING, "", 0, 0, NULL, CFG_F_SECRET,        \
      "key for the anthropic provider; auto picks it when set and OPENAI_API_KEY is not")          \
    X(CFG_ANTHROPIC_BASE_URL, "ANTHROPIC_BASE_URL", CFG_STRING, "https://api.anthropic.com", 0, 0, \
      NULL, 0, "base URL of the anthropic provider")                                               \
    X(CFG_OLLAMA_BASE_URL, "OLLAMA_BASE_URL", CFG_STRING, "http://127.0.0.1:11434", 0, 0, NULL, 0, \
      "base URL of the ollama provider (native /api/chat)")                                        \
    X(CFG_MEMCHAT_LOCAL_BASE_URL, "MEMCHAT_LOCAL_BASE_URL", CFG_STRING, "", 0, 0, NULL, 0,         \
      "local OpenAI-compatible server auto tries; empty: 127.0.0.1:11434, then :8080")             \
    X(CFG_MEMCHAT_MAX_RETRIES, "MEMCHAT_MAX_RETRIES", CFG_INT, "2", 0, 10, NULL, 0,                \
      "retries of a failed model call (connection errors, timeouts, 408, 409, 429, 5xx)")          \
    X(CFG_MEMCHAT_CONNECT_TIMEOUT_MS, "MEMCHAT_CONNECT_TIMEOUT_MS", CFG_DURATION, "5000", 1,       \
      600000, NULL, 0, "time allowed to connect to a provider")                                    \
    X(CFG_MEMCHAT_TIMEOUT_S, "MEMCHAT_TIMEOUT_S", CFG_DURATION, "600", 1000, 86400000, NULL, 0,    \
      "time allowed for one whole model call")                                                     \
    X(CFG_MEMCHAT_STALL_TIMEOUT_S, "MEMCHAT_STALL_TIMEOUT_S", CFG_DURATION, "60", 1000, 3600000,   \
      NULL, 0, "a response that sends nothing for this long is abandoned")                         \
    X(CFG_MEMCHAT_MAX_RESPONSE_BYTES, "MEMCHAT_MAX_RESPONSE_BYTES", CFG_INT, "16777216", 1024,     \
      1073741824, NULL, 0, "largest response body accepted from a provider")                       \
    X(CFG_MEMCHAT_DATA_DIR, "MEMCHAT_DATA_DIR", CFG_PATH, NULL, 0, 0, NULL, 0,                     \
      "data dir: memchat.db, keystore, index/, traces/, memchat.log, history/")                    \
    X(CFG_MEMCHAT_CONFIG_DIR, "MEMCHAT_CONFIG_DIR", CFG_PATH, NULL, 0, 0, NULL, CFG_F_NO_FILE,     \
      "config dir: config.env, master.key, agents/, tools/, themes/, prices.json")                 \
    X(CFG_MEMCHAT_SHARE_DIR, "MEMCHAT_SHARE_DIR", CFG_PATH, "", 0, 0, NULL, 0,                     \
      "shipped files (agents, themes, prices); empty means the installed or source copy")          \
    X(CFG_MEMCHAT_THEME, "MEMCHAT_THEME", CFG_ID, "default", 0, 0, NULL, 0,                        \
      "the TUI's theme: a file NAME.theme in the config dir's themes/ or the shipped ones")        \
    X(CFG_MEMCHAT_TUI_MOUSE, "MEMCHAT_TUI_MOUSE", CFG_BOOL, "true", 0, 0, NULL, 0,                 \
      "the TUI takes the mouse (wheel scrolls, a click focuses); false leaves it to the terminal") \
    X(CFG_MEMCHAT_LOG_LEVEL, "MEMCHAT_LOG_LEVEL", CFG_ENUM, "info", 0, 0, "error|warn|info|debug", \
      0, "threshold of memchat.log")                                                               \
    X(CFG_MEMCHAT_MAX_INPUT_BYTES, "MEMCHAT_MAX_INPUT_BYTES", CFG_INT, "1048576", 1, 67108864,     \
      NULL, 0, "largest message accepted from arguments, stdin or the input line")                 \
    X(CFG_RAG_ENABLED, "RAG_ENABLED", CFG_BOOL, "true", 0, 0, NULL, 0,                             \
      "memory for turns no stronger rollout rule decides")                                         \
    X(CFG_MEMORY_HISTORY_TURNS, "MEMORY_HISTORY_TURNS", CFG_INT, "3", 0, 100, NULL, 0,             \
      "exchanges of the conversation a turn carries when memory is on")                            \
    X(CFG_MEMORY_STORE_QUEUE_MAX, "MEMORY_STORE_QUEUE_MAX", CFG_INT, "1024", 1, 1000000, NULL, 0,  \
      "memory stores that may wait for the background worker")                                     \
    X(CFG_MEMCHAT_MASTER_KEY, "MEMCHAT_MASTER_KEY", CFG_STRING, "", 0, 0, NULL, CFG_F_SECRET,      \
      "keystore master key (base64 of 32 bytes); empty means master.key in the config dir")        \
    X(CFG_MEMCHAT_KEY_COMMAND_TIMEOUT_S, "MEMCHAT_KEY_COMMAND_TIMEOUT_S", CFG_DURATION, "10", 100, \
      600000, NULL, 0, "how long a key command (keys set --command) may run")                      \
    X(CFG_TOOL_REGISTRY_ENABLED, "TOOL_REGISTRY_ENABLED", CFG_BOOL, "true", 0, 0, NULL, 0,         \
      "offer the agent's tools to the model; false: turns offer none")                             \
    X(CFG_TOOL_REGISTRY_CACHE_TTL, "TOOL_REGISTRY_CACHE_TTL", CFG_DURATION, "5m", 0, 86400000,     \
      NULL, 0, "how long the tool files are cached before they are read again; 0: every turn")     \
    X(CFG_TOOL_CREDENTIALS_ENCRYPTION_KEY, "TOOL_CREDENTIALS_ENCRYPTION_KEY", CFG_STRING, "", 0,   \
      0, NULL, CFG_F_SECRET,                                                                       \
      "key sealing tool credentials in the keystore (base64 of 32 bytes); empty: the master key")  \
    X(CFG_TOOL_MAX_ROUNDS, "TOOL_MAX_ROUNDS", CFG_INT, "4", 1, 32, NULL, 0,                        \
      "rounds of tool calls in one turn; then the model must answer without tools")                \
    X(CFG_MEMCHAT_TRACE, "MEMCHAT_TRACE", CFG_BOOL, "true", 0, 0, NULL, 0,                         \
      "write one trace per turn as JSON lines in traces/ (Opik's trace and span model)")           \
    X(CFG_MEMCHAT_TRACE_MAX_BYTES, "MEMCHAT_TRACE_MAX_BYTES", CFG_INT, "10485760", 4096,           \
      1099511627776, NULL, 0, "size at which traces/traces.jsonl is rotated")                      \
    X(CFG_MEMCHAT_TRACE_KEEP, "MEMCHAT_TRACE_KEEP", CFG_INT, "5", 1, 1000, NULL, 0,                \
      "rotated trace files kept (traces.jsonl.1 is the newest)")                                   \
    X(CFG_OPIK_URL_OVERRIDE, "OPIK_URL_OVERRIDE", CFG_STRING, "", 0, 0, NULL, 0,                   \
      "Opik API base URL (e.g. http://localhost:5173/api); set, traces are exported to it")        \
    X(CFG_OPIK_API_KEY, "OPIK_API_KEY", CFG_STRING, "", 0, 0, NULL, CFG_F_SECRET,                  \
      "Opik Cloud API key, sent as the authorization header")                                      \
    X(CFG_OPIK_WORKSPACE, "OPIK_WORKSPACE", CFG_STRING, "", 0, 0, NULL, 0,                         \
      "Opik workspace, sent as Comet-Workspace when set")                                          \
    X(CFG_OPIK_PROJECT_NAME, "OPIK_PROJECT_NAME", CFG_STRING, "memchat", 0, 0, NULL, 0,            \
      "Opik project the traces go to")                                                             \
    X(CFG_OPIK_QUEUE_MAX, "OPIK_QUEUE_MAX", CFG_INT, "10000", 1, 10000000, NULL, 0,                \
      "traces waiting for export; beyond it the oldest are dropped (they stay in traces/)")        \
    X(CFG_EMBEDDINGS_PROVIDER, "EMBEDDINGS_PROVIDER", CFG_ENUM, "local", 0, 0,                     \
      "local|openai|cohere|huggingface|ollama", 0,                                                 \
      "embedder of memories; local needs no weights, key or network")                              \
    X(CFG_EMBEDDINGS_MODEL, "EMBEDDINGS_MODEL", CFG_STRING, "", 0, 0, NULL, 0,                     \
      "embedding model; empty means the embedder's own (hash-v1 for local)")                       \
    X(CFG_EMBEDDINGS_DIMENSION, "EMBEDDINGS_DIMENSION", CFG_INT, "1024", 16, 4096, NULL, 0,        \
      "floats per vector; a namespace keeps the dimension it was stored with")                     \
    X(CFG_EMBEDDINGS_BASE_URL, "EMBEDDINGS_BASE_URL", CFG_STRING, "", 0, 0, NULL, 0,               \
      "base URL of a remote embedder; empty means the provider's own (for huggingface: the "       \
      "hosted API; set, a text-embeddings-inference server)")                                      \
    X(CFG_EMBEDDINGS_BATCH_SIZE, "EMBEDDINGS_BATCH_SIZE", CFG_INT, "0", 0, 2048, NULL, 0,          \
      "texts per request to a remote embedder; 0 means the provider's largest")                    \
    X(CFG_COHERE_API_KEY, "COHERE_API_KEY", CFG_STRING, "", 0, 0, NULL, CFG_F_SECRET,              \
      "key for the cohere embedder")                                                               \
    X(CFG_HF_API_TOKEN, "HF_API_TOKEN", CFG_STRING, "", 0, 0, NULL, CFG_F_SECRET,                  \
      "token for the huggingface embedder (hosted API, or a TEI server started with --api-key)")   \
    X(CFG_VECTOR_DB_PROVIDER, "VECTOR_DB_PROVIDER", CFG_ENUM, "local", 0, 0,                       \
      "local|pgvector|qdrant|pinecone|weaviate", 0,                                                \
      "where memories are stored; local is memchat.db")                                            \
    X(CFG_MEMORY_REMOTE_TIMEOUT, "MEMORY_REMOTE_TIMEOUT", CFG_DURATION, "30s", 1000, 600000, NULL, \
      0, "longest wait for one request to a remote embedder or vector store")                      \
    X(CFG_PGVECTOR_URL, "PGVECTOR_URL", CFG_STRING, "", 0, 0, NULL, CFG_F_SECRET,                  \
      "PostgreSQL connection URI of the pgvector store (postgresql://user:pass@host:port/db)")     \
    X(CFG_QDRANT_URL, "QDRANT_URL", CFG_STRING, "http://127.0.0.1:6333", 0, 0, NULL, 0,            \
      "base URL of the Qdrant REST API")                                                           \
    X(CFG_QDRANT_API_KEY, "QDRANT_API_KEY", CFG_STRING, "", 0, 0, NULL, CFG_F_SECRET,              \
      "Qdrant API key, sent as api-key when set")                                                  \
    X(CFG_QDRANT_COLLECTION, "QDRANT_COLLECTION", CFG_STRING, "memchat", 0, 0, NULL, 0,            \
      "prefix of the Qdrant collections (one per dimension: PREFIX_dDIM)")                         \
    X(CFG_PINECONE_API_KEY, "PINECONE_API_KEY", CFG_STRING, "", 0, 0, NULL, CFG_F_SECRET,          \
      "Pinecone API key")                                                                          \
    X(CFG_PINECONE_INDEX_HOST, "PINECONE_INDEX_HOST", CFG_STRING, "", 0, 0, NULL, 0,               \
      "the index's data-plane URL; empty: looked up once by PINECONE_INDEX_NAME")                  \
    X(CFG_PINECONE_ENVIRONMENT, "PINECONE_ENVIRONMENT", CFG_STRING, "", 0, 0, NULL, 0,             \
      "the index's environment (region), checked against the host the control plane gives")        \
    X(CFG_PINECONE_INDEX_NAME, "PINECONE_INDEX_NAME", CFG_STRING, "", 0, 0, NULL, 0,               \
      "the Pinecone index; one namespace per tenant")                                              \
    X(CFG_PINECONE_CONTROLLER_URL, "PINECONE_CONTROLLER_URL", CFG_STRING,                          \
      "https://api.pinecone.io", 0, 0, NULL, 0,                                                    \
      "Pinecone control plane, asked for the index's host and dimension")                          \
    X(CFG_WEAVIATE_URL, "WEAVIATE_URL", CFG_STRING, "http://127.0.0.1:8080", 0, 0, NULL, 0,        \
      "base URL of Weaviate (without /v1)")                                                        \
    X(CFG_WEAVIATE_API_KEY, "WEAVIATE_API_KEY", CFG_STRING, "", 0, 0, NULL, CFG_F_SECRET,          \
      "Weaviate API key, sent as a bearer token when set")                                         \
    X(CFG_WEAVIATE_CLASS, "WEAVIATE_CLASS", CFG_STRING, "Memchat", 0, 0, NULL, 0,                  \
      "prefix of the Weaviate collections (one per dimension: PREFIXDDIM), multi-tenant")          \
    X(CFG_MEMORY_RETRIEVAL_K, "MEMORY_RETRIEVAL_K", CFG_INT, "5", 1, 100, NULL, 0,                 \
      "memories recalled into a turn")                                                             \
    X(CFG_MEMORY_RETRIEVAL_METHOD, "MEMORY_RETRIEVAL_METHOD", CFG_ENUM, "mmr", 0, 0,               \
      "similarity|mmr|hybrid", 0,                                                                  \
      "ranking: vector similarity, MMR for diversity, or keyword and vector fused, then MMR")      \
    X(CFG_MEMORY_MMR_DIVERSITY, "MEMORY_MMR_DIVERSITY", CFG_NUMBER, "0.3", 0, 1, NULL, 0,          \
      "weight of diversity against relevance in MMR (0: relevance only)")                          \
    X(CFG_MEMORY_HYBRID_FUSION, "MEMORY_HYBRID_FUSION", CFG_ENUM, "score", 0, 0, "score|rrf", 0,   \
      "how hybrid fuses its rankings: weighted scores, or reciprocal ranks")                       \
    X(CFG_MEMORY_HYBRID_WEIGHT, "MEMORY_HYBRID_WEIGHT", CFG_NUMBER, "0.5", 0, 1, NULL, 0,          \
      "weight of the keyword ranking against the vector one in hybrid")                            \
    X(CFG_MEMORY_FETCH_K, "MEMORY_FETCH_K", CFG_INT, "0", 0, 1000, NULL, 0,                        \
      "candidates ranked before MMR picks k; 0 means 4 x k")                                       \
    X(CFG_MEMORY_HNSW_THRESHOLD, "MEMORY_HNSW_THRESHOLD", CFG_INT, "100000", 0, 1000000000, NULL,  \
      0, "memories in a namespace above which the local store searches an HNSW index; 0: never")   \
    X(CFG_MEMORY_HNSW_M, "MEMORY_HNSW_M", CFG_INT, "16", 4, 64, NULL, 0,                           \
      "links per node of an HNSW index (twice as many on its lowest level)")                       \
    X(CFG_MEMORY_HNSW_EF_CONSTRUCTION, "MEMORY_HNSW_EF_CONSTRUCTION", CFG_INT, "200", 16, 2000,    \
      NULL, 0, "candidates kept while linking a new node into an HNSW index")                      \
    X(CFG_MEMORY_HNSW_EF_SEARCH, "MEMORY_HNSW_EF_SEARCH", CFG_INT, "96", 10, 4096, NULL, 0,        \
      "candidates kept by an HNSW search (raised to the number asked for)")                        \
    X(CFG_MEMORY_HNSW_PRELOAD, "MEMORY_HNSW_PRELOAD", CFG_BOOL, "false", 0, 0, NULL, 0,            \
      "copy a saved HNSW index's vectors into memory at its first search instead of reading the "  \
      "mapped file")                                                                               \
    X(CFG_MEMORY_DEDUP_THRESHOLD, "MEMORY_DEDUP_THRESHOLD", CFG_NUMBER, "0.95", 0, 1, NULL, 0,     \
      "similarity above which a new memory refreshes a stored one instead of adding a copy")       \
    X(CFG_MEMORY_MIN_SIMILARITY, "MEMORY_MIN_SIMILARITY", CFG_NUMBER, "0.05", -1, 1, NULL, 0,      \
      "similarity to the message below which a memory is never recalled")                          \
    X(CFG_MEMORY_SCOPE, "MEMORY_SCOPE", CFG_ENUM, "tenant", 0, 0, "tenant|user", 0,                \
      "recall the whole tenant's memories, or only the user's own")                                \
    X(CFG_MEMORY_MAX_BYTES, "MEMORY_MAX_BYTES", CFG_INT, "8192", 256, 1048576, NULL, 0,            \
      "longest memory stored as one piece; longer texts are split into chunks of this size")

enum cfg_id {
#define MC_X_ENUM(id, ...) id,
    MC_CONFIG_VARS(MC_X_ENUM)
#undef MC_X_ENUM
        CFG__COUNT
};

/* memchat's table, CFG__COUNT entries. */
extern const struct cfg_var config_vars[];

#endif

/* Placeholder: multi-step agent runs (the lead writes this). */
#ifndef MEMCHAT_AGENTS_RUN_H
#define MEMCHAT_AGENTS_RUN_H
#endif

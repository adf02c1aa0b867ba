/* Placeholder: being written. */
#ifndef MEMCHAT_CLIENT_BUDGET_REDIS_H
#define MEMCHAT_CLIENT_BUDGET_REDIS_H
#endif

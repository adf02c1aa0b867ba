/* Placeholder: being written. */
#ifndef MEMCHAT_CLIENT_RATELIMIT_REDIS_H
#define MEMCHAT_CLIENT_RATELIMIT_REDIS_H
#endif

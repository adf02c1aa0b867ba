/* Placeholder: being written. */
#ifndef MEMCHAT_CLIENT_CACHE_REDIS_H
#define MEMCHAT_CLIENT_CACHE_REDIS_H
#endif

/* Placeholder: being written. */
#include "config.h"

#include "client/cache_redis.h"

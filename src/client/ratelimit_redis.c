/* Placeholder: being written. */
#include "config.h"

#include "client/ratelimit_redis.h"

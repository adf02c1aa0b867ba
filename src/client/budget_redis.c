/* Placeholder: being written. */
#include "config.h"

#include "client/budget_redis.h"

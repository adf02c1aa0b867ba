/* placeholder */
#include "config.h"
typedef int hnsw_placeholder;

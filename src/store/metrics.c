/* placeholder until its module lands */
#include "config.h"
typedef int mc_placeholder_src_store_metrics_c;

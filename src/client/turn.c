/* placeholder until its module lands */
#include "config.h"
typedef int mc_placeholder_src_client_turn_c;

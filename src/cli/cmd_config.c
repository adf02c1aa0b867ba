/* placeholder until its module lands */
#include "config.h"
typedef int mc_placeholder_src_cli_cmd_config_c;

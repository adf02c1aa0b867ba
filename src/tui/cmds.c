/* placeholder */
#include "config.h"
typedef int tui_placeholder_cmds;

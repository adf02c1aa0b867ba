/* placeholder: being written */
#include "config.h"

#include "tui/layout.h"
typedef int tui_placeholder_layout;

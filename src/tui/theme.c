/* placeholder: being written */
#include "config.h"

#include "tui/theme.h"
typedef int tui_placeholder_theme;

/* placeholder: being written */
#include "config.h"

#include "tui/text.h"
typedef int tui_placeholder_text;

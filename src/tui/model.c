/* placeholder: being written */
#include "config.h"

#include "tui/model.h"
typedef int tui_placeholder_model;

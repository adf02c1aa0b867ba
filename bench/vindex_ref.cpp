// placeholder
#include "config.h"

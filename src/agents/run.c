/* Placeholder: multi-step agent runs (the lead writes this). */
#include "config.h"

#include "agents/run.h"

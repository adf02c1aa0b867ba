/* Placeholder: the rollout figures (helper B replaces this file). */
#include "config.h"

#include "rollout/figures.h"

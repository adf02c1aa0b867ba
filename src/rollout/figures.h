/* Placeholder: the rollout figures (helper B writes this header). */
#ifndef MEMCHAT_ROLLOUT_FIGURES_H
#define MEMCHAT_ROLLOUT_FIGURES_H
#endif

#ifndef MEMCHAT_TUI_DRAW_H
#define MEMCHAT_TUI_DRAW_H
#endif

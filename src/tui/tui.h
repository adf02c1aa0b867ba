#ifndef MEMCHAT_TUI_TUI_H
#define MEMCHAT_TUI_TUI_H
#endif

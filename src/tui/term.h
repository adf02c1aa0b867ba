#ifndef MEMCHAT_TUI_TERM_H
#define MEMCHAT_TUI_TERM_H
#endif

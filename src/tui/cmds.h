#ifndef MEMCHAT_TUI_CMDS_H
#define MEMCHAT_TUI_CMDS_H
#endif

/*
 * Themes: text files naming a colour and attributes for every element the
 * TUI draws (share/themes/NAME.theme, and the user's own in the config dir's
 * themes/, which win by name). Parsing and colour arithmetic only; the
 * drawing code turns a theme into curses colour pairs.
 *
 * The format, one element per line ('#' starts a comment):
 *
 *     # solarized-dark: ...
 *     user       = cyan default bold
 *     code       = color244 color235
 *
 * ELEMENT = FG [BG] [ATTR...]: FG and BG are `default`, one of the eight
 * names black red green yellow blue magenta cyan white, `bright-NAME`
 * (colours 8..15), or colorN (N 0..255); ATTRs are bold, dim, underline,
 * reverse, italic. Every element must be named exactly once; an unknown
 * element, colour or attribute, a missing element or a repeated one is an
 * error naming the file, the line and what is accepted.
 */
#ifndef MEMCHAT_TUI_THEME_H
#define MEMCHAT_TUI_THEME_H

#include <stdbool.h>
#include <stddef.h>

/* X(enum, "name in the file", "what it colours") */
#define THEME_ELEMENT_LIST(X)                                                 \
    X(TH_NORMAL, "normal", "pane text")                                       \
    X(TH_TITLE, "title", "pane titles")                                       \
    X(TH_TITLE_FOCUS, "title-focus", "the focused pane's title")              \
    X(TH_SEPARATOR, "separator", "the line between panes")                    \
    X(TH_USER, "user", "the user's messages")                                 \
    X(TH_ASSISTANT, "assistant", "replies")                                   \
    X(TH_NOTICE, "notice", "command feedback")                                \
    X(TH_ERROR, "error", "errors")                                            \
    X(TH_CODE, "code", "fenced code blocks")                                  \
    X(TH_MARKER, "marker", "turn markers (memory, cache, tools, step)")       \
    X(TH_SELECTED, "selected", "the selected turn or memory")                 \
    X(TH_KEPT, "kept", "memories injected into the prompt")                   \
    X(TH_DROPPED, "dropped", "candidates not kept")                           \
    X(TH_SCORE, "score", "scores")                                            \
    X(TH_LABEL, "label", "metric names")                                      \
    X(TH_VALUE, "value", "metric values")                                     \
    X(TH_SPARK, "spark", "sparklines")                                        \
    X(TH_WARN, "warn", "limits close to refusing, cancelled turns")           \
    X(TH_STATUS, "status", "the status line")                                 \
    X(TH_STATUS_ALERT, "status-alert", "offline or memory off in the status") \
    X(TH_PROMPT, "prompt", "the input prompt")                                \
    X(TH_INPUT, "input", "the input line")                                    \
    X(TH_OVERLAY, "overlay", "help and list overlays")

enum theme_element {
#define TH_X_ENUM(e, name, what) e,
    THEME_ELEMENT_LIST(TH_X_ENUM)
#undef TH_X_ENUM
        TH__COUNT
};

/* Attributes, as bits. */
enum theme_attr {
    THEME_BOLD = 1 << 0,
    THEME_DIM = 1 << 1,
    THEME_UNDERLINE = 1 << 2,
    THEME_REVERSE = 1 << 3,
    THEME_ITALIC = 1 << 4,
};

/* One element's style; a colour is -1 (the terminal's default) or 0..255. */
struct theme_style {
    short fg, bg;
    unsigned attrs; /* enum theme_attr bits */
};

#define THEME_NAME_MAX 64

struct theme {
    char name[THEME_NAME_MAX + 1];
    struct theme_style el[TH__COUNT];
};

/* The name of element e in theme files; never NULL. */
const char *theme_element_name(enum theme_element e);
/* The built-in default theme (the same as share/themes/default.theme, so a
 * missing or broken file still gives a usable screen). */
void theme_builtin(struct theme *out);
/* Parses a theme file's text; origin names it in messages ("/x/y.theme").
 * 0 with *out filled (name set to name), or -1 with "origin:LINE: what is
 * wrong (accepted: ...)" in err and *out untouched. */
int theme_parse(const char *name, const char *text, size_t n, const char *origin, struct theme *out,
                char *err, size_t errlen);
/* Loads theme `name` (letters, digits, '-', '_', '.'; at most
 * THEME_NAME_MAX) from config_dir/themes/NAME.theme, else from the shipped
 * themes (paths_shipped_dir(share_dir, "themes")). 0, or -1 with a message
 * (unknown name: it lists the themes there are) and *out untouched. */
int theme_load(const char *share_dir, const char *config_dir, const char *name, struct theme *out,
               char *err, size_t errlen);
/* The names of every theme there is (user's and shipped, sorted, no
 * duplicates), as a NULL-terminated array; free with theme_names_free. */
char **theme_names(const char *share_dir, const char *config_dir);
void theme_names_free(char **names);
/* colour c (-1..255) as the nearest of the first `colors` colours of the
 * terminal (8, 16, 256 or more): 256-colour cube and grey ramp entries
 * map to the nearest of the 16 (or 8) standard colours; -1 stays -1. */
short theme_degrade(short c, int colors);

#endif

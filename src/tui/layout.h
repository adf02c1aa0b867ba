/*
 * Where each part of the TUI goes for a terminal of a given size, without
 * curses: the three panes (conversation, recalled context, metrics), the
 * status line and the input line (one or more rows). A pure function of
 * the size, the input's height and the zoom, so it is tested directly and
 * the drawing code never does arithmetic on the screen size.
 *
 * Layouts (docs/tui.md shows them):
 *   wide   (cols >= LAYOUT_WIDE_COLS): conversation on the left; on the
 *          right a side column, recalled context above metrics;
 *   medium (cols >= LAYOUT_MEDIUM_COLS): conversation on top across the
 *          whole width; below it context on the left, metrics on the right;
 *   narrow: only the conversation, or the zoomed/focused pane.
 * Zoom gives one pane the whole area above the status line. Below
 * LAYOUT_MIN_COLS x LAYOUT_MIN_ROWS the layout is "too small" and nothing
 * but that notice is drawn.
 */
#ifndef MEMCHAT_TUI_LAYOUT_H
#define MEMCHAT_TUI_LAYOUT_H

#include <stdbool.h>

#define LAYOUT_MIN_COLS    30
#define LAYOUT_MIN_ROWS    8
#define LAYOUT_MEDIUM_COLS 60
#define LAYOUT_WIDE_COLS   100

enum pane { PANE_CONV = 0, PANE_CONTEXT, PANE_METRICS, PANE__COUNT };

/* A rectangle of the screen; h == 0 or w == 0: not shown. */
struct rect {
    int y, x, h, w;
};

struct layout {
    bool too_small;                /* nothing else below is set */
    struct rect pane[PANE__COUNT]; /* each pane's first row is its title */
    struct rect vsep;              /* a one-column separator, or empty */
    struct rect status;            /* one row, above the input */
    struct rect input;             /* input_rows rows at the bottom */
};

/* Lays out a rows x cols screen with an input of input_rows rows (clamped
 * to 1..rows/3) and zoom (a pane, or -1 for none); narrow layouts show
 * `focus` when it is not the conversation. Panes never overlap, stay
 * inside the screen, and every shown pane has at least 2 rows (title and
 * one line) and 10 columns. */
void layout_compute(int rows, int cols, int input_rows, int zoom, enum pane focus,
                    struct layout *out);
/* The pane containing screen cell (y, x), or -1. */
int layout_pane_at(const struct layout *l, int y, int x);

#endif

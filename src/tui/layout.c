/*
 * The TUI's screen arithmetic, without curses (layer: a pure function the
 * drawing code asks where things go). The proportions: in the wide layout
 * the side column takes two fifths of the width, kept between 36 columns
 * (room for a memory's scores on one line) and 56 (the conversation is what
 * is read); the recalled context gets 55% of its height and metrics the
 * rest, but at least 8 rows (a stage table) when the context still keeps 4.
 * In the medium layout the conversation gets 60% of the rows and the two
 * others share the width below it. Every row above the status line is
 * given to some pane, so nothing stale is left on the screen.
 */
#include "config.h"

#include "tui/layout.h"

#include <string.h>

/* Rows the metrics pane gets in the wide layout when there is room, and
 * what the context must keep for that. */
#define LAYOUT_METRICS_ROWS  8
#define LAYOUT_CONTEXT_KEEPS 4

static struct rect layout_rect(int y, int x, int h, int w)
{
    return (struct rect){.y = y, .x = x, .h = h, .w = w};
}

static int layout_clamp(long long v, int lo, int hi)
{
    if (v < lo)
        return lo;
    if (v > hi)
        return hi;
    return (int)v;
}

/* Conversation left, vsep, side column (context over metrics) in the
 * area rows 0..h. */
static void layout_wide(int h, int cols, struct layout *out)
{
    int side = layout_clamp((long long)cols * 2 / 5, 36, 56);
    int conv = cols - side - 1;
    int ctx = layout_clamp((long long)h * 55 / 100, 2, h - 2);
    if (h - ctx < LAYOUT_METRICS_ROWS && h - LAYOUT_METRICS_ROWS >= LAYOUT_CONTEXT_KEEPS)
        ctx = h - LAYOUT_METRICS_ROWS;
    out->pane[PANE_CONV] = layout_rect(0, 0, h, conv);
    out->vsep = layout_rect(0, conv, h, 1);
    out->pane[PANE_CONTEXT] = layout_rect(0, conv + 1, ctx, side);
    out->pane[PANE_METRICS] = layout_rect(ctx, conv + 1, h - ctx, side);
}

/* Conversation across the top; context, vsep, metrics below it. */
static void layout_medium(int h, int cols, struct layout *out)
{
    int conv = layout_clamp((long long)h * 60 / 100, 2, h - 2);
    int bottom = h - conv;
    int left = (cols - 1) / 2;
    out->pane[PANE_CONV] = layout_rect(0, 0, conv, cols);
    out->pane[PANE_CONTEXT] = layout_rect(conv, 0, bottom, left);
    out->vsep = layout_rect(conv, left, bottom, 1);
    out->pane[PANE_METRICS] = layout_rect(conv, left + 1, bottom, cols - left - 1);
}

void layout_compute(int rows, int cols, int input_rows, int zoom, enum pane focus,
                    struct layout *out)
{
    memset(out, 0, sizeof *out);
    if (rows < LAYOUT_MIN_ROWS || cols < LAYOUT_MIN_COLS) {
        out->too_small = true;
        return;
    }
    int in = layout_clamp(input_rows, 1, rows / 3);
    int h = rows - in - 1; /* the panes' rows: at least 8 - 2 - 1 */
    out->input = layout_rect(rows - in, 0, in, cols);
    out->status = layout_rect(h, 0, 1, cols);

    int only = -1;
    if (zoom >= 0 && zoom < PANE__COUNT)
        only = zoom;
    else if (cols < LAYOUT_MEDIUM_COLS)
        only = (int)focus > PANE_CONV && (int)focus < PANE__COUNT ? (int)focus : PANE_CONV;
    if (only >= 0)
        out->pane[only] = layout_rect(0, 0, h, cols);
    else if (cols >= LAYOUT_WIDE_COLS)
        layout_wide(h, cols, out);
    else
        layout_medium(h, cols, out);
}

int layout_pane_at(const struct layout *l, int y, int x)
{
    if (l->too_small)
        return -1;
    for (int p = 0; p < PANE__COUNT; p++) {
        const struct rect *r = &l->pane[p];
        if (r->h > 0 && r->w > 0 && y >= r->y && y < r->y + r->h && x >= r->x && x < r->x + r->w)
            return p;
    }
    return -1;
}

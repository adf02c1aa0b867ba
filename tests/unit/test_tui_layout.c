/*
 * Tests of tui/layout: the header's invariants (panes inside the screen,
 * never overlapping, each at least 2 x 10, status and input rows at the
 * bottom, "too small" exactly below the minimum) checked on every size
 * from 1x1 to 250x80 and a few huge ones, the area above the status line
 * covered exactly, then the three layouts, zoom and layout_pane_at at
 * chosen sizes with the figures worked out from the stated proportions.
 */
#include "testutil.h"

#include "tui/layout.h"

#include <limits.h>

static bool rect_shown(const struct rect *r)
{
    return r->h > 0 && r->w > 0;
}

static bool rect_overlap(const struct rect *a, const struct rect *b)
{
    if (!rect_shown(a) || !rect_shown(b))
        return false;
    return a->y < b->y + b->h && b->y < a->y + a->h && a->x < b->x + b->w && b->x < a->x + a->w;
}

static void assert_rect(const struct rect *r, int y, int x, int h, int w)
{
    if (r->y != y || r->x != x || r->h != h || r->w != w)
        fail_msg("rect is y=%d x=%d h=%d w=%d, expected y=%d x=%d h=%d w=%d", r->y, r->x, r->h,
                 r->w, y, x, h, w);
}

/* Every invariant of layout.h for one call; returns how many panes are
 * shown. */
static int check_invariants(int rows, int cols, int input_rows, int zoom, enum pane focus)
{
    struct layout l;
    memset(&l, 0x5a, sizeof l); /* garbage: the function must set all */
    layout_compute(rows, cols, input_rows, zoom, focus, &l);
    if (rows < LAYOUT_MIN_ROWS || cols < LAYOUT_MIN_COLS) {
        assert_true(l.too_small);
        struct layout zero;
        memset(&zero, 0, sizeof zero);
        zero.too_small = true;
        assert_memory_equal(&l, &zero, sizeof l);
        return 0;
    }
    assert_false(l.too_small);
    int ir = input_rows < 1 ? 1 : input_rows > rows / 3 ? rows / 3 : input_rows;
    assert_rect(&l.input, rows - ir, 0, ir, cols);
    assert_rect(&l.status, rows - ir - 1, 0, 1, cols);
    int top = l.status.y;

    /* The panes and the separator: inside the area above the status line,
     * pairwise disjoint, and together covering it exactly. */
    const struct rect *all[PANE__COUNT + 1];
    for (int p = 0; p < PANE__COUNT; p++)
        all[p] = &l.pane[p];
    all[PANE__COUNT] = &l.vsep;
    long long area = 0;
    int shown = 0;
    for (int i = 0; i <= PANE__COUNT; i++) {
        const struct rect *r = all[i];
        if (!rect_shown(r)) {
            assert_true(r->h == 0 || r->w == 0);
            continue;
        }
        assert_true(r->y >= 0 && r->x >= 0);
        assert_true(r->y + r->h <= top);
        assert_true(r->x + r->w <= cols);
        if (i < PANE__COUNT) {
            assert_true(r->h >= 2);
            assert_true(r->w >= 10);
            shown++;
        } else {
            assert_int_equal(r->w, 1);
        }
        area += (long long)r->h * r->w;
        for (int j = i + 1; j <= PANE__COUNT; j++)
            assert_false(rect_overlap(r, all[j]));
    }
    assert_true(area == (long long)top * cols);

    /* Which panes: the zoomed one alone; else all three from the medium
     * width up; else the focused pane, unless that is the conversation. */
    if (zoom >= 0 && zoom < PANE__COUNT) {
        assert_int_equal(shown, 1);
        assert_rect(&l.pane[zoom], 0, 0, top, cols);
    } else if (cols >= LAYOUT_MEDIUM_COLS) {
        assert_int_equal(shown, 3);
        assert_true(rect_shown(&l.vsep));
    } else {
        assert_int_equal(shown, 1);
        assert_rect(&l.pane[focus], 0, 0, top, cols);
    }
    return shown;
}

/* Every size from 1x1 to 250x80, with input heights below, inside and
 * above the allowed range, every zoom and every focus: the invariants
 * hold, and "too small" is exactly below LAYOUT_MIN_COLS x LAYOUT_MIN_ROWS. */
static void every_size_keeps_the_invariants(void **state)
{
    (void)state;
    static const int inputs[] = {-3, 0, 1, 2, 5, 1000};
    for (int rows = 1; rows <= 80; rows++) {
        for (int cols = 1; cols <= 250; cols++) {
            for (size_t k = 0; k < sizeof inputs / sizeof inputs[0]; k++) {
                for (int zoom = -1; zoom < PANE__COUNT; zoom++)
                    check_invariants(rows, cols, inputs[k], zoom, PANE_CONV);
                check_invariants(rows, cols, inputs[k], -1, PANE_CONTEXT);
                check_invariants(rows, cols, inputs[k], -1, PANE_METRICS);
            }
        }
    }
}

/* Huge and degenerate sizes: no arithmetic overflows, the invariants hold,
 * and a zero or negative size is just too small. */
static void huge_and_negative_sizes_are_handled(void **state)
{
    (void)state;
    static const int big[][2] = {
        {1000, 1000}, {100000, 300}, {300, 100000}, {46000, 46000}, {INT_MAX / 4, 500}};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        for (int zoom = -1; zoom < PANE__COUNT; zoom++)
            assert_true(check_invariants(big[i][0], big[i][1], 3, zoom, PANE_CONV) >= 1);
    }
    struct layout l;
    layout_compute(0, 0, 1, -1, PANE_CONV, &l);
    assert_true(l.too_small);
    layout_compute(-5, 120, 1, -1, PANE_CONV, &l);
    assert_true(l.too_small);
    layout_compute(40, INT_MIN, 1, -1, PANE_CONV, &l);
    assert_true(l.too_small);
    /* An out-of-range zoom means no zoom; an out-of-range focus the
     * conversation. */
    check_invariants(40, 120, 1, 7, PANE_CONV);
    check_invariants(40, 120, 1, -9, PANE_CONV);
    layout_compute(20, 50, 1, -1, (enum pane)9, &l);
    assert_rect(&l.pane[PANE_CONV], 0, 0, 18, 50);
}

/* The minimum is inclusive: 30x8 is drawn, 29x8 and 30x7 are not. */
static void the_minimum_size_is_drawn_and_one_less_is_too_small(void **state)
{
    (void)state;
    struct layout l;
    layout_compute(LAYOUT_MIN_ROWS, LAYOUT_MIN_COLS, 1, -1, PANE_CONV, &l);
    assert_false(l.too_small);
    assert_rect(&l.pane[PANE_CONV], 0, 0, LAYOUT_MIN_ROWS - 2, LAYOUT_MIN_COLS);
    layout_compute(LAYOUT_MIN_ROWS, LAYOUT_MIN_COLS - 1, 1, -1, PANE_CONV, &l);
    assert_true(l.too_small);
    layout_compute(LAYOUT_MIN_ROWS - 1, LAYOUT_MIN_COLS, 1, -1, PANE_CONV, &l);
    assert_true(l.too_small);
}

/* 120x40 is wide: the side column is 2/5 of 120 = 48 columns, the
 * conversation 120 - 48 - 1 = 71, the separator at column 71; of the
 * 40 - 1 - 1 = 38 rows above the status line the context gets 55%
 * (20.9, so 20) and metrics the other 18. */
static void wide_layout_at_120x40(void **state)
{
    (void)state;
    struct layout l;
    layout_compute(40, 120, 1, -1, PANE_CONV, &l);
    assert_false(l.too_small);
    assert_rect(&l.pane[PANE_CONV], 0, 0, 38, 71);
    assert_rect(&l.vsep, 0, 71, 38, 1);
    assert_rect(&l.pane[PANE_CONTEXT], 0, 72, 20, 48);
    assert_rect(&l.pane[PANE_METRICS], 20, 72, 18, 48);
    assert_rect(&l.status, 38, 0, 1, 120);
    assert_rect(&l.input, 39, 0, 1, 120);

    /* A three-row input takes rows 37..39 and pushes the status up. */
    layout_compute(40, 120, 3, -1, PANE_CONV, &l);
    assert_rect(&l.input, 37, 0, 3, 120);
    assert_rect(&l.status, 36, 0, 1, 120);
    assert_int_equal(l.pane[PANE_CONV].h, 36);
}

/* The side column stays between 36 and 56 columns: 40 at the wide
 * threshold (2/5 of 100), 56 on a 300-column terminal where 2/5 is 120. */
static void wide_side_column_is_clamped(void **state)
{
    (void)state;
    struct layout l;
    layout_compute(40, LAYOUT_WIDE_COLS, 1, -1, PANE_CONV, &l);
    assert_int_equal(l.pane[PANE_CONTEXT].w, 40);
    assert_int_equal(l.pane[PANE_CONV].w, 59);
    layout_compute(40, 300, 1, -1, PANE_CONV, &l);
    assert_int_equal(l.pane[PANE_CONTEXT].w, 56);
    assert_int_equal(l.pane[PANE_METRICS].w, 56);
    assert_int_equal(l.pane[PANE_CONV].w, 300 - 56 - 1);
}

/* Metrics get 8 rows when 55% would leave fewer and the context keeps 4:
 * at 16 rows (14 above the status) 55% is 7, so 6 and 8; at 12 rows
 * (10 above) 8 would leave the context 2, so 55% stands (5 and 5). */
static void wide_metrics_get_eight_rows_when_they_fit(void **state)
{
    (void)state;
    struct layout l;
    layout_compute(16, 120, 1, -1, PANE_CONV, &l);
    assert_int_equal(l.pane[PANE_CONTEXT].h, 6);
    assert_rect(&l.pane[PANE_METRICS], 6, 72, 8, 48);
    layout_compute(12, 120, 1, -1, PANE_CONV, &l);
    assert_int_equal(l.pane[PANE_CONTEXT].h, 5);
    assert_int_equal(l.pane[PANE_METRICS].h, 5);
}

/* 80x24 is medium: 22 rows above the status, the conversation 60% of
 * them (13.2, so 13) across the width; below, 9 rows split into context
 * (79 / 2 = 39 columns), the separator at 39 and metrics (40). */
static void medium_layout_at_80x24(void **state)
{
    (void)state;
    struct layout l;
    layout_compute(24, 80, 1, -1, PANE_CONV, &l);
    assert_false(l.too_small);
    assert_rect(&l.pane[PANE_CONV], 0, 0, 13, 80);
    assert_rect(&l.pane[PANE_CONTEXT], 13, 0, 9, 39);
    assert_rect(&l.vsep, 13, 39, 9, 1);
    assert_rect(&l.pane[PANE_METRICS], 13, 40, 9, 40);
    assert_rect(&l.status, 22, 0, 1, 80);
    assert_rect(&l.input, 23, 0, 1, 80);
    /* Focus does not change a layout that shows every pane. */
    struct layout l2;
    layout_compute(24, 80, 1, -1, PANE_METRICS, &l2);
    assert_memory_equal(&l, &l2, sizeof l);
}

/* 50x20 is narrow: one pane over all 18 rows above the status, the
 * conversation unless another pane has the focus. */
static void narrow_layout_at_50x20_shows_one_pane(void **state)
{
    (void)state;
    struct layout l;
    layout_compute(20, 50, 1, -1, PANE_CONV, &l);
    assert_rect(&l.pane[PANE_CONV], 0, 0, 18, 50);
    assert_false(rect_shown(&l.pane[PANE_CONTEXT]));
    assert_false(rect_shown(&l.pane[PANE_METRICS]));
    assert_false(rect_shown(&l.vsep));
    layout_compute(20, 50, 1, -1, PANE_METRICS, &l);
    assert_rect(&l.pane[PANE_METRICS], 0, 0, 18, 50);
    assert_false(rect_shown(&l.pane[PANE_CONV]));
    layout_compute(20, 50, 1, -1, PANE_CONTEXT, &l);
    assert_rect(&l.pane[PANE_CONTEXT], 0, 0, 18, 50);
}

/* Zoom gives its pane everything above the status line in every layout,
 * and wins over the focus in a narrow one. */
static void zoom_gives_one_pane_the_whole_area(void **state)
{
    (void)state;
    struct layout l;
    layout_compute(40, 120, 1, PANE_CONTEXT, PANE_CONV, &l);
    assert_rect(&l.pane[PANE_CONTEXT], 0, 0, 38, 120);
    assert_false(rect_shown(&l.pane[PANE_CONV]));
    assert_false(rect_shown(&l.pane[PANE_METRICS]));
    assert_false(rect_shown(&l.vsep));
    assert_rect(&l.status, 38, 0, 1, 120);
    layout_compute(24, 80, 2, PANE_METRICS, PANE_CONV, &l);
    assert_rect(&l.pane[PANE_METRICS], 0, 0, 21, 80);
    layout_compute(20, 50, 1, PANE_CONV, PANE_METRICS, &l);
    assert_rect(&l.pane[PANE_CONV], 0, 0, 18, 50);
    assert_false(rect_shown(&l.pane[PANE_METRICS]));
}

/* layout_pane_at names the pane under a cell, and -1 for the separator,
 * the status and input rows, cells off the screen and a too-small
 * layout. */
static void pane_at_finds_the_pane_under_a_cell(void **state)
{
    (void)state;
    struct layout l;
    layout_compute(40, 120, 1, -1, PANE_CONV, &l);
    assert_int_equal(layout_pane_at(&l, 0, 0), PANE_CONV);
    assert_int_equal(layout_pane_at(&l, 37, 70), PANE_CONV);
    assert_int_equal(layout_pane_at(&l, 0, 71), -1);
    assert_int_equal(layout_pane_at(&l, 0, 72), PANE_CONTEXT);
    assert_int_equal(layout_pane_at(&l, 19, 119), PANE_CONTEXT);
    assert_int_equal(layout_pane_at(&l, 20, 72), PANE_METRICS);
    assert_int_equal(layout_pane_at(&l, 37, 119), PANE_METRICS);
    assert_int_equal(layout_pane_at(&l, 38, 0), -1);
    assert_int_equal(layout_pane_at(&l, 39, 5), -1);
    assert_int_equal(layout_pane_at(&l, -1, 0), -1);
    assert_int_equal(layout_pane_at(&l, 0, -1), -1);
    assert_int_equal(layout_pane_at(&l, 0, 120), -1);
    assert_int_equal(layout_pane_at(&l, 40, 0), -1);

    /* Every cell of a few layouts agrees with the rectangles. */
    static const int sizes[][2] = {{8, 30}, {24, 80}, {40, 120}, {20, 50}, {61, 99}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        layout_compute(sizes[i][0], sizes[i][1], 2, -1, PANE_CONV, &l);
        for (int y = 0; y < sizes[i][0]; y++) {
            for (int x = 0; x < sizes[i][1]; x++) {
                int want = -1;
                for (int p = 0; p < PANE__COUNT; p++) {
                    const struct rect *r = &l.pane[p];
                    if (rect_shown(r) && y >= r->y && y < r->y + r->h && x >= r->x &&
                        x < r->x + r->w)
                        want = p;
                }
                assert_int_equal(layout_pane_at(&l, y, x), want);
            }
        }
    }

    layout_compute(5, 20, 1, -1, PANE_CONV, &l);
    assert_true(l.too_small);
    assert_int_equal(layout_pane_at(&l, 0, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_size_keeps_the_invariants),
        cmocka_unit_test(huge_and_negative_sizes_are_handled),
        cmocka_unit_test(the_minimum_size_is_drawn_and_one_less_is_too_small),
        cmocka_unit_test(wide_layout_at_120x40),
        cmocka_unit_test(wide_side_column_is_clamped),
        cmocka_unit_test(wide_metrics_get_eight_rows_when_they_fit),
        cmocka_unit_test(medium_layout_at_80x24),
        cmocka_unit_test(narrow_layout_at_50x20_shows_one_pane),
        cmocka_unit_test(zoom_gives_one_pane_the_whole_area),
        cmocka_unit_test(pane_at_finds_the_pane_under_a_cell),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * vt: a small terminal emulator, enough for what ncurses sends on
 * xterm-256color, shared by the programs that drive the real memchat
 * through a pseudo-terminal (tests/integration/test_term, bench/bench_tui):
 * they feed it every byte the program writes and ask what the screen shows.
 * A grid of code points (a wide character's right half is VT_CELL_CONT),
 * the cursor with xterm's pending wrap, scrolling margins, insert mode,
 * the DEC line-drawing set (drawn as U+2502, U+2500 and '+', so it never
 * reads as a letter), UTF-8 decoding (a broken sequence is U+FFFD), the
 * alternate screen starting clean both ways; colours, modes and strings
 * (OSC, DCS...) are swallowed. An optional callback sees each character
 * printed, for timing an echo. Header-only, static, no allocation; needs
 * a UTF-8 LC_CTYPE (wcwidth).
 */
#ifndef MEMCHAT_TESTS_VT_H
#define MEMCHAT_TESTS_VT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <wchar.h>

#define VT_ROWS_MAX  100
#define VT_COLS_MAX  260
#define VT_ROW_BYTES (VT_COLS_MAX * 4 + 8) /* room for any row from vt_row */
#define VT_CELL_CONT 0xFFFFFFFFu           /* the right half of a wide character */

enum vt_state { VT_GROUND, VT_ESC, VT_CSI, VT_STR, VT_SKIP1 };

struct vt {
    uint32_t cell[VT_ROWS_MAX][VT_COLS_MAX]; /* [0, rows) x [0, cols) in use */
    int rows, cols;
    int y, x, top, bot, sy, sx;
    bool wrapnext, insert, acs;
    uint32_t last; /* the last character printed, for rep (CSI b) */
    enum vt_state st;
    int par[16], npar;
    bool priv;     /* CSI with a private marker or an intermediate byte */
    char privchar; /* the marker ('?', '>', ...) */
    bool g0;       /* ESC ( : the next byte picks G0 (B text, 0 line drawing) */
    uint32_t cp;   /* UTF-8 being decoded */
    int u8need;
    void (*on_print)(void *ud, uint32_t cp); /* NULL, or called after each character printed */
    void *ud;
};

/* a clamped into [lo, hi]. */
static int vt_clamp(int a, int lo, int hi)
{
    return a < lo ? lo : a > hi ? hi : a;
}

/* Columns [x0, x1) of row y become spaces (clipped to the width). */
static void vt_blank(struct vt *v, int y, int x0, int x1)
{
    for (int x = x0 < 0 ? 0 : x0; x < x1 && x < v->cols; x++)
        v->cell[y][x] = ' ';
}

/* Every cell of the screen becomes a space; the cursor stays. */
static void vt_clear(struct vt *v)
{
    for (int y = 0; y < v->rows; y++)
        vt_blank(v, y, 0, v->cols);
}

/* A new size (clamped to the maximum): the grid keeps its cells, the
 * cursor and margins fit in. */
__attribute__((unused)) static void vt_resize(struct vt *v, int rows, int cols)
{
    v->rows = vt_clamp(rows, 1, VT_ROWS_MAX);
    v->cols = vt_clamp(cols, 1, VT_COLS_MAX);
    v->top = 0;
    v->bot = v->rows - 1;
    v->y = vt_clamp(v->y, 0, v->rows - 1);
    v->x = vt_clamp(v->x, 0, v->cols - 1);
    v->wrapnext = false;
}

/* A blank rows x cols screen, cursor home, no callback. */
__attribute__((unused)) static void vt_init(struct vt *v, int rows, int cols)
{
    memset(v, 0, sizeof *v);
    v->rows = VT_ROWS_MAX;
    v->cols = VT_COLS_MAX;
    vt_clear(v);
    vt_resize(v, rows, cols);
}

/* RIS (ESC c): a blank screen, cursor home, margins, modes and character
 * set back to their start; the size and the callback stay. */
static void vt_reset(struct vt *v)
{
    vt_clear(v);
    v->y = v->x = v->sy = v->sx = 0;
    v->top = 0;
    v->bot = v->rows - 1;
    v->wrapnext = v->insert = v->acs = v->g0 = false;
    v->st = VT_GROUND;
}

/* Rows top..bot (inclusive) move up n; blank rows enter at the bottom. */
static void vt_scroll_up(struct vt *v, int top, int bot, int n)
{
    n = vt_clamp(n, 0, bot - top + 1);
    for (int y = top; y <= bot; y++) {
        if (y + n <= bot)
            memcpy(v->cell[y], v->cell[y + n], sizeof v->cell[y]);
        else
            vt_blank(v, y, 0, v->cols);
    }
}

/* Rows top..bot (inclusive) move down n; blank rows enter at the top. */
static void vt_scroll_down(struct vt *v, int top, int bot, int n)
{
    n = vt_clamp(n, 0, bot - top + 1);
    for (int y = bot; y >= top; y--) {
        if (y - n >= top)
            memcpy(v->cell[y], v->cell[y - n], sizeof v->cell[y]);
        else
            vt_blank(v, y, 0, v->cols);
    }
}

/* The cursor one row down, scrolling at the bottom margin. */
static void vt_linefeed(struct vt *v)
{
    if (v->y == v->bot)
        vt_scroll_up(v, v->top, v->bot, 1);
    else if (v->y < v->rows - 1)
        v->y++;
}

/* Puts cp at the cursor (wrapping first when a wrap is pending or it does
 * not fit) and moves on by its width; combining characters are dropped. */
static void vt_print(struct vt *v, uint32_t cp)
{
    if (v->acs && cp < 0x80) /* line drawing: never a letter of a marker */
        cp = cp == 'x' ? 0x2502 : cp == 'q' ? 0x2500 : '+';
    int w = wcwidth((wchar_t)cp);
    if (w == 0)
        return;
    if (w < 0)
        w = 1;
    if (v->wrapnext || v->x + w > v->cols) {
        v->x = 0;
        vt_linefeed(v);
        v->wrapnext = false;
    }
    if (v->insert && v->x + w < v->cols)
        memmove(&v->cell[v->y][v->x + w], &v->cell[v->y][v->x],
                (size_t)(v->cols - v->x - w) * sizeof(uint32_t));
    v->cell[v->y][v->x] = cp;
    if (w == 2 && v->x + 1 < v->cols)
        v->cell[v->y][v->x + 1] = VT_CELL_CONT;
    v->last = cp;
    if (v->x + w >= v->cols) {
        v->x = v->cols - 1;
        v->wrapnext = true;
    } else {
        v->x += w;
    }
    if (v->on_print != NULL)
        v->on_print(v->ud, cp);
}

/* CSI parameter i, or dflt when absent or 0. */
static int vt_par(const struct vt *v, int i, int dflt)
{
    return i < v->npar && v->par[i] > 0 ? v->par[i] : dflt;
}

/* A private CSI: entering or leaving the alternate screen (?1049) clears it. */
static void vt_csi_private(struct vt *v, char f)
{
    if (v->privchar != '?' || (f != 'h' && f != 'l'))
        return;
    for (int i = 0; i < v->npar; i++)
        if (v->par[i] == 1049)
            vt_clear(v);
}

/* ED (J) and EL (K): below, above or all of the screen or the line. */
static void vt_csi_erase(struct vt *v, char f)
{
    int mode = v->npar > 0 ? v->par[0] : 0;
    if (f == 'K') {
        vt_blank(v, v->y, mode == 0 ? v->x : 0, mode == 1 ? v->x + 1 : v->cols);
        return;
    }
    if (mode == 0) {
        vt_blank(v, v->y, v->x, v->cols);
        for (int y = v->y + 1; y < v->rows; y++)
            vt_blank(v, y, 0, v->cols);
    } else if (mode == 1) {
        for (int y = 0; y < v->y; y++)
            vt_blank(v, y, 0, v->cols);
        vt_blank(v, v->y, 0, v->x + 1);
    } else {
        vt_clear(v);
    }
}

/* ICH (@), DCH (P) and ECH (X) of n characters at the cursor. */
static void vt_csi_chars(struct vt *v, char f, int n)
{
    uint32_t *row = v->cell[v->y];
    n = vt_clamp(n, 1, v->cols - v->x);
    if (f == '@') {
        memmove(&row[v->x + n], &row[v->x], (size_t)(v->cols - v->x - n) * sizeof(uint32_t));
        vt_blank(v, v->y, v->x, v->x + n);
    } else if (f == 'P') {
        memmove(&row[v->x], &row[v->x + n], (size_t)(v->cols - v->x - n) * sizeof(uint32_t));
        vt_blank(v, v->y, v->cols - n, v->cols);
    } else {
        vt_blank(v, v->y, v->x, v->x + n);
    }
}

/* The cursor-moving CSIs (A-H, `, d, f; s and u save and restore it). */
static void vt_csi_move(struct vt *v, char f, int n)
{
    switch (f) {
    case 'A':
        v->y = vt_clamp(v->y - n, v->y >= v->top ? v->top : 0, v->rows - 1);
        break;
    case 'B':
        v->y = vt_clamp(v->y + n, 0, v->y <= v->bot ? v->bot : v->rows - 1);
        break;
    case 'C':
        v->x = vt_clamp(v->x + n, 0, v->cols - 1);
        break;
    case 'D':
        v->x = vt_clamp(v->x - n, 0, v->cols - 1);
        break;
    case 'E':
    case 'F':
        v->y = vt_clamp(f == 'E' ? v->y + n : v->y - n, 0, v->rows - 1);
        v->x = 0;
        break;
    case 'G':
    case '`':
        v->x = vt_clamp(n - 1, 0, v->cols - 1);
        break;
    case 'd':
        v->y = vt_clamp(n - 1, 0, v->rows - 1);
        break;
    case 'H':
    case 'f':
        v->y = vt_clamp(vt_par(v, 0, 1) - 1, 0, v->rows - 1);
        v->x = vt_clamp(vt_par(v, 1, 1) - 1, 0, v->cols - 1);
        break;
    case 's':
        v->sy = v->y;
        v->sx = v->x;
        break;
    case 'u':
        v->y = vt_clamp(v->sy, 0, v->rows - 1);
        v->x = vt_clamp(v->sx, 0, v->cols - 1);
        break;
    default:
        break;
    }
}

/* A complete CSI with final byte f, its parameters in v->par. */
static void vt_csi(struct vt *v, char f)
{
    if (v->priv) {
        vt_csi_private(v, f);
        return;
    }
    int n = vt_par(v, 0, 1);
    v->wrapnext = false;
    switch (f) {
    case '@':
    case 'P':
    case 'X':
        vt_csi_chars(v, f, n);
        break;
    case 'A':
    case 'B':
    case 'C':
    case 'D':
    case 'E':
    case 'F':
    case 'G':
    case '`':
    case 'd':
    case 'H':
    case 'f':
    case 's':
    case 'u':
        vt_csi_move(v, f, n);
        break;
    case 'J':
    case 'K':
        vt_csi_erase(v, f);
        break;
    case 'L':
        if (v->y >= v->top && v->y <= v->bot)
            vt_scroll_down(v, v->y, v->bot, n);
        break;
    case 'M':
        if (v->y >= v->top && v->y <= v->bot)
            vt_scroll_up(v, v->y, v->bot, n);
        break;
    case 'S':
        vt_scroll_up(v, v->top, v->bot, n);
        break;
    case 'T':
        vt_scroll_down(v, v->top, v->bot, n);
        break;
    case 'b':
        for (int i = 0; i < n && i < v->cols * v->rows; i++)
            vt_print(v, v->last);
        break;
    case 'h':
    case 'l':
        for (int i = 0; i < v->npar; i++)
            if (v->par[i] == 4)
                v->insert = f == 'h';
        break;
    case 'r': {
        int top = vt_par(v, 0, 1) - 1, bot = vt_par(v, 1, v->rows) - 1;
        if (top < bot && bot < v->rows) {
            v->top = top;
            v->bot = bot;
        }
        v->y = v->x = 0;
        break;
    }
    default: /* colours (m), window operations (t) and the rest: nothing on the grid */
        break;
    }
}

/* The byte c after ESC. */
static void vt_esc(struct vt *v, unsigned char c)
{
    v->st = VT_GROUND;
    switch (c) {
    case '[':
        v->st = VT_CSI;
        v->npar = 0;
        v->par[0] = 0;
        v->priv = false;
        v->privchar = 0;
        break;
    case ']':
    case 'P':
    case 'X':
    case '^':
    case '_':
        v->st = VT_STR;
        break;
    case '(':
        v->g0 = true;
        v->st = VT_SKIP1;
        break;
    case ')':
    case '*':
    case '+':
    case '#':
        v->st = VT_SKIP1;
        break;
    case '7':
        v->sy = v->y;
        v->sx = v->x;
        break;
    case '8':
        v->y = vt_clamp(v->sy, 0, v->rows - 1);
        v->x = vt_clamp(v->sx, 0, v->cols - 1);
        v->wrapnext = false;
        break;
    case 'D':
        vt_linefeed(v);
        break;
    case 'E':
        v->x = 0;
        vt_linefeed(v);
        break;
    case 'M':
        if (v->y == v->top)
            vt_scroll_down(v, v->top, v->bot, 1);
        else if (v->y > 0)
            v->y--;
        break;
    case 'c':
        vt_reset(v);
        break;
    default: /* keypad modes, ST and the rest */
        break;
    }
}

/* The byte c inside a CSI: a parameter, a marker, or the final byte. */
static void vt_csi_byte(struct vt *v, unsigned char c)
{
    if (c >= '0' && c <= '9') {
        if (v->npar == 0)
            v->npar = 1;
        int *p = &v->par[v->npar - 1];
        *p = *p > 100000 ? *p : *p * 10 + (c - '0');
    } else if (c == ';' || c == ':') {
        if (v->npar == 0)
            v->npar = 1;
        if (v->npar < 16)
            v->par[v->npar++] = 0;
    } else if (c >= 0x3c && c <= 0x3f) {
        v->priv = true;
        v->privchar = (char)c;
    } else if (c >= 0x20 && c <= 0x2f) {
        v->priv = true; /* an intermediate byte: DECSTR and the like */
    } else if (c >= 0x40 && c <= 0x7e) {
        v->st = VT_GROUND;
        vt_csi(v, (char)c);
    } else if (c == 0x1b) {
        v->st = VT_ESC;
    }
}

/* A C0 control (or DEL) in the ground state. */
static void vt_control(struct vt *v, unsigned char c)
{
    switch (c) {
    case 0x1b:
        v->st = VT_ESC;
        break;
    case '\r':
        v->x = 0;
        v->wrapnext = false;
        break;
    case '\n':
    case 0x0b:
    case 0x0c:
        vt_linefeed(v);
        v->wrapnext = false; /* as in xterm */
        break;
    case '\b':
        if (v->x > 0)
            v->x--;
        v->wrapnext = false;
        break;
    case '\t':
        v->x = vt_clamp((v->x / 8 + 1) * 8, 0, v->cols - 1);
        break;
    default: /* BEL, SO and SI (G1 and G0) and the rest: nothing on the grid */
        break;
    }
}

/* Feeds one byte the program wrote to the terminal. */
__attribute__((unused)) static void vt_byte(struct vt *v, unsigned char c)
{
    switch (v->st) {
    case VT_STR: /* OSC, DCS...: up to BEL or the ESC of ST */
        if (c == 0x07)
            v->st = VT_GROUND;
        else if (c == 0x1b)
            v->st = VT_ESC;
        return;
    case VT_SKIP1:
        if (v->g0)
            v->acs = c == '0';
        v->g0 = false;
        v->st = VT_GROUND;
        return;
    case VT_ESC:
        vt_esc(v, c);
        return;
    case VT_CSI:
        vt_csi_byte(v, c);
        return;
    case VT_GROUND:
        break;
    }
    if (v->u8need > 0) {
        if ((c & 0xC0) == 0x80) {
            v->cp = (v->cp << 6) | (c & 0x3Fu);
            if (--v->u8need == 0)
                vt_print(v, v->cp);
            return;
        }
        v->u8need = 0;
        vt_print(v, 0xFFFD);
    }
    if (c >= 0xC0 && c < 0xF8) {
        v->u8need = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
        v->cp = c & (0x3Fu >> v->u8need);
    } else if (c >= 0x80) {
        vt_print(v, 0xFFFD);
    } else if (c < 0x20 || c == 0x7f) {
        vt_control(v, c);
    } else {
        vt_print(v, c);
    }
}

/* cp as UTF-8 into b (4 bytes); a surrogate, which has none, as '?'.
 * Returns the length. */
static size_t vt_utf8(uint32_t cp, char *b)
{
    if (cp < 0x80) {
        b[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp < 0xE000) {
        b[0] = '?';
        return 1;
    }
    if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (char)(0xF0 | ((cp >> 18) & 0x07));
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Row y, columns [x0, x1), as UTF-8 in out (cap > 4; VT_ROW_BYTES holds
 * any row), cut at a character when it does not fit. */
__attribute__((unused)) static void vt_row(const struct vt *v, int y, int x0, int x1, char *out,
                                           size_t cap)
{
    size_t n = 0;
    for (int x = x0 < 0 ? 0 : x0; x < x1 && x < v->cols; x++) {
        uint32_t cp = v->cell[y][x];
        if (cp == VT_CELL_CONT)
            continue;
        char b[4];
        size_t len = vt_utf8(cp, b);
        if (n + len >= cap)
            break;
        memcpy(out + n, b, len);
        n += len;
    }
    out[n] = '\0';
}

/* The first row whose columns [x0, x1) hold needle, or -1. */
__attribute__((unused)) static int vt_find_in(const struct vt *v, int x0, int x1,
                                              const char *needle)
{
    char row[VT_ROW_BYTES];
    for (int y = 0; y < v->rows; y++) {
        vt_row(v, y, x0, x1, row, sizeof row);
        if (strstr(row, needle) != NULL)
            return y;
    }
    return -1;
}

/* Whether some row of the screen holds needle. */
__attribute__((unused)) static bool vt_has(const struct vt *v, const char *needle)
{
    return vt_find_in(v, 0, v->cols, needle) >= 0;
}

#endif

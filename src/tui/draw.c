/*
 * Drawing: the three panes, the separator, the status line, the overlay
 * and (through input.c) the input, all on stdscr and sent to the terminal
 * by one doupdate per frame. Everything drawn comes from the view model,
 * whose strings were sanitised when they entered it, and still goes to
 * curses through draw_bytes, which lets no control character or bidi
 * override through; every string is clipped by columns (text.h), never by
 * bytes. The conversation pane keeps each entry's wrapped lines until the
 * entry or the width changes, so a streaming reply costs the wrapping of
 * that reply alone per frame.
 */
#include "config.h"

#include <assert.h>
#include <curses.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "config/vars.h"
#include "tui/internal.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/utf8.h"

/* The most a conversation entry's rendering may hold. */
#define DRAW_ENTRY_MAX ((size_t)64 << 20)
/* The lines a memory's text takes at most in the context pane. */
#define DRAW_MEMORY_LINES 3

/* --- styles ---------------------------------------------------------------- */

void draw_init_colors(struct tui *t)
{
    const char *nc = getenv("NO_COLOR");
    bool no_color = nc != NULL && nc[0] != '\0';
    t->color = false;
    t->colors = 0;
    if (no_color || !has_colors() || start_color() == ERR)
        return;
    use_default_colors();
    t->colors = COLORS;
    if (COLOR_PAIRS < TH__COUNT + 1)
        return;
    for (int e = 0; e < TH__COUNT; e++) {
        const struct theme_style *s = &t->theme.el[e];
        init_pair((short)(e + 1), theme_degrade(s->fg, COLORS), theme_degrade(s->bg, COLORS));
    }
    t->color = true;
}

int draw_attr(const struct tui *t, enum theme_element el)
{
    unsigned a = t->theme.el[el].attrs;
    int attr = 0;
    if (a & THEME_BOLD)
        attr |= A_BOLD;
    if (a & THEME_DIM)
        attr |= A_DIM;
    if (a & THEME_UNDERLINE)
        attr |= A_UNDERLINE;
    if (a & THEME_REVERSE)
        attr |= A_REVERSE;
#ifdef A_ITALIC
    if (a & THEME_ITALIC)
        attr |= A_ITALIC;
#endif
    if (t->color)
        attr |= (int)COLOR_PAIR(el + 1);
    return attr;
}

/* --- primitives ------------------------------------------------------------ */

void draw_bytes(const char *s, size_t n)
{
    while (n > 0) {
        size_t ok = text_safe_prefix(s, n);
        if (ok > (size_t)INT_MAX)
            ok = (size_t)INT_MAX;
        if (ok > 0) {
            addnstr(s, (int)ok);
        } else if (*s == '\t') {
            for (int i = 0; i < TEXT_TAB_COLS; i++)
                addch(' ');
            ok = 1;
        } else {
            /* The model's text never gets here (it was sanitised on the
             * way in); the input line and the configuration can. */
            uint32_t cp;
            ok = utf8_decode(s, n, &cp);
            addstr("\xef\xbf\xbd");
        }
        s += ok;
        n -= ok;
    }
}

/* Draws s[0..n) at (y, x) in at most cols columns; tabs as spaces. */
static int draw_text(int y, int x, int cols, const char *s, size_t n, int attr)
{
    attrset(attr);
    move(y, x);
    int used = 0;
    while (n > 0 && used < cols) {
        const char *tab = memchr(s, '\t', n);
        size_t run = tab != NULL ? (size_t)(tab - s) : n;
        size_t fit = text_fit(s, run, (size_t)(cols - used));
        draw_bytes(s, fit);
        used += (int)text_width(s, fit);
        if (fit < run)
            break;
        s += run;
        n -= run;
        if (n > 0) { /* the tab */
            for (int i = 0; i < TEXT_TAB_COLS && used < cols; i++, used++)
                addch(' ');
            s++;
            n--;
        }
    }
    return used;
}

/* Draws one wrapped line of a rendering in its one or two styles. */
static void draw_dline(const struct tui *t, int y, int x, int cols, const char *text,
                       const struct dline *d)
{
    const char *s = text + d->start;
    int used = draw_text(y, x + d->indent, cols - d->indent, s, d->split, draw_attr(t, d->el));
    if (d->split < d->len && d->indent + used < cols)
        draw_text(y, x + d->indent + used, cols - d->indent - used, s + d->split, d->len - d->split,
                  draw_attr(t, d->el2));
}

static void draw_fill(const struct rect *r, int attr)
{
    attrset(attr);
    for (int y = 0; y < r->h; y++) {
        move(r->y + y, r->x);
        for (int x = 0; x < r->w; x++)
            addch(' ');
    }
}

/* Draws a formatted line, padded with the style to the width. */
static void draw_line(int y, int x, int cols, int attr, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void draw_line(int y, int x, int cols, int attr, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    int used = draw_text(y, x, cols, line, strlen(line), attr);
    for (; used < cols; used++)
        addch(' ');
}

static void draw_title(const struct tui *t, enum pane p, const char *title, const char *right)
{
    const struct rect *r = &t->lay.pane[p];
    enum theme_element el = t->focus == p ? TH_TITLE_FOCUS : TH_TITLE;
    int attr = draw_attr(t, el);
    draw_line(r->y, r->x, r->w, attr, " %s", title);
    if (right != NULL && right[0] != '\0') {
        int w = (int)text_width(right, strlen(right));
        if (w + 2 < r->w - (int)text_width(title, strlen(title)) - 2)
            draw_text(r->y, r->x + r->w - w - 1, w, right, strlen(right), attr);
    }
}

/* --- the conversation pane -------------------------------------------------- */

/* A version of entry e that changes whenever its rendering would. */
static uint64_t draw_entry_version(const struct tm_entry *e)
{
    uint64_t v = 1;
    if (e->kind == TM_TURN) {
        const struct tm_turn *u = &e->u.turn;
        v = (uint64_t)u->reply.len * 1000003u + (uint64_t)u->state * 7919u + u->n_kept * 131u +
            (uint64_t)(u->cache + 1) * 17u + (uint64_t)u->tool_calls * 257u +
            (uint64_t)u->retries * 65537u + (uint64_t)u->store * 3u + (u->model != NULL) * 5u +
            (uint64_t)u->step_index * 11u + 2;
    } else if (e->kind == TM_SEARCH) {
        v = (uint64_t)e->u.search.answered * 3u + e->u.search.n_cand * 101u + 2;
    }
    return v;
}

static void render_push(struct rendered *r, size_t start, size_t len, enum theme_element el,
                        int indent)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->lines = xrealloc(r->lines, r->cap * sizeof *r->lines);
    }
    r->lines[r->n++] = (struct dline){start, len, el, indent, len, el};
}

/* Appends s[0..n) to the rendering, wrapped at width - indent. */
static void render_wrap(struct rendered *r, const char *s, size_t n, enum theme_element el,
                        int indent, enum text_wrap_mode mode)
{
    size_t base = r->text.len;
    if (buf_append(&r->text, s, n) != BUF_OK) {
        /* Over DRAW_ENTRY_MAX or out of memory: the buffer was reset, and
         * the lines so far point into it; drop them (drawn, they would read
         * freed or NULL memory). The entry shows what still fits. */
        r->n = 0;
        return;
    }
    struct text_lines l;
    text_lines_init(&l);
    int w = r->width - indent;
    text_wrap(r->text.data + base, n, w > 1 ? w : 1, mode, &l);
    for (size_t i = 0; i < l.n; i++)
        render_push(r, base + l.v[i].start, l.v[i].len, el, indent);
    text_lines_free(&l);
}

static void render_fmt(struct rendered *r, enum theme_element el, int indent, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void render_fmt(struct rendered *r, enum theme_element el, int indent, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    render_wrap(r, line, strlen(line), el, indent, TEXT_WRAP_WORDS);
}

/* A reply: paragraphs wrapped at words, fenced code blocks at characters
 * in the code style. */
static void render_reply(struct rendered *r, const char *s, size_t n)
{
    bool code = false;
    while (n > 0) {
        const char *nl = memchr(s, '\n', n);
        size_t len = nl != NULL ? (size_t)(nl - s) : n;
        bool fence = len >= 3 && memcmp(s, "```", 3) == 0;
        if (fence)
            code = !code;
        enum theme_element el = code || fence ? TH_CODE : TH_ASSISTANT;
        render_wrap(r, s, len, el, 2, code || fence ? TEXT_WRAP_CHARS : TEXT_WRAP_WORDS);
        if (nl == NULL)
            break;
        s += len + 1;
        n -= len + 1;
    }
}

/* The markers of a turn's header: what it used. */
static void render_markers(const struct tm_turn *u, char *out, size_t outlen)
{
    size_t used = 0;
#define MARK(...)                                                      \
    do {                                                               \
        int m_ = snprintf(out + used, outlen - used, __VA_ARGS__);     \
        used += m_ > 0 && (size_t)m_ < outlen - used ? (size_t)m_ : 0; \
    } while (0)
    out[0] = '\0';
    if (u->step_of > 0)
        MARK(" [step %d/%d %s]", u->step_index, u->step_of, u->step_name ? u->step_name : "");
    if (u->n_kept > 0)
        MARK(" [memory: %zu recalled]", u->n_kept);
    else if (u->rollout_reason != NULL && !u->memory)
        MARK(" [memory off]");
    if (u->cache == 1)
        MARK(" [cache hit]");
    if (u->tool_calls > 0)
        MARK(" [tools: %d]", u->tool_calls);
    if (u->retries > 0)
        MARK(" [retries: %d]", u->retries);
    if (u->fell_back)
        MARK(" [local fallback]");
    if (u->state == TM_CANCELLED)
        MARK(" [cancelled]");
    else if (u->state == TM_FAILED)
        MARK(" [error]");
    else if (u->state == TM_STREAMING || u->state == TM_WAITING)
        MARK(" \xe2\x80\xa6");
#undef MARK
}

static void render_turn(struct rendered *r, const struct tm_turn *u, bool selected)
{
    if (u->text != NULL) {
        render_fmt(r, selected ? TH_SELECTED : TH_USER, 0, "you (%s/%s)", u->tenant, u->user);
        render_wrap(r, u->text, strlen(u->text), TH_USER, 2, TEXT_WRAP_WORDS);
    }
    char marks[256];
    render_markers(u, marks, sizeof marks);
    char head[512];
    snprintf(head, sizeof head, "%s (%s/%s)", u->agent, u->provider ? u->provider : "-",
             u->model ? u->model : "-");
    size_t base = r->text.len;
    render_fmt(r, selected ? TH_SELECTED : TH_ASSISTANT, 0, "%s%s", head, marks);
    /* The markers in their own style when the header fits one line. */
    if (r->n > 0 && r->lines[r->n - 1].start == base && !selected && marks[0] != '\0' &&
        r->lines[r->n - 1].len == strlen(head) + strlen(marks)) {
        r->lines[r->n - 1].split = strlen(head);
        r->lines[r->n - 1].el2 = TH_MARKER;
    }
    if (u->reply.len > 0)
        render_reply(r, u->reply.data, u->reply.len);
    if (u->state == TM_FAILED && u->error != NULL)
        render_wrap(r, u->error, strlen(u->error), TH_ERROR, 2, TEXT_WRAP_WORDS);
    if (u->state == TM_CANCELLED)
        render_fmt(r, TH_WARN, 2, "(cancelled: the reply so far is kept)");
}

static void render_entry(const struct tui *t, const struct tm_entry *e, struct rendered *r,
                         bool selected)
{
    buf_reset(&r->text);
    r->n = 0;
    if (e->kind == TM_TURN) {
        render_turn(r, &e->u.turn, selected);
    } else if (e->kind == TM_SEARCH) {
        const struct tm_search *s = &e->u.search;
        render_fmt(r, selected ? TH_SELECTED : TH_MARKER, 0, "search: %s", s->query);
        if (s->error != NULL)
            render_wrap(r, s->error, strlen(s->error), TH_ERROR, 2, TEXT_WRAP_WORDS);
        else if (!s->answered)
            render_fmt(r, TH_NOTICE, 2, "searching\xe2\x80\xa6");
        else
            render_fmt(r, TH_NOTICE, 2, "%zu memories found (in the context pane)", s->n_cand);
    } else {
        const char *txt = e->u.notice.text;
        render_wrap(r, txt, strlen(txt), e->u.notice.level == TM_ERROR ? TH_ERROR : TH_NOTICE, 0,
                    TEXT_WRAP_WORDS);
    }
    render_push(r, r->text.len, 0, TH_NORMAL, 0); /* a blank line between entries */
    (void)t;
}

/* Makes t->render match the model's entries at width. */
static void draw_render_all(struct tui *t, int width)
{
    size_t n = model_count(t->model);
    if (t->n_render < n) {
        t->render = xrealloc(t->render, n * sizeof *t->render);
        for (size_t i = t->n_render; i < n; i++) {
            memset(&t->render[i], 0, sizeof t->render[i]);
            buf_init(&t->render[i].text, DRAW_ENTRY_MAX);
        }
        t->n_render = n;
    }
    long sel = t->selected;
    for (size_t i = 0; i < n; i++) {
        const struct tm_entry *e = model_at(t->model, i);
        struct rendered *r = &t->render[i];
        uint64_t v = draw_entry_version(e);
        bool selected = sel == (long)i;
        if (r->version == v && r->width == width && r->selected == selected)
            continue;
        r->version = v;
        r->width = width;
        r->selected = selected;
        render_entry(t, e, r, selected);
    }
}

static void draw_conv(struct tui *t)
{
    const struct rect *p = &t->lay.pane[PANE_CONV];
    int rows = p->h - 1, width = p->w - 1;
    if (rows <= 0 || width <= 0)
        return;
    draw_render_all(t, width);
    size_t n = model_count(t->model);
    long total = 0;
    for (size_t i = 0; i < n; i++)
        total += (long)t->render[i].n;
    long max_scroll = total > rows ? total - rows : 0;
    if (t->conv_scroll > max_scroll)
        t->conv_scroll = (int)max_scroll;
    if (t->conv_scroll < 0)
        t->conv_scroll = 0;
    char right[64] = "";
    if (t->conv_scroll > 0)
        snprintf(right, sizeof right, "\xe2\x86\x91 %d lines up", t->conv_scroll);
    draw_title(t, PANE_CONV, "Conversation", right);
    draw_fill(&(struct rect){p->y + 1, p->x, rows, p->w}, draw_attr(t, TH_NORMAL));
    if (n == 0) {
        static const char hello[] =
            "Type a message and press Enter. Memory recalled for each turn shows on the right; "
            "/help lists every command and key.";
        struct text_lines l;
        text_lines_init(&l);
        text_wrap(hello, sizeof hello - 1, width, TEXT_WRAP_WORDS, &l);
        for (size_t i = 0; i < l.n && (int)i < rows; i++)
            draw_text(p->y + 1 + (int)i, p->x + 1, width, hello + l.v[i].start, l.v[i].len,
                      draw_attr(t, TH_NOTICE));
        text_lines_free(&l);
        return;
    }
    /* From the bottom up: the last line shown is `conv_scroll` above the end. */
    long skip = t->conv_scroll;
    int y = p->y + rows; /* the row below the last one */
    for (size_t i = n; i-- > 0 && y > p->y + 1;) {
        const struct rendered *r = &t->render[i];
        for (size_t j = r->n; j-- > 0 && y > p->y + 1;) {
            if (skip > 0) {
                skip--;
                continue;
            }
            y--;
            draw_dline(t, y, p->x + 1, width, r->text.data, &r->lines[j]);
        }
    }
}

void draw_free(struct tui *t)
{
    for (size_t i = 0; i < t->n_render; i++) {
        buf_free(&t->render[i].text);
        xfree(t->render[i].lines);
    }
    xfree(t->render);
    t->render = NULL;
    t->n_render = 0;
}

/* --- the context pane -------------------------------------------------------- */

/* "5s", "3m", "2h", "4d", or "-". */
static void draw_age(int64_t created_ms, int64_t now_ms, char *out, size_t outlen)
{
    if (created_ms <= 0) {
        snprintf(out, outlen, "-");
        return;
    }
    int64_t s = (now_ms - created_ms) / 1000;
    if (s < 0)
        s = 0;
    if (s < 60)
        snprintf(out, outlen, "%llds", (long long)s);
    else if (s < 3600)
        snprintf(out, outlen, "%lldm", (long long)(s / 60));
    else if (s < 86400)
        snprintf(out, outlen, "%lldh", (long long)(s / 3600));
    else
        snprintf(out, outlen, "%lldd", (long long)(s / 86400));
}

static void draw_score(double v, char *out, size_t outlen)
{
    if (isnan(v))
        snprintf(out, outlen, "    -");
    else
        snprintf(out, outlen, "%5.2f", v);
}

/* The lines the context pane shows, built per frame (they are few). */
struct ctx_lines {
    struct rendered r;
    long cursor_line; /* the first line of the highlighted memory, or -1 */
};

static void ctx_candidates(const struct tui *t, struct ctx_lines *c, const struct tm_candidate *v,
                           size_t n)
{
    int64_t now = clock_wall_ms();
    render_fmt(&c->r, TH_LABEL, 0, "   score   vec    kw fused   mmr  age user");
    for (size_t i = 0; i < n; i++) {
        const struct tm_candidate *m = &v[i];
        char sc[5][16], age[16];
        draw_score(m->score, sc[0], sizeof sc[0]);
        draw_score(m->vector, sc[1], sizeof sc[1]);
        draw_score(m->keyword, sc[2], sizeof sc[2]);
        draw_score(m->fused, sc[3], sizeof sc[3]);
        draw_score(m->mmr, sc[4], sizeof sc[4]);
        draw_age(m->created_ms, now, age, sizeof age);
        bool hi = i == t->ctx_cursor;
        if (hi)
            c->cursor_line = (long)c->r.n;
        render_fmt(&c->r, hi ? TH_SELECTED : TH_SCORE, 0, "%s %s %s %s %s %s %4s %s",
                   m->kept ? "\xe2\x9c\x93" : "\xc2\xb7", sc[0], sc[1], sc[2], sc[3], sc[4], age,
                   m->user_id ? m->user_id : "-");
        size_t before = c->r.n;
        /* Only the lines shown are wrapped: a long memory's tail would cost
         * every frame for nothing. */
        size_t cap = (size_t)(DRAW_MEMORY_LINES + 1) * (size_t)c->r.width * 4;
        size_t len = utf8_truncate(m->text, strlen(m->text), cap);
        render_wrap(&c->r, m->text, len, m->kept ? TH_KEPT : TH_DROPPED, 2, TEXT_WRAP_WORDS);
        if (c->r.n - before > DRAW_MEMORY_LINES)
            c->r.n = before + DRAW_MEMORY_LINES;
    }
}

static const char *draw_store_state(const struct tm_turn *u)
{
    switch (u->store) {
    case TM_STORE_STORED:
        return "stored";
    case TM_STORE_SKIPPED:
        return "skipped";
    case TM_STORE_PENDING:
        break;
    }
    return "pending";
}

static void ctx_turn(const struct tui *t, struct ctx_lines *c, const struct tm_turn *u)
{
    struct rendered *r = &c->r;
    char count[48] = "?";
    if (t->tenant_memories >= 0 && strcmp(u->tenant, t->tenant) == 0)
        snprintf(count, sizeof count, "%lld", t->tenant_memories);
    if (u->rollout_reason == NULL)
        render_fmt(r, TH_NOTICE, 0, "memory: deciding\xe2\x80\xa6");
    else
        render_fmt(r, u->memory ? TH_VALUE : TH_WARN, 0,
                   "memory %s (rule: %s) \xc2\xb7 tenant %s: %s memories", u->memory ? "on" : "off",
                   u->rollout_reason, u->tenant, count);
    if (u->retrieved)
        render_fmt(r, TH_VALUE, 0, "recalled by %s, k=%d, %.1f ms: %zu candidates, %zu kept",
                   u->method ? u->method : "?", u->k, u->retrieve_ms, u->n_cand, u->n_kept);
    else if (u->retrieve_skip != NULL)
        render_fmt(r, TH_WARN, 0, "nothing recalled: %s", u->retrieve_skip);
    render_fmt(r, u->store == TM_STORE_SKIPPED ? TH_WARN : TH_VALUE, 0,
               "this turn's memory: %s%s%s", draw_store_state(u),
               u->store_reason ? " \xe2\x80\x94 " : "", u->store_reason ? u->store_reason : "");
    if (t->show_injected) {
        if (u->injected == NULL) {
            render_fmt(r, TH_NOTICE, 0, "Nothing was injected into this turn's prompt.");
            return;
        }
        render_fmt(r, TH_LABEL, 0,
                   "Injected into the system message (%lld tokens):", u->injected_tokens);
        render_wrap(r, u->injected, strlen(u->injected), TH_CODE, 0, TEXT_WRAP_CHARS);
        return;
    }
    if (u->n_cand > 0)
        ctx_candidates(t, c, u->cand, u->n_cand);
    render_fmt(r, TH_NOTICE, 0,
               "F8 injected block \xc2\xb7 Alt-Up/Down highlight \xc2\xb7 F9 forget");
}

static void draw_context(struct tui *t)
{
    const struct rect *p = &t->lay.pane[PANE_CONTEXT];
    int rows = p->h - 1, width = p->w - 1;
    if (rows <= 0 || width <= 0)
        return;
    struct ctx_lines c;
    memset(&c, 0, sizeof c);
    buf_init(&c.r.text, DRAW_ENTRY_MAX);
    c.r.width = width;
    c.cursor_line = -1;
    long e = app_context_entry(t);
    const struct tm_entry *en = e >= 0 ? model_at(t->model, (size_t)e) : NULL;
    char title[64] = "Recalled context";
    if (en == NULL) {
        render_fmt(&c.r, TH_NOTICE, 0,
                   "Nothing yet. For each turn, the memories memory recalls show here with "
                   "their scores; the ones kept are injected into the prompt.");
    } else if (en->kind == TM_TURN) {
        snprintf(title, sizeof title, "Recalled context%s",
                 t->show_injected ? " \xc2\xb7 injected block" : "");
        ctx_turn(t, &c, &en->u.turn);
    } else if (en->kind == TM_SEARCH) {
        const struct tm_search *s = &en->u.search;
        snprintf(title, sizeof title, "Search results");
        render_fmt(&c.r, TH_VALUE, 0, "\"%s\": %zu memories", s->query, s->n_cand);
        ctx_candidates(t, &c, s->cand, s->n_cand);
        render_fmt(&c.r, TH_NOTICE, 0, "Alt-Up/Down highlight \xc2\xb7 F9 forget");
    }
    /* Keep the highlighted memory in view. */
    if (c.cursor_line >= 0 && t->focus == PANE_CONTEXT) {
        if (c.cursor_line < t->ctx_scroll)
            t->ctx_scroll = (int)c.cursor_line;
        else if (c.cursor_line >= t->ctx_scroll + rows)
            t->ctx_scroll = (int)c.cursor_line - rows + 2;
    }
    long max_scroll = (long)c.r.n > rows ? (long)c.r.n - rows : 0;
    if (t->ctx_scroll > max_scroll)
        t->ctx_scroll = (int)max_scroll;
    if (t->ctx_scroll < 0)
        t->ctx_scroll = 0;
    draw_title(t, PANE_CONTEXT, title, NULL);
    draw_fill(&(struct rect){p->y + 1, p->x, rows, p->w}, draw_attr(t, TH_NORMAL));
    for (int i = 0; i < rows && (size_t)(t->ctx_scroll + i) < c.r.n; i++) {
        draw_dline(t, p->y + 1 + i, p->x + 1, width, c.r.text.data, &c.r.lines[t->ctx_scroll + i]);
    }
    buf_free(&c.r.text);
    xfree(c.r.lines);
}

/* --- the metrics pane -------------------------------------------------------- */

static void draw_ms(double ms, char *out, size_t outlen)
{
    if (isnan(ms) || ms < 0)
        snprintf(out, outlen, "     -");
    else if (ms < 10)
        snprintf(out, outlen, "%5.2fms", ms);
    else if (ms < 10000)
        snprintf(out, outlen, "%5.0fms", ms);
    else
        snprintf(out, outlen, "%5.1fs", ms / 1000);
}

static void draw_usd(double usd, char *out, size_t outlen)
{
    if (isnan(usd))
        snprintf(out, outlen, "n/a");
    else
        snprintf(out, outlen, "$%.4f", usd);
}

/* A count, or "-" while unknown (negative). */
static void draw_count(long long v, char *out, size_t outlen)
{
    if (v < 0)
        snprintf(out, outlen, "-");
    else
        snprintf(out, outlen, "%lld", v);
}

static void draw_bucket(long long cap, long long level, char *out, size_t outlen)
{
    if (cap <= 0)
        snprintf(out, outlen, "-");
    else
        snprintf(out, outlen, "%lld/%lld", level, cap);
}

static void metrics_lines(struct tui *t, struct rendered *r)
{
    const struct tm_session *s = model_session(t->model);
    long li = model_latest(t->model);
    const struct tm_turn *u = NULL;
    for (long i = li; i >= 0; i--) {
        const struct tm_entry *e = model_at(t->model, (size_t)i);
        if (e->kind == TM_TURN && e->u.turn.state != TM_WAITING) {
            u = &e->u.turn;
            break;
        }
    }
    char a[32], b[32], c[32];
    if (u != NULL) {
        draw_count(u->prompt_tokens, a, sizeof a);
        draw_count(u->completion_tokens, b, sizeof b);
        render_fmt(r, TH_VALUE, 0, "tokens   in %s out %s%s \xc2\xb7 session %lld/%lld", a, b,
                   u->usage_estimated ? " (est.)" : "", s->prompt_tokens, s->completion_tokens);
    }
    draw_usd(u != NULL ? u->usd : (double)NAN, a, sizeof a);
    draw_usd(s->usd, b, sizeof b);
    draw_usd(t->tenant_spent, c, sizeof c);
    render_fmt(r, TH_VALUE, 0, "cost     turn %s \xc2\xb7 session %s \xc2\xb7 tenant(7d) %s", a, b,
               c);
    render_fmt(r, TH_VALUE, 0,
               "cache    %lld/%lld hits \xc2\xb7 JSON saved %lld B \xc2\xb7 retries %lld",
               s->cache_hits, s->cache_lookups, s->minify_saved, s->retries);
    if (s->fallbacks > 0)
        render_fmt(r, TH_WARN, 0, "shared   %lld turn%s on local fallback (Redis)", s->fallbacks,
                   s->fallbacks == 1 ? "" : "s");
    if (t->est_valid) {
        char bk[6][32];
        for (int sc = 0; sc < 3; sc++)
            for (int k = 0; k < 2; k++)
                draw_bucket(t->est.bucket[sc][k].capacity, t->est.bucket[sc][k].level,
                            bk[sc * 2 + k], sizeof bk[0]);
        render_fmt(r, TH_VALUE, 0, "requests g %s \xc2\xb7 tenant %s \xc2\xb7 user %s", bk[0],
                   bk[2], bk[4]);
        render_fmt(r, TH_VALUE, 0, "tok/win  g %s \xc2\xb7 tenant %s \xc2\xb7 user %s", bk[1],
                   bk[3], bk[5]);
        if (t->est.budget)
            render_fmt(r, t->est.budget_remaining_usd <= 0 ? TH_WARN : TH_VALUE, 0,
                       "budget   $%.4f left (%s)", t->est.budget_remaining_usd,
                       t->est.budget_scope);
        else
            render_fmt(r, TH_VALUE, 0, "budget   none");
    }
    if (u != NULL && u->rollout_reason != NULL)
        render_fmt(r, u->memory ? TH_VALUE : TH_WARN, 0, "rollout  memory %s \xc2\xb7 rule: %s",
                   u->memory ? "on" : "off", u->rollout_reason);
    else if (t->rollout_memory >= 0)
        render_fmt(r, TH_VALUE, 0, "rollout  memory %s \xc2\xb7 rule: %s",
                   t->rollout_memory ? "on" : "off", t->rollout_reason);
    const char *line = input_line();
    if (t->est_valid && line[0] != '\0' && line[0] != '/') {
        draw_usd(t->est.usd, a, sizeof a);
        if (t->est.refused)
            render_fmt(r, TH_WARN, 0, "typing   ~%lld tok \xc2\xb7 %s \xc2\xb7 refused: %s",
                       t->est.tokens, a, t->est.limit);
        else if (t->est.wait_ms > 0)
            render_fmt(r, TH_WARN, 0, "typing   ~%lld tok \xc2\xb7 %s \xc2\xb7 waits %.1fs: %s",
                       t->est.tokens, a, (double)t->est.wait_ms / 1000.0, t->est.limit);
        else
            render_fmt(r, TH_VALUE, 0, "typing   ~%lld tok \xc2\xb7 %s \xc2\xb7 no wait",
                       t->est.tokens, a);
    }
    render_fmt(r, TH_LABEL, 0, "stage          last     p50     p95");
    for (int st = 0; st < MC_STAGE__COUNT; st++) {
        bool have = s->stage[st].total > 0;
        draw_ms(u != NULL ? u->latency_ms[st] : (double)NAN, a, sizeof a);
        draw_ms(have ? (double)hist_percentile(&s->stage[st], 50) / 1000.0 : (double)NAN, b,
                sizeof b);
        draw_ms(have ? (double)hist_percentile(&s->stage[st], 95) / 1000.0 : (double)NAN, c,
                sizeof c);
        render_fmt(r, TH_VALUE, 0, "%-11s %s %s %s", mc_stage_name((enum mc_stage)st), a, b, c);
    }
    struct buf spark;
    buf_init(&spark, 4096);
    model_sparkline(s->series, s->n_series, r->width - 9 > 0 ? r->width - 9 : 1, &spark);
    render_fmt(r, TH_SPARK, 0, "totals   %s", buf_cstr(&spark));
    buf_free(&spark);
}

static void draw_metrics(struct tui *t)
{
    const struct rect *p = &t->lay.pane[PANE_METRICS];
    int rows = p->h - 1, width = p->w - 1;
    if (rows <= 0 || width <= 0)
        return;
    struct rendered r;
    memset(&r, 0, sizeof r);
    buf_init(&r.text, DRAW_ENTRY_MAX);
    r.width = width;
    metrics_lines(t, &r);
    long max_scroll = (long)r.n > rows ? (long)r.n - rows : 0;
    if (t->metrics_scroll > max_scroll)
        t->metrics_scroll = (int)max_scroll;
    if (t->metrics_scroll < 0)
        t->metrics_scroll = 0;
    draw_title(t, PANE_METRICS, "Metrics", NULL);
    draw_fill(&(struct rect){p->y + 1, p->x, rows, p->w}, draw_attr(t, TH_NORMAL));
    for (int i = 0; i < rows && (size_t)(t->metrics_scroll + i) < r.n; i++) {
        draw_dline(t, p->y + 1 + i, p->x + 1, width, r.text.data, &r.lines[t->metrics_scroll + i]);
    }
    buf_free(&r.text);
    xfree(r.lines);
}

/* --- status, overlay, frame ---------------------------------------------------- */

static void draw_status(struct tui *t)
{
    const struct rect *r = &t->lay.status;
    if (r->h <= 0)
        return;
    const char *scope = mc_engine_agent_scope(t->eng, t->agent);
    const char *mem = t->memory == MC_MEMORY_ON    ? "on"
                      : t->memory == MC_MEMORY_OFF ? "off"
                                                   : "rollout";
    char model[160];
    snprintf(model, sizeof model, "%s/%s", t->est_valid ? t->est.provider : "?",
             t->est_valid && t->est.model[0] ? t->est.model : "(default)");
    bool offline = t->est_valid && strcmp(t->est.provider, "offline") == 0;
    int attr = draw_attr(t, TH_STATUS);
    char right[64];
    snprintf(right, sizeof right, "%s%s F1 help ", offline ? " OFFLINE " : "",
             model_busy(t->model) ? " streaming (Esc cancels)" : "");
    int w = (int)text_width(right, strlen(right));
    if (w >= r->w / 2)
        w = 0;
    draw_line(
        r->y, r->x, r->w - w, attr,
        " tenant %s \xc2\xb7 user %s \xc2\xb7 agent %s (scope %s) \xc2\xb7 %s \xc2\xb7 memory %s",
        t->tenant, t->user, t->agent, scope ? scope : "?", model, mem);
    if (w == 0)
        return;
    int x = r->x + r->w - w;
    if (offline) {
        draw_text(r->y, x, 9, " OFFLINE ", 9, draw_attr(t, TH_STATUS_ALERT));
        draw_text(r->y, x + 9, w - 9, right + 9, strlen(right) - 9, attr);
    } else {
        draw_text(r->y, x, w, right, strlen(right), attr);
    }
}

static void draw_overlay(struct tui *t)
{
    if (!t->overlay.on)
        return;
    int h = t->rows - t->lay.input.h - 3, w = t->cols - 6;
    if (h < 4 || w < 20)
        return;
    struct rect box = {1, 3, h, w};
    draw_fill(&box, draw_attr(t, TH_OVERLAY));
    draw_line(box.y, box.x, box.w, draw_attr(t, TH_TITLE_FOCUS),
              " %s  (Esc closes, PgUp/PgDn scroll)", t->overlay.title);
    struct text_lines l;
    text_lines_init(&l);
    const char *s = buf_cstr(&t->overlay.text);
    text_wrap(s, t->overlay.text.len, box.w - 2, TEXT_WRAP_WORDS, &l);
    int rows = box.h - 1;
    int max_scroll = (int)l.n > rows ? (int)l.n - rows : 0;
    if (t->overlay.scroll > max_scroll)
        t->overlay.scroll = max_scroll;
    if (t->overlay.scroll < 0)
        t->overlay.scroll = 0;
    for (int i = 0; i < rows && (size_t)(t->overlay.scroll + i) < l.n; i++) {
        const struct text_line *tl = &l.v[t->overlay.scroll + i];
        draw_text(box.y + 1 + i, box.x + 1, box.w - 2, s + tl->start, tl->len,
                  draw_attr(t, TH_OVERLAY));
    }
    text_lines_free(&l);
}

static void draw_too_small(struct tui *t)
{
    erase();
    char msg[96];
    snprintf(msg, sizeof msg, "terminal too small: %dx%d (memchat needs %dx%d)", t->cols, t->rows,
             LAYOUT_MIN_COLS, LAYOUT_MIN_ROWS);
    int y = t->rows / 2, x = 0;
    int w = (int)strlen(msg);
    if (w < t->cols)
        x = (t->cols - w) / 2;
    draw_text(y < t->rows ? y : 0, x, t->cols, msg, strlen(msg), A_BOLD);
}

void draw_input_only(struct tui *t)
{
    input_assert_ui_thread();
    if (!t->lay.too_small)
        input_draw(t);
    wnoutrefresh(stdscr);
    doupdate();
    t->dirty_input = false;
}

void draw_frame(struct tui *t)
{
    input_assert_ui_thread();
    if (t->relayout) {
        t->input_rows = input_rows_needed(t, t->cols);
        layout_compute(t->rows, t->cols, t->input_rows, t->zoom, t->focus, &t->lay);
        erase();
        t->relayout = false;
        t->dirty = true;
    }
    if (t->lay.too_small) {
        draw_too_small(t);
    } else {
        if (t->dirty) {
            draw_conv(t);
            draw_context(t);
            draw_metrics(t);
            if (t->lay.vsep.h > 0) {
                attrset(draw_attr(t, TH_SEPARATOR));
                mvvline(t->lay.vsep.y, t->lay.vsep.x, ACS_VLINE, t->lay.vsep.h);
            }
            draw_status(t);
            draw_overlay(t);
        }
        input_draw(t);
    }
    wnoutrefresh(stdscr);
    doupdate();
    t->dirty = t->dirty_input = false;
    t->frames++;
}

/*
 * Strict reading of small JSON files that describe one thing each (an
 * agent in agents/, a tool in tools/): the checks and the messages both
 * registries share, so a user meets the same rules and the same wording
 * whichever file they write.
 *
 * A file is read whole with a size cap (after checking it is a regular
 * file: opening a FIFO would block), must be UTF-8 without NUL bytes
 * (a byte-order mark is allowed), and must parse as JSON; every failure
 * names the line and column. A problem with a field is one line
 * "PATH: field F: what is wrong (what is accepted)" and the file is
 * skipped; an unknown key is a warning with a "did you mean" suggestion;
 * "_"-prefixed keys are comments; a key given twice is an error (cJSON
 * keeps both and a lookup would silently see the first).
 *
 * Warnings are gathered in a bounded list (struct jsonfile_warnings): a
 * file of 10,000 unknown keys must not produce 10,000 lines. Control
 * characters in a line become '?', so a line stays one line whatever a
 * file name or a key held.
 */
#ifndef MEMCHAT_UTIL_JSONFILE_H
#define MEMCHAT_UTIL_JSONFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/alloc.h"
#include "util/buf.h"

struct cJSON;

#define JSONFILE_LINE_MAX 6144 /* one message line, path included */
#define JSONFILE_CLIP     64   /* bytes of an untrusted key or name quoted */
#define JSONFILE_CLIP_BUF (JSONFILE_CLIP + 4)
/* Keys in one object: far more than a format has, few enough that the
 * check for repeated keys (quadratic) stays instant. */
#define JSONFILE_MAX_KEYS 256
/* A directory holding more files than this is a mistake; the first ones
 * by name are read. */
#define JSONFILE_MAX_FILES 1000

/* Warning lines joined by '\n', at most max_lines of them. */
struct jsonfile_warnings {
    struct buf text;
    size_t lines;
    size_t max_lines;
    size_t dropped; /* lines past max_lines */
};

/* An empty list keeping at most max_lines lines. */
void jsonfile_warnings_init(struct jsonfile_warnings *w, size_t max_lines);
/* Frees the lines; w may be initialised again. */
void jsonfile_warnings_free(struct jsonfile_warnings *w);
/* Appends one line (cut to JSONFILE_LINE_MAX - 1 bytes of whole
 * characters, control characters as '?'). Past max_lines it is only
 * counted, unless over_cap. */
void jsonfile_warnings_add(struct jsonfile_warnings *w, const char *line, bool over_cap);
void jsonfile_warnings_addf(struct jsonfile_warnings *w, const char *fmt, ...) MC_PRINTF(2, 3);
/* The lines (caller frees with xfree), with a last "(N more warnings not
 * shown)" when some were dropped, or NULL when there are none; w is left
 * empty. */
char *jsonfile_warnings_take(struct jsonfile_warnings *w);

/* One file being parsed: its path, what it describes (for messages: "an
 * agent", "a tool"), its first error (the file is skipped) and its
 * warnings (which count only if the file is kept). */
struct jsonfile_parse {
    const char *path;
    const char *thing;
    char err[JSONFILE_LINE_MAX];
    struct jsonfile_warnings warn;
};

/* Starts parsing path (borrowed) with room for max_warnings lines. */
void jsonfile_parse_init(struct jsonfile_parse *p, const char *path, const char *thing,
                         size_t max_warnings);
void jsonfile_parse_fini(struct jsonfile_parse *p);
/* Records p's error "PATH: field F: MSG" ("PATH: MSG" when field is NULL)
 * and returns -1. */
int jsonfile_fail(struct jsonfile_parse *p, const char *field, const char *fmt, ...)
    MC_PRINTF(3, 4);
/* Records a warning "PATH: MSG" about p's file (it still loads). */
void jsonfile_warn(struct jsonfile_parse *p, const char *fmt, ...) MC_PRINTF(2, 3);
/* Moves p's warnings into w (with a line counting those p dropped). */
void jsonfile_warnings_merge(struct jsonfile_warnings *w, struct jsonfile_parse *p);

/* Reads p->path (at most max bytes) and parses it into *root (caller
 * frees with cJSON_Delete). 0, or -1 with p->err set: not a regular file,
 * too big, unreadable, a NUL byte, invalid UTF-8 or invalid JSON (these
 * three with line and column). */
int jsonfile_load(struct jsonfile_parse *p, size_t max, struct cJSON **root);

/* Checks obj's keys: a key given twice is an error, an unknown one (not a
 * "_" comment) a warning with the closest known key when it looks like a
 * typo, more than JSONFILE_MAX_KEYS keys an error. prefix names obj in
 * messages ("" or "steps[1]."). */
int jsonfile_check_keys(struct jsonfile_parse *p, const struct cJSON *obj, const char *prefix,
                        const char *const *known);

/* Flags of jsonfile_string. */
enum { JSONFILE_NONEMPTY = 1 << 0, JSONFILE_ONE_LINE = 1 << 1 };
/* A string field of at most max bytes into *out (xstrdup). */
int jsonfile_string(struct jsonfile_parse *p, const char *field, const struct cJSON *it, size_t max,
                    unsigned flags, char **out);
/* One of the NULL-terminated choices: its index into *out. */
int jsonfile_choice(struct jsonfile_parse *p, const char *field, const struct cJSON *it,
                    const char *const *choices, int *out);
/* A number in [min, max]; a whole one when integer. */
int jsonfile_number(struct jsonfile_parse *p, const char *field, const struct cJSON *it, double min,
                    double max, bool integer, double *out);
int jsonfile_bool(struct jsonfile_parse *p, const char *field, const struct cJSON *it, bool *out);
/* The field key of obj; NULL when absent or null (an optional field given
 * as null is left out). */
const struct cJSON *jsonfile_opt(const struct cJSON *obj, const char *key);

/* What a JSON value is, for "is a number; expected ..." messages. */
const char *jsonfile_kind(const struct cJSON *it);
/* s cut to JSONFILE_CLIP bytes of whole characters, with "…" when cut:
 * for quoting keys and names from a file in a message. Returns out. */
const char *jsonfile_clip(const char *s, char out[JSONFILE_CLIP_BUF]);
/* choices joined by ", " into out. Returns out. */
const char *jsonfile_join(const char *const *choices, char *out, size_t outlen);
/* True when s is one of the NULL-terminated list. */
bool jsonfile_in(const char *const *list, const char *s);
/* The known name closest to key when key looks like a typo of it (at most
 * two edits, a swap of neighbours counting as one), else NULL. */
const char *jsonfile_suggest(const char *key, const char *const *known);
/* The first key of obj that an earlier key repeats, or NULL. */
const char *jsonfile_repeated_key(const struct cJSON *obj);
/* The line and column (1-based; columns count characters) of text[off]. */
void jsonfile_line_col(const char *text, size_t off, size_t *line, size_t *col);

/* The *.json names in dir (not starting with "."), sorted bytewise, into
 * *names (caller frees each and the array). 0; 1 when dir does not exist;
 * -1 with err ("cannot read the KIND directory DIR: ...") when it cannot
 * be read. kind: "agents", "tools". */
int jsonfile_list_dir(const char *dir, const char *kind, char ***names, size_t *n, char *err,
                      size_t errlen);

#endif

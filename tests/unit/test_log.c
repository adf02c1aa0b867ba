/*
 * Tests of util/log: the file is created 0600 whatever the umask, every
 * line has the documented shape with a UTC timestamp taken at the call,
 * the threshold filters, control characters cannot split a line, and
 * logging before log_open or after log_close writes nothing.
 */
#include "testutil.h"

#include "util/log.h"

#include <stdbool.h>
#include <time.h>

#include "util/clock.h"

struct fx {
    char *dir;
    char *path;
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    fx->dir = tu_mkdtemp();
    size_t n = strlen(fx->dir) + 16;
    fx->path = malloc(n);
    snprintf(fx->path, n, "%s/memchat.log", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    log_close();
    tu_rmtree(fx->dir);
    free(fx->path);
    free(fx->dir);
    free(fx);
    return 0;
}

/* The lines of the log file (at most 16), as pointers into *text, which the
 * caller frees; the count in *n. Every line must end with '\n'. */
static char **read_lines(const char *path, char **text, int *n)
{
    static char *lines[16];
    size_t len;
    *text = tu_read_file(path, &len);
    assert_non_null(*text);
    *n = 0;
    char *s = *text;
    while (*s != '\0') {
        char *nl = strchr(s, '\n');
        assert_non_null(nl);
        *nl = '\0';
        assert_true(*n < 16);
        lines[(*n)++] = s;
        s = nl + 1;
    }
    return lines;
}

/* Parses "YYYY-MM-DDTHH:MM:SS.mmmZ " at the start of line into Unix
 * milliseconds; -1 when the shape is wrong. */
static int64_t parse_stamp(const char *line)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
    for (size_t i = 0; i < sizeof shape - 1; i++) {
        bool digit = line[i] >= '0' && line[i] <= '9';
        if (shape[i] == 'd' ? !digit : line[i] != shape[i])
            return -1;
    }
    struct tm tm = {0};
    int ms;
    if (sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d.%3d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Logging before log_open and after log_close is a harmless no-op: the
 * messages appear nowhere in a log opened later. */
static void logging_while_closed_writes_nothing(void **state)
{
    struct fx *fx = *state;
    log_error("before open %d", 1);
    log_info("before open %d", 2);
    assert_int_equal(access(fx->path, F_OK), -1); /* nothing created either */
    char err[256] = "";
    assert_int_equal(log_open(fx->path, LOG_DEBUG, err, sizeof err), 0);
    log_info("while open");
    log_close();
    log_error("after close");
    char *text;
    int n;
    char **lines = read_lines(fx->path, &text, &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(lines[0], "while open"));
    free(text);
}

/* log_open creates the file with mode 0600 even under umask 0 (the mode
 * is not left to the umask: logs may quote conversations). */
static void log_open_creates_a_private_file(void **state)
{
    struct fx *fx = *state;
    char err[256] = "";
    mode_t old = umask(0);
    int rc = log_open(fx->path, LOG_INFO, err, sizeof err);
    umask(old);
    assert_int_equal(rc, 0);
    struct stat st;
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

/* A log that cannot be opened is an error naming the path. */
static void log_open_failure_names_the_path(void **state)
{
    struct fx *fx = *state;
    char err[512] = "";
    size_t n = strlen(fx->dir) + 32;
    char *bad = malloc(n);
    snprintf(bad, n, "%s/no/such/dir/x.log", fx->dir);
    assert_int_equal(log_open(bad, LOG_INFO, err, sizeof err), -1);
    assert_non_null(strstr(err, bad));
    free(bad);
}

/* Each line is "YYYY-MM-DDTHH:MM:SS.mmmZ level func: message", with the
 * stamp in UTC at the time of the call and the calling function's name. */
static void lines_have_the_documented_format(void **state)
{
    struct fx *fx = *state;
    char err[256] = "";
    assert_int_equal(log_open(fx->path, LOG_DEBUG, err, sizeof err), 0);
    int64_t before = clock_wall_ms();
    log_error("e %d", 1);
    log_warn("w %s", "two");
    log_info("i");
    log_debug("d %c", '4');
    int64_t after = clock_wall_ms();
    log_close();

    char *text;
    int n;
    char **lines = read_lines(fx->path, &text, &n);
    assert_int_equal(n, 4);
    static const char *const want[] = {
        "error lines_have_the_documented_format: e 1",
        "warn lines_have_the_documented_format: w two",
        "info lines_have_the_documented_format: i",
        "debug lines_have_the_documented_format: d 4",
    };
    for (int i = 0; i < 4; i++) {
        int64_t t = parse_stamp(lines[i]);
        if (t < 0)
            fail_msg("bad stamp in \"%s\"", lines[i]);
        assert_true(t >= before && t <= after);
        assert_string_equal(lines[i] + 25, want[i]);
    }
    free(text);
}

/* The threshold drops the levels above it; reopening appends. */
static void the_threshold_filters_levels(void **state)
{
    struct fx *fx = *state;
    char err[256] = "";
    assert_int_equal(log_open(fx->path, LOG_WARN, err, sizeof err), 0);
    log_error("kept-error");
    log_warn("kept-warn");
    log_info("dropped-info");
    log_debug("dropped-debug");
    assert_int_equal(log_open(fx->path, LOG_ERROR, err, sizeof err), 0);
    log_warn("dropped-warn");
    log_error("kept-again");
    log_close();
    char *text;
    int n;
    char **lines = read_lines(fx->path, &text, &n);
    assert_int_equal(n, 3);
    assert_non_null(strstr(lines[0], " error "));
    assert_non_null(strstr(lines[0], "kept-error"));
    assert_non_null(strstr(lines[1], "kept-warn"));
    assert_non_null(strstr(lines[2], "kept-again"));
    free(text);
}

/* Control characters in a message (newlines, CR, ESC, DEL) are replaced,
 * so one call is one line and a quoted reply cannot forge a log line;
 * UTF-8 text passes intact; an overlong message is cut, still one line. */
static void control_characters_cannot_split_a_line(void **state)
{
    struct fx *fx = *state;
    char err[256] = "";
    assert_int_equal(log_open(fx->path, LOG_INFO, err, sizeof err), 0);
    log_info("a\nb\rc\x1b[31md\x7f"
             "e\tf caf\xc3\xa9");
    log_info("%s", "x\n2026-01-01T00:00:00.000Z error forged: yes");
    char big[5000];
    memset(big, 'l', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[100] = '\n';
    log_info("%s", big);
    log_close();
    char *text;
    int n;
    char **lines = read_lines(fx->path, &text, &n);
    assert_int_equal(n, 3);
    assert_non_null(strstr(lines[0], ": a b c [31md e f caf\xc3\xa9"));
    for (const char *p = lines[0]; *p; p++)
        assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
    assert_non_null(strstr(lines[1], ": x 2026-01-01T00:00:00.000Z error forged: yes"));
    assert_true(strlen(lines[2]) > 1000);
    free(text);
}

/* Level names map to levels; anything else is -1. */
static void level_names_map_to_levels(void **state)
{
    (void)state;
    assert_int_equal(log_level_from_name("error"), LOG_ERROR);
    assert_int_equal(log_level_from_name("warn"), LOG_WARN);
    assert_int_equal(log_level_from_name("info"), LOG_INFO);
    assert_int_equal(log_level_from_name("debug"), LOG_DEBUG);
    assert_int_equal(log_level_from_name(""), -1);
    assert_int_equal(log_level_from_name("verbose"), -1);
    assert_int_equal(log_level_from_name("info "), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(logging_while_closed_writes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(log_open_creates_a_private_file, setup, teardown),
        cmocka_unit_test_setup_teardown(log_open_failure_names_the_path, setup, teardown),
        cmocka_unit_test_setup_teardown(lines_have_the_documented_format, setup, teardown),
        cmocka_unit_test_setup_teardown(the_threshold_filters_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(control_characters_cannot_split_a_line, setup, teardown),
        cmocka_unit_test(level_names_map_to_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

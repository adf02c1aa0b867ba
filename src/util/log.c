/*
 * The log file: one mutex-protected FILE, line-buffered so a crash loses at
 * most the line being written. Control characters in messages are replaced,
 * so a hostile model reply quoted in a log line cannot forge other lines.
 */
#include "config.h"

#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file;
static enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

int log_open(const char *path, enum log_level level, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
        return -1;
    }
    FILE *f = fdopen(fd, "a");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    setvbuf(f, NULL, _IOLBF, 0);
    pthread_mutex_lock(&log_lock);
    if (log_file != NULL)
        fclose(log_file);
    log_file = f;
    log_threshold = level;
    pthread_mutex_unlock(&log_lock);
    return 0;
}

void log_close(void)
{
    pthread_mutex_lock(&log_lock);
    if (log_file != NULL)
        fclose(log_file);
    log_file = NULL;
    pthread_mutex_unlock(&log_lock);
}

/* Replaces control characters (but not UTF-8 bytes) so one call is one line. */
static void log_defang(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = ' ';
}

void log_write(enum log_level level, const char *func, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_defang(msg);

    int64_t now = clock_wall_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

    pthread_mutex_lock(&log_lock);
    if (log_file != NULL && level <= log_threshold)
        fprintf(log_file, "%s.%03dZ %s %s: %s\n", stamp, (int)(now % 1000), level_names[level],
                func, msg);
    pthread_mutex_unlock(&log_lock);
}

void log_warn_lines(const char *func, const char *prefix, const char *text)
{
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        int len = end != NULL ? (int)(end - line) : (int)strlen(line);
        log_write(LOG_WARN, func, "%s: %.*s", prefix, len, line);
        line = end != NULL ? end + 1 : line + len;
    }
}

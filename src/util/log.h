/*
 * Logging to memchat.log in the data dir. Library code returns errors as
 * values; the log is the record of what happened for the user who asks
 * later (`memchat doctor`, bug reports). It is process-wide by nature, like
 * stderr: opened once by the front end, safe from any thread. Never log a
 * secret: values of secret settings are masked before they get here.
 */
#ifndef MEMCHAT_UTIL_LOG_H
#define MEMCHAT_UTIL_LOG_H

#include "util/alloc.h"

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Opens (appends to) path with mode 0600 and sets the threshold. 0 on
 * success, -1 with a message in err. Until opened, logging is a no-op. */
int log_open(const char *path, enum log_level level, char *err, size_t errlen);
/* Closes the log file; later calls are no-ops. */
void log_close(void);
/* The level named "error", "warn", "info" or "debug"; -1 when unknown. */
int log_level_from_name(const char *name);
/* Writes one line "2026-11-23T10:00:00.123Z LEVEL func: message". */
void log_write(enum log_level level, const char *func, const char *fmt, ...) MC_PRINTF(3, 4);
/* Writes each line of text (newline-separated; NULL or "" writes
 * nothing) as its own warning "prefix: LINE", e.g. a loader's list of
 * skipped files. */
void log_warn_lines(const char *func, const char *prefix, const char *text);

#define log_error(...) log_write(LOG_ERROR, __func__, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_WARN, __func__, __VA_ARGS__)
#define log_info(...)  log_write(LOG_INFO, __func__, __VA_ARGS__)
#define log_debug(...) log_write(LOG_DEBUG, __func__, __VA_ARGS__)

#endif

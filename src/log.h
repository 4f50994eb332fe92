/*
 * log.h - single-line log records to stderr: "2026-11-27T22:10:00.123Z
 * info  message".  One line per record so journald keeps them whole; the
 * level is also given as a syslog "<N>" prefix when stderr is the journal.
 * Only main.c and http.c log; lower layers return errors.
 */
#ifndef CTNAS_LOG_H
#define CTNAS_LOG_H

enum ctnas_log_level {
    CTNAS_LOG_ERROR = 0,
    CTNAS_LOG_WARN,
    CTNAS_LOG_INFO,
    CTNAS_LOG_DEBUG,
};

/* Parse "error", "warn", "info", "debug"; -1 if unknown. */
int ctnas_log_level_parse(const char *s);
void ctnas_log_set_level(int level);
int ctnas_log_enabled(int level);
void ctnas_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define ctnas_log_error(...) ctnas_log(CTNAS_LOG_ERROR, __VA_ARGS__)
#define ctnas_log_warn(...) ctnas_log(CTNAS_LOG_WARN, __VA_ARGS__)
#define ctnas_log_info(...) ctnas_log(CTNAS_LOG_INFO, __VA_ARGS__)
#define ctnas_log_debug(...) ctnas_log(CTNAS_LOG_DEBUG, __VA_ARGS__)

#endif

/*
 * log.c - the logger.  The level is the one process-wide setting; it is
 * written once at start-up and read by every thread (atomic for that).
 */
#include "config.h"
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctnas.h"

static atomic_int log_level = CTNAS_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug",
                                          NULL};
/* syslog priorities, for journald's stderr parsing (sd-daemon(3)). */
static const int level_prio[] = {3, 4, 6, 7};

int ctnas_log_level_parse(const char *s)
{
    int level = ctnas_name_index(level_names, s);
    if (level >= 0)
        return level;
    if (strcmp(s, "warning") == 0)
        return CTNAS_LOG_WARN;
    return -1;
}

void ctnas_log_set_level(int level)
{
    atomic_store(&log_level, level);
}

int ctnas_log_enabled(int level)
{
    return level <= atomic_load(&log_level);
}

void ctnas_log(int level, const char *fmt, ...)
{
    if (!ctnas_log_enabled(level))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Keep the record on one line whatever the message holds. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);

    /* One fprintf per record: stdio locks the stream, so lines from
     * different threads do not interleave. */
    if (getenv("JOURNAL_STREAM") != NULL)
        fprintf(stderr, "<%d>%s %s\n", level_prio[level], level_names[level],
                msg);
    else
        fprintf(stderr, "%s.%03ldZ %-5s %s\n", when, ts.tv_nsec / 1000000L,
                level_names[level], msg);
}

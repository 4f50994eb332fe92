/*
 * conf.c - one option table drives flags and environment, so every flag
 * has its CTNASD_* twin by construction.
 */
#include "config.h"
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include "log.h"

enum opt_kind { OPT_STR, OPT_ADDR, OPT_INT, OPT_SIZE, OPT_LEVEL,
                OPT_DURATION };

struct opt {
    const char *flag;     /* "--port" */
    const char *env;      /* "CTNASD_PORT" */
    enum opt_kind kind;
    size_t off;           /* offset in struct ctnas_conf */
    size_t cap;           /* OPT_STR: buffer size */
    long long min, max;   /* OPT_INT / OPT_SIZE / OPT_DURATION bounds */
};

#define OFF(f) offsetof(struct ctnas_conf, f)
#define CAP(f) sizeof(((struct ctnas_conf *)0)->f)

static const struct opt opts[] = {
    {"--listen", "CTNASD_LISTEN", OPT_ADDR, OFF(listen), CAP(listen), 0,
     0},
    {"--port", "CTNASD_PORT", OPT_INT, OFF(port), 0, 0, 65535},
    {"--db", "CTNASD_DB", OPT_STR, OFF(db), CAP(db), 0, 0},
    {"--threads", "CTNASD_THREADS", OPT_INT, OFF(threads), 0, 1, 256},
    {"--log-level", "CTNASD_LOG_LEVEL", OPT_LEVEL, OFF(log_level), 0, 0, 0},
    {"--max-body", "CTNASD_MAX_BODY", OPT_SIZE, OFF(max_body), 0, 1024,
     1LL << 30},
    {"--max-buffered", "CTNASD_MAX_BUFFERED", OPT_SIZE, OFF(max_buffered),
     0, 1024, 1LL << 40},
    {"--max-batch", "CTNASD_MAX_BATCH", OPT_INT, OFF(max_batch), 0, 1,
     1000000},
    {"--max-pairs", "CTNASD_MAX_PAIRS", OPT_INT, OFF(max_pairs), 0, 1,
     10000000},
    {"--max-rank", "CTNASD_MAX_RANK", OPT_INT, OFF(max_rank), 0, 2,
     1000000},
    {"--max-jobs", "CTNASD_MAX_JOBS", OPT_INT, OFF(max_jobs), 0, 1, 1024},
    {"--timeout", "CTNASD_TIMEOUT", OPT_INT, OFF(timeout), 0, 1, 86400},
    {"--max-connections", "CTNASD_MAX_CONNECTIONS", OPT_INT,
     OFF(max_connections), 0, 1, 65536},
    {"--port-file", "CTNASD_PORT_FILE", OPT_STR, OFF(port_file),
     CAP(port_file), 0, 0},
    {"--token", "CTNASD_TOKEN_FILE", OPT_STR, OFF(token_file),
     CAP(token_file), 0, 0},
    {"--tls-cert", "CTNASD_TLS_CERT", OPT_STR, OFF(tls_cert), CAP(tls_cert),
     0, 0},
    {"--tls-key", "CTNASD_TLS_KEY", OPT_STR, OFF(tls_key), CAP(tls_key), 0,
     0},
    {"--job-retention", "CTNASD_JOB_RETENTION", OPT_DURATION,
     OFF(job_retention), 0, 0, 100LL * 366 * 86400},
};

const char ctnas_conf_usage[] =
    "  --listen ADDR          address to bind (CTNASD_LISTEN, 127.0.0.1)\n"
    "  --port N               TCP port, 0 for any free one (CTNASD_PORT, 8080)\n"
    "  --db FILE              SQLite database (CTNASD_DB, ./ctnas.db)\n"
    "  --threads N            threads that run requests (CTNASD_THREADS, 4)\n"
    "  --log-level LEVEL      error|warn|info|debug (CTNASD_LOG_LEVEL, info)\n"
    "  --max-body BYTES       largest request body (CTNASD_MAX_BODY, 16777216)\n"
    "  --max-buffered BYTES   request bodies held in memory at once, received\n"
    "                         or waiting for a worker; more are told 503\n"
    "                         (CTNASD_MAX_BUFFERED, 268435456 or --max-body\n"
    "                         if larger)\n"
    "  --max-batch N          items per upload (CTNASD_MAX_BATCH, 10000)\n"
    "  --max-pairs N          pairs per /v1/compare (CTNASD_MAX_PAIRS, 100000)\n"
    "  --max-rank N           architectures per /v1/rank (CTNASD_MAX_RANK, 50000)\n"
    "  --max-jobs N           background jobs at once (CTNASD_MAX_JOBS, 4)\n"
    "  --timeout SECONDS      idle connection timeout (CTNASD_TIMEOUT, 30)\n"
    "  --max-connections N    open connections at most (CTNASD_MAX_CONNECTIONS, 1024)\n"
    "  --port-file FILE       write the bound port there (CTNASD_PORT_FILE)\n"
    "  --token FILE           require \"Authorization: Bearer <token>\" with the\n"
    "                         token in FILE on every route but GET /v1/health\n"
    "                         (CTNASD_TOKEN_FILE)\n"
    "  --tls-cert FILE        serve HTTPS with this PEM certificate (chain)\n"
    "                         (CTNASD_TLS_CERT); needs --tls-key\n"
    "  --tls-key FILE         its unencrypted PEM private key (CTNASD_TLS_KEY)\n"
    "  --job-retention TIME   delete ended jobs (their events, pseudo-labels\n"
    "                         and Idempotency-Keys) this long after they end:\n"
    "                         seconds, or a number with s, m, h or d (30d);\n"
    "                         0 keeps them (CTNASD_JOB_RETENTION, 0)\n";

static int set_opt(struct ctnas_conf *cfg, const struct opt *o,
                   const char *val, const char *name, struct ctnas_err *err)
{
    char *base = (char *)cfg + o->off;
    switch (o->kind) {
    case OPT_ADDR: {
        /* What http.c binds: a numeric IPv4 or IPv6 address, checked
         * here so a typo is a usage error before anything starts. */
        unsigned char buf[sizeof(struct in6_addr)];
        if (inet_pton(AF_INET, val, buf) != 1 &&
            inet_pton(AF_INET6, val, buf) != 1)
            return ctnas_err_set(err, CTNAS_EINVAL, name,
                                 "%s: expected a numeric IPv4 or IPv6 "
                                 "address (127.0.0.1, 0.0.0.0, ::1, ::), "
                                 "not '%s'", name, val);
    }
        /* fall through */
    case OPT_STR:
        if (strlen(val) >= o->cap)
            return ctnas_err_set(err, CTNAS_EINVAL, name,
                                 "%s: value too long", name);
        memcpy(base, val, strlen(val) + 1);
        return 0;
    case OPT_LEVEL: {
        int lvl = ctnas_log_level_parse(val);
        if (lvl < 0)
            return ctnas_err_set(err, CTNAS_EINVAL, name,
                                 "%s: expected error, warn, info or debug, "
                                 "not '%s'", name, val);
        *(int *)base = lvl;
        return 0;
    }
    case OPT_DURATION: {
        /* A count of seconds, or of the unit its one-letter suffix
         * names; the bounds apply to the seconds. */
        static const char units[] = "smhd";
        static const long long unit_s[] = {1, 60, 3600, 86400};
        char *end;
        errno = 0;
        long long v = strtoll(val, &end, 10), mul = 1;
        const char *u = *end ? strchr(units, *end) : NULL;
        if (u != NULL && end[1] == '\0') {
            mul = unit_s[u - units];
            end++;
        }
        if (errno != 0 || !isdigit((unsigned char)*val) || *end != '\0' ||
            v > o->max / mul || v * mul < o->min)
            return ctnas_err_set(err, CTNAS_EINVAL, name,
                                 "%s: expected a duration of %lld to %lld "
                                 "seconds, as seconds or with a unit s, m, "
                                 "h or d (30d), not '%s'", name, o->min,
                                 o->max, val);
        *(long long *)base = v * mul;
        return 0;
    }
    case OPT_INT:
    case OPT_SIZE: {
        char *end;
        errno = 0;
        long long v = strtoll(val, &end, 10);
        if (errno != 0 || end == val || *end != '\0' || v < o->min ||
            v > o->max)
            return ctnas_err_set(err, CTNAS_EINVAL, name,
                                 "%s: expected an integer in [%lld, %lld], "
                                 "not '%s'", name, o->min, o->max, val);
        if (o->kind == OPT_INT)
            *(int *)base = (int)v;
        else
            *(size_t *)base = (size_t)v;
        return 0;
    }
    }
    return CTNAS_EINVAL;
}

int ctnas_conf_init(struct ctnas_conf *cfg, struct ctnas_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->listen, "127.0.0.1");
    cfg->port = 8080;
    strcpy(cfg->db, "./ctnas.db");
    cfg->threads = 4;
    cfg->log_level = CTNAS_LOG_INFO;
    cfg->max_body = 16u << 20;
    cfg->max_buffered = 0; /* ctnas_conf_finish: the default's rule */
    cfg->max_batch = 10000;
    cfg->max_pairs = 100000;
    cfg->max_rank = 50000;
    cfg->max_jobs = 4;
    cfg->timeout = 30;
    cfg->max_connections = 1024;
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        const char *v = getenv(opts[i].env);
        if (v == NULL)
            continue;
        int rc = set_opt(cfg, &opts[i], v, opts[i].env, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int ctnas_conf_parse_args(struct ctnas_conf *cfg, int argc, char **argv,
                          int *argi, struct ctnas_err *err)
{
    while (*argi < argc) {
        const char *arg = argv[*argi];
        if (strncmp(arg, "--", 2) != 0)
            return 0;
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const struct opt *o = NULL;
        for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
            if (strlen(opts[i].flag) == len &&
                strncmp(opts[i].flag, arg, len) == 0)
                o = &opts[i];
        if (o == NULL)
            return ctnas_err_set(err, CTNAS_EINVAL, arg,
                                 "unknown option %.*s", (int)len, arg);
        const char *val;
        if (eq) {
            val = eq + 1;
        } else {
            if (*argi + 1 >= argc)
                return ctnas_err_set(err, CTNAS_EINVAL, o->flag,
                                     "%s needs a value", o->flag);
            val = argv[++*argi];
        }
        int rc = set_opt(cfg, o, val, o->flag, err);
        if (rc < 0)
            return rc;
        ++*argi;
    }
    return 0;
}

int ctnas_conf_finish(struct ctnas_conf *cfg, struct ctnas_err *err)
{
    /* Unset, it follows a --max-body above its 256 MiB, so a config
     * that raised --max-body alone still starts. */
    if (cfg->max_buffered == 0)
        cfg->max_buffered = cfg->max_body > (256u << 20) ? cfg->max_body
                                                         : 256u << 20;
    if (cfg->max_buffered < cfg->max_body)
        return ctnas_err_set(err, CTNAS_EINVAL, "--max-buffered",
                             "--max-buffered (%zu) is below --max-body "
                             "(%zu): a body of the largest size allowed "
                             "could never be received", cfg->max_buffered,
                             cfg->max_body);
    /* One without the other is a typo, not a wish for plain HTTP. */
    if (!cfg->tls_cert[0] != !cfg->tls_key[0])
        return ctnas_err_set(err, CTNAS_EINVAL,
                             cfg->tls_cert[0] ? "--tls-key" : "--tls-cert",
                             "HTTPS needs both --tls-cert and --tls-key; "
                             "%s is missing",
                             cfg->tls_cert[0] ? "--tls-key" : "--tls-cert");
    return 0;
}

int ctnas_conf_read_token(const struct ctnas_conf *cfg, char *buf,
                          size_t cap, struct ctnas_err *err)
{
    FILE *f = fopen(cfg->token_file, "r");
    if (f == NULL)
        return ctnas_err_set(err, CTNAS_EIO, "--token",
                             "cannot read the token file %s",
                             cfg->token_file);
    size_t n = fread(buf, 1, cap - 1, f);
    int more = fgetc(f) != EOF;
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
                     buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = '\0';
    int printable = 1;
    for (size_t i = 0; i < n; i++)
        if (buf[i] <= ' ' || buf[i] > '~')
            printable = 0;
    if (more || n < 16 || !printable) {
        memset(buf, 0, cap);
        return ctnas_err_set(err, CTNAS_EINVAL, "--token",
                             "the token in %s must be one line of 16 to "
                             "%zu printable characters without spaces",
                             cfg->token_file, cap - 1);
    }
    return 0;
}

int ctnas_conf_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int ctnas_conf_parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

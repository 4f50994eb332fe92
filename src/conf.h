/*
 * conf.h - the daemon's settings: defaults, environment (CTNASD_*) and
 * command-line flags, in that order of precedence (flags win).  Parsing
 * only: nothing here opens files or sockets.
 */
#ifndef CTNAS_CONF_H
#define CTNAS_CONF_H

#include <stddef.h>

#include "ctnas.h"

struct ctnas_conf {
    char listen[64];        /* address to bind, default 127.0.0.1 */
    int port;               /* default 8080; 0 picks a free port */
    char db[4096];          /* SQLite file, default ./ctnas.db */
    int threads;            /* HTTP worker threads, default 4 */
    int log_level;          /* enum ctnas_log_level */
    size_t max_body;        /* request body bytes, default 16 MiB */
    /* Bytes of request bodies held at once, default 256 MiB (or
     * max_body if larger) */
    size_t max_buffered;
    int max_batch;          /* items per upload batch, default 10000 */
    int max_pairs;          /* pairs per /v1/compare, default 100000 */
    int max_rank;           /* architectures per /v1/rank list, default 50000 */
    int max_jobs;           /* background jobs queued or running at once */
    int timeout;            /* idle seconds before a connection is closed */
    int max_connections;    /* open connections at most */
    char port_file[4096];   /* write the bound port here (tests), or "" */
    char token_file[4096];  /* bearer token required when set, or "" */
    /* HTTPS: PEM certificate (chain) and private key, or both "" */
    char tls_cert[4096];
    char tls_key[4096];
    /* Seconds an ended job is kept before it is deleted; 0 keeps it. */
    long long job_retention;
};

/* Fill cfg with defaults overridden by the environment. */
int ctnas_conf_init(struct ctnas_conf *cfg, struct ctnas_err *err);

/* Parse serve flags from argv[*argi..argc); stops at the first
 * non-flag and leaves *argi there.  --help and --version are not handled
 * here (main.c looks for them first).  Errors name the flag in err->field. */
int ctnas_conf_parse_args(struct ctnas_conf *cfg, int argc, char **argv,
                            int *argi, struct ctnas_err *err);

/* After the flags: defaults that depend on other options, then the
 * rules between options (--max-buffered >= --max-body, --tls-cert with
 * --tls-key); errors name the flag in err->field. */
int ctnas_conf_finish(struct ctnas_conf *cfg, struct ctnas_err *err);

/* Read the bearer token of cfg->token_file into buf (trailing newline
 * and spaces trimmed): 16 to cap-1 printable characters.  Errors say why
 * without ever quoting the token. */
int ctnas_conf_read_token(const struct ctnas_conf *cfg, char *buf,
                          size_t cap, struct ctnas_err *err);

/* Strict numbers (command-line values of the eval commands, data-file
 * fields): the whole of s, in [lo, hi] (long) or finite (double); 0, or
 * -1 when it is not one. */
int ctnas_conf_parse_long(const char *s, long lo, long hi, long *out);
int ctnas_conf_parse_double(const char *s, double *out);

/* The flag summary for --help. */
extern const char ctnas_conf_usage[];

#endif

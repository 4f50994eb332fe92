/*
 * http_tls.c - reading and checking the PEM files of --tls-cert and
 * --tls-key.
 */
#include "config.h"
#include "http_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mem.h"

/* Wipe through a volatile pointer, so the stores are not elided. */
static void wipe(char *s, size_t n)
{
    volatile char *p = s;
    for (size_t i = 0; s != NULL && i < n; i++)
        p[i] = 0;
}

/* The whole of path as a NUL-terminated text in *out (ctnas_free), read
 * with read(2): stdio would leave a copy of the key in its own buffer. */
static int read_pem(const char *path, const char *flag, char **out,
                    size_t *len, struct stat *stp, struct ctnas_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ctnas_err_set(err, CTNAS_EIO, flag, "%s: cannot read %s: %s",
                             flag, path, strerror(errno));
    if (fstat(fd, stp) < 0 || !S_ISREG(stp->st_mode) ||
        stp->st_size <= 0 || stp->st_size > (off_t)CTNAS_TLS_MAX_FILE) {
        close(fd);
        return ctnas_err_set(err, CTNAS_EINVAL, flag,
                             "%s: %s is not a PEM file (a regular file of "
                             "1 byte to %u KiB)", flag, path,
                             CTNAS_TLS_MAX_FILE >> 10);
    }
    size_t cap = (size_t)stp->st_size, n = 0;
    char *buf = ctnas_malloc(cap + 1);
    if (buf == NULL) {
        close(fd);
        return ctnas_err_set(err, CTNAS_ENOMEM, flag, "out of memory");
    }
    while (n < cap) {
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    int bad = n < cap;
    close(fd);
    if (bad) {
        wipe(buf, n);
        ctnas_free(buf);
        return ctnas_err_set(err, CTNAS_EIO, flag, "%s: cannot read %s",
                             flag, path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int ctnas_tls_load(const char *cert_path, const char *key_path,
                   struct ctnas_tls *out, struct ctnas_err *err)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    size_t cert_len;
    int rc = read_pem(cert_path, "--tls-cert", &out->cert, &cert_len, &st,
                      err);
    if (rc < 0)
        return rc;
    if (strstr(out->cert, "-----BEGIN CERTIFICATE-----") == NULL) {
        ctnas_tls_free(out);
        return ctnas_err_set(err, CTNAS_EINVAL, "--tls-cert",
                             "--tls-cert: %s holds no PEM certificate "
                             "(-----BEGIN CERTIFICATE-----)", cert_path);
    }
    rc = read_pem(key_path, "--tls-key", &out->key, &out->key_len, &st,
                  err);
    if (rc < 0) {
        ctnas_tls_free(out);
        return rc;
    }
    /* PKCS#8 says ENCRYPTED PRIVATE KEY, the older form a Proc-Type
     * header; either needs a passphrase nobody would type at start. */
    const char *k = out->key;
    if (strstr(k, "ENCRYPTED") != NULL) {
        ctnas_tls_free(out);
        return ctnas_err_set(err, CTNAS_EINVAL, "--tls-key",
                             "--tls-key: the key in %s is encrypted; give "
                             "its decrypted form (openssl pkey -in KEY "
                             "-out KEY.plain), readable by this user only",
                             key_path);
    }
    if (strstr(k, "-----BEGIN ") == NULL ||
        strstr(k, "PRIVATE KEY-----") == NULL) {
        ctnas_tls_free(out);
        return ctnas_err_set(err, CTNAS_EINVAL, "--tls-key",
                             "--tls-key: %s holds no PEM private key "
                             "(-----BEGIN ... PRIVATE KEY-----)", key_path);
    }
    out->key_open_to_others = (st.st_mode & (S_IRWXG | S_IRWXO)) != 0;
    return 0;
}

void ctnas_tls_free(struct ctnas_tls *t)
{
    wipe(t->key, t->key_len);
    ctnas_free(t->key);
    ctnas_free(t->cert);
    t->key = t->cert = NULL;
    t->key_len = 0;
}

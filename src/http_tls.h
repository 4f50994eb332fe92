/*
 * http_tls.h - the HTTPS credentials of --tls-cert and --tls-key: the
 * PEM files, read and checked before libmicrohttpd gets them, so that a
 * wrong file is named in the error.  Owns: the two texts (the key's is
 * wiped when freed).  Must not touch: connections (http.c serves them).
 */
#ifndef CTNAS_HTTP_TLS_H
#define CTNAS_HTTP_TLS_H

#include "ctnas.h"

/* Largest PEM file read: a certificate chain is a few KiB. */
#define CTNAS_TLS_MAX_FILE (1u << 20)

struct ctnas_tls {
    char *cert;             /* PEM text, NUL-terminated */
    char *key;
    size_t key_len;         /* bytes read into key (wiped when freed) */
    int key_open_to_others; /* the key file's mode lets group or others
                             * read it (worth a warning) */
};

/* Read both files into *out.  Errors name the flag in err->field: a file
 * unreadable, empty or over CTNAS_TLS_MAX_FILE, without a PEM block of
 * its kind (CERTIFICATE; PRIVATE KEY), or an encrypted key.  Whether the
 * key is the certificate's, GnuTLS tells (ctnas_http_tls_check). */
int ctnas_tls_load(const char *cert_path, const char *key_path,
                   struct ctnas_tls *out, struct ctnas_err *err);
/* Free both texts, the key wiped first; t zeroed or loaded. */
void ctnas_tls_free(struct ctnas_tls *t);

#endif

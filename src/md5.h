/*
 * md5.h - MD5 (RFC 1321), only as a fingerprint: NB101 cell hashes and
 * NB201 string hashes.  Not for anything security related.
 */
#ifndef CTNAS_MD5_H
#define CTNAS_MD5_H

#include <stddef.h>

/* MD5 of len bytes at data, as 32 lowercase hex digits plus NUL. */
void ctnas_md5_hex(const void *data, size_t len, char out[33]);

#endif

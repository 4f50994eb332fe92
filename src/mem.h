/*
 * mem.h - the allocator every module of ctnasd goes through.
 *
 * ctnas_malloc .. ctnas_free call replaceable hooks (libuv's
 * uv_replace_allocator), libc's by default, so tests can count
 * allocations, check that every one is freed, and fail the k-th one to
 * drive each out-of-memory path (jansson's test_chaos, SQLite's OOM
 * tests).  jansson allocates through them too once ctnas_mem_replace has
 * run (main calls it first thing).  SQLite, libuv, libmicrohttpd and
 * OpenBLAS keep their own allocators.
 *
 * Memory from these functions is released with ctnas_free, never free():
 * a replaced allocator need not be libc's.  The exceptions: getline's
 * buffer, which libc allocates and free() releases; the text of
 * /metrics, an open_memstream buffer (api_meta.c); and request bodies of
 * 1 MiB and more, mappings of their own (http_body.c), which
 * these hooks do not see.
 */
#ifndef CTNAS_MEM_H
#define CTNAS_MEM_H

#include <stddef.h>

/* The hooks: the four libc functions' contracts (malloc(0) and
 * calloc with a zero count may return NULL or a unique pointer; free
 * accepts NULL). */
struct ctnas_mem_funcs {
    void *(*malloc_fn)(size_t size);
    void *(*calloc_fn)(size_t count, size_t size);
    void *(*realloc_fn)(void *p, size_t size);
    void (*free_fn)(void *p);
};

/* Install f (copied; all four functions required), or libc's with f
 * NULL, and point jansson at ctnas_malloc / ctnas_free.  Returns 0, or
 * CTNAS_EINVAL when a function is missing.  Not thread-safe: call it
 * before any other thread allocates, and only while nothing allocated by
 * the previous hooks is still live. */
int ctnas_mem_replace(const struct ctnas_mem_funcs *f);

void *ctnas_malloc(size_t size);
void *ctnas_calloc(size_t count, size_t size);
void *ctnas_realloc(void *p, size_t size);
void ctnas_free(void *p);
/* A copy of s in ctnas_malloc memory, or NULL when out of memory. */
char *ctnas_strdup(const char *s);

/* Allocations of a non-zero size that failed on the calling thread so
 * far: a library that misreports running out of memory (jansson calls
 * some of its failures syntax errors) is read by comparing this before
 * and after the call. */
unsigned long ctnas_mem_failures(void);

#endif

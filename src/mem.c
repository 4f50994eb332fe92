/*
 * mem.c - the replaceable allocator of mem.h.  Owns only the hook table.
 */
#include "config.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ctnas.h"

static struct ctnas_mem_funcs hooks = {malloc, calloc, realloc, free};
static _Thread_local unsigned long failures;

int ctnas_mem_replace(const struct ctnas_mem_funcs *f)
{
    static const struct ctnas_mem_funcs libc = {malloc, calloc, realloc,
                                                free};
    if (f == NULL)
        f = &libc;
    if (!f->malloc_fn || !f->calloc_fn || !f->realloc_fn || !f->free_fn)
        return CTNAS_EINVAL;
    hooks = *f;
    json_set_alloc_funcs(ctnas_malloc, ctnas_free);
    return 0;
}

void *ctnas_malloc(size_t size)
{
    void *p = hooks.malloc_fn(size);
    if (p == NULL && size > 0)
        failures++;
    return p;
}

void *ctnas_calloc(size_t count, size_t size)
{
    void *p = hooks.calloc_fn(count, size);
    if (p == NULL && count > 0 && size > 0)
        failures++;
    return p;
}

void *ctnas_realloc(void *p, size_t size)
{
    void *q = hooks.realloc_fn(p, size);
    if (q == NULL && size > 0)
        failures++;
    return q;
}

void ctnas_free(void *p)
{
    hooks.free_fn(p);
}

unsigned long ctnas_mem_failures(void)
{
    return failures;
}

char *ctnas_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = ctnas_malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

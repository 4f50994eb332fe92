/*
 * space.c - the table of search spaces and lookup by name.  The spaces
 * themselves live in space_nb101.c and space_nb201.c.
 */
#include "config.h"
#include "space.h"

#include <string.h>

const struct ctnas_space *const ctnas_spaces[] = {
    &ctnas_space_nb101,
    &ctnas_space_nb201,
    NULL,
};

const struct ctnas_space *ctnas_space_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (int i = 0; ctnas_spaces[i] != NULL; i++)
        if (strcmp(ctnas_spaces[i]->name, name) == 0)
            return ctnas_spaces[i];
    return NULL;
}

const struct ctnas_space *ctnas_space_find_short(const char *name)
{
    if (name != NULL && strcmp(name, "nb101") == 0)
        name = "nasbench101";
    else if (name != NULL && strcmp(name, "nb201") == 0)
        name = "nasbench201";
    return ctnas_space_find(name);
}

uint64_t ctnas_arch_hash64(const struct ctnas_arch *a)
{
    /* Eight bytes a step, not one: every reference of a batched compare
     * is hashed twice.  Multiply then fold the high half down, and a
     * murmur3 finaliser, so the low bits used as a slot depend on every
     * byte. */
    const unsigned char *p = (const unsigned char *)a;
    const uint64_t k = 0xff51afd7ed558ccdULL;
    uint64_t h = 0x9e3779b97f4a7c15ULL, w;
    size_t i = 0;
    for (; i + 8 <= sizeof *a; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * k;
        h ^= h >> 32;
    }
    if (i < sizeof *a) {
        w = 0;
        memcpy(&w, p + i, sizeof *a - i);
        h = (h ^ w) * k;
    }
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

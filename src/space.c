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
    const unsigned char *p = (const unsigned char *)a;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < sizeof *a; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

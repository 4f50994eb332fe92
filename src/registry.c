/*
 * registry.c - see registry.h.  A short array under one mutex: there are
 * a handful of (space, dataset) pairs, and the lock is held only to copy a
 * pointer.
 */
#include "config.h"
#include "registry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ctnas_registry {
    pthread_mutex_t mu;
    int n, cap;
    struct ctnas_served **items;
};

struct ctnas_served *ctnas_served_new(int64_t id, const char *space,
                                      const char *dataset,
                                      const char *metric, double created,
                                      struct ctnas_nac *nac_take)
{
    struct ctnas_served *s = calloc(1, sizeof *s);
    if (s == NULL) {
        ctnas_nac_free(nac_take);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->id = id;
    snprintf(s->space, sizeof s->space, "%s", space);
    snprintf(s->dataset, sizeof s->dataset, "%s", dataset);
    snprintf(s->metric, sizeof s->metric, "%s", metric ? metric : "");
    s->created = created;
    s->nac = nac_take;
    return s;
}

void ctnas_served_ref(struct ctnas_served *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void ctnas_served_release(struct ctnas_served *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    ctnas_nac_free(s->nac);
    free(s);
}

struct ctnas_registry *ctnas_registry_new(void)
{
    struct ctnas_registry *reg = calloc(1, sizeof *reg);
    if (reg != NULL)
        pthread_mutex_init(&reg->mu, NULL);
    return reg;
}

void ctnas_registry_free(struct ctnas_registry *reg)
{
    if (reg == NULL)
        return;
    for (int i = 0; i < reg->n; i++)
        ctnas_served_release(reg->items[i]);
    free(reg->items);
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

struct ctnas_served *ctnas_registry_get(struct ctnas_registry *reg,
                                        const char *space,
                                        const char *dataset, int *ambiguous)
{
    struct ctnas_served *hit = NULL;
    int matches = 0;
    if (ambiguous)
        *ambiguous = 0;
    pthread_mutex_lock(&reg->mu);
    for (int i = 0; i < reg->n; i++) {
        struct ctnas_served *s = reg->items[i];
        if (strcmp(s->space, space) != 0 ||
            (dataset && strcmp(s->dataset, dataset) != 0))
            continue;
        matches++;
        hit = s;
    }
    if (matches > 1) {
        hit = NULL;
        if (ambiguous)
            *ambiguous = 1;
    }
    if (hit)
        ctnas_served_ref(hit);
    pthread_mutex_unlock(&reg->mu);
    return hit;
}

void ctnas_registry_publish(struct ctnas_registry *reg,
                            struct ctnas_served *s)
{
    struct ctnas_served *old = NULL;
    ctnas_served_ref(s);
    pthread_mutex_lock(&reg->mu);
    int i;
    for (i = 0; i < reg->n; i++)
        if (strcmp(reg->items[i]->space, s->space) == 0 &&
            strcmp(reg->items[i]->dataset, s->dataset) == 0)
            break;
    if (i < reg->n) {
        if (reg->items[i]->id > s->id) {
            old = s; /* an older model arrived late: keep the newer */
        } else {
            old = reg->items[i];
            reg->items[i] = s;
        }
    } else {
        if (reg->n == reg->cap) {
            int cap = reg->cap ? reg->cap * 2 : 4;
            struct ctnas_served **it =
                realloc(reg->items, (size_t)cap * sizeof *it);
            if (it == NULL) {
                pthread_mutex_unlock(&reg->mu);
                ctnas_served_release(s);
                return;
            }
            reg->items = it;
            reg->cap = cap;
        }
        reg->items[reg->n++] = s;
    }
    pthread_mutex_unlock(&reg->mu);
    ctnas_served_release(old);
}

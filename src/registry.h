/*
 * registry.h - the serving models: for each (space, dataset) the
 * comparator that /v1/compare and /v1/rank use now.
 *
 * A served model is immutable and reference counted.  Readers take a
 * reference (a mutex held for a pointer copy and an increment), use it
 * without any lock, and release it; publishing a new model swaps the
 * pointer, so requests in flight finish on the old one and none waits for
 * training.
 */
#ifndef CTNAS_REGISTRY_H
#define CTNAS_REGISTRY_H

#include <stdatomic.h>
#include <stdint.h>

#include "nac.h"

struct ctnas_feat_cache;

struct ctnas_served {
    atomic_int refs;
    int64_t id;                /* models.id */
    char space[32];
    char dataset[64];
    char metric[64];
    double created;            /* unix seconds */
    struct ctnas_nac *nac;     /* owned */
    struct ctnas_feat_cache *cache; /* owned: features seen so far */
};

/* Features (ctnas_nac_features) of n architectures of space sp with s's
 * model into feat (n x width).  A model's features never change, so they
 * are cached per model (up to a bound) and computed once; any thread.
 * 0 or CTNAS_ENOMEM. */
int ctnas_served_features(struct ctnas_served *s,
                          const struct ctnas_space *sp,
                          const struct ctnas_arch *archs, int n,
                          ctnas_real *feat);

/* Cache feat (n x width), the features of archs computed with s's model,
 * before s is published; as far as the cache's bound allows. */
void ctnas_served_prime(struct ctnas_served *s,
                        const struct ctnas_arch *archs,
                        const ctnas_real *feat, int n);

/* Architectures whose features s has cached; any thread. */
int ctnas_served_cached(struct ctnas_served *s);

/* New served model taking nac (freed with the last reference, and on
 * failure); one reference for the caller. */
struct ctnas_served *ctnas_served_new(int64_t id, const char *space,
                                      const char *dataset,
                                      const char *metric, double created,
                                      struct ctnas_nac *nac_take);
void ctnas_served_ref(struct ctnas_served *s);
/* Accepts NULL. */
void ctnas_served_release(struct ctnas_served *s);

struct ctnas_registry;

struct ctnas_registry *ctnas_registry_new(void);
/* Releases every model it holds; accepts NULL. */
void ctnas_registry_free(struct ctnas_registry *reg);

/* A new reference to the model serving (space, dataset), or NULL.  With
 * dataset NULL: the space's only served model; NULL when it has none, and
 * NULL with *ambiguous = 1 when it has several. */
struct ctnas_served *ctnas_registry_get(struct ctnas_registry *reg,
                                        const char *space,
                                        const char *dataset, int *ambiguous);
/* A new reference to the served model whose id is id, or NULL when it
 * serves nothing. */
struct ctnas_served *ctnas_registry_find(struct ctnas_registry *reg,
                                         int64_t id);
/* The datasets served for space, ", "-separated, into buf (cut short
 * at cap bytes). */
void ctnas_registry_datasets(struct ctnas_registry *reg, const char *space,
                             char *buf, size_t cap);
/* Serve s for its (space, dataset), replacing (and releasing) the
 * previous one unless that one is newer (higher id).  Takes a reference
 * of its own.  0, or CTNAS_ENOMEM when s would be the first of its (space,
 * dataset) and the table cannot grow: s is then not served, and a model
 * marked published in the store is served again at the next start. */
int ctnas_registry_publish(struct ctnas_registry *reg,
                           struct ctnas_served *s);

#endif

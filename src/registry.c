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

#include "mem.h"

/* Open addressing over architectures (their canonical bytes), with the
 * features of each; grows to CACHE_MAX entries, then stops caching. */
/* Keys are compared with memcmp and hashed byte by byte, so an arch must
 * be canonical and zero outside its n nodes (the spaces' parsers and the
 * controller memset before filling).  The table is kept at most half
 * full, so a probe always ends at a free slot; at CACHE_MAX entries the
 * table stops at 2^18 slots.  A model's features never change, so
 * entries are never evicted or invalidated: the cache dies with it. */
#define CACHE_MAX (1 << 17)

struct ctnas_feat_cache {
    pthread_mutex_t mu;
    int width, n, cap;
    struct ctnas_arch *keys;
    unsigned char *used;
    ctnas_real *feat;
};

static void cache_free(struct ctnas_feat_cache *c)
{
    if (c == NULL)
        return;
    pthread_mutex_destroy(&c->mu);
    ctnas_free(c->keys);
    ctnas_free(c->used);
    ctnas_free(c->feat);
    ctnas_free(c);
}

/* Slot of a in c (its own, or the free one where it would go). */
/* Called with c->mu held and c->cap > 0 (a power of two). */
static size_t cache_slot(const struct ctnas_feat_cache *c,
                         const struct ctnas_arch *a)
{
    size_t mask = (size_t)c->cap - 1, h = ctnas_arch_hash64(a) & mask;
    while (c->used[h] && memcmp(&c->keys[h], a, sizeof *a) != 0)
        h = (h + 1) & mask;
    return h;
}

/* Double the table (4096 slots at first) and rehash every entry; with
 * c->mu held.  On ENOMEM the old table is put back intact, and the
 * caller merely skips caching. */
static int cache_grow(struct ctnas_feat_cache *c)
{
    struct ctnas_feat_cache old = *c;
    int cap = c->cap ? c->cap * 2 : 4096;
    c->keys = ctnas_malloc((size_t)cap * sizeof *c->keys);
    c->used = ctnas_calloc((size_t)cap, 1);
    c->feat = ctnas_malloc((size_t)cap * (size_t)c->width * sizeof *c->feat);
    if (!c->keys || !c->used || !c->feat) {
        ctnas_free(c->keys);
        ctnas_free(c->used);
        ctnas_free(c->feat);
        c->keys = old.keys;
        c->used = old.used;
        c->feat = old.feat;
        return CTNAS_ENOMEM;
    }
    c->cap = cap;
    for (int i = 0; i < old.cap; i++) {
        if (!old.used[i])
            continue;
        size_t h = cache_slot(c, &old.keys[i]);
        c->used[h] = 1;
        c->keys[h] = old.keys[i];
        memcpy(c->feat + h * (size_t)c->width,
               old.feat + (size_t)i * (size_t)c->width,
               (size_t)c->width * sizeof *c->feat);
    }
    ctnas_free(old.keys);
    ctnas_free(old.used);
    ctnas_free(old.feat);
    return 0;
}

/* Copy the cached features of archs[idx[k]], k < n, into feat and keep
 * in idx, compacted, those not cached; returns their number.  With c->mu
 * held. */
static int cache_take(struct ctnas_feat_cache *c,
                      const struct ctnas_arch *archs, int *idx, int n,
                      ctnas_real *feat)
{
    int w = c->width, n_miss = 0;
    for (int k = 0; k < n; k++) {
        size_t h = c->cap ? cache_slot(c, &archs[idx[k]]) : 0;
        if (c->cap && c->used[h])
            memcpy(feat + (size_t)idx[k] * w, c->feat + h * (size_t)w,
                   (size_t)w * sizeof *feat);
        else
            idx[n_miss++] = idx[k];
    }
    return n_miss;
}

/* Cache f[k], the features of archs[idx[k]] (archs[k] when idx is NULL),
 * k < n; with c->mu held.  An entry another thread stored meanwhile is
 * kept; at CACHE_MAX, or out of memory, the rest are simply not cached. */
static void cache_put(struct ctnas_feat_cache *c,
                      const struct ctnas_arch *archs, const int *idx, int n,
                      const ctnas_real *f)
{
    int w = c->width;
    for (int k = 0; k < n; k++) {
        if (c->n >= CACHE_MAX)
            return;
        if (2 * (c->n + 1) > c->cap && cache_grow(c) < 0)
            return;
        const struct ctnas_arch *a = &archs[idx ? idx[k] : k];
        size_t h = cache_slot(c, a);
        if (c->used[h])
            continue;
        c->used[h] = 1;
        c->keys[h] = *a;
        memcpy(c->feat + h * (size_t)w, f + (size_t)k * w,
               (size_t)w * sizeof *f);
        c->n++;
    }
}

int ctnas_served_features(struct ctnas_served *s,
                          const struct ctnas_space *sp,
                          const struct ctnas_arch *archs, int n,
                          ctnas_real *feat)
{
    struct ctnas_feat_cache *c = s->cache;
    int w = c->width;
    /* Two short critical sections around one long computation: lookups
     * copy out hits, the misses are computed unlocked (the GCN forward is
     * the slow part), then stored.  Concurrent requests may compute the
     * same miss twice; the second store is skipped, which is harmless as
     * both results are equal.  (Computing the misses in blocks, each
     * looked up again, would let a request share a racing warm-up's work,
     * but made the cold path ~20% slower: a training job warms its model
     * before publishing it, so such races are rare.) */
    int *miss = ctnas_malloc((size_t)(n ? n : 1) * sizeof *miss);
    if (miss == NULL)
        return CTNAS_ENOMEM;
    for (int i = 0; i < n; i++)
        miss[i] = i;
    pthread_mutex_lock(&c->mu);
    int n_miss = cache_take(c, archs, miss, n, feat);
    pthread_mutex_unlock(&c->mu);
    int rc = 0;
    if (n_miss > 0) {
        struct ctnas_graph *g = ctnas_malloc((size_t)n_miss * sizeof *g);
        ctnas_real *f = ctnas_malloc((size_t)n_miss * (size_t)w * sizeof *f);
        if (g == NULL || f == NULL)
            rc = CTNAS_ENOMEM;
        for (int k = 0; rc == 0 && k < n_miss; k++)
            sp->to_graph(&archs[miss[k]], &g[k]);
        if (rc == 0)
            rc = ctnas_nac_features(s->nac, g, n_miss, f);
        if (rc == 0) {
            /* The caller's feat is filled before the cache is touched:
             * whatever happens to the cache, the answer is complete. */
            for (int k = 0; k < n_miss; k++)
                memcpy(feat + (size_t)miss[k] * w, f + (size_t)k * w,
                       (size_t)w * sizeof *feat);
            pthread_mutex_lock(&c->mu);
            cache_put(c, archs, miss, n_miss, f);
            pthread_mutex_unlock(&c->mu);
        }
        ctnas_free(g);
        ctnas_free(f);
    }
    ctnas_free(miss);
    return rc;
}

void ctnas_served_prime(struct ctnas_served *s,
                        const struct ctnas_arch *archs,
                        const ctnas_real *feat, int n)
{
    pthread_mutex_lock(&s->cache->mu);
    cache_put(s->cache, archs, NULL, n, feat);
    pthread_mutex_unlock(&s->cache->mu);
}

int ctnas_served_cached(struct ctnas_served *s)
{
    pthread_mutex_lock(&s->cache->mu);
    int n = s->cache->n;
    pthread_mutex_unlock(&s->cache->mu);
    return n;
}

/* The served models, at most one per (space, dataset).  The registry
 * holds one reference on each item; mu guards n, cap and items, never
 * the models themselves, which are immutable once published. */
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
    struct ctnas_served *s = ctnas_calloc(1, sizeof *s);
    if (s == NULL) {
        ctnas_nac_free(nac_take);
        return NULL;
    }
    /* The caller's reference.  Strings are truncated to the fields'
     * sizes, which the names in use fit. */
    atomic_init(&s->refs, 1);
    s->id = id;
    snprintf(s->space, sizeof s->space, "%s", space);
    snprintf(s->dataset, sizeof s->dataset, "%s", dataset);
    snprintf(s->metric, sizeof s->metric, "%s", metric ? metric : "");
    s->created = created;
    s->nac = nac_take;
    s->cache = ctnas_calloc(1, sizeof *s->cache);
    if (s->cache == NULL) {
        ctnas_nac_free(nac_take);
        ctnas_free(s);
        return NULL;
    }
    pthread_mutex_init(&s->cache->mu, NULL);
    s->cache->width = nac_take ? ctnas_nac_feature_width(nac_take) : 1;
    return s;
}

void ctnas_served_ref(struct ctnas_served *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void ctnas_served_release(struct ctnas_served *s)
{
    /* fetch_sub returns the old count: 1 means this was the last
     * reference.  Its sequentially consistent ordering makes every other
     * holder's use happen before the free. */
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    ctnas_nac_free(s->nac);
    cache_free(s->cache);
    ctnas_free(s);
}

struct ctnas_registry *ctnas_registry_new(void)
{
    struct ctnas_registry *reg = ctnas_calloc(1, sizeof *reg);
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
    ctnas_free(reg->items);
    pthread_mutex_destroy(&reg->mu);
    ctnas_free(reg);
}

struct ctnas_served *ctnas_registry_get(struct ctnas_registry *reg,
                                        const char *space,
                                        const char *dataset, int *ambiguous)
{
    struct ctnas_served *hit = NULL;
    int matches = 0;
    if (ambiguous)
        *ambiguous = 0;
    /* The reference is taken under mu: the registry's own reference
     * keeps the count above zero until publish swaps the item out, so a
     * reader can never revive a model being freed. */
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

struct ctnas_served *ctnas_registry_find(struct ctnas_registry *reg,
                                         int64_t id)
{
    struct ctnas_served *hit = NULL;
    pthread_mutex_lock(&reg->mu);
    for (int i = 0; i < reg->n && hit == NULL; i++)
        if (reg->items[i]->id == id)
            hit = reg->items[i];
    if (hit)
        ctnas_served_ref(hit);
    pthread_mutex_unlock(&reg->mu);
    return hit;
}

void ctnas_registry_datasets(struct ctnas_registry *reg, const char *space,
                             char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    pthread_mutex_lock(&reg->mu);
    for (int i = 0; i < reg->n && used < cap; i++)
        if (strcmp(reg->items[i]->space, space) == 0)
            used += (size_t)snprintf(buf + used, cap - used, "%s%s",
                                     used ? ", " : "",
                                     reg->items[i]->dataset);
    pthread_mutex_unlock(&reg->mu);
}

int ctnas_registry_publish(struct ctnas_registry *reg,
                           struct ctnas_served *s)
{
    /* Publish swaps one pointer under mu; readers holding the old model
     * keep it alive by their own references.  The displaced model is
     * released after unlocking, since freeing it may take a while and
     * would stall every reader. */
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
                ctnas_realloc(reg->items, (size_t)cap * sizeof *it);
            if (it == NULL) {
                /* s is not served and the previous state stands. */
                pthread_mutex_unlock(&reg->mu);
                ctnas_served_release(s);
                return CTNAS_ENOMEM;
            }
            reg->items = it;
            reg->cap = cap;
        }
        reg->items[reg->n++] = s;
    }
    pthread_mutex_unlock(&reg->mu);
    ctnas_served_release(old);
    return 0;
}

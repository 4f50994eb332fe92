/*
 * optim.c - Adam with L2 or decoupled weight decay over a flat array, and
 * its state's byte form.  Owns the moment arrays; nothing else.
 */
#include "config.h"
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

void ctnas_adam_config_default(struct ctnas_adam_config *cfg)
{
    cfg->lr = 1e-3;
    cfg->beta1 = 0.9;
    cfg->beta2 = 0.999;
    cfg->eps = 1e-8;
    cfg->weight_decay = 0.0;
    cfg->decoupled = 1;
}

int ctnas_adam_init(struct ctnas_adam *a, size_t n,
                    const struct ctnas_adam_config *cfg)
{
    memset(a, 0, sizeof *a);
    a->cfg = *cfg;
    a->n = n;
    /* Zeroed moments with t = 0 are what the bias correction assumes.
     * n = 0 still allocates one element: calloc(0) may return NULL,
     * which would read as ENOMEM. */
    a->m = ctnas_calloc(n ? n : 1, sizeof *a->m);
    a->v = ctnas_calloc(n ? n : 1, sizeof *a->v);
    if (a->m == NULL || a->v == NULL) {
        ctnas_adam_destroy(a);
        return CTNAS_ENOMEM;
    }
    return 0;
}

void ctnas_adam_destroy(struct ctnas_adam *a)
{
    if (a == NULL)
        return;
    ctnas_free(a->m);
    ctnas_free(a->v);
    a->m = a->v = NULL;
    a->n = 0;
}

/* Between ensemble members (nac_train.c), which share one state; the
 * configuration stays. */
void ctnas_adam_reset(struct ctnas_adam *a)
{
    memset(a->m, 0, a->n * sizeof *a->m);
    memset(a->v, 0, a->n * sizeof *a->v);
    a->t = 0;
}

/* m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 * theta -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps),
 * with g += wd theta first (L2) or theta *= 1 - lr wd first (AdamW). */
void ctnas_adam_step(struct ctnas_adam *a, ctnas_real *theta,
                     const ctnas_real *grad, double lr)
{
    const struct ctnas_adam_config *c = &a->cfg;
    a->t++;
    /* Bias correction: m and v start at 0, so early on they are
     * underestimates by the factors 1 - b1^t and 1 - b2^t.  Dividing
     * them out is folded into step = lr / bc1 and isb2 = 1 / sqrt(bc2),
     * computed once in double, so the loop has a single division.
     * eps stays outside the correction, as in Kingma and Ba. */
    double bc1 = 1.0 - pow(c->beta1, (double)a->t);
    double bc2 = 1.0 - pow(c->beta2, (double)a->t);
    ctnas_real b1 = (ctnas_real)c->beta1, b2 = (ctnas_real)c->beta2;
    ctnas_real step = (ctnas_real)(lr / bc1);
    ctnas_real isb2 = (ctnas_real)(1.0 / sqrt(bc2));
    ctnas_real eps = (ctnas_real)c->eps;
    /* Exactly one decay form is active: l2 feeds the moments, shrink
     * (1 - lr wd, AdamW) scales theta outside them, so the decay is not
     * divided by sqrt(v). */
    ctnas_real l2 = c->decoupled ? 0 : (ctnas_real)c->weight_decay;
    ctnas_real shrink =
        c->decoupled ? (ctnas_real)(1.0 - lr * c->weight_decay) : 1;
    ctnas_real *m = a->m, *v = a->v;
    for (size_t i = 0; i < a->n; i++) {
        ctnas_real g = grad[i] + l2 * theta[i];
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
#ifdef CTNAS_REAL_DOUBLE
        ctnas_real den = sqrt(v[i]) * isb2 + eps;
#else
        ctnas_real den = sqrtf(v[i]) * isb2 + eps;
#endif
        theta[i] = theta[i] * shrink - step * m[i] / den;
    }
}

/* The moments are saved as float32: in the daemon's float build that is
 * ctnas_real itself, so save and load are bit-exact; a double build (the
 * gradient tests) rounds them, which only touches a resume there. */
#define ADAM_HEADER 72
#define ADAM_VERSION 1
static const char adam_magic[8] = {'C', 'T', 'N', 'A', 'S', 'A', 'D', 'M'};

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_f64(unsigned char *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    put_u64(p, u);
}

static double get_f64(const unsigned char *p)
{
    uint64_t u = get_u64(p);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

size_t ctnas_adam_state_size(const struct ctnas_adam *a)
{
    return ADAM_HEADER + 8 * a->n;
}

/* Layout: magic 8, version u64 (decoupled in bit 32), n u64, t u64, lr
 * beta1 beta2 eps wd as f64 (40): 72 bytes; then m and v interleaved as
 * float32.  Every field is written little-endian byte by byte, so a
 * checkpoint reads back on any host. */
long ctnas_adam_save(const struct ctnas_adam *a, void *buf, size_t cap)
{
    size_t size = ctnas_adam_state_size(a);
    if (cap < size)
        return CTNAS_ETOOLARGE;
    unsigned char *p = buf;
    memcpy(p, adam_magic, 8);
    /* version and decoupled share one word: low 32 bits version */
    put_u64(p + 8, ADAM_VERSION | (uint64_t)(a->cfg.decoupled ? 1 : 0) << 32);
    put_u64(p + 16, a->n);
    put_u64(p + 24, a->t);
    put_f64(p + 32, a->cfg.lr);
    put_f64(p + 40, a->cfg.beta1);
    put_f64(p + 48, a->cfg.beta2);
    put_f64(p + 56, a->cfg.eps);
    put_f64(p + 64, a->cfg.weight_decay);
    unsigned char *q = p + ADAM_HEADER;
    for (size_t i = 0; i < a->n; i++) {
        float mv[2] = {(float)a->m[i], (float)a->v[i]};
        for (int k = 0; k < 2; k++) {
            uint32_t u;
            memcpy(&u, &mv[k], sizeof u);
            for (int b = 0; b < 4; b++)
                q[8 * i + 4 * k + b] = (unsigned char)(u >> (8 * b));
        }
    }
    return (long)size;
}

int ctnas_adam_load(struct ctnas_adam *a, const void *buf, size_t len,
                    struct ctnas_err *err)
{
    const unsigned char *p = buf;
    if (len < ADAM_HEADER || memcmp(p, adam_magic, 8) != 0)
        return ctnas_err_set(err, CTNAS_EINVAL, "optimizer",
                             "not an Adam state");
    uint64_t vw = get_u64(p + 8);
    if ((uint32_t)vw != ADAM_VERSION)
        return ctnas_err_set(err, CTNAS_EINVAL, "optimizer",
                             "Adam state format %u, this build reads %d",
                             (unsigned)(uint32_t)vw, ADAM_VERSION);
    /* The parameter count must match the model it will drive: moments
     * of another shape would silently misalign.  Nothing in a is written
     * until every check has passed. */
    uint64_t n = get_u64(p + 16);
    if (n != a->n || len != ADAM_HEADER + 8 * a->n)
        return ctnas_err_set(err, CTNAS_EINVAL, "optimizer",
                             "Adam state is for %llu parameters, not %zu",
                             (unsigned long long)n, a->n);
    a->t = get_u64(p + 24);
    a->cfg.lr = get_f64(p + 32);
    a->cfg.beta1 = get_f64(p + 40);
    a->cfg.beta2 = get_f64(p + 48);
    a->cfg.eps = get_f64(p + 56);
    a->cfg.weight_decay = get_f64(p + 64);
    a->cfg.decoupled = (int)(vw >> 32) & 1;
    const unsigned char *q = p + ADAM_HEADER;
    for (size_t i = 0; i < a->n; i++) {
        float mv[2];
        for (int k = 0; k < 2; k++) {
            uint32_t u = 0;
            for (int b = 0; b < 4; b++)
                u |= (uint32_t)q[8 * i + 4 * k + b] << (8 * b);
            memcpy(&mv[k], &u, sizeof u);
        }
        a->m[i] = (ctnas_real)mv[0];
        a->v[i] = (ctnas_real)mv[1];
    }
    return 0;
}

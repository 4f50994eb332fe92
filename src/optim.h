/*
 * optim.h - Adam over one flat parameter array (the comparator's theta).
 *
 * Weight decay comes in both forms, chosen by cfg.decoupled:
 *   0  L2 (PyTorch's Adam weight_decay, the CTNAS authors' choice):
 *      g += wd * theta before the moment updates;
 *   1  decoupled (AdamW): theta -= lr * wd * theta beside the Adam step.
 * The state (moments and step count) serialises to a byte string so a
 * training job can be checkpointed and resumed bit-exactly.
 */
#ifndef CTNAS_OPTIM_H
#define CTNAS_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "blas.h"
#include "ctnas.h"

struct ctnas_adam_config {
    double lr;           /* base learning rate (a step may override it) */
    double beta1, beta2; /* moment decay rates */
    double eps;          /* added to sqrt(v_hat) */
    double weight_decay;
    int decoupled;       /* 1: AdamW; 0: L2 added to the gradient */
};

/* lr 1e-3, betas 0.9/0.999, eps 1e-8, no weight decay, decoupled. */
void ctnas_adam_config_default(struct ctnas_adam_config *cfg);

struct ctnas_adam {
    struct ctnas_adam_config cfg;
    size_t n;
    uint64_t t;      /* steps taken */
    ctnas_real *m;   /* first moments, n */
    ctnas_real *v;   /* second moments, n */
};

/* Zeroed state for n parameters; CTNAS_ENOMEM. */
int ctnas_adam_init(struct ctnas_adam *a, size_t n,
                    const struct ctnas_adam_config *cfg);
/* Accepts NULL and zeroed structs. */
void ctnas_adam_destroy(struct ctnas_adam *a);
/* Forget the moments and the step count. */
void ctnas_adam_reset(struct ctnas_adam *a);
/* One step on theta with gradient grad at learning rate lr (the caller's
 * schedule; pass a->cfg.lr for a constant rate). */
void ctnas_adam_step(struct ctnas_adam *a, ctnas_real *theta,
                     const ctnas_real *grad, double lr);

/* State as bytes: "CTNASADM", version, n, t, hyperparameters, moments as
 * float32 (little-endian). */
size_t ctnas_adam_state_size(const struct ctnas_adam *a);
long ctnas_adam_save(const struct ctnas_adam *a, void *buf, size_t cap);
/* Restore into an initialised a of the same n (CTNAS_EINVAL otherwise). */
int ctnas_adam_load(struct ctnas_adam *a, const void *buf, size_t len,
                    struct ctnas_err *err);

#endif

/*
 * nac_train.h - training the comparator on measured architectures, and
 * the Kendall tau figures it is judged by.
 *
 * Training draws labelled pairs from batches of the training set (label 1
 * when a's accuracy is higher, 0 when lower, 0.5 on a tie), minimises the
 * mean binary cross-entropy with Adam, and can hold out a seeded fraction
 * of the training set to stop early on its Kendall tau.  An ensemble
 * trains several members from different seeds and averages their logits.
 *
 * Everything is a pure function of (config, data, seed) and the BLAS
 * thread count: the same inputs give bit-identical weights.  It allocates
 * all its memory up front; a run is safe on any thread (no globals) and
 * cancellable through the progress callback, which is consulted at least
 * every CTNAS_NAC_CANCEL_MS milliseconds.
 */
#ifndef CTNAS_NAC_TRAIN_H
#define CTNAS_NAC_TRAIN_H

#include <stdint.h>

#include "nac.h"

/* How the pairs of a batch are formed. */
enum ctnas_nac_pairing {
    CTNAS_NAC_PAIRS_PERM = 0, /* the authors': batch vs a permutation of it */
    CTNAS_NAC_PAIRS_ALL = 1,  /* every ordered pair i != j of the batch */
};

/* "perm", "all" (NULL-terminated); name -> value or -1. */
extern const char *const ctnas_nac_pairing_names[];
const char *ctnas_nac_pairing_name(int pairing);
int ctnas_nac_pairing_parse(const char *name);

enum ctnas_nac_schedule {
    CTNAS_NAC_LR_CONSTANT = 0,
    CTNAS_NAC_LR_COSINE = 1, /* lr -> lr * lr_min over the epochs */
};

struct ctnas_nac_train_config {
    struct ctnas_nac_config model; /* model.n_types: the space's */
    int epochs;
    int batch;          /* architectures per batch */
    int pairing;        /* enum ctnas_nac_pairing */
    double lr;
    int schedule;       /* enum ctnas_nac_schedule */
    double lr_min;      /* cosine floor as a fraction of lr */
    double beta1, beta2, eps;
    double weight_decay;
    int decoupled;      /* 1: AdamW decay; 0: L2 (the authors') */
    int members;        /* ensemble size, 1..CTNAS_NAC_MAX_MEMBERS */
    double holdout;     /* fraction of the training set held out, 0: none */
    int eval_every;     /* epochs between hold-out evaluations */
    int patience;       /* evaluations without gain before stopping;
                           0: train all epochs, keep the best */
    int dedupe;         /* compute equal node states once (speed only) */
    uint64_t seed;
    /* Emphasis on the top of the ranking (LambdaRank-like): a pair's
     * loss is weighted by 1 + top_weight * exp(-rank / (top_scale * n))
     * where rank is the number of the n training architectures measured
     * strictly better than the pair's better member.  A search needs the
     * comparator to order the best cells right, not the bad ones.
     * top_weight 0: every pair counts the same (the paper). */
    double top_weight;  /* >= 0 */
    double top_scale;   /* (0, 1]: fraction of the set that is "top" */
};

/* The top_weight rule on its own: out[i] = 1 + top_weight *
 * exp(-rank_i / (top_scale * n_ref)), rank_i = how many of ref[0 ..
 * n_ref) are strictly greater than val[i] (equal values share a weight;
 * the order of ref does not matter).  The search's fine-tuning uses it
 * too, so both weigh the labelled set alike.  n_ref >= 1, top_scale > 0.
 * CTNAS_ENOMEM. */
int ctnas_nac_top_weights(const double *ref, int n_ref, const double *val,
                          int n, double top_weight, double top_scale,
                          ctnas_real *out);

/* The default recipe (see nac_train.c for the measurements behind it). */
void ctnas_nac_train_config_default(struct ctnas_nac_train_config *cfg);
/* The default recipe with top_weight 300, top_scale 0.05 and the
 * mean_output readout: for a comparator that a search will use.  It
 * orders the best cells better and the whole set a little worse (see
 * nac_train.c). */
void ctnas_nac_train_config_search(struct ctnas_nac_train_config *cfg);
/* The authors' recipe: concat head, permuted pairs, lr 2e-4, betas
 * 0.5/0.999, L2 weight decay 5e-4, 200 epochs. */
void ctnas_nac_train_config_paper(struct ctnas_nac_train_config *cfg);
int ctnas_nac_train_config_check(const struct ctnas_nac_train_config *cfg,
                                 struct ctnas_err *err);
/* Whether n architectures are enough for cfg: its hold-out (at least 2
 * when there is one) must leave at least 2 to train on.  0, or
 * CTNAS_EINVAL with field "holdout" (or "" without a hold-out). */
int ctnas_nac_train_size_check(const struct ctnas_nac_train_config *cfg,
                               int n, struct ctnas_err *err);

/* What the progress callback sees. */
struct ctnas_nac_progress {
    int member, members;  /* member being trained (0-based) */
    int epoch, epochs;    /* epochs completed by this member */
    double loss;          /* mean training loss of the last epoch */
    double pair_acc;      /* fraction of its decided pairs ordered right */
    double holdout_tau;   /* last hold-out Kendall tau, NaN without one */
    int in_epoch;         /* 1: a mid-epoch check, only for cancelling */
};

/* Return nonzero to cancel the run (it then returns CTNAS_ECANCELED). */
typedef int (*ctnas_nac_progress_fn)(const struct ctnas_nac_progress *p,
                                     void *user);

#define CTNAS_NAC_CANCEL_MS 200

struct ctnas_nac_train_result {
    double seconds;          /* wall clock */
    double cpu_seconds;      /* CPU time of the calling thread (BLAS
                                threads not included) */
    double loss, pair_acc;   /* last epoch of the last member */
    double holdout_tau;      /* mean over members of the kept tau, or NaN */
    int epochs_kept[CTNAS_NAC_MAX_MEMBERS]; /* epoch of the kept weights */
    long steps;
};

/* Train a new comparator on n architectures (graphs[i], accuracy acc[i]).
 * On success *out is a new model (free with ctnas_nac_free).  Errors:
 * CTNAS_EINVAL (config, n < 2), CTNAS_ENOMEM, CTNAS_ECANCELED.  progress
 * may be NULL; res may be NULL. */
int ctnas_nac_train(const struct ctnas_nac_train_config *cfg,
                    const struct ctnas_graph *graphs, const double *acc,
                    int n, ctnas_nac_progress_fn progress, void *user,
                    struct ctnas_nac **out, struct ctnas_nac_train_result *res,
                    struct ctnas_err *err);

/* The same on n architectures of space sp (archs[i], accuracy acc[i]):
 * their graphs are built here, and the model's input width is the
 * space's, whatever cfg->model.n_types says. */
int ctnas_nac_train_archs(const struct ctnas_nac_train_config *cfg,
                          const struct ctnas_space *sp,
                          const struct ctnas_arch *archs, const double *acc,
                          int n, ctnas_nac_progress_fn progress, void *user,
                          struct ctnas_nac **out,
                          struct ctnas_nac_train_result *res,
                          struct ctnas_err *err);

/* ------------------------------------------------------------------ */
/* Kendall tau */

/* Pairwise tau of method.md: over all i < j, the mean of
 * sign(p(i, j) - 0.5) * sign(acc_i - acc_j), from features (see
 * ctnas_nac_features).  *pair_acc (if not NULL): the fraction of pairs
 * with distinct accuracies whose order p gets right. */
double ctnas_nac_tau_pairwise(const struct ctnas_nac *m,
                              const ctnas_real *feat, const double *acc,
                              int n, double *pair_acc);
/* Kendall's tau-b between two score lists (ties handled as scipy does);
 * O(n^2). */
double ctnas_kendall_tau_b(const double *x, const double *y, int n);
/* Tau-b of the ranking by mean win probability against the truth. */
double ctnas_nac_tau_score(const struct ctnas_nac *m, const ctnas_real *feat,
                           const double *acc, int n);

#endif

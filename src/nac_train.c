/*
 * nac_train.c - the comparator's training loop (pair sampling, BCE, Adam,
 * learning-rate schedule, hold-out early stopping, ensembles) and the
 * Kendall tau helpers.
 *
 * Owns the memory of one run; touches no global state except through
 * BLAS.  Randomness: one struct ctnas_rng per run, seeded from cfg.seed.
 */
#include "config.h"
#include "nac_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mem.h"
#include "optim.h"

const char *const ctnas_nac_pairing_names[] = {"perm", "all", NULL};

const char *ctnas_nac_pairing_name(int pairing)
{
    return ctnas_name_of(ctnas_nac_pairing_names, pairing);
}

int ctnas_nac_pairing_parse(const char *name)
{
    return ctnas_name_index(ctnas_nac_pairing_names, name);
}

/* The default recipe, chosen by `ctnasd eval-nac` (test = 1,000 other
 * architectures, median pairwise Kendall tau over seeds 1-5, one BLAS
 * thread; NB201 = NAS-Bench-201 CIFAR-10, NB101 = NAS-Bench-101
 * validation accuracy):
 *
 *   model: d 128, L 4, antisymmetric "diff" head, successors with their
 *          own weight (bidir 2), no row normalisation;
 *   train: every ordered pair of a batch of 64, 100 epochs, Adam lr 1e-3
 *          (betas 0.9/0.999) on a cosine schedule to 0, no weight decay,
 *          one member, no hold-out.
 *   NB201 100: 0.770, NB201 424: 0.858, NB101 423: 0.795 (2-3 s).
 *
 * What moved it there (each change measured against the previous recipe;
 * NB201 424 / NB101 423 medians):
 *   paper recipe through this code (concat, L 2, permuted pairs, lr 2e-4,
 *     200 epochs): NB201 424 0.766, 100: 0.750;
 *   L 4, all pairs, lr 1e-3 cosine, diff head, batch 256, 300 epochs:
 *     0.826 / 0.751 (concat head instead: - / 0.743; MLP head: - / 0.757
 *     at 13x the time; norm 1: - / 0.735; L 2, 3, 6: - / 0.735, 0.749,
 *     0.744; d 64, 256: - / 0.741, 0.755; weight decay: no change);
 *   successors aggregated with the same weight (bidir 1): 0.843 / 0.724;
 *   successors with their own weight (bidir 2): 0.858 / 0.785;
 *   150 epochs instead of 300: 0.854 / 0.786 (half the time);
 *   batch 64 instead of 256: 0.862 / 0.795; then 100 epochs: 0.858 /
 *     0.795 (two thirds of the time);
 *   not taken: a 3-member ensemble (0.863 / 0.799 at 3x the time),
 *     early stopping on a 10% hold-out (- / 0.790: the data it withholds
 *     costs more than the stopping gains), lr 5e-4 (- / 0.790), L2 decay
 *     1e-4 (- / 0.794). */
void ctnas_nac_train_config_default(struct ctnas_nac_train_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    ctnas_nac_config_default(&cfg->model);
    cfg->epochs = 100;
    cfg->batch = 64;
    cfg->pairing = CTNAS_NAC_PAIRS_ALL;
    cfg->lr = 1e-3;
    cfg->schedule = CTNAS_NAC_LR_COSINE;
    cfg->lr_min = 0.0;
    cfg->beta1 = 0.9;
    cfg->beta2 = 0.999;
    cfg->eps = 1e-8;
    cfg->weight_decay = 0.0;
    cfg->decoupled = 1;
    cfg->members = 1;
    cfg->holdout = 0.0;
    cfg->eval_every = 10;
    cfg->patience = 0;
    cfg->dedupe = 1;
    cfg->seed = 1;
    cfg->top_weight = 0.0;
    cfg->top_scale = 0.05;
}

/* Top weighting, measured on NAS-Bench-201 CIFAR-10 with 100 random
 * training cells: the true accuracy of the cell the comparator ranks first
 * over the whole space, mean over seeds 1-10 / 11-30 (`eval-search --diag
 * --steps 1`), and the pairwise Kendall tau on 1,000 test cells (median,
 * seeds 1-5, `eval-nac`):
 *   top_weight 0 (default): 93.53 / 93.99; tau 0.770 (424 cells: 0.858)
 *   3 (top_scale 0.05, 0.15): 93.53 / 94.11, 93.65 / 94.09
 *   10 (0.05, 0.15): 93.81 / 94.14, 93.80 / 94.14
 *   30 (0.03, 0.05, 0.15): 93.85 / 94.20, 93.86 / 94.22, 93.79 / 94.16
 *   100 (0.05, 0.1): 93.97 / 94.23, 93.93 / 94.18; tau 0.750 (424: 0.833)
 *   300 (0.05): 93.97 / 94.24;  100 with 3 members: 93.94 / 94.23
 * Other knobs moved the same figure by less (dim 32/64: 93.70 / 93.75,
 * 93.58 / 93.92; L 1/2: 93.72 / 93.74, 93.44 / 93.77; 30/300 epochs:
 * 93.65 / 93.82, 93.47 / 93.99; 5 members: 93.47 / 94.02; lr 3e-3: 93.37 /
 * 94.15).  The whole-set tau falls, so the serving default stays 0.
 *
 * Session 3 chose the rest on seeds disjoint from 1-10, the ones the
 * issue's target is judged on.  Same first-choice figure, seeds 101-200,
 * each against 94.087 for top_weight 100 with the mean readout: top_weight
 * 30 / 300 / 1000: 94.044 / 94.127 / 94.103; top_scale 0.02 / 0.1: 94.065
 * / 94.006; readout mean_output / output: 94.129 / 94.130; 3 members:
 * 94.110; d 64 / 256: 94.131 / 94.087; L 2 / 6: 94.036 / 94.039; weight
 * decay 0.1: 94.104.  Whole searches (answer accuracy, seeds 101-150):
 * 94.136 as before, 94.134 with mean_output, 94.174 with top_weight 300,
 * 94.223 with both (3 members on top: 94.214 at twice the time); on seeds
 * 151-200 that last is 94.046 against 94.055 as before, so over 100 seeds
 * the gain is +0.04, about one standard error.  mean_output also lifts
 * the tau of 100 NB201 cells (0.771 -> 0.783; 424: 0.858 -> 0.859) but not
 * NB101's (423: 0.795 -> 0.790), so serving keeps the mean. */
void ctnas_nac_train_config_search(struct ctnas_nac_train_config *cfg)
{
    ctnas_nac_train_config_default(cfg);
    cfg->top_weight = 300.0;
    cfg->top_scale = 0.05;
    cfg->model.readout = CTNAS_NAC_READOUT_MEAN_OUT;
}

void ctnas_nac_train_config_paper(struct ctnas_nac_train_config *cfg)
{
    ctnas_nac_train_config_default(cfg);
    cfg->model.head = CTNAS_NAC_HEAD_CONCAT;
    cfg->model.layers = 2;
    cfg->model.norm = 0;
    cfg->model.bidir = 0;
    cfg->epochs = 200;
    cfg->batch = 256;
    cfg->pairing = CTNAS_NAC_PAIRS_PERM;
    cfg->lr = 2e-4;
    cfg->schedule = CTNAS_NAC_LR_CONSTANT;
    cfg->beta1 = 0.5;
    cfg->beta2 = 0.999;
    cfg->weight_decay = 5e-4;
    cfg->decoupled = 0;
}

int ctnas_nac_train_config_check(const struct ctnas_nac_train_config *cfg,
                                 struct ctnas_err *err)
{
    int rc = ctnas_nac_config_check(&cfg->model, err);
    if (rc != 0)
        return rc;
    if (cfg->epochs < 0 || cfg->epochs > 1000000)
        return ctnas_err_set(err, CTNAS_EINVAL, "epochs",
                             "epochs must be 0..1000000");
    if (cfg->batch < 2 || cfg->batch > 4096)
        return ctnas_err_set(err, CTNAS_EINVAL, "batch",
                             "batch must be 2..4096");
    if (cfg->pairing < 0 || cfg->pairing > CTNAS_NAC_PAIRS_ALL)
        return ctnas_err_set(err, CTNAS_EINVAL, "pairs",
                             "pairs must be perm or all");
    if (!(cfg->lr > 0 && cfg->lr < 10))
        return ctnas_err_set(err, CTNAS_EINVAL, "lr", "lr must be in (0, 10)");
    if (cfg->schedule != CTNAS_NAC_LR_CONSTANT &&
        cfg->schedule != CTNAS_NAC_LR_COSINE)
        return ctnas_err_set(err, CTNAS_EINVAL, "schedule",
                             "schedule must be constant or cosine");
    if (!(cfg->lr_min >= 0 && cfg->lr_min <= 1))
        return ctnas_err_set(err, CTNAS_EINVAL, "lr_min",
                             "lr_min must be in [0, 1]");
    if (!(cfg->beta1 >= 0 && cfg->beta1 < 1) ||
        !(cfg->beta2 >= 0 && cfg->beta2 < 1))
        return ctnas_err_set(err, CTNAS_EINVAL, "betas",
                             "betas must be in [0, 1)");
    if (!(cfg->eps > 0) || !(cfg->weight_decay >= 0 && cfg->weight_decay < 1))
        return ctnas_err_set(err, CTNAS_EINVAL, "weight_decay",
                             "eps must be > 0 and weight decay in [0, 1)");
    if (cfg->members < 1 || cfg->members > CTNAS_NAC_MAX_MEMBERS)
        return ctnas_err_set(err, CTNAS_EINVAL, "members",
                             "members must be 1..%d", CTNAS_NAC_MAX_MEMBERS);
    if (!(cfg->holdout >= 0 && cfg->holdout < 0.9))
        return ctnas_err_set(err, CTNAS_EINVAL, "holdout",
                             "holdout must be in [0, 0.9)");
    if (!(cfg->top_weight >= 0 && cfg->top_weight <= 1e6) ||
        !(cfg->top_scale > 0 && cfg->top_scale <= 1))
        return ctnas_err_set(err, CTNAS_EINVAL, "top_weight",
                             "top_weight must be in [0, 1e6], top_scale in "
                             "(0, 1]");
    if (cfg->eval_every < 1 || cfg->patience < 0)
        return ctnas_err_set(err, CTNAS_EINVAL, "eval_every",
                             "eval_every must be >= 1, patience >= 0");
    return 0;
}

/* ------------------------------------------------------------------ */
/* Kendall tau */

static int sgn(double x)
{
    return (x > 0) - (x < 0);
}

double ctnas_nac_tau_pairwise(const struct ctnas_nac *m,
                              const ctnas_real *feat, const double *acc,
                              int n, double *pair_acc)
{
    int w = ctnas_nac_feature_width(m);
    double sum = 0, npairs = 0, right = 0, decided = 0;
    int linear = m->cfg.head != CTNAS_NAC_HEAD_MLP;
    for (int i = 0; i < n; i++) {
        const ctnas_real *fi = feat + (size_t)i * w;
        for (int j = i + 1; j < n; j++) {
            const ctnas_real *fj = feat + (size_t)j * w;
            double s = linear ? (double)fi[0] + (double)fj[1]
                              : ctnas_nac_feature_logit(m, fi, fj);
            int t = sgn(acc[i] - acc[j]), p = sgn(s);
            sum += p * t;
            npairs++;
            if (t != 0) {
                decided++;
                right += p == t;
            }
        }
    }
    if (pair_acc != NULL)
        *pair_acc = decided > 0 ? right / decided : 0;
    return npairs > 0 ? sum / npairs : 0;
}

double ctnas_kendall_tau_b(const double *x, const double *y, int n)
{
    double conc = 0, n1 = 0, n2 = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            int a = sgn(x[i] - x[j]), b = sgn(y[i] - y[j]);
            conc += a * b;
            n1 += a != 0;
            n2 += b != 0;
        }
    if (n1 == 0 || n2 == 0)
        return 0;
    return conc / sqrt(n1 * n2);
}

double ctnas_nac_tau_score(const struct ctnas_nac *m, const ctnas_real *feat,
                           const double *acc, int n)
{
    double *score = ctnas_malloc((size_t)(n > 0 ? n : 1) * sizeof *score);
    double t = NAN;
    if (score != NULL && ctnas_nac_mean_win(m, feat, n, score) == 0)
        t = ctnas_kendall_tau_b(score, acc, n);
    ctnas_free(score);
    return t;
}

/* ------------------------------------------------------------------ */
/* Training */

static double thread_cpu_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Everything one run allocates. */
struct run {
    const struct ctnas_nac_train_config *cfg;
    const struct ctnas_graph *graphs;
    const double *acc;
    struct ctnas_nac_layout lay;
    struct ctnas_nac_batch batch;
    struct ctnas_nac_cache cache;
    struct ctnas_nac_pairs pairs;
    struct ctnas_adam adam;
    ctnas_real *grad, *best;
    int *train_idx, n_train;  /* indices into graphs */
    int *hold_idx, n_hold;
    int *order, *perm;
    double *bval;             /* measured values of the batch's graphs */
    ctnas_real *gw_all;       /* top_weight: per architecture (NULL: off) */
    ctnas_real *bgw;          /* ... and per graph of the batch */
    struct ctnas_graph *hold_graphs;
    double *hold_acc;
    ctnas_real *hold_feat;
    ctnas_nac_progress_fn progress;
    void *user;
    double last_check;
};

static void run_destroy(struct run *r)
{
    ctnas_nac_batch_destroy(&r->batch);
    ctnas_nac_cache_destroy(&r->cache);
    ctnas_nac_pairs_destroy(&r->pairs);
    ctnas_adam_destroy(&r->adam);
    ctnas_free(r->grad);
    ctnas_free(r->best);
    ctnas_free(r->train_idx);
    ctnas_free(r->hold_idx);
    ctnas_free(r->order);
    ctnas_free(r->perm);
    ctnas_free(r->bval);
    ctnas_free(r->gw_all);
    ctnas_free(r->bgw);
    ctnas_free(r->hold_graphs);
    ctnas_free(r->hold_acc);
    ctnas_free(r->hold_feat);
}

static ctnas_real label(double a, double b)
{
    return a > b ? 1 : (a < b ? 0 : (ctnas_real)0.5);
}

/* Fill r->pairs for the batch of graphs bidx[0 .. nb). */
static void make_pairs(struct run *r, const int *bidx, int nb,
                       struct ctnas_rng *rng)
{
    struct ctnas_nac_pairs *p = &r->pairs;
    const double *acc = r->acc;
    p->n = 0;
    p->dense = 0;
    p->weight = NULL;
    if (r->gw_all != NULL) {
        for (int i = 0; i < nb; i++)
            r->bgw[i] = r->gw_all[bidx[i]];
        p->weight = r->bgw;
    }
    if (r->cfg->pairing == CTNAS_NAC_PAIRS_PERM) {
        for (int i = 0; i < nb; i++)
            r->perm[i] = i;
        ctnas_rng_shuffle(rng, r->perm, nb);
        for (int i = 0; i < nb; i++) {
            int j = r->perm[i];
            if (j == i)
                continue;
            p->a[p->n] = i;
            p->b[p->n] = j;
            p->y[p->n] = label(acc[bidx[i]], acc[bidx[j]]);
            p->n++;
        }
    } else {
        /* every ordered pair: the loss streams over them */
        for (int i = 0; i < nb; i++)
            r->bval[i] = acc[bidx[i]];
        p->dense = 1;
        p->value = r->bval;
    }
}

static int cmp_desc(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a < b) - (a > b);
}

int ctnas_nac_top_weights(const double *ref, int n_ref, const double *val,
                          int n, double top_weight, double top_scale,
                          ctnas_real *out)
{
    /* sorted descending, so a binary search gives the count of strictly
     * greater values in O(log n_ref) */
    double *sorted =
        ctnas_malloc((size_t)(n_ref > 0 ? n_ref : 1) * sizeof *sorted);
    if (sorted == NULL)
        return CTNAS_ENOMEM;
    memcpy(sorted, ref, (size_t)n_ref * sizeof *sorted);
    qsort(sorted, (size_t)n_ref, sizeof *sorted, cmp_desc);
    double scale = top_scale * n_ref;
    for (int i = 0; i < n; i++) {
        int lo = 0, hi = n_ref;
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (sorted[mid] > val[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        out[i] = (ctnas_real)(1 + top_weight * exp(-lo / scale));
    }
    ctnas_free(sorted);
    return 0;
}

/* The top_weight of every architecture (indexed like graphs; hold-out
 * ones unused), ranked among the training set only: the hold-out must not
 * shape the training.  CTNAS_ENOMEM. */
static int top_weights(struct run *r)
{
    const struct ctnas_nac_train_config *cfg = r->cfg;
    int nt = r->n_train, n = nt + r->n_hold;
    double *ref = ctnas_malloc((size_t)nt * sizeof *ref);
    r->gw_all = ctnas_malloc((size_t)n * sizeof *r->gw_all);
    r->bgw = ctnas_malloc((size_t)(cfg->batch > 0 ? cfg->batch : 1) *
                          sizeof *r->bgw);
    int rc = CTNAS_ENOMEM;
    if (ref != NULL && r->gw_all != NULL && r->bgw != NULL) {
        for (int i = 0; i < nt; i++)
            ref[i] = r->acc[r->train_idx[i]];
        rc = ctnas_nac_top_weights(ref, nt, r->acc, n, cfg->top_weight,
                                   cfg->top_scale, r->gw_all);
    }
    ctnas_free(ref);
    return rc;
}

/* Pairwise tau of one member (theta) on the hold-out set. */
/* Architectures held out of n: a seeded share, at least 2 (a Kendall
 * tau needs a pair). */
static int holdout_count(const struct ctnas_nac_train_config *cfg, int n)
{
    int n_hold = (int)(cfg->holdout * n + 0.5);
    return cfg->holdout > 0 && n_hold < 2 ? 2 : n_hold;
}

int ctnas_nac_train_size_check(const struct ctnas_nac_train_config *cfg,
                               int n, struct ctnas_err *err)
{
    int n_hold = holdout_count(cfg, n);
    if (n - n_hold >= 2)
        return 0;
    if (n_hold == 0)
        return ctnas_err_set(err, CTNAS_EINVAL, "",
                             "need at least 2 training architectures, "
                             "have %d", n);
    return ctnas_err_set(err, CTNAS_EINVAL, "holdout",
                         "holdout %g of %d architectures holds %d out (at "
                         "least 2) and leaves %d to train on, fewer than "
                         "2: hold out less, or train on more", cfg->holdout,
                         n, n_hold, n - n_hold);
}

static double holdout_tau(struct run *r, const ctnas_real *theta)
{
    const struct ctnas_nac_config *mc = &r->cfg->model;
    int fw = r->lay.feat_width, cap = r->cache.cap_graphs;
    for (int i0 = 0; i0 < r->n_hold; i0 += cap) {
        int cn = r->n_hold - i0 < cap ? r->n_hold - i0 : cap;
        ctnas_nac_batch_build(&r->batch, mc, r->hold_graphs + i0, NULL,
                              cn);
        ctnas_nac_forward(mc, &r->lay, theta, &r->batch, &r->cache);
        ctnas_nac_head_prep(mc, &r->lay, theta, r->cache.pool, cn,
                            r->hold_feat + (size_t)i0 * fw);
    }
    /* A one-member model view over theta: features are the head terms. */
    struct ctnas_nac view = {.cfg = *mc, .lay = r->lay, .n_members = 1,
                             .theta = (ctnas_real *)theta};
    return ctnas_nac_tau_pairwise(&view, r->hold_feat, r->hold_acc, r->n_hold,
                                  NULL);
}

static int check_cancel(struct run *r, struct ctnas_nac_progress *pr)
{
    if (r->progress == NULL)
        return 0;
    double t = ctnas_now_seconds();
    if (t - r->last_check < CTNAS_NAC_CANCEL_MS * 1e-3)
        return 0;
    r->last_check = t;
    pr->in_epoch = 1;
    return r->progress(pr, r->user);
}

static double lr_at(const struct ctnas_nac_train_config *cfg, int epoch)
{
    if (cfg->schedule == CTNAS_NAC_LR_CONSTANT || cfg->epochs <= 1)
        return cfg->lr;
    double f = (double)epoch / (double)cfg->epochs;
    double lo = cfg->lr * cfg->lr_min;
    return lo + 0.5 * (cfg->lr - lo) * (1.0 + cos(3.141592653589793 * f));
}

/* Train member k into theta.  Returns 0 or CTNAS_ECANCELED. */
static int train_member(struct run *r, int k, ctnas_real *theta,
                        struct ctnas_nac_train_result *res)
{
    const struct ctnas_nac_train_config *cfg = r->cfg;
    const struct ctnas_nac_config *mc = &cfg->model;
    size_t np = r->lay.n_params;
    struct ctnas_rng rng;
    /* Member k's stream: independent of the other members'. */
    ctnas_rng_seed(&rng, cfg->seed * 0x9e3779b97f4a7c15ULL +
                             0x632be59bd9b4e019ULL * (uint64_t)(k + 1));
    ctnas_nac_init_params(mc, &r->lay, theta, &rng);
    ctnas_adam_reset(&r->adam);

    int nt = r->n_train;
    int bs = cfg->batch < nt ? cfg->batch : nt;
    double best_tau = -2;
    int best_epoch = 0, since_best = 0;
    struct ctnas_nac_progress pr = {.member = k, .members = cfg->members,
                                    .epochs = cfg->epochs,
                                    .holdout_tau = NAN};
    for (int i = 0; i < nt; i++)
        r->order[i] = r->train_idx[i];
    if (r->n_hold > 0) {
        best_tau = holdout_tau(r, theta);
        memcpy(r->best, theta, np * sizeof *theta);
        pr.holdout_tau = best_tau;
    }
    for (int ep = 0; ep < cfg->epochs; ep++) {
        double lr = lr_at(cfg, ep), lsum = 0;
        long right = 0, decided = 0, npairs = 0;
        ctnas_rng_shuffle(&rng, r->order, nt);
        for (int s = 0; s + 1 < nt; s += bs) {
            /* a last batch of one has no pair: it sits this epoch out
             * (the next shuffle puts it elsewhere) */
            int nb = nt - s < bs ? nt - s : bs;
            if (nb < 2)
                break;
            const int *bidx = r->order + s;
            ctnas_nac_batch_build(&r->batch, mc, r->graphs, bidx, nb);
            make_pairs(r, bidx, nb, &rng);
            memset(r->grad, 0, np * sizeof *r->grad);
            struct ctnas_nac_loss_stats st;
            ctnas_nac_loss(mc, &r->lay, theta, &r->batch, &r->cache,
                           &r->pairs, r->grad, &st);
            ctnas_adam_step(&r->adam, theta, r->grad, lr);
            res->steps++;
            lsum += st.loss * st.n_pairs;
            npairs += st.n_pairs;
            right += st.n_correct;
            decided += st.n_decided;
            pr.epoch = ep;
            if (check_cancel(r, &pr))
                return CTNAS_ECANCELED;
        }
        pr.epoch = ep + 1;
        pr.loss = npairs ? lsum / npairs : 0;
        pr.pair_acc = decided ? (double)right / decided : 0;
        int stop = 0;
        if (r->n_hold > 0 &&
            ((ep + 1) % cfg->eval_every == 0 || ep + 1 == cfg->epochs)) {
            double t = holdout_tau(r, theta);
            pr.holdout_tau = t;
            if (t > best_tau) {
                best_tau = t;
                best_epoch = ep + 1;
                since_best = 0;
                memcpy(r->best, theta, np * sizeof *theta);
            } else if (cfg->patience > 0 && ++since_best >= cfg->patience) {
                stop = 1;
            }
        }
        res->loss = pr.loss;
        res->pair_acc = pr.pair_acc;
        if (r->progress != NULL) {
            pr.in_epoch = 0;
            r->last_check = ctnas_now_seconds();
            if (r->progress(&pr, r->user))
                return CTNAS_ECANCELED;
        }
        if (stop)
            break;
    }
    if (r->n_hold > 0) {
        memcpy(theta, r->best, np * sizeof *theta);
        res->epochs_kept[k] = best_epoch;
        res->holdout_tau = (isnan(res->holdout_tau) ? 0 : res->holdout_tau) +
                           best_tau / cfg->members;
    } else {
        res->epochs_kept[k] = cfg->epochs;
    }
    return 0;
}

int ctnas_nac_train(const struct ctnas_nac_train_config *cfg,
                    const struct ctnas_graph *graphs, const double *acc,
                    int n, ctnas_nac_progress_fn progress, void *user,
                    struct ctnas_nac **out, struct ctnas_nac_train_result *res,
                    struct ctnas_err *err)
{
    struct ctnas_nac_train_result res0;
    if (res == NULL)
        res = &res0;
    memset(res, 0, sizeof *res);
    res->holdout_tau = NAN;
    *out = NULL;
    int rc = ctnas_nac_train_config_check(cfg, err);
    if (rc != 0)
        return rc;
    for (int i = 0; i < n; i++)
        if (!isfinite(acc[i]))
            return ctnas_err_set(err, CTNAS_EINVAL, "accuracy",
                                 "accuracy %d is not a finite number", i);
    double t0 = ctnas_now_seconds(), c0 = thread_cpu_seconds();

    struct run r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.graphs = graphs;
    r.acc = acc;
    r.progress = progress;
    r.user = user;
    r.last_check = t0;
    ctnas_nac_layout_init(&cfg->model, &r.lay);

    /* The hold-out: a seeded sample of the training set. */
    r.train_idx = ctnas_malloc((size_t)(n > 0 ? n : 1) * sizeof *r.train_idx);
    if (r.train_idx == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    for (int i = 0; i < n; i++)
        r.train_idx[i] = i;
    int n_hold = holdout_count(cfg, n);
    if (ctnas_nac_train_size_check(cfg, n, err) < 0) {
        ctnas_free(r.train_idx);
        return CTNAS_EINVAL;
    }
    if (n_hold > 0) {
        struct ctnas_rng hr;
        ctnas_rng_seed(&hr, cfg->seed ^ 0x5bd1e9955bd1e995ULL);
        ctnas_rng_shuffle(&hr, r.train_idx, n);
        r.hold_idx = ctnas_malloc((size_t)n_hold * sizeof *r.hold_idx);
        r.hold_graphs = ctnas_malloc((size_t)n_hold * sizeof *r.hold_graphs);
        r.hold_acc = ctnas_malloc((size_t)n_hold * sizeof *r.hold_acc);
        r.hold_feat = ctnas_malloc((size_t)n_hold * r.lay.feat_width *
                                   sizeof *r.hold_feat);
        if (!r.hold_idx || !r.hold_graphs || !r.hold_acc || !r.hold_feat) {
            run_destroy(&r);
            return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        }
        /* The hold-out is the tail of the shuffled indices, the training
         * set the head, each kept in data order. */
        memcpy(r.hold_idx, r.train_idx + (n - n_hold),
               (size_t)n_hold * sizeof *r.hold_idx);
        r.n_hold = n_hold;
        int *tmp = r.train_idx;
        for (int a = 1; a < n - n_hold; a++) /* insertion sort, small n */
            for (int b = a; b > 0 && tmp[b - 1] > tmp[b]; b--) {
                int t = tmp[b];
                tmp[b] = tmp[b - 1];
                tmp[b - 1] = t;
            }
        for (int a = 1; a < n_hold; a++)
            for (int b = a; b > 0 && r.hold_idx[b - 1] > r.hold_idx[b]; b--) {
                int t = r.hold_idx[b];
                r.hold_idx[b] = r.hold_idx[b - 1];
                r.hold_idx[b - 1] = t;
            }
        for (int i = 0; i < n_hold; i++) {
            r.hold_graphs[i] = graphs[r.hold_idx[i]];
            r.hold_acc[i] = acc[r.hold_idx[i]];
        }
    }
    r.n_train = n - n_hold;
    int bs = cfg->batch < r.n_train ? cfg->batch : r.n_train;
    int cap = bs;
    if (n_hold > cap)
        cap = n_hold < 256 ? n_hold : 256;
    struct ctnas_adam_config ac = {.lr = cfg->lr, .beta1 = cfg->beta1,
                                   .beta2 = cfg->beta2, .eps = cfg->eps,
                                   .weight_decay = cfg->weight_decay,
                                   .decoupled = cfg->decoupled};
    struct ctnas_nac *m = NULL;
    if (ctnas_nac_batch_init(&r.batch, cap, cfg->model.layers, cfg->dedupe) ||
        ctnas_nac_cache_init(&r.cache, &cfg->model, cap) ||
        ctnas_nac_pairs_init(&r.pairs, bs) ||
        ctnas_adam_init(&r.adam, r.lay.n_params, &ac) ||
        !(r.grad = ctnas_malloc(r.lay.n_params * sizeof *r.grad)) ||
        !(r.best = ctnas_malloc(r.lay.n_params * sizeof *r.best)) ||
        !(r.order = ctnas_malloc((size_t)r.n_train * sizeof *r.order)) ||
        !(r.perm = ctnas_malloc((size_t)bs * sizeof *r.perm)) ||
        !(r.bval = ctnas_malloc((size_t)bs * sizeof *r.bval))) {
        run_destroy(&r);
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }
    if (cfg->top_weight > 0 && top_weights(&r) != 0) {
        run_destroy(&r);
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }
    struct ctnas_rng init_rng;
    ctnas_rng_seed(&init_rng, cfg->seed);
    m = ctnas_nac_new(&cfg->model, cfg->members, &init_rng);
    if (m == NULL) {
        run_destroy(&r);
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }
    for (int k = 0; k < cfg->members; k++) {
        rc = train_member(&r, k, m->theta + k * r.lay.n_params, res);
        if (rc != 0) {
            ctnas_nac_free(m);
            run_destroy(&r);
            res->seconds = ctnas_now_seconds() - t0;
            res->cpu_seconds = thread_cpu_seconds() - c0;
            return ctnas_err_set(err, rc, "", "training cancelled");
        }
    }
    run_destroy(&r);
    res->seconds = ctnas_now_seconds() - t0;
    res->cpu_seconds = thread_cpu_seconds() - c0;
    *out = m;
    return 0;
}

int ctnas_nac_train_archs(const struct ctnas_nac_train_config *cfg,
                          const struct ctnas_space *sp,
                          const struct ctnas_arch *archs, const double *acc,
                          int n, ctnas_nac_progress_fn progress, void *user,
                          struct ctnas_nac **out,
                          struct ctnas_nac_train_result *res,
                          struct ctnas_err *err)
{
    struct ctnas_graph *g =
        ctnas_malloc((size_t)(n > 0 ? n : 1) * sizeof *g);
    if (g == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    for (int i = 0; i < n; i++)
        sp->to_graph(&archs[i], &g[i]);
    struct ctnas_nac_train_config c = *cfg;
    c.model.n_types = sp->n_node_types;
    int rc = ctnas_nac_train(&c, g, acc, n, progress, user, out, res, err);
    ctnas_free(g);
    return rc;
}

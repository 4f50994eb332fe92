/*
 * search.h - the CTNAS search as a resumable state machine: a controller
 * (controller.h) trained by REINFORCE with the comparator's verdict
 * against a baseline architecture as reward, the baseline curriculum, data
 * exploration (pseudo-labelled pairs the job's own copy of the comparator
 * is fine-tuned on), a pool of the distinct architectures sampled, ranked
 * by comparator consensus, and rounds for ask/tell.
 *
 * A search runs in bounded calls (ctnas_search_run: at most so many
 * controller steps or seconds, the progress callback consulted after
 * every unit of work, each unit well under a second), so a job can
 * checkpoint between calls and cancel promptly.  Everything it needs to
 * continue is in struct ctnas_search and goes into ctnas_search_save's
 * blob: N steps, save, load into a fresh object, M more steps gives
 * bit-identical state to N + M steps in one go (same build, same BLAS
 * thread count).
 *
 * One controller step t (t counts over all rounds):
 *   1. exploration, when pseudo_ratio > 0 and t % explore_every == 0:
 *      sample 2K architectures, pair each with a shuffled partner, keep
 *      the K most confident pairs (confidence max(p, 1 - p), label
 *      p >= 0.5), then fine-tune the comparator for ft_iters Adam steps
 *      on batches of ft_pairs pairs, a fraction pseudo_ratio of them
 *      pseudo-labelled (drawn from every pseudo-label so far) and the rest
 *      labelled (random pairs of the labelled set);
 *   2. baseline update, when t > 0 and t % update_every == 0 (modes
 *      updated / random): sample h_size architectures, add the h_keep best
 *      of the previous candidate set H, score each by its mean comparison
 *      probability against the others, s_i = mean_{j != i} p(i, j), and
 *      take the argmax (updated) or a random new sample (random);
 *   3. the controller step: sample `batch` architectures, reward
 *      R_i = p(alpha_i beats baseline), advantage R_i - b (b an
 *      exponential moving average of the rewards; or R_i itself, the
 *      paper's form), one Adam step on the REINFORCE surrogate plus
 *      entropy_weight times the entropy, gradient clipped by global norm;
 *   4. every sampled architecture (steps 1-3) enters the pool of distinct
 *      architectures (when full, the pool keeps its better half).
 * At the end of a round, when polish > 0, a local search judged by the
 * comparator starts from the polish best-ranked cells: each climb step
 * tries polish_tries random single changes (the space's mutate) and moves
 * to the one the comparator prefers most if it beats the current cell;
 * where each climb ends joins the pool.  The controller's samples come
 * near the comparator's optimum but often not onto it.
 * The ranking of the pool (each entry's mean win probability against the
 * rest) is refreshed after each fine-tuning, every update_every steps (with
 * the baseline update, if any) and at the end of a round; its top entry is
 * the search's answer.
 *
 * Threads: a search is used by one thread at a time; it touches no
 * globals besides BLAS.  Errors: 0 or a negative CTNAS_E* code with
 * detail in an optional struct ctnas_err.
 */
#ifndef CTNAS_SEARCH_H
#define CTNAS_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "controller.h"
#include "ctnas.h"
#include "nac.h"
#include "nac_train.h"
#include "space.h"

enum ctnas_search_baseline {
    CTNAS_SEARCH_BASELINE_UPDATED = 0, /* curriculum of method.md */
    CTNAS_SEARCH_BASELINE_FIXED = 1,   /* the initial random architecture */
    CTNAS_SEARCH_BASELINE_RANDOM = 2,  /* a random new candidate */
};

enum ctnas_search_advantage {
    CTNAS_SEARCH_ADV_EMA = 0,   /* R - exponential moving average of R */
    CTNAS_SEARCH_ADV_NONE = 1,  /* R itself (method.md's formula) */
};

/* Which cells a search may propose, by size (nasbench101's node count;
 * every nasbench201 cell has the same): the sizes its labelled set spans
 * (a comparator trained on 5- to 7-node cells has no evidence about a
 * 3-node one, and may score it above everything), or any. */
enum ctnas_search_sizes {
    CTNAS_SEARCH_SIZES_LABELLED = 0,
    CTNAS_SEARCH_SIZES_ANY = 1,
};

/* "updated", "fixed", "random"; "ema", "none"; "labelled", "any"
 * (NULL-terminated).  Parse: name -> value or -1. */
extern const char *const ctnas_search_baseline_names[];
extern const char *const ctnas_search_advantage_names[];
extern const char *const ctnas_search_sizes_names[];
const char *ctnas_search_baseline_name(int mode);
int ctnas_search_baseline_parse(const char *name);
const char *ctnas_search_advantage_name(int adv);
int ctnas_search_advantage_parse(const char *name);
const char *ctnas_search_sizes_name(int sizes);
int ctnas_search_sizes_parse(const char *name);

struct ctnas_search_config {
    uint64_t seed;
    long steps;             /* controller steps per round */
    int rounds;             /* rounds in all (1: no ask/tell) */
    int batch;              /* architectures per controller step */
    double lr;              /* controller Adam rate */
    double entropy_weight;  /* lambda (authors 5e-4) */
    double grad_clip;       /* global-norm clip, 0: off */
    int advantage;          /* enum ctnas_search_advantage */
    double ema_decay;       /* of the reward baseline b */
    struct ctnas_ctrl_config ctrl;
    int baseline_mode;      /* enum ctnas_search_baseline */
    int update_every;       /* steps between baseline updates */
    int h_size;             /* new candidates per update (authors 10) */
    int h_keep;             /* best candidates carried to the next H */
    double pseudo_ratio;    /* r: pseudo share of a fine-tuning batch;
                               0 turns exploration off */
    int pseudo_k;           /* K: pairs kept per exploration */
    int explore_every;      /* U: steps between explorations */
    int ft_iters;           /* fine-tuning Adam steps per exploration */
    int ft_pairs;           /* pairs per fine-tuning step */
    double ft_lr;           /* comparator fine-tuning rate */
    double ft_top;          /* fraction of labelled fine-tuning pairs whose
                               first member is drawn from the best quarter
                               of the labelled set (0: uniform pairs) */
    double ft_top_weight;   /* labelled fine-tuning pairs weighted as
                               nac_train.h's top_weight (0: uniform) */
    double ft_top_scale;    /* ... and its top_scale, (0, 1] */
    int polish;             /* at the end of each round, hill-climb
                               from this many of the best-ranked cells
                               under the comparator (0: off) */
    int polish_tries;       /* random single changes tried per climb
                               step */
    int sizes;              /* enum ctnas_search_sizes */
    int pool_cap;           /* distinct architectures kept */
    int top_n;              /* size of the ranking kept (>= 1) */
};

/* The measured defaults (see search.c). */
void ctnas_search_config_default(struct ctnas_search_config *cfg);
/* 0 or CTNAS_EINVAL with the offending field named as the API spells it
 * ("steps", "pseudo_ratio", ...). */
int ctnas_search_config_check(const struct ctnas_search_config *cfg,
                              struct ctnas_err *err);

/* A pseudo-labelled pair: the comparator said a beats b (label 1) or b
 * beats a (label 0) with this confidence, at this controller step. */
struct ctnas_search_pseudo {
    struct ctnas_arch a, b;
    int label;
    double confidence;
    long step;
};

/* A ranked architecture: its mean win probability against the pool, and
 * the measured value when the labelled set has one. */
struct ctnas_search_entry {
    struct ctnas_arch arch;
    double score;
    int measured;           /* 1: value is a measurement */
    double value;
    int count;              /* times sampled */
    long first_step;        /* step it was first sampled */
};

enum ctnas_search_state {
    CTNAS_SEARCH_RUNNING = 0,
    CTNAS_SEARCH_WAITING = 1,  /* a round is over, more rounds to go:
                                  waiting for ctnas_search_next_round */
    CTNAS_SEARCH_FINISHED = 2,
};

/* What the progress callback sees (a snapshot; also from
 * ctnas_search_progress_get). */
struct ctnas_search_progress {
    int state;              /* enum ctnas_search_state */
    long step;              /* controller steps done, all rounds */
    long steps_total;       /* step at which the current round ends */
    int round, rounds;      /* current round (1-based) and all */
    double reward_avg;      /* moving average of the batch mean reward */
    double entropy_avg;     /* moving average of the sample entropy */
    double baseline_score;  /* the baseline's s_i in its H (or 0.5) */
    int n_pseudo;           /* pseudo-labels produced so far */
    int pool_size;
    double best_score;      /* score of the current answer */
    int explorations, baseline_updates;
    int ft_left;            /* fine-tuning steps left in this phase */
    int polish_left;        /* climbs left in the end-of-round polish */
    int min_size, max_size; /* the sizes (arch n) proposed; 0: any */
};

/* Return nonzero to cancel (ctnas_search_run then returns
 * CTNAS_ECANCELED; the search stays consistent and resumable). */
typedef int (*ctnas_search_progress_fn)(const struct ctnas_search_progress *p,
                                        void *user);

struct ctnas_search;

/* A new search in space sp with config cfg, starting from a copy of the
 * comparator nac (the search fine-tunes its copy, never nac itself) and a
 * copy of the n labelled architectures (archs[i] measured values[i],
 * greater is better; n may be 0 when pseudo_ratio is 0).  Errors
 * (NULL with err filled): CTNAS_EINVAL (config, space, comparator of
 * another vocabulary), CTNAS_ENOMEM. */
struct ctnas_search *ctnas_search_new(const struct ctnas_space *sp,
                                      const struct ctnas_search_config *cfg,
                                      const struct ctnas_nac *nac,
                                      const struct ctnas_arch *archs,
                                      const double *values, int n,
                                      struct ctnas_err *err);
/* Accepts NULL. */
void ctnas_search_free(struct ctnas_search *s);

/* Run until max_steps more controller steps are done (<= 0: no limit),
 * max_seconds have passed (<= 0: no limit), the round ends or progress
 * asks to cancel.  Returns the state (enum ctnas_search_state) when it
 * stops normally, CTNAS_ECANCELED when cancelled, CTNAS_ENOMEM. */
int ctnas_search_run(struct ctnas_search *s, long max_steps,
                     double max_seconds, ctnas_search_progress_fn progress,
                     void *user);

int ctnas_search_state(const struct ctnas_search *s);
void ctnas_search_progress_get(const struct ctnas_search *s,
                               struct ctnas_search_progress *p);
const struct ctnas_search_config *ctnas_search_config_get(
    const struct ctnas_search *s);
/* The job's comparator (borrowed; changes as the search fine-tunes it). */
const struct ctnas_nac *ctnas_search_comparator(const struct ctnas_search *s);

/* The ranking as last refreshed: up to n entries, best first, into out;
 * returns how many.  Entry 0 is the answer. */
int ctnas_search_best(const struct ctnas_search *s, int n,
                      struct ctnas_search_entry *out);
/* The answer: the ranking's head (with polish on, a local optimum of the
 * comparator once a round ends).  The one place that decides it, for the
 * daemon and eval-search alike.  0, or CTNAS_ENOTFOUND before the first
 * ranking. */
int ctnas_search_answer(const struct ctnas_search *s,
                        struct ctnas_search_entry *out);
/* Up to n of the best-ranked architectures that have no measurement in
 * the labelled set (ask/tell suggestions); returns how many. */
int ctnas_search_suggest(const struct ctnas_search *s, int n,
                         struct ctnas_search_entry *out);
/* The same, leaving out every architecture for which skip(cls, a) is
 * non-zero (skip may be NULL). */
int ctnas_search_suggest_except(const struct ctnas_search *s, int n,
                                struct ctnas_search_entry *out,
                                int (*skip)(void *cls,
                                            const struct ctnas_arch *a),
                                void *cls);

/* The current baseline and candidate set H (borrowed, valid until the
 * next run). *n_h receives |H|, *h_score their scores (may be NULL). */
const struct ctnas_arch *ctnas_search_baseline(const struct ctnas_search *s);
const struct ctnas_arch *ctnas_search_candidates(const struct ctnas_search *s,
                                                 int *n_h,
                                                 const double **h_score);

/* Every pseudo-label produced so far, in order (borrowed).  A caller that
 * stores them keeps the count it stored and reads on from there. */
const struct ctnas_search_pseudo *ctnas_search_pseudo_labels(
    const struct ctnas_search *s, int *n);

/* The labelled set (borrowed). */
int ctnas_search_labels(const struct ctnas_search *s,
                        const struct ctnas_arch **archs,
                        const double **values);

/* Ask/tell between rounds: add measurements (an architecture already in
 * the labelled set takes the new value).  CTNAS_ENOMEM. */
int ctnas_search_add_labels(struct ctnas_search *s,
                            const struct ctnas_arch *archs,
                            const double *values, int n);
/* Train a fresh comparator on the labelled set with tc (its n_types is
 * set to the space's) and make it the search's; cancellable through
 * progress (ctnas_nac_train's).  CTNAS_EINVAL (fewer than 2 labels, bad
 * config), CTNAS_ENOMEM, CTNAS_ECANCELED (the old comparator stays). */
int ctnas_search_retrain(struct ctnas_search *s,
                         const struct ctnas_nac_train_config *tc,
                         ctnas_nac_progress_fn progress, void *user,
                         struct ctnas_err *err);
/* Replace the comparator by a copy of nac (same config as the first);
 * its fine-tuning state restarts.  CTNAS_EINVAL, CTNAS_ENOMEM. */
int ctnas_search_set_comparator(struct ctnas_search *s,
                                const struct ctnas_nac *nac,
                                struct ctnas_err *err);
/* From WAITING: start the next round (cfg.steps more controller steps,
 * the controller continuing from where it is).  CTNAS_ECONFLICT when not
 * waiting. */
int ctnas_search_next_round(struct ctnas_search *s);

/* Checkpoint: *blob is a new buffer (free it) of *len bytes holding the
 * whole state.  Native byte order and precision: for the same build. */
int ctnas_search_save(const struct ctnas_search *s, void **blob,
                      size_t *len);
/* A new search from a blob; NULL with err filled (CTNAS_EINVAL for a bad
 * or foreign blob, CTNAS_ENOMEM). */
struct ctnas_search *ctnas_search_load(const void *blob, size_t len,
                                       struct ctnas_err *err);

/* Exposed for the tests: index of the argmax of s_i = mean_{j != i}
 * p(i, j) over n architectures with features feat (n x width of nac),
 * scores into score (n); or CTNAS_ENOMEM. */
int ctnas_search_pick_baseline(const struct ctnas_nac *nac,
                               const ctnas_real *feat, int n, double *score);
/* Exposed for the tests: from n pair probabilities p[k] (that a_k beats
 * b_k), the indices of the k most confident (max(p, 1 - p)), most
 * confident first, ties by lower index, pairs with p NaN (a cell against
 * itself) skipped; returns how many (at most k), or CTNAS_ENOMEM.
 * label[i] receives the predicted label of idx[i] (1: p >= 0.5). */
int ctnas_search_select_pseudo(const double *p, int n, int k, int *idx,
                               int *label);

#endif

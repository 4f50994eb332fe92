/*
 * controller.h - the search policy of CTNAS: an LSTM (hidden 64) that
 * emits one architecture of a space as a sequence of softmax decisions,
 * with the log-probability and entropy of the whole sample, and the
 * hand-written backward through time of the REINFORCE surrogate
 *
 *   L(theta) = -(1/n) sum_i [ adv_i * log pi(alpha_i) + lambda * H_i ]
 *
 * (adv_i the reward, or the reward minus a baseline; H_i the sum of the
 * step entropies of sample i), plus Adam with global-norm clipping.
 *
 * Step t reads x_t (a learned start vector at t = 0, else the embedding
 * of the previous step's choice in that step's kind table), runs
 *   z = W^T [x_t ; h_{t-1}] + b,  i f o = sigmoid, g = tanh (z quarters)
 *   c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)
 *   u = Wk h_t + bk,  logits = c tanh(u / T)  (tanh_c > 0)  or  u / T
 * and samples from the softmax over the choices its mask allows.  Each
 * kind k of decision has its own head (Wk, bk) and embedding table.
 *
 * Decision layouts (each sample is a valid canonical cell by construction):
 *
 * nasbench201: 6 steps, step e = kind e: the op of edge e (string order
 *   0->1, 0->2, 1->2, 0->3, 1->3, 2->3), 5 choices (none, skip_connect,
 *   nor_conv_1x1, nor_conv_3x3, avg_pool_3x3).
 *
 * nasbench101: node slots 0 (input), 1..m (intermediate), 6 (output).
 *   NODES  (kind 0, 6 choices)  m = number of intermediate nodes, 0..5;
 *   for v = 1..m:
 *     PRED (kind 1, 5 choices)  the predecessor of v, in 0..v-1: this
 *                               tree edge makes every node reachable
 *                               from the input;
 *     OP   (kind 2, 3 choices)  conv3x3-bn-relu, conv1x1-bn-relu,
 *                               maxpool3x3;
 *   then repeatedly
 *     EDGE (kind 3, 22 choices) one more edge (i, j), i < j, as the index
 *                               of the pair in row-major order over the 7
 *                               slots (21 pairs; j = 6 is the output), or
 *                               21 = STOP.
 *   Finally every intermediate node without a successor gets an edge to
 *   the output (and m = 0 gives input -> output), so every node lies on an
 *   input -> output path: pruning removes nothing.  Masks keep the final
 *   edge count <= 9: with E edges so far and S intermediate nodes still
 *   without a successor, an edge (i, j) is allowed when it is new and
 *   E + 1 + S - [i has no successor yet] <= 9, and a PRED choice when the
 *   leaves it leaves (intermediate nodes nobody points to) fit 9 - m.  A
 *   step whose mask allows one choice is taken silently (probability 1):
 *   it is not a softmax and not an LSTM step.
 *
 * All parameters sit in one flat double array theta laid out by struct
 * ctnas_ctrl_layout; gradients, Adam's moments and the saved state mirror
 * it.  The controller is double precision throughout (it is small; this
 * keeps its gradient check tight in the float daemon build and makes its
 * state a memcpy).  Randomness comes only from a passed struct ctnas_rng.
 * Nothing here is global; a controller is used from one thread at a time.
 */
#ifndef CTNAS_CONTROLLER_H
#define CTNAS_CONTROLLER_H

#include <stddef.h>
#include <stdint.h>

#include "ctnas.h"
#include "rng.h"
#include "space.h"

#define CTNAS_CTRL_MAX_STEPS 24
#define CTNAS_CTRL_MAX_KINDS 8
#define CTNAS_CTRL_MAX_CHOICES 32
#define CTNAS_CTRL_MAX_HIDDEN 512

/* The network's shape and how logits are squashed. */
struct ctnas_ctrl_config {
    int hidden;          /* LSTM width (authors: 64) */
    double temperature;  /* T > 0: logits / T (1: none) */
    double tanh_c;       /* c > 0: logits = c tanh(logits / T); 0: off */
    double init_range;   /* parameters uniform in +-init_range (0.1) */
};

/* hidden 64, T 1, no tanh, init 0.1. */
void ctnas_ctrl_config_default(struct ctnas_ctrl_config *cfg);
/* 0 or CTNAS_EINVAL naming the field at fault. */
int ctnas_ctrl_config_check(const struct ctnas_ctrl_config *cfg,
                            struct ctnas_err *err);

/* Offsets into theta, in elements. */
struct ctnas_ctrl_layout {
    int hidden, n_kinds;
    int n_choices[CTNAS_CTRL_MAX_KINDS];
    size_t x0;                          /* H: the first step's input */
    size_t w;                           /* 2H x 4H: rows [x ; h], cols
                                           gates i f g o */
    size_t b;                           /* 4H */
    size_t emb[CTNAS_CTRL_MAX_KINDS];   /* C_k x H: choice embeddings */
    size_t head_w[CTNAS_CTRL_MAX_KINDS];/* C_k x H */
    size_t head_b[CTNAS_CTRL_MAX_KINDS];/* C_k */
    size_t n_params;
};

/* One sampled architecture and the decisions that made it. */
struct ctnas_ctrl_sample {
    struct ctnas_arch arch;             /* canonical, valid */
    int n_steps;                        /* softmax steps taken */
    uint8_t kind[CTNAS_CTRL_MAX_STEPS];
    uint8_t action[CTNAS_CTRL_MAX_STEPS];
    uint32_t mask[CTNAS_CTRL_MAX_STEPS];/* allowed choices (bit j) */
    double logp;                        /* log pi(arch's decisions) */
    double entropy;                     /* sum of the step entropies */
};

struct ctnas_ctrl {
    const struct ctnas_space *space;
    int space_id;                       /* internal: which layout */
    struct ctnas_ctrl_config cfg;
    struct ctnas_ctrl_layout lay;
    double *theta;                      /* lay.n_params */
    /* Adam (betas 0.9 / 0.999, eps 1e-8, no weight decay). */
    double *adam_m, *adam_v;
    uint64_t adam_t;
    /* nasbench101: the node counts a sample may have, min_nodes to
     * max_nodes (0: no bound).  Not state: its owner sets it (a search,
     * from its labelled set) and keeps it while samples are replayed. */
    int min_nodes, max_nodes;
};

/* Whether a cell of n nodes is within c's min_nodes..max_nodes. */
static inline int ctnas_ctrl_size_allowed(const struct ctnas_ctrl *c, int n)
{
    return (c->min_nodes <= 0 || n >= c->min_nodes) &&
           (c->max_nodes <= 0 || n <= c->max_nodes);
}

/* New controller for space (nasbench101 or nasbench201) with parameters
 * drawn from rng.  NULL on an unsupported space, a bad config (err says
 * which) or no memory. */
struct ctnas_ctrl *ctnas_ctrl_new(const struct ctnas_space *space,
                                  const struct ctnas_ctrl_config *cfg,
                                  struct ctnas_rng *rng,
                                  struct ctnas_err *err);
/* Accepts NULL. */
void ctnas_ctrl_free(struct ctnas_ctrl *c);

/* Forward activations of up to cap samples, kept for the backward. */
struct ctnas_ctrl_work {
    int cap, hidden, stride;            /* stride: doubles per step */
    double *buf;                        /* cap x MAX_STEPS x stride */
    double *scratch;                    /* 8 H, for the backward */
};

/* Caller-embedded workspace sized for c's hidden width and up to cap
 * samples (~100 KB per sample at H = 64).  0 or CTNAS_ENOMEM, after
 * which w holds nothing.  One work per thread: sample/forward write it,
 * backward reads it.  destroy accepts a zeroed or destroyed w. */
int ctnas_ctrl_work_init(struct ctnas_ctrl_work *w,
                         const struct ctnas_ctrl *c, int cap);
void ctnas_ctrl_work_destroy(struct ctnas_ctrl_work *w);

/* Draw n samples (one uniform draw per softmax step, in order).  With
 * work (n <= work->cap) the activations are kept for
 * ctnas_ctrl_backward; with work NULL nothing is kept (any n).  Returns 0
 * or CTNAS_ENOMEM (only without work). */
int ctnas_ctrl_sample(const struct ctnas_ctrl *c, struct ctnas_rng *rng,
                      int n, struct ctnas_ctrl_sample *out,
                      struct ctnas_ctrl_work *work);

/* Replay: recompute logp, entropy and the activations of n samples whose
 * decisions (kind, action, mask, n_steps) are given, under the current
 * theta (or under theta_override when not NULL).  arch is rebuilt. */
void ctnas_ctrl_forward(const struct ctnas_ctrl *c, const double *theta,
                        int n, struct ctnas_ctrl_sample *s,
                        struct ctnas_ctrl_work *work);

/* The surrogate loss above for the n samples of the last sample/forward
 * into work, its gradient ADDED into grad (lay.n_params).  Returns L. */
double ctnas_ctrl_backward(const struct ctnas_ctrl *c, int n,
                           const struct ctnas_ctrl_sample *s,
                           const double *adv, double ent_weight,
                           const struct ctnas_ctrl_work *work, double *grad);

/* One Adam step at rate lr on grad, first scaled so its global L2 norm is
 * at most clip (clip <= 0: no clipping).  grad is scaled in place.
 * Returns the norm before clipping. */
double ctnas_ctrl_update(struct ctnas_ctrl *c, double *grad, double lr,
                         double clip);

/* The most likely decision at every step (no randomness): the policy's
 * mode, roughly.  logp and entropy are filled as for a sample.  0 or
 * CTNAS_ENOMEM. */
int ctnas_ctrl_greedy(const struct ctnas_ctrl *c,
                      struct ctnas_ctrl_sample *out);

/* State (config, theta, Adam) as bytes for a checkpoint: native doubles,
 * so a blob is for the same build only; load checks shape and space. */
size_t ctnas_ctrl_state_size(const struct ctnas_ctrl *c);
/* save writes state_size bytes into buf (cap at least that) and returns
 * the count, or CTNAS_ETOOLARGE.  load: 0, or CTNAS_EINVAL on bytes of
 * another version, space or shape, leaving c unchanged. */
long ctnas_ctrl_save(const struct ctnas_ctrl *c, void *buf, size_t cap);
int ctnas_ctrl_load(struct ctnas_ctrl *c, const void *buf, size_t len,
                    struct ctnas_err *err);

#endif

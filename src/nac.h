/*
 * nac.h - the Neural Architecture Comparator (CTNAS, Chen et al. 2021):
 * p(a, b) = P(architecture a is better than b) from their graphs.
 *
 *   H0      = X E                         (op embedding, n_types x d)
 *   H(l+1)  = ReLU( S (A^T + I) H(l) W(l) + b(l) ) + H(l),  l < L
 *   z       = mean of H(L) over the graph's real nodes (readout mean;
 *             mean_output adds the output node's row, output takes it
 *             alone)
 *   logit   = head(z_a, z_b),  p = sigmoid(logit)
 *
 * A^T makes a node aggregate from its predecessors; S is I, or with
 * norm = 1 the row normalisation 1 / (1 + in-degree).  Options beyond the
 * paper: bidir = 1 aggregates from successors too with the same weight
 * ((A^T + A + I) H W); bidir = 2 gives successors their own weight:
 *   H(l+1) = ReLU( S (A^T + I) H(l) W_f(l) + S_b A H(l) W_b(l) + b(l) )
 *            + H(l)
 * with S_b = 1 / out-degree when norm = 1.  Heads:
 *   CONCAT  the paper's: u.z_a + v.z_b + c  (linear on [z_a ; z_b])
 *   DIFF    antisymmetric linear: w.(z_a - z_b), so p(a,b) = 1 - p(b,a)
 *           and p(a,b) = sigmoid(f(a) - f(b)) with f(x) = w.z_x
 *   MLP     antisymmetric MLP: g(z_a - z_b) - g(z_b - z_a) with
 *           g(x) = w2.ReLU(W1 x + b1)
 *
 * Every learnable parameter sits in one flat array theta laid out by
 * struct ctnas_nac_layout, so Adam, the gradient checks and the stored
 * BLOB all walk one array; gradients mirror it.  Forward fills an explicit
 * struct ctnas_nac_cache that backward reads; nothing is global.
 *
 * Batches: the graphs of a batch are stacked into one node matrix, so a
 * layer is one GEMM plus a sparse aggregation over the <= 8 x 8 adjacency.
 * Node states that are provably equal are computed once ("dedupe"): a
 * node's H(l) depends only on its type and, recursively, on the multiset of
 * its predecessors' H(l-1) (Weisfeiler-Lehman colours), so rows with equal
 * colours share one row of the GEMM.  The result is the same function,
 * only summed in a different order.
 *
 * Shape mismatches are bugs (assert).  Functions that allocate or read
 * external data return 0 or a negative CTNAS_E* code.
 */
#ifndef CTNAS_NAC_H
#define CTNAS_NAC_H

#include <stddef.h>
#include <stdint.h>

#include "blas.h"
#include "ctnas.h"
#include "space.h"

#define CTNAS_NAC_MAX_LAYERS 8
#define CTNAS_NAC_MAX_DIM 1024
#define CTNAS_NAC_MAX_HIDDEN 1024
#define CTNAS_NAC_MAX_MEMBERS 16
#define CTNAS_NAC_MAX_TYPES 64

enum ctnas_nac_head {
    CTNAS_NAC_HEAD_CONCAT = 0, /* u.z_a + v.z_b + c (the paper's) */
    CTNAS_NAC_HEAD_DIFF = 1,   /* w.(z_a - z_b) */
    CTNAS_NAC_HEAD_MLP = 2,    /* g(z_a - z_b) - g(z_b - z_a) */
};

/* "concat", "diff", "mlp" (NULL-terminated); name -> value or -1. */
extern const char *const ctnas_nac_head_names[];
const char *ctnas_nac_head_name(int head);
int ctnas_nac_head_parse(const char *name);

/* How a graph's node states become z. */
enum ctnas_nac_readout {
    CTNAS_NAC_READOUT_MEAN = 0,     /* mean over the nodes (the paper's) */
    CTNAS_NAC_READOUT_MEAN_OUT = 1, /* that mean plus the output node's
                                       state: where every path ends */
    CTNAS_NAC_READOUT_OUT = 2,      /* the output node's state alone */
};

/* "mean", "mean_output", "output" (NULL-terminated); name -> value or
 * -1. */
extern const char *const ctnas_nac_readout_names[];
const char *ctnas_nac_readout_name(int readout);
int ctnas_nac_readout_parse(const char *name);

/* The architecture of the network (not its weights). */
struct ctnas_nac_config {
    int n_types; /* node-type vocabulary (space->n_node_types) */
    int dim;     /* d: embedding and hidden width */
    int layers;  /* L: graph-convolution layers, 0..CTNAS_NAC_MAX_LAYERS */
    int head;    /* enum ctnas_nac_head */
    int hidden;  /* MLP head width (ignored by the linear heads) */
    int norm;    /* 1: rows of A^T + I divided by 1 + in-degree */
    int bidir;   /* 0: predecessors only (the paper's); 1: successors
                    too, same weight; 2: successors with their own */
    int readout; /* enum ctnas_nac_readout */
};

/* The defaults: d 128, L 4, head diff, hidden 64, norm 0, bidir 2,
 * readout mean (see
 * nac_train.c for the measurements); n_types is left 0 for the caller. */
void ctnas_nac_config_default(struct ctnas_nac_config *cfg);
/* 0, or CTNAS_EINVAL with the field at fault in err. */
int ctnas_nac_config_check(const struct ctnas_nac_config *cfg,
                           struct ctnas_err *err);

/* Offsets into theta (in elements). */
struct ctnas_nac_layout {
    size_t emb;                        /* n_types x d */
    size_t w[CTNAS_NAC_MAX_LAYERS];    /* d x kw d, P = H W */
    size_t b[CTNAS_NAC_MAX_LAYERS];    /* d */
    size_t u, v, c;                    /* CONCAT: d, d, 1 */
    size_t w_diff;                     /* DIFF: d */
    size_t w1, b1, w2;                 /* MLP: hidden x d, hidden, hidden */
    size_t n_params;
    int feat_width;                    /* per-graph head terms (see below) */
};

void ctnas_nac_layout_init(const struct ctnas_nac_config *cfg,
                           struct ctnas_nac_layout *lay);

/* Fill theta (lay->n_params) with the initial weights: E ~ N(0, 1), every
 * other matrix and bias uniform in +-1/sqrt(fan_in) (PyTorch's defaults). */
void ctnas_nac_init_params(const struct ctnas_nac_config *cfg,
                           const struct ctnas_nac_layout *lay,
                           ctnas_real *theta, struct ctnas_rng *rng);

/* ------------------------------------------------------------------ */
/* Batches and caches (training-side API; serving uses ctnas_nac_features).
 * Both are allocated once for a capacity of graphs and reused, so a
 * training step allocates nothing. */

struct ctnas_nac_batch {
    int cap_graphs, layers, dedupe;
    int kw;             /* aggregation width in units of d: 2 for bidir 2 */
    int n_graphs, n_rows;
    int *row_off;       /* n_graphs + 1: graph g owns rows [off[g], off[g+1]) */
    /* Unique node states per layer l = 0..L: n_u[l] of them; uid[l][r] is
     * the state of row r.  Layer 0 states are node types: type0[s]. */
    int n_u[CTNAS_NAC_MAX_LAYERS + 1];
    int *uid[CTNAS_NAC_MAX_LAYERS + 1];
    uint8_t *type0;
    /* For l >= 1 and a state s of layer l: its own state at l-1, its
     * predecessors' states at l-1 (pred[l][pred_off[l][s] ..
     * pred_off[l][s+1]]) and the row scale (1 or 1 / (1 + in-degree)). */
    int *self[CTNAS_NAC_MAX_LAYERS + 1];
    int *pred_off[CTNAS_NAC_MAX_LAYERS + 1];
    int *pred[CTNAS_NAC_MAX_LAYERS + 1];
    ctnas_real *scale[CTNAS_NAC_MAX_LAYERS + 1];
    /* With bidir = 2 a state's list is its predecessors (the first
     * nfwd[l][s]) then its successors, scaled by scale_b[l][s]. */
    int *nfwd[CTNAS_NAC_MAX_LAYERS + 1];
    ctnas_real *scale_b[CTNAS_NAC_MAX_LAYERS + 1];
    /* Row -> neighbour rows (CSR, predecessors first, rnpred of them),
     * kept for building. */
    int *rpred_off, *rpred, *rnpred;
    /* Hash table for dedupe (open addressing, stamped). */
    int hcap;
    uint32_t stamp;
    uint32_t *hstamp;
    int *hval;
};

/* Allocate for up to cap_graphs graphs of a network with `layers` layers.
 * dedupe = 0 computes every row (for measurements). */
int ctnas_nac_batch_init(struct ctnas_nac_batch *b, int cap_graphs,
                         int layers, int dedupe);
void ctnas_nac_batch_destroy(struct ctnas_nac_batch *b);
/* Stack graphs[idx[0]], ..., graphs[idx[n-1]] (idx NULL: graphs[0..n-1]);
 * n <= cap_graphs, every graph 1 <= g->n <= CTNAS_GRAPH_MAX with
 * types < n_types (assert: graphs come from a space's to_graph). */
void ctnas_nac_batch_build(struct ctnas_nac_batch *b,
                           const struct ctnas_nac_config *cfg,
                           const struct ctnas_graph *graphs, const int *idx,
                           int n);

struct ctnas_nac_cache {
    int cap_graphs, cap_rows, dim, layers, feat_width, kw;
    ctnas_real *h[CTNAS_NAC_MAX_LAYERS + 1]; /* n_u[l] x d */
    ctnas_real *g[CTNAS_NAC_MAX_LAYERS + 1]; /* l >= 1: P = H(l-1) W(l),
                                                n_u[l-1] x kw d */
    ctnas_real *z[CTNAS_NAC_MAX_LAYERS + 1]; /* l >= 1: pre-activation */
    ctnas_real *pool;    /* n_graphs x d: the graph features z */
    ctnas_real *feat;    /* n_graphs x feat_width: per-graph head terms */
    /* backward scratch */
    ctnas_real *dh_a, *dh_b, *dz, *dp;
    ctnas_real *dpool, *dfeat;
    ctnas_real *scratch; /* 3 x cap_graphs, for the dense pair loss */
};

int ctnas_nac_cache_init(struct ctnas_nac_cache *c,
                         const struct ctnas_nac_config *cfg, int cap_graphs);
/* The same without the backward buffers (inference only: forward and
 * ctnas_nac_loss with grad NULL). */
int ctnas_nac_cache_init_forward(struct ctnas_nac_cache *c,
                                 const struct ctnas_nac_config *cfg,
                                 int cap_graphs);
void ctnas_nac_cache_destroy(struct ctnas_nac_cache *c);

/* Forward through the GCN and pooling: fills c->h, g, z, pool. */
void ctnas_nac_forward(const struct ctnas_nac_config *cfg,
                       const struct ctnas_nac_layout *lay,
                       const ctnas_real *theta,
                       const struct ctnas_nac_batch *b,
                       struct ctnas_nac_cache *c);
/* Backward of ctnas_nac_forward: given dpool (n_graphs x d, in
 * c->dpool), ADD the parameter gradient into grad.  Reads the cache
 * filled by the forward of the same batch; clobbers the scratch. */
void ctnas_nac_backward(const struct ctnas_nac_config *cfg,
                        const struct ctnas_nac_layout *lay,
                        const ctnas_real *theta,
                        const struct ctnas_nac_batch *b,
                        struct ctnas_nac_cache *c, ctnas_real *grad);

/* ------------------------------------------------------------------ */
/* The head, split so per-graph work is done once:
 *   feat_i = head_prep(z_i)          (feat_width numbers per graph)
 *   logit(i, j) = head_pair(feat_i, feat_j)
 * CONCAT: feat = (u.z + c, v.z), logit = feat_i[0] + feat_j[1].
 * DIFF:   feat = (w.z, -w.z),    the same formula.
 * MLP:    feat = W1 z (hidden numbers),
 *         logit = w2.(ReLU(f_i - f_j + b1) - ReLU(f_j - f_i + b1)). */
void ctnas_nac_head_prep(const struct ctnas_nac_config *cfg,
                         const struct ctnas_nac_layout *lay,
                         const ctnas_real *theta, const ctnas_real *z,
                         int n, ctnas_real *feat);
/* Backward: given dfeat (n x feat_width), ADD into dz and grad. */
void ctnas_nac_head_prep_bwd(const struct ctnas_nac_config *cfg,
                             const struct ctnas_nac_layout *lay,
                             const ctnas_real *theta, const ctnas_real *z,
                             int n, const ctnas_real *dfeat, ctnas_real *dz,
                             ctnas_real *grad);
ctnas_real ctnas_nac_head_pair(const struct ctnas_nac_config *cfg,
                               const struct ctnas_nac_layout *lay,
                               const ctnas_real *theta,
                               const ctnas_real *fa, const ctnas_real *fb);
/* Backward of one pair: given dlogit, ADD into dfa, dfb and grad. */
void ctnas_nac_head_pair_bwd(const struct ctnas_nac_config *cfg,
                             const struct ctnas_nac_layout *lay,
                             const ctnas_real *theta, const ctnas_real *fa,
                             const ctnas_real *fb, ctnas_real dlogit,
                             ctnas_real *dfa, ctnas_real *dfb,
                             ctnas_real *grad);

/* Binary cross-entropy on a logit s with target y in [0, 1]:
 * softplus(s) - y s, computed with log1p so it neither overflows nor
 * loses digits; *ds (if not NULL) receives sigmoid(s) - y. */
ctnas_real ctnas_nac_bce(ctnas_real s, ctnas_real y, ctnas_real *ds);

ctnas_real ctnas_nac_sigmoid(ctnas_real s);

/* Labelled pairs of a batch, in one of two forms.
 * Listed (dense = 0): graph a[k] vs b[k] (batch-local indices), target
 *   y[k] (1: a better, 0: b better, 0.5: tie), k < n <= cap.
 * Dense (dense = 1): every ordered pair (i, j), i != j, of the batch's
 *   graphs, target from value[i] vs value[j] (borrowed, one measured value
 *   per batch graph; greater is better).  The loss then streams over the
 *   pairs without listing them.
 * Either form may carry per-graph weights (see weight). */
struct ctnas_nac_pairs {
    int n, cap;
    int *a, *b;
    ctnas_real *y;
    int dense;
    const double *value;
    /* Optional per-graph weights (NULL: all 1): a pair's loss counts with
     * the weight of its better member (the larger weight on a tie), so a
     * caller can make the order among the best architectures matter more
     * than the order among poor ones (nac_train.h, top_weight). */
    const ctnas_real *weight;
};

int ctnas_nac_pairs_init(struct ctnas_nac_pairs *p, int cap);
void ctnas_nac_pairs_destroy(struct ctnas_nac_pairs *p);

/* Statistics of one loss evaluation. */
struct ctnas_nac_loss_stats {
    double loss;     /* mean BCE over the pairs */
    int n_pairs;
    int n_correct;   /* sign(logit) agrees with y (ties excluded) */
    int n_decided;   /* pairs with y != 0.5 */
};

/* Mean BCE of the pairs for one network (theta) on batch b: forward,
 * head, loss; when grad is not NULL, backward too, ADDING the gradient of
 * the mean loss into grad.  Returns the mean loss. */
double ctnas_nac_loss(const struct ctnas_nac_config *cfg,
                      const struct ctnas_nac_layout *lay,
                      const ctnas_real *theta,
                      const struct ctnas_nac_batch *b,
                      struct ctnas_nac_cache *c,
                      const struct ctnas_nac_pairs *pairs, ctnas_real *grad,
                      struct ctnas_nac_loss_stats *st);

/* ------------------------------------------------------------------ */
/* Per-op pieces of the forward/backward, exposed for the gradient tests.
 * Each bwd ADDS into its input gradients. */

/* Transform of layer l: P = H(l-1) W(l), H m x din, W din x dout
 * (dout = d, or 2d with bidir = 2: [W_pred | W_succ]).  Backward:
 * dW += H^T dP, dH += dP W^T (dh may be NULL). */
void ctnas_nac_op_linear_fwd(int m, int din, int dout, const ctnas_real *h,
                             const ctnas_real *w, ctnas_real *p);
void ctnas_nac_op_linear_bwd(int m, int din, int dout, const ctnas_real *h,
                             const ctnas_real *w, const ctnas_real *dp,
                             ctnas_real *dh, ctnas_real *dw);
/* Aggregation of layer l (>= 1) over P's rows (layer l-1's states, kw d
 * wide): Z[s] = bias + scale[s] (P_f[self[s]] + sum over predecessors p
 * of P_f[p]) + scale_b[s] sum over successors q of P_b[q] (bidir = 2).
 * Backward: dbias += sum dZ, dP_f[self] += scale dZ, dP_f[p] += scale dZ,
 * dP_b[q] += scale_b dZ. */
void ctnas_nac_op_aggregate_fwd(const struct ctnas_nac_batch *b, int l,
                                int d, const ctnas_real *p,
                                const ctnas_real *bias, ctnas_real *z);
void ctnas_nac_op_aggregate_bwd(const struct ctnas_nac_batch *b, int l,
                                int d, const ctnas_real *dz, ctnas_real *dp,
                                ctnas_real *dbias);
/* Residual ReLU: H'[s] = ReLU(Z[s]) + H[self[s]].  Backward: dZ =
 * dH' * [Z > 0] (written, not added: dZ is scratch), dH[self] += dH'. */
void ctnas_nac_op_relu_res_fwd(const struct ctnas_nac_batch *b, int l,
                               int d, const ctnas_real *z,
                               const ctnas_real *h, ctnas_real *hn);
void ctnas_nac_op_relu_res_bwd(const struct ctnas_nac_batch *b, int l,
                               int d, const ctnas_real *z,
                               const ctnas_real *dhn, ctnas_real *dz,
                               ctnas_real *dh);
/* Readout of the last layer's states: the mean over each graph's rows,
 * plus or instead of its last row (the output node; enum
 * ctnas_nac_readout). */
void ctnas_nac_op_pool_fwd(const struct ctnas_nac_batch *b, int d,
                           int readout, const ctnas_real *h,
                           ctnas_real *pool);
void ctnas_nac_op_pool_bwd(const struct ctnas_nac_batch *b, int d,
                           int readout, const ctnas_real *dpool,
                           ctnas_real *dh);

/* ------------------------------------------------------------------ */
/* The model: a config, its layout and n_members networks (an ensemble
 * averages the members' logits).  theta holds n_members * lay.n_params
 * numbers, member k at theta + k * lay.n_params. */
struct ctnas_nac {
    struct ctnas_nac_config cfg;
    struct ctnas_nac_layout lay;
    int n_members;
    ctnas_real *theta;
};

/* New model with freshly initialised members (seeded from rng); NULL when
 * out of memory.  cfg must pass ctnas_nac_config_check. */
struct ctnas_nac *ctnas_nac_new(const struct ctnas_nac_config *cfg,
                                int n_members, struct ctnas_rng *rng);
/* Accepts NULL. */
void ctnas_nac_free(struct ctnas_nac *m);

/* Serving: per-architecture features, so pairs and rankings cost a few
 * scalar operations each.  Width of one graph's feature vector: 2 for the
 * linear heads (their members collapse to one logit = fa[0] + fb[1]), and
 * n_members * hidden for MLP. */
int ctnas_nac_feature_width(const struct ctnas_nac *m);
/* Features of n graphs into feat (n x width).  Works in chunks of a few
 * hundred graphs (bounded scratch); a call of several chunks spreads them
 * over up to 4 threads, with the same result bit for bit.  CTNAS_ENOMEM
 * on failure. */
int ctnas_nac_features(const struct ctnas_nac *m,
                       const struct ctnas_graph *graphs, int n,
                       ctnas_real *feat);
/* The logit and probability that a is better than b from their
 * features. */
double ctnas_nac_feature_logit(const struct ctnas_nac *m,
                               const ctnas_real *fa, const ctnas_real *fb);
double ctnas_nac_feature_prob(const struct ctnas_nac *m,
                              const ctnas_real *fa, const ctnas_real *fb);
/* score[i] = mean over j != i of p(i, j): the mean win probability that
 * ranks the n architectures (n >= 2; n = 1 gives 0.5).  O(n^2) pair
 * evaluations from features.  0, or CTNAS_ENOMEM with score untouched
 * (no slower fallback: its rounding would differ, and a seeded search
 * must not change its answer under memory pressure). */
int ctnas_nac_mean_win(const struct ctnas_nac *m, const ctnas_real *feat,
                       int n, double *score);
/* Direct probability p(a beats b), both graphs through the network (for
 * tests; serving should use features). */
int ctnas_nac_compare(const struct ctnas_nac *m, const struct ctnas_graph *a,
                      const struct ctnas_graph *b, double *p);

/* ------------------------------------------------------------------ */
/* Serialisation: a self-describing little-endian byte string (format
 * version, config, member count, parameters as IEEE float32, checksum),
 * suitable for an SQLite BLOB. */
#define CTNAS_NAC_FORMAT_VERSION 3 /* 2 (no readout: mean) still loads */

size_t ctnas_nac_blob_size(const struct ctnas_nac *m);
/* Write the blob into buf (cap >= ctnas_nac_blob_size); returns the bytes
 * written or CTNAS_ETOOLARGE when cap is too small. */
long ctnas_nac_save(const struct ctnas_nac *m, void *buf, size_t cap);
/* New model from a blob; NULL with err filled (CTNAS_EINVAL for a bad or
 * foreign blob, CTNAS_ENOMEM). */
struct ctnas_nac *ctnas_nac_load(const void *buf, size_t len,
                                 struct ctnas_err *err);

#endif

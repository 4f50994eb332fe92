/*
 * controller.c - the LSTM policy of the search: decision layouts of the
 * spaces (the "decoder" state machines that turn decisions into valid
 * cells and say which choices each step allows), sampling, replay, the
 * REINFORCE backward through time, Adam with clipping, and the state's
 * bytes.  Owns its parameters and optimiser moments; touches nothing
 * global and calls no BLAS (the matrices are 128 x 256).
 */
#include "config.h"
#include "controller.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* Space ids are written into the state bytes (ctnas_ctrl_save), so their
 * values are part of the saved format: never renumber them. */
enum { SPACE_NB201 = 1, SPACE_NB101 = 2 };

/* ------------------------------------------------------------------ */
/* Decision layouts */

#define NB201_EDGES 6
#define NB201_OPS 5

#define NB101_SLOTS 7            /* input, 5 intermediate, output */
#define NB101_OUT (NB101_SLOTS - 1)
/* NAS-Bench-101's limits: at most 7 vertices and 9 edges per cell.  The
 * 21 pairs are every (i, j), i < j, of the 7 slots; STOP is choice 21 of
 * the EDGE kind, one past the last pair. */
#define NB101_MAX_MID 5
#define NB101_MAX_EDGES 9
#define NB101_OPS 3
#define NB101_PAIRS 21
#define NB101_STOP NB101_PAIRS
/* Node types of space_nb101.c: input 0, output 1, then the three ops. */
#define NB101_T_INPUT 0
#define NB101_T_OUTPUT 1
#define NB101_T_FIRST_OP 2

/* Choices per NB101 kind.  PRED has 5 (a predecessor in 0..4, since v is
 * at most 5); its mask narrows that to 0..v-1 at each step. */
enum { K101_NODES, K101_PRED, K101_OP, K101_EDGE, K101_N };
static const int nb101_choices[K101_N] = {NB101_MAX_MID + 1, NB101_MAX_MID,
                                          NB101_OPS, NB101_PAIRS + 1};

/* Pair k of the row-major list of (i, j), i < j < 7. */
static const int pair_i[NB101_PAIRS] = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1,
                                        2, 2, 2, 2, 3, 3, 3, 4, 4, 5};
static const int pair_j[NB101_PAIRS] = {1, 2, 3, 4, 5, 6, 2, 3, 4, 5, 6,
                                        3, 4, 5, 6, 4, 5, 6, 5, 6, 6};

/* NB101 phases, in the order the decisions come: the node count, then
 * PRED and OP alternating for v = 1..m, then EDGE until STOP (or until no
 * edge fits the budget), then DONE. */
enum { P_NODES, P_PRED, P_OP, P_EDGE, P_DONE };

/* The decoder: the state of one decision sequence.  It is rebuilt from the
 * actions alone (replay), so a sample needs to keep only its actions; the
 * masks it recomputes must equal the ones recorded (asserted). */
struct dec {
    const struct ctnas_ctrl *c; /* its sizes allowed */
    int space_id;
    int phase;
    /* nasbench201 */
    int e;
    uint8_t ops201[NB201_EDGES];
    /* nasbench101, in slot space (slot 6 is the output) */
    int m, v, edges;
    uint8_t adj[NB101_SLOTS][NB101_SLOTS];
    uint8_t op[NB101_SLOTS];
    uint8_t has_succ[NB101_SLOTS];
};

/* A fresh decoder for c: no decision taken yet. */
static void dec_init(struct dec *d, const struct ctnas_ctrl *c)
{
    memset(d, 0, sizeof *d);
    d->c = c;
    d->space_id = c->space_id;
    d->phase = P_NODES;
}

/* Masks have at most 22 bits (EDGE: 21 pairs and STOP), so a plain loop
 * is enough and keeps the file free of compiler builtins. */
static int popcount32(uint32_t x)
{
    int n = 0;
    while (x) {
        x &= x - 1;
        n++;
    }
    return n;
}

/* Index of the lowest set bit; x must not be 0 (the loop would not end). */
static int lowest_bit(uint32_t x)
{
    int j = 0;
    while (!(x & 1u)) {
        x >>= 1;
        j++;
    }
    return j;
}

/* Intermediate slots 1..m without a successor so far: each will need its
 * own completion edge to the output, so each counts against the budget. */
static int nb101_sinks(const struct dec *d)
{
    int s = 0;
    for (int v = 1; v <= d->m; v++)
        s += !d->has_succ[v];
    return s;
}

/* The mask of the current NB101 step (phase != P_DONE). */
static uint32_t nb101_mask(const struct dec *d)
{
    uint32_t mask = 0;
    switch (d->phase) {
    case P_NODES:
        /* A cell of m intermediate nodes has m + 2: none is ever pruned
         * (see dec_finish).  A range allowing none allows all. */
        for (int m = 0; m <= NB101_MAX_MID; m++)
            if (ctnas_ctrl_size_allowed(d->c, m + 2))
                mask |= 1u << m;
        return mask ? mask : (1u << (NB101_MAX_MID + 1)) - 1;
    case P_PRED: {
        /* Leaves among 1..v-1, then the choices that keep the leaves
         * (which only a later node can consume, one each) within the
         * edge budget left after the m tree edges. */
        int leaves = 0;
        for (int u = 1; u < d->v; u++)
            leaves += !d->has_succ[u];
        for (int p = 0; p < d->v; p++) {
            /* Node v starts as a leaf (+1); an intermediate leaf p stops
             * being one (-1).  The input is never a leaf. */
            int after = leaves + 1 - (p >= 1 && !d->has_succ[p]);
            if (after <= NB101_MAX_EDGES - d->m)
                mask |= 1u << p;
        }
        return mask;
    }
    case P_OP:
        return (1u << NB101_OPS) - 1;
    case P_EDGE: {
        int s = nb101_sinks(d);
        for (int k = 0; k < NB101_PAIRS; k++) {
            int i = pair_i[k], j = pair_j[k];
            /* Both ends must be slots in use (0..m or the output), and
             * the edge new.  An edge out of a sink replaces that sink's
             * completion edge, so it costs nothing net. */
            if (i > d->m || (j > d->m && j != NB101_OUT) || d->adj[i][j])
                continue;
            int frees = i >= 1 && !d->has_succ[i];
            if (d->edges + 1 + s - frees <= NB101_MAX_EDGES)
                mask |= 1u << k;
        }
        /* STOP is always allowed: PRED's masks leave edges + sinks <= 9
         * and each allowed EDGE keeps it so, so the completion edges
         * always fit. */
        return mask | 1u << NB101_STOP;
    }
    }
    return 0;
}

/* Take choice a at the current NB101 step and move to the next phase.
 * Every edge added gives its tail a successor; tree edges (PRED) and
 * extra edges (EDGE) both count in d->edges. */
static void nb101_apply(struct dec *d, int a)
{
    switch (d->phase) {
    case P_NODES:
        d->m = a;
        d->v = 1;
        d->phase = d->m == 0 ? P_DONE : P_PRED;
        break;
    case P_PRED:
        d->adj[a][d->v] = 1;
        d->has_succ[a] = 1;
        d->edges++;
        d->phase = P_OP;
        break;
    case P_OP:
        d->op[d->v] = (uint8_t)a;
        d->v++;
        d->phase = d->v > d->m ? P_EDGE : P_PRED;
        break;
    case P_EDGE:
        if (a == NB101_STOP) {
            d->phase = P_DONE;
        } else {
            int i = pair_i[a], j = pair_j[a];
            assert(!d->adj[i][j]);
            d->adj[i][j] = 1;
            d->has_succ[i] = 1;
            d->edges++;
        }
        break;
    default:
        assert(0);
    }
}

/* The kind (head and embedding table) of the current step. */
/* NB201 gives each edge its own kind (head and embedding table), so
 * each edge learns its own op distribution; NB101 has one per phase. */
static int dec_kind(const struct dec *d)
{
    if (d->space_id == SPACE_NB201)
        return d->e;
    return d->phase == P_NODES ? K101_NODES
           : d->phase == P_PRED ? K101_PRED
           : d->phase == P_OP   ? K101_OP
                                : K101_EDGE;
}

/* Take choice a at the current step of either space. */
static void dec_apply(struct dec *d, int a)
{
    if (d->space_id == SPACE_NB201) {
        d->ops201[d->e++] = (uint8_t)a;
        return;
    }
    nb101_apply(d, a);
}

/* The next softmax step: returns 1 with its kind and mask, or 0 when the
 * sequence is over.  Steps with one allowed choice are applied here. */
static int dec_next(struct dec *d, int *kind, uint32_t *mask)
{
    for (;;) {
        uint32_t mk;
        if (d->space_id == SPACE_NB201) {
            if (d->e >= NB201_EDGES)
                return 0;
            mk = (1u << NB201_OPS) - 1;
        } else {
            if (d->phase == P_DONE)
                return 0;
            mk = nb101_mask(d);
        }
        assert(mk != 0);
        /* A forced step adds neither log p nor an LSTM step.  Replay
         * skips exactly the same steps, since masks depend only on the
         * actions taken so far. */
        if (popcount32(mk) == 1) {
            dec_apply(d, lowest_bit(mk));
            continue;
        }
        *kind = dec_kind(d);
        *mask = mk;
        return 1;
    }
}

/* The canonical architecture of a finished sequence.  NB201: the six ops.
 * NB101: slots 0..m keep their index, slot 6 (the output) becomes m + 1;
 * the completion edges are added here.  Nothing is ever left off an
 * input -> output path, so this is already the pruned (canonical) form,
 * with the same node order the space's parser would keep. */
static void dec_finish(const struct dec *d, struct ctnas_arch *a)
{
    memset(a, 0, sizeof *a);
    if (d->space_id == SPACE_NB201) {
        a->n = NB201_EDGES;
        memcpy(a->ops, d->ops201, NB201_EDGES);
        return;
    }
    int m = d->m, out = m + 1;
    a->n = m + 2;
    a->ops[0] = NB101_T_INPUT;
    a->ops[out] = NB101_T_OUTPUT;
    for (int v = 1; v <= m; v++)
        a->ops[v] = (uint8_t)(NB101_T_FIRST_OP + d->op[v]);
    for (int i = 0; i <= m; i++) {
        for (int j = i + 1; j <= m; j++)
            a->adj[i][j] = d->adj[i][j];
        a->adj[i][out] = d->adj[i][NB101_OUT];
    }
    /* Completion: every node reaches the output. */
    for (int v = 1; v <= m; v++)
        if (!d->has_succ[v])
            a->adj[v][out] = 1;
    if (m == 0)
    /* m = 0: the cell is input -> output alone; its one edge is added
     * here as no decision could choose it. */
        a->adj[0][1] = 1;
}

/* ------------------------------------------------------------------ */
/* Configuration and layout */

void ctnas_ctrl_config_default(struct ctnas_ctrl_config *cfg)
{
    cfg->hidden = 64;
    cfg->temperature = 1.0;
    cfg->tanh_c = 0.0;
    cfg->init_range = 0.1;
}

int ctnas_ctrl_config_check(const struct ctnas_ctrl_config *cfg,
                            struct ctnas_err *err)
{
    if (cfg->hidden < 1 || cfg->hidden > CTNAS_CTRL_MAX_HIDDEN)
        return ctnas_err_set(err, CTNAS_EINVAL, "hidden",
                             "hidden must be 1..%d", CTNAS_CTRL_MAX_HIDDEN);
    /* Written as !(in range) so that NaN, which fails every comparison,
     * is rejected too.  The upper bounds only reject nonsense. */
    if (!(cfg->temperature > 0 && cfg->temperature < 1e6))
        return ctnas_err_set(err, CTNAS_EINVAL, "temperature",
                             "temperature must be > 0");
    if (!(cfg->tanh_c >= 0 && cfg->tanh_c < 1e6))
        return ctnas_err_set(err, CTNAS_EINVAL, "tanh_c",
                             "tanh_c must be >= 0 (0: off)");
    if (!(cfg->init_range > 0 && cfg->init_range <= 10))
        return ctnas_err_set(err, CTNAS_EINVAL, "init_range",
                             "init_range must be in (0, 10]");
    return 0;
}

/* Which decision layout serves sp; 0 for a space without one.  By name,
 * so any struct ctnas_space of the same space is accepted. */
static int space_id_of(const struct ctnas_space *sp)
{
    if (sp == NULL)
        return 0;
    if (strcmp(sp->name, "nasbench201") == 0)
        return SPACE_NB201;
    if (strcmp(sp->name, "nasbench101") == 0)
        return SPACE_NB101;
    return 0;
}

/* Offsets of every parameter block in theta: x0, the LSTM's W and b,
 * then per kind its embedding table, head matrix and head bias. */
static void layout_init(int space_id, int hidden, struct ctnas_ctrl_layout *l)
{
    memset(l, 0, sizeof *l);
    l->hidden = hidden;
    if (space_id == SPACE_NB201) {
        l->n_kinds = NB201_EDGES;
        for (int k = 0; k < NB201_EDGES; k++)
            l->n_choices[k] = NB201_OPS;
    } else {
        l->n_kinds = K101_N;
        for (int k = 0; k < K101_N; k++)
            l->n_choices[k] = nb101_choices[k];
    }
    /* W is (2H) x 4H row-major: row k multiplies x_k, row H + k
     * multiplies h_{t-1,k}; the columns are the gate quarters i f g o.
     * Embeddings and heads are C x H, one row per choice. */
    size_t H = (size_t)hidden, off = 0;
    l->x0 = off;
    off += H;
    l->w = off;
    off += 2 * H * 4 * H;
    l->b = off;
    off += 4 * H;
    for (int k = 0; k < l->n_kinds; k++) {
        size_t C = (size_t)l->n_choices[k];
        l->emb[k] = off;
        off += C * H;
        l->head_w[k] = off;
        off += C * H;
        l->head_b[k] = off;
        off += C;
    }
    l->n_params = off;
}

struct ctnas_ctrl *ctnas_ctrl_new(const struct ctnas_space *space,
                                  const struct ctnas_ctrl_config *cfg,
                                  struct ctnas_rng *rng,
                                  struct ctnas_err *err)
{
    int id = space_id_of(space);
    if (id == 0) {
        ctnas_err_set(err, CTNAS_EINVAL, "space",
                      "the controller knows nasbench101 and nasbench201");
        return NULL;
    }
    if (ctnas_ctrl_config_check(cfg, err) != 0)
        return NULL;
    struct ctnas_ctrl *c = ctnas_calloc(1, sizeof *c);
    if (c == NULL)
        goto nomem;
    c->space = space;
    c->space_id = id;
    c->cfg = *cfg;
    layout_init(id, cfg->hidden, &c->lay);
    size_t n = c->lay.n_params;
    c->theta = ctnas_malloc(n * sizeof *c->theta);
    c->adam_m = ctnas_calloc(n, sizeof *c->adam_m);
    c->adam_v = ctnas_calloc(n, sizeof *c->adam_v);
    if (c->theta == NULL || c->adam_m == NULL || c->adam_v == NULL) {
        /* Frees whichever arrays were allocated. */
        ctnas_ctrl_free(c);
        goto nomem;
    }
    /* Uniform in [-init_range, init_range); the Adam moments start at 0
     * (calloc) and adam_t at 0, as Adam's bias correction assumes. */
    for (size_t i = 0; i < n; i++)
        c->theta[i] = cfg->init_range * (2.0 * ctnas_rng_uniform(rng) - 1.0);
    return c;
nomem:
    ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    return NULL;
}

void ctnas_ctrl_free(struct ctnas_ctrl *c)
{
    if (c == NULL)
        return;
    ctnas_free(c->theta);
    ctnas_free(c->adam_m);
    ctnas_free(c->adam_v);
    ctnas_free(c);
}

/* ------------------------------------------------------------------ */
/* Activations of one step, at these offsets (times H unless noted):
 *   gates i f g o (4), c (1), tanh c (1), h (1), then CTNAS_CTRL_MAX_CHOICES
 *   each of u (head output) and log p, then the step entropy (1). */
#define OFF_G(H) 0
#define OFF_C(H) (4 * (H))
#define OFF_TC(H) (5 * (H))
#define OFF_H(H) (6 * (H))
#define OFF_U(H) (7 * (H))
#define OFF_LP(H) (7 * (H) + CTNAS_CTRL_MAX_CHOICES)
#define OFF_ENT(H) (7 * (H) + 2 * CTNAS_CTRL_MAX_CHOICES)
#define STRIDE(H) (7 * (H) + 2 * CTNAS_CTRL_MAX_CHOICES + 1)

int ctnas_ctrl_work_init(struct ctnas_ctrl_work *w,
                         const struct ctnas_ctrl *c, int cap)
{
    memset(w, 0, sizeof *w);
    w->cap = cap;
    w->hidden = c->cfg.hidden;
    w->stride = STRIDE(c->cfg.hidden);
    /* At least one sample's room: malloc(0) may return NULL, which would
     * read as ENOMEM.  scratch is backward's dh, dc, dhp, dx (H each) and
     * dz (4H): 8H doubles. */
    w->buf = ctnas_malloc((size_t)(cap > 0 ? cap : 1) * CTNAS_CTRL_MAX_STEPS *
                          (size_t)w->stride * sizeof *w->buf);
    w->scratch = ctnas_malloc((size_t)8 * c->cfg.hidden * sizeof *w->scratch);
    if (w->buf == NULL || w->scratch == NULL) {
        ctnas_ctrl_work_destroy(w);
        return CTNAS_ENOMEM;
    }
    return 0;
}

void ctnas_ctrl_work_destroy(struct ctnas_ctrl_work *w)
{
    if (w == NULL)
        return;
    ctnas_free(w->buf);
    ctnas_free(w->scratch);
    w->buf = NULL;
    w->scratch = NULL;
    w->cap = 0;
}

/* Two branches so that exp() only ever sees a non-positive argument and
 * cannot overflow. */
static double sigmoid(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* logits from the head output u */
/* u / T, or c tanh(u / T) when tanh_c > 0: the bounded logits keep the
 * policy from collapsing onto one choice early in the search. */
static double squash(const struct ctnas_ctrl_config *cfg, double u)
{
    double t = u / cfg->temperature;
    return cfg->tanh_c > 0 ? cfg->tanh_c * tanh(t) : t;
}

/* d squash / d u */
static double squash_grad(const struct ctnas_ctrl_config *cfg, double u)
{
    if (cfg->tanh_c > 0) {
        double th = tanh(u / cfg->temperature);
        return cfg->tanh_c * (1.0 - th * th) / cfg->temperature;
    }
    return 1.0 / cfg->temperature;
}

/* y += a x: the loop the matrices reduce to (restrict lets the compiler
 * vectorise it at -O2). */
static void axpy(int n, double a, const double *restrict x,
                 double *restrict y)
{
    for (int j = 0; j < n; j++)
        y[j] += a * x[j];
}

/* x . y with four partial sums (a fixed order, so still deterministic). */
static double dot(int n, const double *restrict x, const double *restrict y)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        s0 += x[j] * y[j];
        s1 += x[j + 1] * y[j + 1];
        s2 += x[j + 2] * y[j + 2];
        s3 += x[j + 3] * y[j + 3];
    }
    for (; j < n; j++)
        s0 += x[j] * y[j];
    return (s0 + s1) + (s2 + s3);
}

/* One LSTM step and head: fills cur (see the offsets), the
 * step's entropy at OFF_ENT.  hp, cp: previous h and c, NULL at t = 0. */
static void step_forward(const struct ctnas_ctrl *c, const double *th,
                         const double *x, const double *hp, const double *cp,
                         int kind, uint32_t mask, double *cur)
{
    const int H = c->cfg.hidden, G = 4 * H;
    const struct ctnas_ctrl_layout *l = &c->lay;
    double *z = cur + OFF_G(H);
    const double *w = th + l->w;
    /* z = b + sum_k x_k W[k,:] + sum_k h_k W[H+k,:]: walking W's rows
     * keeps every inner loop contiguous (axpy over 4H). */
    memcpy(z, th + l->b, (size_t)G * sizeof *z);
    for (int k = 0; k < H; k++)
        axpy(G, x[k], w + (size_t)k * G, z);
    if (hp != NULL)
        for (int k = 0; k < H; k++)
            axpy(G, hp[k], w + (size_t)(H + k) * G, z);
    double *cc = cur + OFF_C(H), *tc = cur + OFF_TC(H), *h = cur + OFF_H(H);
    for (int k = 0; k < H; k++) {
        double ig = sigmoid(z[k]), fg = sigmoid(z[H + k]);
        double gg = tanh(z[2 * H + k]), og = sigmoid(z[3 * H + k]);
        /* The activated gates overwrite z: backward needs those, not the
         * pre-activations. */
        z[k] = ig;
        z[H + k] = fg;
        z[2 * H + k] = gg;
        z[3 * H + k] = og;
        cc[k] = (cp != NULL ? fg * cp[k] : 0.0) + ig * gg;
        tc[k] = tanh(cc[k]);
        h[k] = og * tc[k];
    }
    const int C = l->n_choices[kind];
    const double *hw = th + l->head_w[kind], *hb = th + l->head_b[kind];
    double *u = cur + OFF_U(H), *lp = cur + OFF_LP(H);
    /* Masked choices get log p = -inf and no share of the entropy; the
     * log-sum-exp runs over the allowed logits only, shifted by their
     * maximum so exp() cannot overflow. */
    double mx = -INFINITY;
    for (int j = 0; j < C; j++) {
        double s = hb[j] + dot(H, hw + (size_t)j * H, h);
        u[j] = s;
        if (mask >> j & 1u) {
            double lg = squash(&c->cfg, s);
            lp[j] = lg;
            if (lg > mx)
                mx = lg;
        }
    }
    double sum = 0;
    for (int j = 0; j < C; j++)
        if (mask >> j & 1u)
            sum += exp(lp[j] - mx);
    double lse = mx + log(sum), ent = 0;
    for (int j = 0; j < C; j++) {
        if (mask >> j & 1u) {
            lp[j] -= lse;
            ent -= exp(lp[j]) * lp[j];
        } else {
            lp[j] = -INFINITY;
        }
    }
    cur[OFF_ENT(H)] = ent;
}

/* How run_one picks each step's choice: by a uniform draw from rng, from
 * the sample's recorded actions, or by the largest probability. */
enum { MODE_SAMPLE, MODE_REPLAY, MODE_GREEDY };

/* Run one sequence through the LSTM under parameters th, filling s (its
 * kinds, masks, actions, log-probability, entropy and architecture).
 * wbuf: MAX_STEPS x stride doubles where every step's activations are kept
 * for the backward (keep = 1), or a 2 x stride scratch where only the
 * previous step survives (keep = 0). */
static void run_one(const struct ctnas_ctrl *c, const double *th, int mode,
                    struct ctnas_rng *rng, struct ctnas_ctrl_sample *s,
                    double *wbuf, int keep)
{
    const int H = c->cfg.hidden, stride = STRIDE(H);
    const struct ctnas_ctrl_layout *l = &c->lay;
    struct dec d;
    dec_init(&d, c);
    int t = 0, kind;
    uint32_t mask;
    double logp = 0, ent = 0;
    while (dec_next(&d, &kind, &mask)) {
        assert(t < CTNAS_CTRL_MAX_STEPS);
        /* keep = 0 alternates two slots: step t needs only step t - 1.
         * Step t > 0 reads the embedding of the previous action in the
         * previous step's kind table; step 0 reads the learned x0. */
        double *cur = wbuf + (size_t)(keep ? t : (t & 1)) * stride;
        const double *prev = NULL, *x = th + l->x0;
        if (t > 0) {
            prev = wbuf + (size_t)(keep ? t - 1 : ((t - 1) & 1)) * stride;
            x = th + l->emb[s->kind[t - 1]] + (size_t)s->action[t - 1] * H;
        }
        step_forward(c, th, x, prev ? prev + OFF_H(H) : NULL,
                     prev ? prev + OFF_C(H) : NULL, kind, mask, cur);
        const double *lp = cur + OFF_LP(H);
        const int C = l->n_choices[kind];
        int a = -1;
        if (mode == MODE_REPLAY) {
            assert(t < s->n_steps && s->kind[t] == kind &&
                   s->mask[t] == mask);
            a = s->action[t];
        } else if (mode == MODE_GREEDY) {
            for (int j = 0; j < C; j++)
                if ((mask >> j & 1u) && (a < 0 || lp[j] > lp[a]))
                    a = j;
        } else {
            /* Inverse CDF over the allowed choices: one uniform draw per
             * step, so a seed fixes the whole sample. */
            double r = ctnas_rng_uniform(rng), acc = 0;
            for (int j = 0; j < C; j++)
                if (mask >> j & 1u) {
                    a = j;  /* rounding: the last allowed catches r */
                    acc += exp(lp[j]);
                    if (r < acc)
                        break;
                }
        }
        assert(a >= 0 && a < C && (mask >> a & 1u));
        s->kind[t] = (uint8_t)kind;
        s->mask[t] = mask;
        s->action[t] = (uint8_t)a;
        logp += lp[a];
        ent += cur[OFF_ENT(H)];
        dec_apply(&d, a);
        t++;
    }
    assert(mode != MODE_REPLAY || t == s->n_steps);
    s->n_steps = t;
    s->logp = logp;
    s->entropy = ent;
    dec_finish(&d, &s->arch);
}

int ctnas_ctrl_sample(const struct ctnas_ctrl *c, struct ctnas_rng *rng,
                      int n, struct ctnas_ctrl_sample *out,
                      struct ctnas_ctrl_work *work)
{
    const int stride = STRIDE(c->cfg.hidden);
    if (work != NULL) {
        assert(n <= work->cap && work->hidden == c->cfg.hidden);
        for (int i = 0; i < n; i++)
            run_one(c, c->theta, MODE_SAMPLE, rng, &out[i],
                    work->buf + (size_t)i * CTNAS_CTRL_MAX_STEPS * stride, 1);
        return 0;
    }
    double *scratch = ctnas_malloc(2 * (size_t)stride * sizeof *scratch);
    if (scratch == NULL)
        return CTNAS_ENOMEM;
    for (int i = 0; i < n; i++)
        run_one(c, c->theta, MODE_SAMPLE, rng, &out[i], scratch, 0);
    ctnas_free(scratch);
    return 0;
}

void ctnas_ctrl_forward(const struct ctnas_ctrl *c, const double *theta,
                        int n, struct ctnas_ctrl_sample *s,
                        struct ctnas_ctrl_work *work)
{
    const int stride = STRIDE(c->cfg.hidden);
    assert(n <= work->cap && work->hidden == c->cfg.hidden);
    for (int i = 0; i < n; i++)
        /* theta != NULL lets the gradient check evaluate the loss at a
         * perturbed theta without touching c. */
        run_one(c, theta ? theta : c->theta, MODE_REPLAY, NULL, &s[i],
                work->buf + (size_t)i * CTNAS_CTRL_MAX_STEPS * stride, 1);
}

int ctnas_ctrl_greedy(const struct ctnas_ctrl *c,
                      struct ctnas_ctrl_sample *out)
{
    double *scratch = ctnas_malloc(2 * (size_t)STRIDE(c->cfg.hidden) *
                                   sizeof *scratch);
    if (scratch == NULL)
        return CTNAS_ENOMEM;
    run_one(c, c->theta, MODE_GREEDY, NULL, out, scratch, 0);
    ctnas_free(scratch);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Backward through time.
 *
 * Per sample i and step t with log-probabilities lp (allowed j), action
 * a and entropy H_t = -sum_j p_j lp_j, the loss
 *   L = -(1/n) sum_i [ adv_i sum_t lp_t[a_t] + lambda sum_t H_t ]
 * has, with respect to the step's logits l_j,
 *   dlp[a]/dl_j = [j = a] - p_j,   dH/dl_j = -p_j (lp_j + H),
 * so dL/dl_j = -(1/n) (adv (onehot_j - p_j) - lambda p_j (lp_j + H)).
 * Then u -> l:  l = c tanh(u/T): dl/du = (c/T)(1 - tanh^2(u/T)), or 1/T;
 * head u = Wk h + bk:  dWk += du h^T, dbk += du, dh += Wk^T du;
 * LSTM: h = o tanh(c_t):  do = dh tanh(c_t),
 *   dc = dc_next + dh o (1 - tanh^2 c_t);
 *   c_t = f c_{t-1} + i g:  di = dc g, dg = dc i, df = dc c_{t-1},
 *   dc_{t-1} = dc f;
 *   dz = (di i(1-i), df f(1-f), dg (1-g^2), do o(1-o));
 *   z = W^T [x ; h_{t-1}] + b:  dW += [x ; h_{t-1}] dz^T, db += dz,
 *   [dx ; dh_{t-1}] = W dz, and dx goes to the embedding row (or x0)
 *   that was x. */
double ctnas_ctrl_backward(const struct ctnas_ctrl *c, int n,
                           const struct ctnas_ctrl_sample *s,
                           const double *adv, double ent_weight,
                           const struct ctnas_ctrl_work *work, double *grad)
{
    const int H = c->cfg.hidden, G = 4 * H, stride = STRIDE(H);
    const struct ctnas_ctrl_layout *l = &c->lay;
    const double *th = c->theta, *w = th + l->w;
    assert(n <= work->cap && work->hidden == H);
    double loss = 0, inv = n > 0 ? 1.0 / n : 0;
    double *tmp = work->scratch;
    double *dh = tmp, *dc = tmp + H, *dhp = tmp + 2 * H, *dx = tmp + 3 * H;
    double *dz = tmp + 4 * H;
    double *gw = grad + l->w, *gb = grad + l->b;
    for (int i = 0; i < n; i++) {
        const struct ctnas_ctrl_sample *si = &s[i];
        const double *base =
            work->buf + (size_t)i * CTNAS_CTRL_MAX_STEPS * stride;
        /* dh and dc carry the gradient from step t + 1 back into step t;
         * nothing flows past the last step. */
        loss -= inv * (adv[i] * si->logp + ent_weight * si->entropy);
        memset(dh, 0, (size_t)H * sizeof *dh);
        memset(dc, 0, (size_t)H * sizeof *dc);
        for (int t = si->n_steps - 1; t >= 0; t--) {
            const double *cur = base + (size_t)t * stride;
            const double *prev = t > 0 ? cur - stride : NULL;
            const int kind = si->kind[t], C = l->n_choices[kind];
            const int a = si->action[t];
            const uint32_t mask = si->mask[t];
            const double *u = cur + OFF_U(H), *lp = cur + OFF_LP(H);
            const double *h = cur + OFF_H(H), ent = cur[OFF_ENT(H)];
            const double *hw = th + l->head_w[kind];
            double *ghw = grad + l->head_w[kind], *ghb = grad + l->head_b[kind];
            for (int j = 0; j < C; j++) {
                if (!(mask >> j & 1u))
                    continue;
                double p = exp(lp[j]);
                double dl = -inv * (adv[i] * ((j == a) - p) -
                                    ent_weight * p * (lp[j] + ent));
                /* The head's dh adds to the dh that came back through
                 * the recurrence from step t + 1. */
                double du = dl * squash_grad(&c->cfg, u[j]);
                ghb[j] += du;
                axpy(H, du, h, ghw + (size_t)j * H);
                axpy(H, du, hw + (size_t)j * H, dh);
            }
            const double *gt = cur + OFF_G(H), *tc = cur + OFF_TC(H);
            for (int k = 0; k < H; k++) {
                double ig = gt[k], fg = gt[H + k], gg = gt[2 * H + k];
                double og = gt[3 * H + k];
                double cprev = prev != NULL ? prev[OFF_C(H) + k] : 0.0;
                double dck = dc[k] + dh[k] * og * (1.0 - tc[k] * tc[k]);
                dz[k] = dck * gg * ig * (1.0 - ig);
                dz[H + k] = dck * cprev * fg * (1.0 - fg);
                dz[2 * H + k] = dck * ig * (1.0 - gg * gg);
                /* o does not feed c, so its gradient uses dh alone. */
                dz[3 * H + k] = dh[k] * tc[k] * og * (1.0 - og);
                dc[k] = dck * fg;
            }
            for (int j = 0; j < G; j++)
                gb[j] += dz[j];
            const double *x;
            double *gx;
            /* x was a row of the previous action's embedding table (or
             * x0): several steps may share a row, so its gradient adds. */
            if (t > 0) {
                size_t off = l->emb[si->kind[t - 1]] +
                             (size_t)si->action[t - 1] * H;
                x = th + off;
                gx = grad + off;
            } else {
                x = th + l->x0;
                gx = grad + l->x0;
            }
            for (int k = 0; k < H; k++) {
                axpy(G, x[k], dz, gw + (size_t)k * G);
                dx[k] = dot(G, w + (size_t)k * G, dz);
            }
            for (int k = 0; k < H; k++)
                gx[k] += dx[k];
            if (prev != NULL) {
                const double *hp = prev + OFF_H(H);
                for (int k = 0; k < H; k++) {
                    axpy(G, hp[k], dz, gw + (size_t)(H + k) * G);
                    dhp[k] = dot(G, w + (size_t)(H + k) * G, dz);
                }
                /* dh_{t-1} replaces dh: step t's head contribution was
                 * consumed above. */
                memcpy(dh, dhp, (size_t)H * sizeof *dh);
            }
        }
    }
    return loss;
}

/* ------------------------------------------------------------------ */
/* Adam */

#define ADAM_B1 0.9
#define ADAM_B2 0.999
#define ADAM_EPS 1e-8

double ctnas_ctrl_update(struct ctnas_ctrl *c, double *grad, double lr,
                         double clip)
{
    size_t n = c->lay.n_params;
    /* Clip by global norm: scaling the whole vector keeps the direction.
     * The norm returned is the one before clipping, for the logs. */
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += grad[i] * grad[i];
    double norm = sqrt(ss);
    if (clip > 0 && norm > clip) {
        double f = clip / norm;
        for (size_t i = 0; i < n; i++)
            grad[i] *= f;
    }
    /* Adam with bias correction: m_hat = m / (1 - b1^t), v_hat = v /
     * (1 - b2^t), theta -= lr m_hat / (sqrt(v_hat) + eps).  The two
     * corrections are folded into step and isb2, so the loop has one
     * division per element; eps is added after the correction, as in
     * the paper. */
    c->adam_t++;
    double bc1 = 1.0 - pow(ADAM_B1, (double)c->adam_t);
    double bc2 = 1.0 - pow(ADAM_B2, (double)c->adam_t);
    double step = lr / bc1, isb2 = 1.0 / sqrt(bc2);
    double *m = c->adam_m, *v = c->adam_v, *th = c->theta;
    for (size_t i = 0; i < n; i++) {
        m[i] = ADAM_B1 * m[i] + (1 - ADAM_B1) * grad[i];
        v[i] = ADAM_B2 * v[i] + (1 - ADAM_B2) * grad[i] * grad[i];
        th[i] -= step * m[i] / (sqrt(v[i]) * isb2 + ADAM_EPS);
    }
    return norm;
}

/* ------------------------------------------------------------------ */
/* State bytes: "CTNASCTL", u32 version, u32 space id, u32 hidden, u32 0,
 * f64 temperature, tanh_c, init_range, u64 n_params, u64 adam_t, then
 * theta, adam_m, adam_v as native doubles. */
/* Header offsets: magic 0, u32[4] 8, f64[3] 24, u64[2] 48, 64 bytes in
 * all.  Native byte order: the bytes resume a job where they were saved
 * and are not an exchange format.  Bump CTRL_VERSION on any change. */
#define CTRL_VERSION 1
#define CTRL_HEADER 64
static const char ctrl_magic[8] = {'C', 'T', 'N', 'A', 'S', 'C', 'T', 'L'};

size_t ctnas_ctrl_state_size(const struct ctnas_ctrl *c)
{
    return CTRL_HEADER + 3 * c->lay.n_params * sizeof(double);
}

long ctnas_ctrl_save(const struct ctnas_ctrl *c, void *buf, size_t cap)
{
    size_t size = ctnas_ctrl_state_size(c), n = c->lay.n_params;
    if (cap < size)
        return CTNAS_ETOOLARGE;
    unsigned char *p = buf;
    uint32_t u[4] = {CTRL_VERSION, (uint32_t)c->space_id,
                     (uint32_t)c->cfg.hidden, 0};
    double f[3] = {c->cfg.temperature, c->cfg.tanh_c, c->cfg.init_range};
    uint64_t q[2] = {n, c->adam_t};
    memcpy(p, ctrl_magic, 8);
    memcpy(p + 8, u, sizeof u);
    memcpy(p + 24, f, sizeof f);
    memcpy(p + 48, q, sizeof q);
    p += CTRL_HEADER;
    memcpy(p, c->theta, n * sizeof(double));
    memcpy(p + n * sizeof(double), c->adam_m, n * sizeof(double));
    memcpy(p + 2 * n * sizeof(double), c->adam_v, n * sizeof(double));
    return (long)size;
}

int ctnas_ctrl_load(struct ctnas_ctrl *c, const void *buf, size_t len,
                    struct ctnas_err *err)
{
    const unsigned char *p = buf;
    size_t n = c->lay.n_params;
    uint32_t u[4];
    double f[3];
    uint64_t q[2];
    if (len < CTRL_HEADER || memcmp(p, ctrl_magic, 8) != 0)
        return ctnas_err_set(err, CTNAS_EINVAL, "controller",
                             "not a controller state");
    memcpy(u, p + 8, sizeof u);
    memcpy(f, p + 24, sizeof f);
    memcpy(q, p + 48, sizeof q);
    if (u[0] != CTRL_VERSION || u[1] != (uint32_t)c->space_id ||
        u[2] != (uint32_t)c->cfg.hidden || q[0] != n ||
        len != ctnas_ctrl_state_size(c))
        return ctnas_err_set(err, CTNAS_EINVAL, "controller",
                             "controller state of another version, space "
                             "or shape");
    /* Every check passed: only now is c written, so a failed load leaves
     * it untouched.  hidden and space must match (they fix the layout);
     * the squashing settings are taken from the state. */
    c->cfg.temperature = f[0];
    c->cfg.tanh_c = f[1];
    c->cfg.init_range = f[2];
    c->adam_t = q[1];
    p += CTRL_HEADER;
    memcpy(c->theta, p, n * sizeof(double));
    memcpy(c->adam_m, p + n * sizeof(double), n * sizeof(double));
    memcpy(c->adam_v, p + 2 * n * sizeof(double), n * sizeof(double));
    return 0;
}

/*
 * nac.c - the comparator network: parameter layout and initialisation,
 * batch stacking with node-state dedupe, forward and hand-written
 * backward, the three heads, the pair loss, serving features and the
 * serialised form.
 *
 * Owns only the memory of its batches, caches and models.  Reaches BLAS
 * through blas.h; randomness only through a passed struct ctnas_rng.
 * Written over ctnas_real so the gradient tests can build it in double.
 *
 * Threads: a model is read-only once built or loaded.  ctnas_nac_features
 * and ctnas_nac_mean_win start short-lived threads of their own, which
 * share only read-only inputs and write disjoint rows of the output.
 * Batches and caches have no lock: each serves one thread at a time.
 */
#include "config.h"
#include "nac.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem.h"

/* ------------------------------------------------------------------ */
/* Config and layout */

const char *const ctnas_nac_head_names[] = {"concat", "diff", "mlp", NULL};
const char *const ctnas_nac_readout_names[] = {"mean", "mean_output",
                                               "output", NULL};

const char *ctnas_nac_head_name(int head)
{
    return ctnas_name_of(ctnas_nac_head_names, head);
}

int ctnas_nac_head_parse(const char *name)
{
    return ctnas_name_index(ctnas_nac_head_names, name);
}

const char *ctnas_nac_readout_name(int readout)
{
    return ctnas_name_of(ctnas_nac_readout_names, readout);
}

int ctnas_nac_readout_parse(const char *name)
{
    return ctnas_name_index(ctnas_nac_readout_names, name);
}

void ctnas_nac_config_default(struct ctnas_nac_config *cfg)
{
    cfg->n_types = 0;
    cfg->dim = 128;
    cfg->layers = 4;
    cfg->head = CTNAS_NAC_HEAD_DIFF;
    cfg->hidden = 64;
    cfg->norm = 0;
    cfg->bidir = 2;
    cfg->readout = CTNAS_NAC_READOUT_MEAN;
}

int ctnas_nac_config_check(const struct ctnas_nac_config *cfg,
                           struct ctnas_err *err)
{
    if (cfg->n_types < 1 || cfg->n_types > CTNAS_NAC_MAX_TYPES)
        return ctnas_err_set(err, CTNAS_EINVAL, "n_types",
                             "node types must be 1..%d",
                             CTNAS_NAC_MAX_TYPES);
    if (cfg->dim < 1 || cfg->dim > CTNAS_NAC_MAX_DIM)
        return ctnas_err_set(err, CTNAS_EINVAL, "dim", "dim must be 1..%d",
                             CTNAS_NAC_MAX_DIM);
    if (cfg->layers < 0 || cfg->layers > CTNAS_NAC_MAX_LAYERS)
        return ctnas_err_set(err, CTNAS_EINVAL, "layers",
                             "layers must be 0..%d", CTNAS_NAC_MAX_LAYERS);
    if (cfg->head < 0 || cfg->head > CTNAS_NAC_HEAD_MLP)
        return ctnas_err_set(err, CTNAS_EINVAL, "head",
                             "head must be concat, diff or mlp");
    if (cfg->head == CTNAS_NAC_HEAD_MLP &&
        (cfg->hidden < 1 || cfg->hidden > CTNAS_NAC_MAX_HIDDEN))
        return ctnas_err_set(err, CTNAS_EINVAL, "hidden",
                             "hidden must be 1..%d", CTNAS_NAC_MAX_HIDDEN);
    if (cfg->norm != 0 && cfg->norm != 1)
        return ctnas_err_set(err, CTNAS_EINVAL, "norm", "norm must be 0 or 1");
    if (cfg->bidir < 0 || cfg->bidir > 2)
        return ctnas_err_set(err, CTNAS_EINVAL, "bidir",
                             "bidir must be 0, 1 or 2");
    if (cfg->readout < 0 || cfg->readout > CTNAS_NAC_READOUT_OUT)
        return ctnas_err_set(err, CTNAS_EINVAL, "readout",
                             "readout must be mean, mean_output or output");
    return 0;
}

/* Order in theta: the embedding, then W(l) and b(l) per layer, then the
 * head's parameters.  Saved blobs keep theta in this order, so changing it
 * changes the meaning of every stored model. */
void ctnas_nac_layout_init(const struct ctnas_nac_config *cfg,
                           struct ctnas_nac_layout *lay)
{
    size_t d = (size_t)cfg->dim, o = 0;
    size_t kin = (cfg->bidir == 2 ? 2 : 1) * d;
    memset(lay, 0, sizeof *lay);
    lay->emb = o;
    o += (size_t)cfg->n_types * d;
    for (int l = 0; l < cfg->layers; l++) {
        lay->w[l] = o;
        o += kin * d;
        lay->b[l] = o;
        o += d;
    }
    switch (cfg->head) {
    case CTNAS_NAC_HEAD_CONCAT:
        lay->u = o;
        o += d;
        lay->v = o;
        o += d;
        lay->c = o;
        o += 1;
        lay->feat_width = 2;
        break;
    case CTNAS_NAC_HEAD_DIFF:
        lay->w_diff = o;
        o += d;
        lay->feat_width = 2;
        break;
    default:
        lay->w1 = o;
        o += (size_t)cfg->hidden * d;
        lay->b1 = o;
        o += (size_t)cfg->hidden;
        lay->w2 = o;
        o += (size_t)cfg->hidden;
        lay->feat_width = cfg->hidden;
        break;
    }
    lay->n_params = o;
}

/* x[0 .. n) uniform in [-bound, bound). */
static void fill_uniform(ctnas_real *x, size_t n, double bound,
                         struct ctnas_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (ctnas_real)((2.0 * ctnas_rng_uniform(rng) - 1.0) * bound);
}

/* Bounds are PyTorch's 1/sqrt(fan_in).  W(l) takes 1/sqrt(kw d): with
 * bidir = 2 its halves act as one linear map of the concatenated
 * predecessor and successor sums, fan-in 2d.  The CONCAT head reads
 * [z_a ; z_b], fan-in 2d as well.  The draw order fixes which weights a
 * seed gives, so keep it. */
void ctnas_nac_init_params(const struct ctnas_nac_config *cfg,
                           const struct ctnas_nac_layout *lay,
                           ctnas_real *theta, struct ctnas_rng *rng)
{
    size_t d = (size_t)cfg->dim;
    size_t kin = (cfg->bidir == 2 ? 2 : 1) * d;
    double bd = 1.0 / sqrt((double)d), bk = 1.0 / sqrt((double)kin);
    for (size_t i = 0; i < (size_t)cfg->n_types * d; i++)
        theta[lay->emb + i] = (ctnas_real)ctnas_rng_normal(rng);
    for (int l = 0; l < cfg->layers; l++) {
        fill_uniform(theta + lay->w[l], kin * d, bk, rng);
        fill_uniform(theta + lay->b[l], d, bk, rng);
    }
    switch (cfg->head) {
    case CTNAS_NAC_HEAD_CONCAT: {
        double b2 = 1.0 / sqrt(2.0 * (double)d);
        fill_uniform(theta + lay->u, d, b2, rng);
        fill_uniform(theta + lay->v, d, b2, rng);
        fill_uniform(theta + lay->c, 1, b2, rng);
        break;
    }
    case CTNAS_NAC_HEAD_DIFF:
        fill_uniform(theta + lay->w_diff, d, bd, rng);
        break;
    default:
        fill_uniform(theta + lay->w1, (size_t)cfg->hidden * d, bd, rng);
        fill_uniform(theta + lay->b1, (size_t)cfg->hidden, bd, rng);
        fill_uniform(theta + lay->w2, (size_t)cfg->hidden,
                     1.0 / sqrt((double)cfg->hidden), rng);
        break;
    }
}

/* ------------------------------------------------------------------ */
/* Batches */

/* Longest neighbour list of a node: every other node at most once (in a
 * DAG no node is both a predecessor and a successor of the same node). */
#define MAX_PRED (CTNAS_GRAPH_MAX - 1)

/* Everything is sized for the worst case, cap_graphs graphs of
 * CTNAS_GRAPH_MAX rows sharing no state, so building never allocates.
 * Layer 0 has no self, pred or scale arrays: its states are node types. */
int ctnas_nac_batch_init(struct ctnas_nac_batch *b, int cap_graphs,
                         int layers, int dedupe)
{
    memset(b, 0, sizeof *b);
    assert(cap_graphs >= 1 && layers >= 0 && layers <= CTNAS_NAC_MAX_LAYERS);
    size_t rows = (size_t)cap_graphs * CTNAS_GRAPH_MAX;
    b->cap_graphs = cap_graphs;
    b->layers = layers;
    b->dedupe = dedupe;
    b->row_off = ctnas_malloc((size_t)(cap_graphs + 1) * sizeof *b->row_off);
    b->type0 = ctnas_malloc(rows * sizeof *b->type0);
    b->rpred_off = ctnas_malloc((rows + 1) * sizeof *b->rpred_off);
    b->rpred = ctnas_malloc(rows * MAX_PRED * sizeof *b->rpred);
    b->rnpred = ctnas_malloc(rows * sizeof *b->rnpred);
    int ok = b->row_off && b->type0 && b->rpred_off && b->rpred && b->rnpred;
    for (int l = 0; l <= layers && ok; l++) {
        b->uid[l] = ctnas_malloc(rows * sizeof *b->uid[l]);
        ok = b->uid[l] != NULL;
        if (l == 0 || !ok)
            continue;
        b->self[l] = ctnas_malloc(rows * sizeof *b->self[l]);
        b->pred_off[l] = ctnas_malloc((rows + 1) * sizeof *b->pred_off[l]);
        b->pred[l] = ctnas_malloc(rows * MAX_PRED * sizeof *b->pred[l]);
        b->scale[l] = ctnas_malloc(rows * sizeof *b->scale[l]);
        b->nfwd[l] = ctnas_malloc(rows * sizeof *b->nfwd[l]);
        b->scale_b[l] = ctnas_malloc(rows * sizeof *b->scale_b[l]);
        ok = b->self[l] && b->pred_off[l] && b->pred[l] && b->scale[l] &&
             b->nfwd[l] && b->scale_b[l];
    }
    /* A power of two (indexed by mask) with at least two slots per row: a
     * layer adds at most one entry per row, so the load stays at most 1/2
     * and every probe ends at a free slot. */
    int hcap = 16;
    while ((size_t)hcap < 2 * rows)
        hcap *= 2;
    b->hcap = hcap;
    if (ok) {
        b->hstamp = ctnas_calloc((size_t)hcap, sizeof *b->hstamp);
        b->hval = ctnas_malloc((size_t)hcap * sizeof *b->hval);
        ok = b->hstamp && b->hval;
    }
    if (!ok) {
        ctnas_nac_batch_destroy(b);
        return CTNAS_ENOMEM;
    }
    return 0;
}

void ctnas_nac_batch_destroy(struct ctnas_nac_batch *b)
{
    if (b == NULL)
        return;
    ctnas_free(b->row_off);
    ctnas_free(b->type0);
    ctnas_free(b->rpred_off);
    ctnas_free(b->rpred);
    ctnas_free(b->rnpred);
    for (int l = 0; l <= CTNAS_NAC_MAX_LAYERS; l++) {
        ctnas_free(b->nfwd[l]);
        ctnas_free(b->scale_b[l]);
        ctnas_free(b->uid[l]);
        ctnas_free(b->self[l]);
        ctnas_free(b->pred_off[l]);
        ctnas_free(b->pred[l]);
        ctnas_free(b->scale[l]);
    }
    ctnas_free(b->hstamp);
    ctnas_free(b->hval);
    memset(b, 0, sizeof *b);
}

/* Hash of a state's key: its own previous state, then np neighbour states
 * of which the first nf are predecessors.  FNV-1a steps with extra shifts,
 * and a final multiply and shift that bring the high bits down to the low
 * ones the table's mask keeps.  np and nf enter the seed so that one list
 * split differently between predecessors and successors hashes apart.
 * Collisions only cost probes: build_layer compares whole keys. */
static uint32_t hash_key(int self, const int *p, int np, int nf)
{
    uint32_t h = (2166136261u ^ (uint32_t)np) + 977u * (uint32_t)nf;
    h = (h ^ (uint32_t)self) * 16777619u;
    h ^= h >> 15;
    for (int i = 0; i < np; i++) {
        h = (h ^ (uint32_t)p[i]) * 16777619u;
        h ^= h >> 13;
    }
    h *= 0x85ebca6bu;
    h ^= h >> 16;
    return h;
}

/* Insert v into the sorted run key[0 .. n). */
static void sorted_insert(int *key, int n, int v)
{
    int k = n;
    while (k > 0 && key[k - 1] > v) {
        key[k] = key[k - 1];
        k--;
    }
    key[k] = v;
}

/* Build layer l's states from layer l-1's row states.  A state's key is
 * its own previous state, its predecessors' (sorted: the sum is
 * order-free) and, with separate successor weights, its successors'
 * (sorted, after them).  Rows with equal keys get one state.  self, pred
 * and pred_off describe each new state by layer l-1's states, not rows,
 * so the aggregation works on states alone.  Without dedupe every row is
 * its own state (uid[l][r] = r).  Bumping the stamp empties the table: a
 * slot is live only while it carries the current stamp. */
static void build_layer(struct ctnas_nac_batch *b, int l, int norm)
{
    int *uid = b->uid[l], *uprev = b->uid[l - 1];
    int *self = b->self[l], *poff = b->pred_off[l], *pred = b->pred[l];
    int *nfwd = b->nfwd[l];
    ctnas_real *scale = b->scale[l], *scale_b = b->scale_b[l];
    int nu = 0, npred_total = 0;
    uint32_t mask = (uint32_t)b->hcap - 1;

    if (++b->stamp == 0) {
        memset(b->hstamp, 0, (size_t)b->hcap * sizeof *b->hstamp);
        b->stamp = 1;
    }
    poff[0] = 0;
    for (int r = 0; r < b->n_rows; r++) {
        int key[MAX_PRED], np = 0, nf = b->rnpred[r];
        int sp = uprev[r];
        /* key[0 .. nf): the predecessors' states, key[nf .. np): the
         * successors', each part kept sorted as it fills. */
        for (int e = b->rpred_off[r]; e < b->rpred_off[r + 1]; e++, np++)
            sorted_insert(np < nf ? key : key + nf, np < nf ? np : np - nf,
                          uprev[b->rpred[e]]);
        if (b->dedupe) {
            uint32_t h = hash_key(sp, key, np, nf) & mask;
            int found = -1;
            while (b->hstamp[h] == b->stamp) {
                int s = b->hval[h];
                if (self[s] == sp && poff[s + 1] - poff[s] == np &&
                    nfwd[s] == nf &&
                    memcmp(pred + poff[s], key, (size_t)np * sizeof *key) ==
                        0) {
                    found = s;
                    break;
                }
                h = (h + 1) & mask;
            }
            if (found >= 0) {
                uid[r] = found;
                continue;
            }
            b->hstamp[h] = b->stamp;
            b->hval[h] = nu;
        }
        self[nu] = sp;
        memcpy(pred + npred_total, key, (size_t)np * sizeof *key);
        npred_total += np;
        poff[nu + 1] = npred_total;
        nfwd[nu] = nf;
        /* With norm the self-loop and the nf predecessors share
         * 1 / (1 + nf), the successors 1 / out-degree (1 if none). */
        scale[nu] = norm ? (ctnas_real)(1.0 / (1.0 + nf)) : (ctnas_real)1;
        scale_b[nu] = norm && np > nf ? (ctnas_real)(1.0 / (np - nf))
                                      : (ctnas_real)1;
        uid[r] = nu++;
    }
    b->n_u[l] = nu;
}

void ctnas_nac_batch_build(struct ctnas_nac_batch *b,
                           const struct ctnas_nac_config *cfg,
                           const struct ctnas_graph *graphs, const int *idx,
                           int n)
{
    int norm = cfg->norm, bidir = cfg->bidir;
    assert(n >= 0 && n <= b->cap_graphs && b->layers == cfg->layers);
    b->kw = bidir == 2 ? 2 : 1;
    int rows = 0, e = 0;
    int type_state[CTNAS_NAC_MAX_TYPES];
    int nu0 = 0;
    for (int t = 0; t < CTNAS_NAC_MAX_TYPES; t++)
        type_state[t] = -1;
    b->n_graphs = n;
    b->rpred_off[0] = 0;
    /* Graph k's node i is row row_off[k] + i, so the output node (the last,
     * space.h) is the graph's last row.  Layer-0 states are node types:
     * with dedupe one per type present, numbered in order of first
     * appearance; without, one per row. */
    for (int k = 0; k < n; k++) {
        const struct ctnas_graph *g = &graphs[idx ? idx[k] : k];
        assert(g->n >= 1 && g->n <= CTNAS_GRAPH_MAX);
        b->row_off[k] = rows;
        for (int i = 0; i < g->n; i++) {
            int r = rows + i, t = g->types[i];
            assert(t < cfg->n_types);
            if (b->dedupe) {
                if (type_state[t] < 0) {
                    type_state[t] = nu0;
                    b->type0[nu0++] = (uint8_t)t;
                }
                b->uid[0][r] = type_state[t];
            } else {
                b->type0[nu0] = (uint8_t)t;
                b->uid[0][r] = nu0++;
            }
            /* predecessors first, then successors; with bidir = 1 they
             * count as predecessors (one weight for both) */
            for (int j = 0; j < g->n; j++)
                if (j != i && (g->adj[j][i] || (bidir == 1 && g->adj[i][j])))
                    b->rpred[e++] = rows + j;
            b->rnpred[r] = e - b->rpred_off[r];
            for (int j = 0; j < g->n && bidir == 2; j++)
                if (j != i && g->adj[i][j])
                    b->rpred[e++] = rows + j;
            b->rpred_off[r + 1] = e;
        }
        rows += g->n;
    }
    b->row_off[n] = rows;
    b->n_rows = rows;
    b->n_u[0] = nu0;
    for (int l = 1; l <= b->layers; l++)
        build_layer(b, l, norm);
}

/* ------------------------------------------------------------------ */
/* Cache */

/* Buffers are sized by rows, not states: without dedupe every row is a
 * state, so the capacity fits any batch of cap_graphs graphs.  with_grad =
 * 0 leaves the backward buffers NULL, which ctnas_nac_backward asserts
 * against. */
static int cache_alloc(struct ctnas_nac_cache *c,
                       const struct ctnas_nac_config *cfg, int cap_graphs,
                       int with_grad)
{
    memset(c, 0, sizeof *c);
    struct ctnas_nac_layout lay;
    ctnas_nac_layout_init(cfg, &lay);
    size_t d = (size_t)cfg->dim;
    size_t rows = (size_t)cap_graphs * CTNAS_GRAPH_MAX;
    size_t fw = (size_t)lay.feat_width;
    c->cap_graphs = cap_graphs;
    c->cap_rows = (int)rows;
    c->dim = cfg->dim;
    c->layers = cfg->layers;
    c->feat_width = lay.feat_width;
    c->kw = cfg->bidir == 2 ? 2 : 1;
    size_t kd = (size_t)c->kw * d;
    int ok = 1;
    for (int l = 0; l <= cfg->layers && ok; l++) {
        c->h[l] = ctnas_malloc(rows * d * sizeof(ctnas_real));
        ok = c->h[l] != NULL;
        if (l == 0 || !ok)
            continue;
        c->g[l] = ctnas_malloc(rows * kd * sizeof(ctnas_real));
        c->z[l] = ctnas_malloc(rows * d * sizeof(ctnas_real));
        ok = c->g[l] && c->z[l];
    }
    /* scratch: q, r and dr of linear_dense, cap_graphs each. */
    if (ok) {
        c->pool = ctnas_malloc((size_t)cap_graphs * d * sizeof(ctnas_real));
        c->feat = ctnas_malloc((size_t)cap_graphs * fw * sizeof(ctnas_real));
        c->scratch = ctnas_malloc((size_t)cap_graphs * 3 * sizeof(ctnas_real));
        ok = c->pool && c->feat && c->scratch;
    }
    if (ok && with_grad) {
        c->dh_a = ctnas_malloc(rows * d * sizeof(ctnas_real));
        c->dh_b = ctnas_malloc(rows * d * sizeof(ctnas_real));
        c->dp = ctnas_malloc(rows * kd * sizeof(ctnas_real));
        c->dz = ctnas_malloc(rows * d * sizeof(ctnas_real));
        c->dpool = ctnas_malloc((size_t)cap_graphs * d * sizeof(ctnas_real));
        c->dfeat = ctnas_malloc((size_t)cap_graphs * fw * sizeof(ctnas_real));
        ok = c->dh_a && c->dh_b && c->dz && c->dpool && c->dfeat && c->dp;
    }
    if (!ok) {
        ctnas_nac_cache_destroy(c);
        return CTNAS_ENOMEM;
    }
    return 0;
}

int ctnas_nac_cache_init(struct ctnas_nac_cache *c,
                         const struct ctnas_nac_config *cfg, int cap_graphs)
{
    return cache_alloc(c, cfg, cap_graphs, 1);
}

int ctnas_nac_cache_init_forward(struct ctnas_nac_cache *c,
                                 const struct ctnas_nac_config *cfg,
                                 int cap_graphs)
{
    return cache_alloc(c, cfg, cap_graphs, 0);
}

void ctnas_nac_cache_destroy(struct ctnas_nac_cache *c)
{
    if (c == NULL)
        return;
    for (int l = 0; l <= CTNAS_NAC_MAX_LAYERS; l++) {
        ctnas_free(c->h[l]);
        ctnas_free(c->g[l]);
        ctnas_free(c->z[l]);
    }
    ctnas_free(c->pool);
    ctnas_free(c->feat);
    ctnas_free(c->dh_a);
    ctnas_free(c->dh_b);
    ctnas_free(c->dp);
    ctnas_free(c->dz);
    ctnas_free(c->dpool);
    ctnas_free(c->dfeat);
    ctnas_free(c->scratch);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------------ */
/* Row kernels.  Blocks of 8 with a fixed trip count, restrict pointers and
 * no branches, so GCC's -O2 (whose cost model refuses loops of unknown
 * length) still vectorises them; a scalar tail handles d % 8. */

/* 8 floats fill one 256-bit AVX register. */
#define VB 8

/* y += x */
static inline void row_add(ctnas_real *restrict y,
                           const ctnas_real *restrict x, int d)
{
    int k = 0;
    for (; k + VB <= d; k += VB)
        for (int j = 0; j < VB; j++)
            y[k + j] += x[k + j];
    for (; k < d; k++)
        y[k] += x[k];
}

/* y += a x */
static inline void row_axpy(ctnas_real *restrict y, ctnas_real a,
                            const ctnas_real *restrict x, int d)
{
    int k = 0;
    for (; k + VB <= d; k += VB)
        for (int j = 0; j < VB; j++)
            y[k + j] += a * x[k + j];
    for (; k < d; k++)
        y[k] += a * x[k];
}

/* y *= a */
static inline void row_scale(ctnas_real *restrict y, ctnas_real a, int d)
{
    int k = 0;
    for (; k + VB <= d; k += VB)
        for (int j = 0; j < VB; j++)
            y[k + j] *= a;
    for (; k < d; k++)
        y[k] *= a;
}

/* o = ReLU(z) + h */
static inline void row_relu_res(ctnas_real *restrict o,
                                const ctnas_real *restrict z,
                                const ctnas_real *restrict h, int d)
{
    int k = 0;
    for (; k + VB <= d; k += VB)
        for (int j = 0; j < VB; j++)
            o[k + j] = (z[k + j] > 0 ? z[k + j] : 0) + h[k + j];
    for (; k < d; k++)
        o[k] = (z[k] > 0 ? z[k] : 0) + h[k];
}

/* o = g [z > 0], h += g */
static inline void row_relu_res_bwd(ctnas_real *restrict o,
                                    ctnas_real *restrict h,
                                    const ctnas_real *restrict z,
                                    const ctnas_real *restrict g, int d)
{
    int k = 0;
    for (; k + VB <= d; k += VB)
        for (int j = 0; j < VB; j++) {
            o[k + j] = z[k + j] > 0 ? g[k + j] : 0;
            h[k + j] += g[k + j];
        }
    for (; k < d; k++) {
        o[k] = z[k] > 0 ? g[k] : 0;
        h[k] += g[k];
    }
}

/* ------------------------------------------------------------------ */
/* Ops */

/* Layer l's aggregation, after the transform P = H(l-1) W (P has n_u[l-1]
 * rows of kw d: the predecessor half P_f, and with bidir = 2 the
 * successor half P_b):
 *   Z[s] = bias + S[s] (P_f[self] + sum_p P_f[p]) + S_b[s] sum_q P_b[q]. */
void ctnas_nac_op_aggregate_fwd(const struct ctnas_nac_batch *b, int l,
                                int d, const ctnas_real *p,
                                const ctnas_real *bias, ctnas_real *z)
{
    const int *self = b->self[l], *poff = b->pred_off[l], *pred = b->pred[l];
    const int *nfwd = b->nfwd[l];
    const ctnas_real *scale = b->scale[l], *scale_b = b->scale_b[l];
    size_t kd = (size_t)b->kw * d;
    for (int s = 0; s < b->n_u[l]; s++) {
        ctnas_real *zs = z + (size_t)s * d;
        int e = poff[s], ef = poff[s] + nfwd[s];
        /* The state's own row first: the I of A^T + I. */
        memcpy(zs, p + self[s] * kd, (size_t)d * sizeof *zs);
        for (; e < ef; e++)
            row_add(zs, p + pred[e] * kd, d);
        if (scale[s] != 1)
            row_scale(zs, scale[s], d);
        if (e < poff[s + 1]) {
            /* successors (bidir = 2): P_b rows, scaled by S_b */
            ctnas_real sb = scale_b[s];
            for (; e < poff[s + 1]; e++)
                row_axpy(zs, sb, p + pred[e] * kd + d, d);
        }
        row_add(zs, bias, d);
    }
}

/* Z = bias + S (P_f[self] + sum_p P_f[p]) + S_b sum_q P_b[q]  =>
 * dbias += sum_s dZ[s], dP_f[self] += S dZ, dP_f[p] += S dZ,
 * dP_b[q] += S_b dZ. */
void ctnas_nac_op_aggregate_bwd(const struct ctnas_nac_batch *b, int l,
                                int d, const ctnas_real *dz, ctnas_real *dp,
                                ctnas_real *dbias)
{
    const int *self = b->self[l], *poff = b->pred_off[l], *pred = b->pred[l];
    const int *nfwd = b->nfwd[l];
    const ctnas_real *scale = b->scale[l], *scale_b = b->scale_b[l];
    size_t kd = (size_t)b->kw * d;
    for (int s = 0; s < b->n_u[l]; s++) {
        const ctnas_real *gs = dz + (size_t)s * d;
        ctnas_real sc = scale[s];
        int e = poff[s], ef = poff[s] + nfwd[s];
        row_add(dbias, gs, d);
        row_axpy(dp + self[s] * kd, sc, gs, d);
        for (; e < ef; e++)
            row_axpy(dp + pred[e] * kd, sc, gs, d);
        for (; e < poff[s + 1]; e++)
            row_axpy(dp + pred[e] * kd + d, scale_b[s], gs, d);
    }
}

/* P = H W: H is m x din, W din x dout. */
void ctnas_nac_op_linear_fwd(int m, int din, int dout, const ctnas_real *h,
                             const ctnas_real *w, ctnas_real *p)
{
    ctnas_gemm(0, 0, m, dout, din, 1, h, din, w, dout, 0, p, dout);
}

/* P = H W  =>  dW += H^T dP, dH += dP W^T. */
void ctnas_nac_op_linear_bwd(int m, int din, int dout, const ctnas_real *h,
                             const ctnas_real *w, const ctnas_real *dp,
                             ctnas_real *dh, ctnas_real *dw)
{
    ctnas_gemm(1, 0, din, dout, m, 1, h, din, dp, dout, 1, dw, dout);
    if (dh != NULL)
        ctnas_gemm(0, 1, m, din, dout, 1, dp, dout, w, dout, 1, dh, din);
}

/* H(l)[s] = ReLU(Z[s]) + H(l-1)[self[s]]: the residual is the state's own
 * previous state, reached through self because every layer numbers its
 * states afresh. */
void ctnas_nac_op_relu_res_fwd(const struct ctnas_nac_batch *b, int l,
                               int d, const ctnas_real *z,
                               const ctnas_real *h, ctnas_real *hn)
{
    const int *self = b->self[l];
    for (int s = 0; s < b->n_u[l]; s++)
        row_relu_res(hn + (size_t)s * d, z + (size_t)s * d,
                     h + (size_t)self[s] * d, d);
}

/* H'[s] = ReLU(Z[s]) + H[self[s]]  =>  dZ = dH' [Z > 0], dH[self] += dH'. */
void ctnas_nac_op_relu_res_bwd(const struct ctnas_nac_batch *b, int l,
                               int d, const ctnas_real *z,
                               const ctnas_real *dhn, ctnas_real *dz,
                               ctnas_real *dh)
{
    const int *self = b->self[l];
    for (int s = 0; s < b->n_u[l]; s++)
        row_relu_res_bwd(dz + (size_t)s * d, dh + (size_t)self[s] * d,
                         z + (size_t)s * d, dhn + (size_t)s * d, d);
}

/* z_g is a mean over graph g's rows, not its states: rows that share a
 * state each count once, so dedupe leaves the mean unchanged. */
void ctnas_nac_op_pool_fwd(const struct ctnas_nac_batch *b, int d,
                           int readout, const ctnas_real *h,
                           ctnas_real *pool)
{
    const int *uid = b->uid[b->layers];
    for (int g = 0; g < b->n_graphs; g++) {
        ctnas_real *o = pool + (size_t)g * d;
        int r0 = b->row_off[g], r1 = b->row_off[g + 1];
        memset(o, 0, (size_t)d * sizeof *o);
        if (readout != CTNAS_NAC_READOUT_OUT) {
            for (int r = r0; r < r1; r++)
                row_add(o, h + (size_t)uid[r] * d, d);
            row_scale(o, (ctnas_real)1 / (ctnas_real)(r1 - r0), d);
        }
        /* The output node is the graph's last (space.h). */
        if (readout != CTNAS_NAC_READOUT_MEAN)
            row_add(o, h + (size_t)uid[r1 - 1] * d, d);
    }
}

/* z_g = (1/n_g) sum_r H[uid(r)] (+ H[uid(last)])  =>
 * dH[uid(r)] += dz_g / n_g (and dH[uid(last)] += dz_g). */
void ctnas_nac_op_pool_bwd(const struct ctnas_nac_batch *b, int d,
                           int readout, const ctnas_real *dpool,
                           ctnas_real *dh)
{
    const int *uid = b->uid[b->layers];
    for (int g = 0; g < b->n_graphs; g++) {
        const ctnas_real *dg = dpool + (size_t)g * d;
        int r0 = b->row_off[g], r1 = b->row_off[g + 1];
        ctnas_real inv = (ctnas_real)1 / (ctnas_real)(r1 - r0);
        if (readout != CTNAS_NAC_READOUT_OUT)
            for (int r = r0; r < r1; r++)
                row_axpy(dh + (size_t)uid[r] * d, inv, dg, d);
        if (readout != CTNAS_NAC_READOUT_MEAN)
            row_axpy(dh + (size_t)uid[r1 - 1] * d, 1, dg, d);
    }
}

/* ------------------------------------------------------------------ */
/* Network forward / backward */

/* Layer l: P = H(l-1) W(l) (transform first: H(l-1) has no more rows
 * than H(l), often far fewer after dedupe), Z = aggregate(P) + b(l),
 * H(l) = ReLU(Z) + H(l-1)[self].  The aggregation only sums and scales
 * rows, so it commutes with W: either order is the same function.  Each
 * state's key holds its previous state, hence n_u[l-1] <= n_u[l]. */
void ctnas_nac_forward(const struct ctnas_nac_config *cfg,
                       const struct ctnas_nac_layout *lay,
                       const ctnas_real *theta,
                       const struct ctnas_nac_batch *b,
                       struct ctnas_nac_cache *c)
{
    int d = cfg->dim, L = cfg->layers;
    assert(b->layers == L && c->layers == L && c->dim == d);
    assert(b->kw == (cfg->bidir == 2 ? 2 : 1) && c->kw >= b->kw);
    assert(b->n_graphs <= c->cap_graphs);
    int kd = b->kw * d;
    /* H0 = X E: a layer-0 state is a node type, its row that type's row
     * of E. */
    const ctnas_real *emb = theta + lay->emb;
    for (int s = 0; s < b->n_u[0]; s++)
        memcpy(c->h[0] + (size_t)s * d, emb + (size_t)b->type0[s] * d,
               (size_t)d * sizeof(ctnas_real));
    for (int l = 1; l <= L; l++) {
        ctnas_nac_op_linear_fwd(b->n_u[l - 1], d, kd, c->h[l - 1],
                                theta + lay->w[l - 1], c->g[l]);
        ctnas_nac_op_aggregate_fwd(b, l, d, c->g[l], theta + lay->b[l - 1],
                                   c->z[l]);
        ctnas_nac_op_relu_res_fwd(b, l, d, c->z[l], c->h[l - 1], c->h[l]);
    }
    ctnas_nac_op_pool_fwd(b, d, cfg->readout, c->h[L], c->pool);
}

/* H(l) = ReLU(Z) + H(l-1)[self], Z = aggregate(H(l-1) W) + b  =>
 *   dZ = dH(l) [Z > 0],  dP = aggregate^T(dZ),  db += sum dZ,
 *   dW += H(l-1)^T dP,   dH(l-1) = dH(l) summed into self + dP W^T,
 * from the pooling's dH(L) down to dH(0), which feeds the embedding.
 * dh_a and dh_b take turns as dH(l) and dH(l-1). */
void ctnas_nac_backward(const struct ctnas_nac_config *cfg,
                        const struct ctnas_nac_layout *lay,
                        const ctnas_real *theta,
                        const struct ctnas_nac_batch *b,
                        struct ctnas_nac_cache *c, ctnas_real *grad)
{
    int d = cfg->dim, L = cfg->layers, kd = b->kw * d;
    ctnas_real *dh = c->dh_a, *dh_prev = c->dh_b, *dp = c->dp;
    assert(dh != NULL); /* a forward-only cache cannot run backward */
    /* The bwd ops add into dH and dP, so those start at zero each layer;
     * dz needs no clearing, as relu_res_bwd writes it whole. */
    memset(dh, 0, (size_t)b->n_u[L] * d * sizeof *dh);
    ctnas_nac_op_pool_bwd(b, d, cfg->readout, c->dpool, dh);
    for (int l = L; l >= 1; l--) {
        int m = b->n_u[l - 1];
        memset(dh_prev, 0, (size_t)m * d * sizeof *dh_prev);
        ctnas_nac_op_relu_res_bwd(b, l, d, c->z[l], dh, c->dz, dh_prev);
        memset(dp, 0, (size_t)m * kd * sizeof *dp);
        ctnas_nac_op_aggregate_bwd(b, l, d, c->dz, dp, grad + lay->b[l - 1]);
        /* dH(l-1) of layer 1 only feeds the embedding */
        ctnas_nac_op_linear_bwd(m, d, kd, c->h[l - 1], theta + lay->w[l - 1],
                                dp, dh_prev, grad + lay->w[l - 1]);
        ctnas_real *t = dh;
        dh = dh_prev;
        dh_prev = t;
    }
    /* H0 = X E  =>  dE[type] += dH0[state of that type]. */
    ctnas_real *demb = grad + lay->emb;
    for (int s = 0; s < b->n_u[0]; s++)
        row_add(demb + (size_t)b->type0[s] * d, dh + (size_t)s * d, d);
}

/* ------------------------------------------------------------------ */
/* Head */

void ctnas_nac_head_prep(const struct ctnas_nac_config *cfg,
                         const struct ctnas_nac_layout *lay,
                         const ctnas_real *theta, const ctnas_real *z,
                         int n, ctnas_real *feat)
{
    int d = cfg->dim;
    switch (cfg->head) {
    case CTNAS_NAC_HEAD_CONCAT:
        for (int i = 0; i < n; i++) {
            const ctnas_real *zi = z + (size_t)i * d;
            feat[2 * i] = ctnas_dot(d, theta + lay->u, zi) + theta[lay->c];
            feat[2 * i + 1] = ctnas_dot(d, theta + lay->v, zi);
        }
        break;
    case CTNAS_NAC_HEAD_DIFF:
        for (int i = 0; i < n; i++) {
            ctnas_real f = ctnas_dot(d, theta + lay->w_diff, z + (size_t)i * d);
            feat[2 * i] = f;
            feat[2 * i + 1] = -f;
        }
        break;
    default:
        /* F = Z W1^T, without b1: the pair adds b1 to f_a - f_b, which
         * is W1 (z_a - z_b). */
        ctnas_gemm(0, 1, n, cfg->hidden, d, 1, z, d, theta + lay->w1, d, 0,
                   feat, cfg->hidden);
        break;
    }
}

void ctnas_nac_head_prep_bwd(const struct ctnas_nac_config *cfg,
                             const struct ctnas_nac_layout *lay,
                             const ctnas_real *theta, const ctnas_real *z,
                             int n, const ctnas_real *dfeat, ctnas_real *dz,
                             ctnas_real *grad)
{
    int d = cfg->dim;
    switch (cfg->head) {
    case CTNAS_NAC_HEAD_CONCAT:
        /* f0 = u.z + c, f1 = v.z  =>  dz += df0 u + df1 v, du += df0 z,
         * dv += df1 z, dc += df0. */
        for (int i = 0; i < n; i++) {
            const ctnas_real *zi = z + (size_t)i * d;
            ctnas_real a = dfeat[2 * i], bb = dfeat[2 * i + 1];
            ctnas_axpy(d, a, theta + lay->u, dz + (size_t)i * d);
            ctnas_axpy(d, bb, theta + lay->v, dz + (size_t)i * d);
            ctnas_axpy(d, a, zi, grad + lay->u);
            ctnas_axpy(d, bb, zi, grad + lay->v);
            grad[lay->c] += a;
        }
        break;
    case CTNAS_NAC_HEAD_DIFF:
        /* f0 = w.z, f1 = -w.z  =>  with t = df0 - df1: dz += t w,
         * dw += t z. */
        for (int i = 0; i < n; i++) {
            ctnas_real t = dfeat[2 * i] - dfeat[2 * i + 1];
            ctnas_axpy(d, t, theta + lay->w_diff, dz + (size_t)i * d);
            ctnas_axpy(d, t, z + (size_t)i * d, grad + lay->w_diff);
        }
        break;
    default:
        /* F = Z W1^T  =>  dZ += dF W1, dW1 += dF^T Z. */
        ctnas_gemm(0, 0, n, d, cfg->hidden, 1, dfeat, cfg->hidden,
                   theta + lay->w1, d, 1, dz, d);
        ctnas_gemm(1, 0, cfg->hidden, d, n, 1, dfeat, cfg->hidden, z, d, 1,
                   grad + lay->w1, d);
        break;
    }
}

/* Linear heads: fa[0] + fb[1].  MLP: swapping a and b negates x and swaps
 * r1 and r2, so the logit changes sign and p(b, a) = 1 - p(a, b). */
ctnas_real ctnas_nac_head_pair(const struct ctnas_nac_config *cfg,
                               const struct ctnas_nac_layout *lay,
                               const ctnas_real *theta,
                               const ctnas_real *fa, const ctnas_real *fb)
{
    if (cfg->head != CTNAS_NAC_HEAD_MLP)
        return fa[0] + fb[1];
    const ctnas_real *b1 = theta + lay->b1, *w2 = theta + lay->w2;
    ctnas_real s = 0;
    for (int k = 0; k < cfg->hidden; k++) {
        ctnas_real x = fa[k] - fb[k];
        ctnas_real r1 = x + b1[k], r2 = b1[k] - x;
        s += w2[k] * ((r1 > 0 ? r1 : 0) - (r2 > 0 ? r2 : 0));
    }
    return s;
}

/* Linear heads: s = fa[0] + fb[1]  =>  dfa[0] += ds, dfb[1] += ds.
 * MLP: s = sum_k w2 (ReLU(x + b1) - ReLU(b1 - x)), x = fa - fb.
 * ds/dw2 = ReLU(x + b1) - ReLU(b1 - x); with m1 = w2 [x + b1 > 0] and
 * m2 = w2 [b1 - x > 0]: ds/dx = m1 + m2, ds/db1 = m1 - m2; dfa = dx,
 * dfb = -dx. */
void ctnas_nac_head_pair_bwd(const struct ctnas_nac_config *cfg,
                             const struct ctnas_nac_layout *lay,
                             const ctnas_real *theta, const ctnas_real *fa,
                             const ctnas_real *fb, ctnas_real dlogit,
                             ctnas_real *dfa, ctnas_real *dfb,
                             ctnas_real *grad)
{
    if (cfg->head != CTNAS_NAC_HEAD_MLP) {
        dfa[0] += dlogit;
        dfb[1] += dlogit;
        return;
    }
    const ctnas_real *b1 = theta + lay->b1, *w2 = theta + lay->w2;
    ctnas_real *db1 = grad + lay->b1, *dw2 = grad + lay->w2;
    for (int k = 0; k < cfg->hidden; k++) {
        ctnas_real x = fa[k] - fb[k];
        ctnas_real r1 = x + b1[k], r2 = b1[k] - x;
        int on1 = r1 > 0, on2 = r2 > 0;
        dw2[k] += dlogit * ((on1 ? r1 : 0) - (on2 ? r2 : 0));
        ctnas_real m1 = on1 ? dlogit * w2[k] : 0;
        ctnas_real m2 = on2 ? dlogit * w2[k] : 0;
        dfa[k] += m1 + m2;
        dfb[k] -= m1 + m2;
        db1[k] += m1 - m2;
    }
}

/* Each branch takes exp of a non-positive number, so nothing overflows. */
ctnas_real ctnas_nac_sigmoid(ctnas_real s)
{
    if (s >= 0)
        return (ctnas_real)(1.0 / (1.0 + exp(-(double)s)));
    double e = exp((double)s);
    return (ctnas_real)(e / (1.0 + e));
}

/* loss = softplus(s) - y s = max(s, 0) - y s + log1p(exp(-|s|));
 * dloss/ds = sigmoid(s) - y. */
ctnas_real ctnas_nac_bce(ctnas_real s, ctnas_real y, ctnas_real *ds)
{
    double sd = (double)s;
    double loss = (sd > 0 ? sd : 0) - (double)y * sd + log1p(exp(-fabs(sd)));
    if (ds != NULL)
        *ds = ctnas_nac_sigmoid(s) - y;
    return (ctnas_real)loss;
}

/* ------------------------------------------------------------------ */
/* Pairs and loss */

/* At least one element each: malloc(0) may return NULL, which would read
 * as out of memory for cap 0. */
int ctnas_nac_pairs_init(struct ctnas_nac_pairs *p, int cap)
{
    memset(p, 0, sizeof *p);
    p->cap = cap;
    p->a = ctnas_malloc((size_t)(cap > 0 ? cap : 1) * sizeof *p->a);
    p->b = ctnas_malloc((size_t)(cap > 0 ? cap : 1) * sizeof *p->b);
    p->y = ctnas_malloc((size_t)(cap > 0 ? cap : 1) * sizeof *p->y);
    if (!p->a || !p->b || !p->y) {
        ctnas_nac_pairs_destroy(p);
        return CTNAS_ENOMEM;
    }
    return 0;
}

void ctnas_nac_pairs_destroy(struct ctnas_nac_pairs *p)
{
    if (p == NULL)
        return;
    ctnas_free(p->a);
    ctnas_free(p->b);
    ctnas_free(p->y);
    memset(p, 0, sizeof *p);
}

/* Target of a pair from measured values (greater is better): 1 when a is
 * better, 0 when b is, 0.5 on a tie. */
static ctnas_real target(double va, double vb)
{
    return va > vb ? 1 : (va < vb ? 0 : (ctnas_real)0.5);
}

/* BCE of a block of logits s with targets y and pair weights w (0 for
 * the padding past the last pair):
 *   loss = w (max(s, 0) - y s + log1p(exp(-|s|))),
 *   ds   = w (sigmoid(s) - y) * inv,  sigmoid(s) = exp(min(s, 0)) /
 *                                      (1 + exp(-|s|)),
 * where sc is s clamped to [-87, 87] by the caller (for the exponentials
 * only: exp(-87) ~ 1.6e-38 is still a normal float).  The float build
 * (training and serving) uses branch-free polynomials that GCC's -O2
 * vectorises (fixed trip count, restrict, no selects), accurate to a few
 * float ulps; the double build (gradient tests) uses libm. */
#define PAIR_BLOCK 64

/* exp(x) in float for |x| <= 87, branch-free so loops over it vectorise:
 * x = n ln2 + r with n = round(x / ln2) (floor(y + 0.5) via a positive
 * shift, so truncation is floor), |r| <= ln2 / 2, e^r by Cephes'
 * polynomial, 2^n through the exponent bits.  Relative error ~1 ulp.
 * ln2 is taken off in two parts (Cody-Waite): 0.693359375 has 9
 * significant bits, so fn times it is exact, and the small second part
 * restores the rest.  |x| <= 87 keeps n in [-126, 126], where n + 127 is
 * a normal float's exponent field. */
static inline float exp_f32(float x)
{
    int ni = (int)(x * 1.44269504088896341f + 128.5f) - 128;
    float fn = (float)ni;
    float r = x - fn * 0.693359375f + fn * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union {
        uint32_t u;
        float f;
    } sc = {.u = (uint32_t)(ni + 127) << 23};
    return p * sc.f;
}

#ifndef CTNAS_REAL_DOUBLE
/* log1p(e) for e in [0, 1]: 2 atanh(t), t = e / (2 + e) <= 1/3, the
 * series to t^13 (truncation < 3e-8 relative). */
static inline float log1p_unit(float e)
{
    float t = e / (2.0f + e), t2 = t * t;
    float q = 1.0f / 13;
    q = q * t2 + 1.0f / 11;
    q = q * t2 + 1.0f / 9;
    q = q * t2 + 1.0f / 7;
    q = q * t2 + 1.0f / 5;
    q = q * t2 + 1.0f / 3;
    q = q * t2 + 1.0f;
    return 2.0f * t * q;
}
#endif

/* One block of PAIR_BLOCK entries by the formulas above PAIR_BLOCK;
 * loss and ds are written, not added. */
static void bce_block(const ctnas_real *restrict s,
                      const ctnas_real *restrict sc,
                      const ctnas_real *restrict y,
                      const ctnas_real *restrict w, ctnas_real inv,
                      ctnas_real *restrict loss, ctnas_real *restrict ds)
{
    for (int k = 0; k < PAIR_BLOCK; k++) {
        ctnas_real sk = s[k], ck = sc[k];
        ctnas_real a = ck < 0 ? -ck : ck;
        ctnas_real lo = (ck - a) * (ctnas_real)0.5; /* min(ck, 0), exact */
        ctnas_real hi = sk > 0 ? sk : 0;
#ifdef CTNAS_REAL_DOUBLE
        double e = exp(-a), l = log1p(e), en = exp(lo);
#else
        float e = exp_f32(-a), l = log1p_unit(e), en = exp_f32(lo);
#endif
        ctnas_real sig = (ctnas_real)(en / (1 + e));
        loss[k] = w[k] * (hi - y[k] * sk + (ctnas_real)l);
        ds[k] = w[k] * (sig - y[k]) * inv;
    }
}

/* Clamp for the exponentials' arguments.  87 is the largest whole bound
 * exp_f32 takes: at -87 its n is -126, at -88 it would be -127, which has
 * no normal exponent. */
static inline ctnas_real clamp87(ctnas_real s)
{
    return s > 87 ? 87 : (s < -87 ? -87 : s);
}

/* Counts for the statistics: decided (y != 0.5) and right (sign of s
 * agrees with y) over the weighted entries of a block. */
static void block_stats(const ctnas_real *s, const ctnas_real *y,
                        const ctnas_real *w, int n, int *correct,
                        int *decided)
{
    for (int k = 0; k < n; k++)
        if (w[k] != 0 && y[k] != (ctnas_real)0.5) {
            (*decided)++;
            *correct += (s[k] > 0) == (y[k] > (ctnas_real)0.5);
        }
}

/* The weight of the pair (a, b) with target y: 1 without weights, else
 * the weight of the better member, the larger one on a tie (a tie has
 * no better member, and the pair should not count less than either of
 * its members' other pairs would). */
static ctnas_real pair_weight(const struct ctnas_nac_pairs *pairs, int a,
                              int b, ctnas_real y)
{
    const ctnas_real *g = pairs->weight;
    if (g == NULL)
        return 1;
    if (y > (ctnas_real)0.5)
        return g[a];
    if (y < (ctnas_real)0.5)
        return g[b];
    return g[a] > g[b] ? g[a] : g[b];
}

/* Linear heads, listed pairs: s = q_a + r_b with feat = (q, r) rows.
 * Entries past the last pair get weight 0, so every block runs the full
 * PAIR_BLOCK; inv = 1 / npairs makes ds the gradient of the mean. */
static double linear_list(const struct ctnas_nac_pairs *pairs,
                          const ctnas_real *feat, ctnas_real *dfeat,
                          ctnas_real inv, int *correct, int *decided)
{
    double sum = 0;
    ctnas_real s[PAIR_BLOCK], sc[PAIR_BLOCK], y[PAIR_BLOCK], w[PAIR_BLOCK];
    ctnas_real loss[PAIR_BLOCK], ds[PAIR_BLOCK];
    for (int k0 = 0; k0 < pairs->n; k0 += PAIR_BLOCK) {
        int n = pairs->n - k0 < PAIR_BLOCK ? pairs->n - k0 : PAIR_BLOCK;
        const int *pa = pairs->a + k0, *pb = pairs->b + k0;
        for (int k = 0; k < PAIR_BLOCK; k++) {
            int in = k < n;
            s[k] = in ? feat[2 * pa[k]] + feat[2 * pb[k] + 1] : 0;
            sc[k] = clamp87(s[k]);
            y[k] = in ? pairs->y[k0 + k] : 0;
            w[k] = in ? pair_weight(pairs, pa[k], pb[k], y[k]) : 0;
        }
        bce_block(s, sc, y, w, inv, loss, ds);
        block_stats(s, y, w, n, correct, decided);
        for (int k = 0; k < n; k++) {
            sum += (double)loss[k];
            if (dfeat != NULL) {
                dfeat[2 * pa[k]] += ds[k];
                dfeat[2 * pb[k] + 1] += ds[k];
            }
        }
    }
    return sum;
}

/* Linear heads, dense pairs: every (i, j), i != j, in row blocks, with q
 * and r gathered into contiguous scratch.  With the antisymmetric head
 * (r = -q) the pair (j, i) has logit -s and target 1 - y, so the same
 * loss and the mirrored gradient: only i < j are computed, weighted 2.
 * scratch (3 x nb) holds q, r and the column gradients dr; dqi gathers
 * row i's, so each dfeat entry is written once per call. */
static double linear_dense(const struct ctnas_nac_pairs *pairs, int nb,
                           int antisym, const ctnas_real *feat,
                           ctnas_real *scratch, ctnas_real *dfeat,
                           ctnas_real inv, int *correct, int *decided)
{
    ctnas_real *q = scratch, *r = scratch + nb, *dr = scratch + 2 * (size_t)nb;
    const double *v = pairs->value;
    double sum = 0;
    ctnas_real s[PAIR_BLOCK], sc[PAIR_BLOCK], y[PAIR_BLOCK], w[PAIR_BLOCK];
    ctnas_real loss[PAIR_BLOCK], ds[PAIR_BLOCK];
    ctnas_real wt = antisym ? 2 : 1;
    for (int i = 0; i < nb; i++) {
        q[i] = feat[2 * i];
        r[i] = feat[2 * i + 1];
        dr[i] = 0;
    }
    for (int i = 0; i < nb; i++) {
        ctnas_real dqi = 0;
        for (int j0 = antisym ? i + 1 : 0; j0 < nb; j0 += PAIR_BLOCK) {
            int n = nb - j0 < PAIR_BLOCK ? nb - j0 : PAIR_BLOCK;
            /* The diagonal j = i and the padding past nb get weight 0. */
            for (int k = 0; k < PAIR_BLOCK; k++) {
                int j = j0 + k, in = k < n && j != i;
                s[k] = k < n ? q[i] + r[j] : 0;
                sc[k] = clamp87(s[k]);
                y[k] = k < n ? target(v[i], v[j]) : 0;
                w[k] = in ? wt * pair_weight(pairs, i, j, y[k]) : 0;
            }
            bce_block(s, sc, y, w, inv, loss, ds);
            int c0 = 0, d0 = 0;
            block_stats(s, y, w, n, &c0, &d0);
            *correct += antisym ? 2 * c0 : c0;
            *decided += antisym ? 2 * d0 : d0;
            double bsum = 0;
            for (int k = 0; k < n; k++) {
                bsum += (double)loss[k];
                dqi += ds[k];
                dr[j0 + k] += ds[k];
            }
            sum += bsum;
        }
        if (dfeat != NULL)
            dfeat[2 * i] += dqi;
    }
    if (dfeat != NULL)
        for (int j = 0; j < nb; j++)
            dfeat[2 * j + 1] += dr[j];
    return sum;
}

double ctnas_nac_loss(const struct ctnas_nac_config *cfg,
                      const struct ctnas_nac_layout *lay,
                      const ctnas_real *theta,
                      const struct ctnas_nac_batch *b,
                      struct ctnas_nac_cache *c,
                      const struct ctnas_nac_pairs *pairs, ctnas_real *grad,
                      struct ctnas_nac_loss_stats *st)
{
    int n = b->n_graphs, fw = lay->feat_width, d = cfg->dim;
    int npairs = pairs->dense ? n * (n - 1) : pairs->n;
    assert(grad == NULL || c->dfeat != NULL); /* backward needs its buffers */
    assert(!pairs->dense || pairs->value != NULL);
    ctnas_nac_forward(cfg, lay, theta, b, c);
    ctnas_nac_head_prep(cfg, lay, theta, c->pool, n, c->feat);
    if (grad != NULL)
        memset(c->dfeat, 0, (size_t)n * fw * sizeof *c->dfeat);
    double sum = 0;
    int correct = 0, decided = 0;
    ctnas_real inv = npairs > 0 ? (ctnas_real)1 / (ctnas_real)npairs : 0;
    ctnas_real *dfeat = grad != NULL ? c->dfeat : NULL;
    /* Linear heads stream the pairs in vectorised blocks; the MLP head's
     * pair term is not a sum of per-graph numbers, so it goes pair by
     * pair. */
    if (cfg->head != CTNAS_NAC_HEAD_MLP) {
        if (pairs->dense)
            sum = linear_dense(pairs, n, cfg->head == CTNAS_NAC_HEAD_DIFF,
                               c->feat, c->scratch, dfeat, inv, &correct,
                               &decided);
        else
            sum = linear_list(pairs, c->feat, dfeat, inv, &correct,
                              &decided);
    } else {
        for (int k = 0; k < npairs; k++) {
            int a, bb;
            ctnas_real y;
            if (pairs->dense) {
                /* Dense pair k: a = k / (n - 1), and b the (k % (n - 1))-th
                 * graph other than a. */
                a = k / (n - 1);
                bb = k % (n - 1);
                bb += bb >= a;
                y = target(pairs->value[a], pairs->value[bb]);
            } else {
                a = pairs->a[k];
                bb = pairs->b[k];
                y = pairs->y[k];
            }
            assert(a >= 0 && a < n && bb >= 0 && bb < n);
            const ctnas_real *fa = c->feat + (size_t)a * fw;
            const ctnas_real *fb = c->feat + (size_t)bb * fw;
            ctnas_real s = ctnas_nac_head_pair(cfg, lay, theta, fa, fb), ds;
            ctnas_real pw = pair_weight(pairs, a, bb, y);
            sum += pw * ctnas_nac_bce(s, y, &ds);
            ds *= pw;
            if (y != (ctnas_real)0.5) {
                decided++;
                correct += (s > 0) == (y > (ctnas_real)0.5);
            }
            if (grad != NULL)
                ctnas_nac_head_pair_bwd(cfg, lay, theta, fa, fb, ds * inv,
                                        c->dfeat + (size_t)a * fw,
                                        c->dfeat + (size_t)bb * fw, grad);
        }
    }
    if (grad != NULL) {
        memset(c->dpool, 0, (size_t)n * d * sizeof *c->dpool);
        ctnas_nac_head_prep_bwd(cfg, lay, theta, c->pool, n, c->dfeat,
                                c->dpool, grad);
        ctnas_nac_backward(cfg, lay, theta, b, c, grad);
    }
    double mean = npairs > 0 ? sum / npairs : 0.0;
    if (st != NULL) {
        st->loss = mean;
        st->n_pairs = npairs;
        st->n_correct = correct;
        st->n_decided = decided;
    }
    return mean;
}

/* ------------------------------------------------------------------ */
/* Model */

struct ctnas_nac *ctnas_nac_new(const struct ctnas_nac_config *cfg,
                                int n_members, struct ctnas_rng *rng)
{
    if (ctnas_nac_config_check(cfg, NULL) != 0 || n_members < 1 ||
        n_members > CTNAS_NAC_MAX_MEMBERS)
        return NULL;
    struct ctnas_nac *m = ctnas_calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->cfg = *cfg;
    ctnas_nac_layout_init(cfg, &m->lay);
    m->n_members = n_members;
    m->theta = ctnas_malloc((size_t)n_members * m->lay.n_params *
                            sizeof *m->theta);
    if (m->theta == NULL) {
        ctnas_free(m);
        return NULL;
    }
    /* Members draw from rng in turn, so one seed fixes the whole ensemble
     * and its members differ. */
    for (int k = 0; k < n_members; k++)
        ctnas_nac_init_params(cfg, &m->lay, m->theta + k * m->lay.n_params,
                              rng);
    return m;
}

void ctnas_nac_free(struct ctnas_nac *m)
{
    if (m == NULL)
        return;
    ctnas_free(m->theta);
    ctnas_free(m);
}

int ctnas_nac_feature_width(const struct ctnas_nac *m)
{
    if (m->cfg.head == CTNAS_NAC_HEAD_MLP)
        return m->n_members * m->cfg.hidden;
    return 2;
}

/* ---- splitting independent work over a few threads ---- */

/* Threads for one call at most, the caller's among them. */
#define SPLIT_MAX_THREADS 4

/* Threads for a call worth splitting: the CPUs online, at most
 * SPLIT_MAX_THREADS. */
static int split_threads(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus <= 1 ? 1
                     : (int)(cpus < SPLIT_MAX_THREADS ? cpus
                                                      : SPLIT_MAX_THREADS);
}

/* fn on each of nt argument blocks (args, size bytes apart): the first on
 * this thread, the others on threads of their own; a block whose thread
 * cannot start runs here. */
static void split_run(void *(*fn)(void *), void *args, size_t size, int nt)
{
    pthread_t th[SPLIT_MAX_THREADS];
    int started[SPLIT_MAX_THREADS] = {0};
    char *a = args;
    for (int t = 1; t < nt; t++)
        started[t] = pthread_create(&th[t], NULL, fn, a + t * size) == 0;
    fn(a);
    for (int t = 1; t < nt; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        else
            fn(a + t * size);
    }
}

/* Graphs per forward pass when computing features: bounds the scratch
 * (the forward cache alone holds about 70 KB per graph at d 128, L 4,
 * bidir 2 in float: H, P and Z of every layer over 8 rows). */
#define FEATURE_CHUNK 256

/* Features of graphs[0 .. n) on the calling thread, one forward pass per
 * chunk and member, with a batch and cache of its own.  Linear heads
 * average the members' two numbers (the logit fa[0] + fb[1] is linear, so
 * this gives the members' mean logit); MLP keeps each member's hidden
 * vector side by side, as its head is not linear. */
static int features_serial(const struct ctnas_nac *m,
                           const struct ctnas_graph *graphs, int n,
                           ctnas_real *feat)
{
    int width = ctnas_nac_feature_width(m), fw = m->lay.feat_width;
    int chunk = n < FEATURE_CHUNK ? (n > 0 ? n : 1) : FEATURE_CHUNK;
    struct ctnas_nac_batch b;
    struct ctnas_nac_cache c;
    if (ctnas_nac_batch_init(&b, chunk, m->cfg.layers, 1) != 0)
        return CTNAS_ENOMEM;
    if (ctnas_nac_cache_init_forward(&c, &m->cfg, chunk) != 0) {
        ctnas_nac_batch_destroy(&b);
        return CTNAS_ENOMEM;
    }
    ctnas_real inv = (ctnas_real)1 / (ctnas_real)m->n_members;
    for (int i0 = 0; i0 < n; i0 += chunk) {
        int cn = n - i0 < chunk ? n - i0 : chunk;
        ctnas_nac_batch_build(&b, &m->cfg, graphs + i0, NULL, cn);
        ctnas_real *out = feat + (size_t)i0 * width;
        if (m->cfg.head != CTNAS_NAC_HEAD_MLP)
            memset(out, 0, (size_t)cn * width * sizeof *out);
        for (int k = 0; k < m->n_members; k++) {
            const ctnas_real *th = m->theta + k * m->lay.n_params;
            ctnas_nac_forward(&m->cfg, &m->lay, th, &b, &c);
            ctnas_nac_head_prep(&m->cfg, &m->lay, th, c.pool, cn, c.feat);
            for (int i = 0; i < cn; i++) {
                const ctnas_real *src = c.feat + (size_t)i * fw;
                ctnas_real *dst = out + (size_t)i * width;
                if (m->cfg.head == CTNAS_NAC_HEAD_MLP) {
                    memcpy(dst + (size_t)k * fw, src, (size_t)fw * sizeof *dst);
                } else {
                    dst[0] += inv * src[0];
                    dst[1] += inv * src[1];
                }
            }
        }
    }
    ctnas_nac_cache_destroy(&c);
    ctnas_nac_batch_destroy(&b);
    return 0;
}

/* Graphs [i0, i1) of a features call, for one thread. */
struct feat_range {
    const struct ctnas_nac *m;
    const struct ctnas_graph *graphs;
    int i0, i1, rc;
    ctnas_real *feat;
};

/* Thread body: features_serial over [i0, i1), its status in rc. */
static void *features_range(void *arg)
{
    struct feat_range *w = arg;
    int width = ctnas_nac_feature_width(w->m);
    w->rc = features_serial(w->m, w->graphs + w->i0, w->i1 - w->i0,
                            w->feat + (size_t)w->i0 * width);
    return NULL;
}

/* Chunks are independent, so a large call splits whole chunks over a few
 * threads (as the mean win splits rows): every chunk holds the graphs it
 * would hold in one thread, so the features are the same bit for bit.
 * Whole chunks matter: dedupe numbers states within a batch, and that
 * numbering orders each sum, so a batch of other graphs could round
 * differently.  test_features_split_same (test_nac.c) checks it. */
int ctnas_nac_features(const struct ctnas_nac *m,
                       const struct ctnas_graph *graphs, int n,
                       ctnas_real *feat)
{
    int chunks = (n + FEATURE_CHUNK - 1) / FEATURE_CHUNK;
    int nt = chunks >= 2 ? split_threads() : 1;
    if (nt > chunks)
        nt = chunks;
    if (nt == 1)
        return features_serial(m, graphs, n, feat);
    /* Thread t takes chunks [c0, c1), the counts differing by at most one;
     * only the last range may end inside a chunk, at n. */
    struct feat_range w[SPLIT_MAX_THREADS];
    for (int t = 0; t < nt; t++) {
        int c0 = (int)((long)chunks * t / nt);
        int c1 = (int)((long)chunks * (t + 1) / nt);
        int i1 = c1 * FEATURE_CHUNK;
        w[t] = (struct feat_range){m, graphs, c0 * FEATURE_CHUNK,
                                   i1 < n ? i1 : n, 0, feat};
    }
    split_run(features_range, w, sizeof w[0], nt);
    /* Any failure fails the call (the lowest thread's code wins); feat is
     * then incomplete. */
    for (int t = 0; t < nt; t++)
        if (w[t].rc != 0)
            return w[t].rc;
    return 0;
}

/* The members' mean logit: linear heads' features already hold the mean
 * (features_serial); MLP runs each member's head on its own slice. */
double ctnas_nac_feature_logit(const struct ctnas_nac *m,
                               const ctnas_real *fa, const ctnas_real *fb)
{
    if (m->cfg.head != CTNAS_NAC_HEAD_MLP)
        return (double)fa[0] + (double)fb[1];
    int h = m->cfg.hidden;
    double s = 0;
    for (int k = 0; k < m->n_members; k++)
        s += ctnas_nac_head_pair(&m->cfg, &m->lay,
                                 m->theta + k * m->lay.n_params,
                                 fa + (size_t)k * h, fb + (size_t)k * h);
    return s / m->n_members;
}

double ctnas_nac_feature_prob(const struct ctnas_nac *m,
                              const ctnas_real *fa, const ctnas_real *fb)
{
    double s = ctnas_nac_feature_logit(m, fa, fb);
    if (s >= 0)
        return 1.0 / (1.0 + exp(-s));
    double e = exp(s);
    return e / (1.0 + e);
}

/* out[k] = sigmoid(q + r[k]) over a block of 64, in float, branch-free
 * (vectorised): with e = exp(-min(|s|, 87)), sigmoid(s) = 1/2 +
 * sign(s) (1 - e) / (2 (1 + e)).  Absolute error ~3e-8 (the cancellation
 * for very negative s costs relative, not absolute, precision). */
#define MW_BLOCK 64

/* The ranking's inner loop: vectorised whatever the build's -O level,
 * and in AVX2 where the processor has it (same results: no fast-math). */
#if defined(__GNUC__) && !defined(__clang__)
#define MW_VECTORISE __attribute__((optimize("O3")))
#define MW_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MW_VECTORISE
#define MW_CLONES
#endif

MW_VECTORISE static inline void sigmoid_block(float q,
                                              const float *restrict r,
                                              float *restrict out)
{
    for (int k = 0; k < MW_BLOCK; k++) {
        float s = q + r[k];
        float a = s < 0 ? -s : s;
        int32_t u; /* min(a, 87) on the bits: a >= 0 orders as an int */
        memcpy(&u, &a, sizeof u);
        /* 0x42ae0000 is the bit pattern of 87.0f. */
        u = u < 0x42ae0000 ? u : 0x42ae0000;
        memcpy(&a, &u, sizeof a);
        float e = exp_f32(-a);
        float t = 0.5f * (1.0f - e) / (1.0f + e);
        out[k] = 0.5f + copysignf(t, s);
    }
}

/* Rows [i0, i1) of the linear-head mean win (see mean_win_linear). */
struct mw_rows {
    const ctnas_real *feat;
    const float *r;
    int n, nb, i0, i1;
    double *score;
};

/* Linear heads: p(i, j) = sigmoid(q_i + r_j).  Rows of blocks over a
 * contiguous r padded with -1e30 (whose sigmoid is 0), summed into 8 lanes
 * (a fixed-width reduction the compiler vectorises), then p(i, i) is
 * taken out. */
MW_CLONES MW_VECTORISE static void *mean_win_rows(void *arg)
{
    const struct mw_rows *w = arg;
    const ctnas_real *feat = w->feat;
    const float *r = w->r;
    int n = w->n, nb = w->nb;
    double *score = w->score;
    float out[MW_BLOCK];
    for (int i = w->i0; i < w->i1; i++) {
        float q = (float)feat[(size_t)i * 2];
        double row = 0;
        for (int j0 = 0; j0 < nb; j0 += MW_BLOCK) {
            float acc[8] = {0};
            sigmoid_block(q, r + j0, out);
            for (int k = 0; k < MW_BLOCK; k += 8)
                for (int t = 0; t < 8; t++)
                    acc[t] += out[k + t];
            row += (double)(((acc[0] + acc[1]) + (acc[2] + acc[3])) +
                            ((acc[4] + acc[5]) + (acc[6] + acc[7])));
        }
        row -= ctnas_nac_sigmoid((ctnas_real)(q + r[i]));
        score[i] = row / (n - 1);
    }
    return NULL;
}

/* Rows are independent, so a large ranking splits them over a few
 * threads; each row's sum is the same whichever thread computes it. */
#define MW_PARALLEL_MIN 4096

/* Gathers r into floats padded to whole blocks and runs the rows on up to
 * split_threads() threads.  CTNAS_ENOMEM leaves score untouched. */
static int mean_win_linear(const ctnas_real *feat, int n, double *score)
{
    int nb = (n + MW_BLOCK - 1) / MW_BLOCK * MW_BLOCK;
    float *r = ctnas_malloc((size_t)nb * sizeof *r);
    if (r == NULL)
        return CTNAS_ENOMEM;
    for (int j = 0; j < nb; j++)
        r[j] = j < n ? (float)feat[(size_t)j * 2 + 1] : -1e30f;
    int nt = n >= MW_PARALLEL_MIN ? split_threads() : 1;
    struct mw_rows w[SPLIT_MAX_THREADS];
    for (int t = 0; t < nt; t++)
        w[t] = (struct mw_rows){feat, r, n, nb, (int)((long)n * t / nt),
                                (int)((long)n * (t + 1) / nt), score};
    split_run(mean_win_rows, w, sizeof w[0], nt);
    ctnas_free(r);
    return 0;
}

int ctnas_nac_mean_win(const struct ctnas_nac *m, const ctnas_real *feat,
                       int n, double *score)
{
    int width = ctnas_nac_feature_width(m);
    if (n < 2) {
        for (int i = 0; i < n; i++)
            score[i] = 0.5;
        return 0;
    }
    if (m->cfg.head != CTNAS_NAC_HEAD_MLP)
        return mean_win_linear(feat, n, score);
    /* MLP head: pair by pair */
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < n; j++)
            if (j != i)
                s += ctnas_nac_feature_prob(m, feat + (size_t)i * width,
                                            feat + (size_t)j * width);
        score[i] = s / (n - 1);
    }
    return 0;
}

int ctnas_nac_compare(const struct ctnas_nac *m, const struct ctnas_graph *a,
                      const struct ctnas_graph *b, double *p)
{
    /* Independent of the features path: no dedupe, no collapsing of the
     * members, the head run on the pair itself. */
    struct ctnas_graph g[2] = {*a, *b};
    struct ctnas_nac_batch bt;
    struct ctnas_nac_cache c;
    if (ctnas_nac_batch_init(&bt, 2, m->cfg.layers, 0) != 0)
        return CTNAS_ENOMEM;
    if (ctnas_nac_cache_init_forward(&c, &m->cfg, 2) != 0) {
        ctnas_nac_batch_destroy(&bt);
        return CTNAS_ENOMEM;
    }
    ctnas_nac_batch_build(&bt, &m->cfg, g, NULL, 2);
    double s = 0;
    for (int k = 0; k < m->n_members; k++) {
        const ctnas_real *th = m->theta + k * m->lay.n_params;
        ctnas_nac_forward(&m->cfg, &m->lay, th, &bt, &c);
        ctnas_nac_head_prep(&m->cfg, &m->lay, th, c.pool, 2, c.feat);
        s += ctnas_nac_head_pair(&m->cfg, &m->lay, th, c.feat,
                                 c.feat + m->lay.feat_width);
    }
    s /= m->n_members;
    *p = s >= 0 ? 1.0 / (1.0 + exp(-s)) : exp(s) / (1.0 + exp(s));
    ctnas_nac_cache_destroy(&c);
    ctnas_nac_batch_destroy(&bt);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Serialisation.  Layout (little-endian), format 3:
 *   0  "CTNASNAC"           8 bytes
 *   8  format version       u32
 *  12  n_types dim layers head hidden norm bidir n_members readout
 *                           9 x u32
 *  48  n_params per member  u64
 *  56  FNV-1a 32 of the parameter bytes   u32
 *  60  parameters           n_members * n_params IEEE float32
 * Format 2 is the same without readout (8 x u32, parameters at 56): those
 * models predate the option and read the mean, so they still load.
 * Blobs outlive the build that wrote them (stored models, search
 * checkpoints), hence the version and the old readers.  n_params is
 * implied by the config but stored anyway: load recomputes the layout and
 * refuses a blob whose count differs rather than misread its weights.
 * The checksum covers the parameters; the header is checked by range, by
 * ctnas_nac_config_check and by the exact length.  Weights are float32
 * whatever ctnas_real is, so double (test) builds share the format. */
#define BLOB_NHDR_MAX 9
/* Config fields (u32) in a header of format ver: format 2 lacks readout. */
static int blob_nhdr(uint32_t ver)
{
    return ver == 2 ? 8 : BLOB_NHDR_MAX;
}
/* Header bytes before the parameters: magic and version (12), the
 * config fields, then n_params and the checksum (12). */
static size_t blob_header(uint32_t ver)
{
    return 12 + 4 * (size_t)blob_nhdr(ver) + 12;
}
static const char blob_magic[8] = {'C', 'T', 'N', 'A', 'S', 'N', 'A', 'C'};

/* Little-endian whatever the host's byte order, so blobs move between
 * machines. */
static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

/* A float's IEEE bits and back, through memcpy (no aliasing trouble). */
static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* FNV-1a 32: a cheap check against corrupt or truncated bytes, not a
 * defence against deliberate tampering. */
static uint32_t fnv1a(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

size_t ctnas_nac_blob_size(const struct ctnas_nac *m)
{
    return blob_header(CTNAS_NAC_FORMAT_VERSION) +
           4 * (size_t)m->n_members * m->lay.n_params;
}

long ctnas_nac_save(const struct ctnas_nac *m, void *buf, size_t cap)
{
    size_t size = ctnas_nac_blob_size(m);
    if (cap < size)
        return CTNAS_ETOOLARGE;
    unsigned char *p = buf;
    memcpy(p, blob_magic, 8);
    put_u32(p + 8, CTNAS_NAC_FORMAT_VERSION);
    uint32_t hdr[BLOB_NHDR_MAX] = {
        (uint32_t)m->cfg.n_types, (uint32_t)m->cfg.dim,
        (uint32_t)m->cfg.layers,  (uint32_t)m->cfg.head,
        (uint32_t)m->cfg.hidden,  (uint32_t)m->cfg.norm,
        (uint32_t)m->cfg.bidir,   (uint32_t)m->n_members,
        (uint32_t)m->cfg.readout};
    for (int i = 0; i < BLOB_NHDR_MAX; i++)
        put_u32(p + 12 + 4 * i, hdr[i]);
    unsigned char *tail = p + 12 + 4 * BLOB_NHDR_MAX;
    /* Always the current format; n_params as a u64, low half first. */
    uint64_t np = m->lay.n_params;
    put_u32(tail, (uint32_t)np);
    put_u32(tail + 4, (uint32_t)(np >> 32));
    size_t total = (size_t)m->n_members * m->lay.n_params;
    unsigned char *q = tail + 12;
    for (size_t i = 0; i < total; i++)
        put_u32(q + 4 * i, float_bits((float)m->theta[i]));
    put_u32(tail + 8, fnv1a(q, 4 * total));
    return (long)size;
}

struct ctnas_nac *ctnas_nac_load(const void *buf, size_t len,
                                 struct ctnas_err *err)
{
    const unsigned char *p = buf;
    if (len < 12 || memcmp(p, blob_magic, 8) != 0) {
        ctnas_err_set(err, CTNAS_EINVAL, "model", "not a comparator blob");
        return NULL;
    }
    uint32_t ver = get_u32(p + 8);
    if (ver != 2 && ver != CTNAS_NAC_FORMAT_VERSION) {
        ctnas_err_set(err, CTNAS_EINVAL, "model",
                      "comparator blob format %u, this build reads 2 and %d",
                      (unsigned)ver, CTNAS_NAC_FORMAT_VERSION);
        return NULL;
    }
    int nhdr = blob_nhdr(ver);
    size_t header = blob_header(ver);
    if (len < header) {
        ctnas_err_set(err, CTNAS_EINVAL, "model", "not a comparator blob");
        return NULL;
    }
    uint32_t hdr[BLOB_NHDR_MAX] = {0}; /* readout 0 (mean) for format 2 */
    for (int i = 0; i < nhdr; i++)
        hdr[i] = get_u32(p + 12 + 4 * i);
    /* Every field must be a small non-negative int before the casts below
     * and ctnas_nac_config_check judge it. */
    for (int i = 0; i < nhdr; i++)
        if (hdr[i] > 1u << 20) {
            ctnas_err_set(err, CTNAS_EINVAL, "model",
                          "comparator blob header out of range");
            return NULL;
        }
    struct ctnas_nac_config cfg = {
        .n_types = (int)hdr[0], .dim = (int)hdr[1], .layers = (int)hdr[2],
        .head = (int)hdr[3], .hidden = (int)hdr[4], .norm = (int)hdr[5],
        .bidir = (int)hdr[6], .readout = (int)hdr[8]};
    int members = (int)hdr[7];
    if (ctnas_nac_config_check(&cfg, err) != 0)
        return NULL;
    if (members < 1 || members > CTNAS_NAC_MAX_MEMBERS) {
        ctnas_err_set(err, CTNAS_EINVAL, "model",
                      "comparator blob has %d members", members);
        return NULL;
    }
    struct ctnas_nac_layout lay;
    ctnas_nac_layout_init(&cfg, &lay);
    const unsigned char *tail = p + 12 + 4 * (size_t)nhdr;
    uint64_t np = (uint64_t)get_u32(tail) | (uint64_t)get_u32(tail + 4) << 32;
    size_t total = (size_t)members * lay.n_params;
    /* The length must match exactly: trailing bytes mean a damaged or
     * foreign blob, not room to spare. */
    if (np != lay.n_params || len != header + 4 * total) {
        ctnas_err_set(err, CTNAS_EINVAL, "model",
                      "comparator blob size does not match its header");
        return NULL;
    }
    const unsigned char *q = tail + 12;
    if (fnv1a(q, 4 * total) != get_u32(tail + 8)) {
        ctnas_err_set(err, CTNAS_EINVAL, "model",
                      "comparator blob checksum mismatch");
        return NULL;
    }
    struct ctnas_nac *m = ctnas_calloc(1, sizeof *m);
    ctnas_real *theta = ctnas_malloc((total ? total : 1) * sizeof *theta);
    if (m == NULL || theta == NULL) {
        ctnas_free(m);
        ctnas_free(theta);
        ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < total; i++) {
        float f = bits_float(get_u32(q + 4 * i));
        /* A NaN or infinite weight would spread into every logit it
         * reaches. */
        if (!isfinite(f)) {
            ctnas_free(m);
            ctnas_free(theta);
            ctnas_err_set(err, CTNAS_EINVAL, "model",
                          "comparator blob holds a non-finite weight");
            return NULL;
        }
        theta[i] = (ctnas_real)f;
    }
    m->cfg = cfg;
    m->lay = lay;
    m->n_members = members;
    m->theta = theta;
    return m;
}

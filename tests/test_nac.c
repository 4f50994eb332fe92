/*
 * test_nac.c - the comparator: gradients against central finite
 * differences, overfitting, determinism, serialisation, the heads'
 * properties, feature-cache scoring, the served model's feature cache,
 * and a real-data Kendall tau.
 *
 * Built twice (see Makefile.am):
 *   tests/test_nac_grad  with -DCTNAS_REAL_DOUBLE and its own double
 *                        copies of blas.c, nac.c, optim.c, nac_train.c:
 *                        the per-op and whole-loss gradient checks
 *                        (eps 1e-6, rel err < 1e-6), then the common tests;
 *   tests/test_nac       the float library as the daemon runs it: the
 *                        common tests and the real-data test (NB201, 424
 *                        training architectures, the default recipe, test
 *                        tau >= 0.78 on 1,000 others; ~3 s of CPU, ~10 s
 *                        under ASan/UBSan).
 */
#include "config.h"
#include <pthread.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "dataset.h"
#include "mem.h"
#include "nac.h"
#include "nac_train.h"
#include "optim.h"
#include "registry.h"
#include "rng.h"
#include "space.h"
#include "test.h"

/* ------------------------------------------------------------------ */
/* Helpers */

#define NT 5 /* node types of the synthetic graphs */

/* A random DAG of 2..8 nodes in topological order: node 0 feeds node 1,
 * each later node gets at least one predecessor. */
static void random_graph(struct ctnas_rng *rng, struct ctnas_graph *g)
{
    memset(g, 0, sizeof *g);
    g->n = 2 + (int)ctnas_rng_below(rng, CTNAS_GRAPH_MAX - 1);
    for (int i = 0; i < g->n; i++)
        g->types[i] = (uint8_t)ctnas_rng_below(rng, NT);
    for (int j = 1; j < g->n; j++) {
        int any = 0;
        for (int i = 0; i < j; i++)
            if (ctnas_rng_uniform(rng) < 0.4) {
                g->adj[i][j] = 1;
                any = 1;
            }
        if (!any)
            g->adj[ctnas_rng_below(rng, (uint32_t)j)][j] = 1;
    }
}

/* A few fixed graph shapes repeated, so dedupe has states to share. */
static void random_graphs(struct ctnas_rng *rng, struct ctnas_graph *g, int n)
{
    for (int i = 0; i < n; i++) {
        if (i >= 3 && ctnas_rng_uniform(rng) < 0.3)
            g[i] = g[ctnas_rng_below(rng, (uint32_t)i)];
        else
            random_graph(rng, &g[i]);
    }
}

static void fill_normal(struct ctnas_rng *rng, ctnas_real *x, size_t n,
                        double sd)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (ctnas_real)(sd * ctnas_rng_normal(rng));
}

/* ------------------------------------------------------------------ */
#ifdef CTNAS_REAL_DOUBLE
/* Gradient checks: double build only. */

#define EPS 1e-6
#define TOL 1e-6

/* |a - b| relative to |a| + |b|, floored at 1e-3: the central difference
 * of a loss ~1 carries ~1e-10 of rounding (2e-16 / 1e-6 times a few), so
 * below that floor the check is "absolute error < 1e-9", still far below
 * what any wrong term of the gradient would give. */
static double rel_err(double a, double b)
{
    double den = fabs(a) + fabs(b);
    if (den < 1e-3)
        den = 1e-3;
    return fabs(a - b) / den;
}

/* Each op is checked on the scalar sum(out .* R), R random.  Its central
 * difference is taken from the two perturbed outputs,
 * taken elementwise so the unperturbed entries cancel exactly instead of
 * adding the rounding of a large sum. */
static double fd_dot(const ctnas_real *op, const ctnas_real *om,
                     const ctnas_real *r, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += ((double)op[i] - (double)om[i]) * (double)r[i];
    return s / (2 * EPS);
}

static void test_op_aggregate(void)
{
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 11);
    enum { NG = 6, D = 3 };
    struct ctnas_graph g[NG];
    random_graphs(&rng, g, NG);
    for (int variant = 0; variant < 12; variant++) {
        int dedupe = variant & 1, norm = (variant >> 1) & 1,
            bidir = variant >> 2;
        struct ctnas_nac_config cfg = {.n_types = NT, .dim = D, .layers = 2,
                                       .norm = norm, .bidir = bidir};
        struct ctnas_nac_batch b;
        ASSERT_EQ(ctnas_nac_batch_init(&b, NG, 2, dedupe), 0);
        ctnas_nac_batch_build(&b, &cfg, g, NULL, NG);
        int l = 2, nin = b.n_u[l - 1], nout = b.n_u[l], kd = b.kw * D;
        ctnas_real *pm = malloc(sizeof *pm * nin * kd);
        ctnas_real *dp = calloc((size_t)nin * kd, sizeof *dp);
        ctnas_real *out = malloc(sizeof *out * nout * D);
        ctnas_real *out2 = malloc(sizeof *out2 * nout * D);
        ctnas_real *r = malloc(sizeof *r * nout * D);
        ctnas_real bias[D], dbias[D] = {0};
        fill_normal(&rng, pm, (size_t)nin * kd, 1);
        fill_normal(&rng, bias, D, 1);
        fill_normal(&rng, r, (size_t)nout * D, 1);
        ctnas_nac_op_aggregate_bwd(&b, l, D, r, dp, dbias);
        double worst = 0;
        for (int which = 0; which < 2; which++) {
            ctnas_real *x = which ? bias : pm, *dx = which ? dbias : dp;
            int n = which ? D : nin * kd;
            for (int i = 0; i < n; i++) {
                ctnas_real keep = x[i];
                x[i] = keep + EPS;
                ctnas_nac_op_aggregate_fwd(&b, l, D, pm, bias, out);
                x[i] = keep - EPS;
                ctnas_nac_op_aggregate_fwd(&b, l, D, pm, bias, out2);
                x[i] = keep;
                double e = rel_err(dx[i],
                                   fd_dot(out, out2, r, (size_t)nout * D));
                if (e > worst)
                    worst = e;
            }
        }
        free(pm);
        free(dp);
        free(out);
        free(out2);
        free(r);
        ctnas_nac_batch_destroy(&b);
        ASSERT_MSG(worst < TOL,
                   "aggregate dedupe=%d norm=%d bidir=%d: rel err %g",
                   dedupe, norm, bidir, worst);
    }
}

static void test_op_linear(void)
{
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 12);
    enum { M = 5, DIN = 4, DOUT = 6 };
    ctnas_real h[M * DIN], w[DIN * DOUT], pm[M * DOUT], pm2[M * DOUT];
    ctnas_real r[M * DOUT];
    ctnas_real dh[M * DIN] = {0}, dw[DIN * DOUT] = {0};
    fill_normal(&rng, h, M * DIN, 1);
    fill_normal(&rng, w, DIN * DOUT, 1);
    fill_normal(&rng, r, M * DOUT, 1);
    ctnas_nac_op_linear_bwd(M, DIN, DOUT, h, w, r, dh, dw);
    struct {
        ctnas_real *x, *dx;
        int n;
        const char *name;
    } vars[] = {{h, dh, M * DIN, "H"}, {w, dw, DIN * DOUT, "W"}};
    for (int v = 0; v < 2; v++) {
        double worst = 0;
        for (int i = 0; i < vars[v].n; i++) {
            ctnas_real keep = vars[v].x[i];
            vars[v].x[i] = keep + EPS;
            ctnas_nac_op_linear_fwd(M, DIN, DOUT, h, w, pm);
            vars[v].x[i] = keep - EPS;
            ctnas_nac_op_linear_fwd(M, DIN, DOUT, h, w, pm2);
            vars[v].x[i] = keep;
            double e = rel_err(vars[v].dx[i], fd_dot(pm, pm2, r, M * DOUT));
            if (e > worst)
                worst = e;
        }
        ASSERT_MSG(worst < TOL, "linear d%s: rel err %g", vars[v].name,
                   worst);
    }
}

static void test_op_relu_res(void)
{
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 13);
    enum { NG = 5, D = 3 };
    struct ctnas_graph gr[NG];
    random_graphs(&rng, gr, NG);
    struct ctnas_nac_batch b;
    struct ctnas_nac_config cfg = {.n_types = NT, .dim = D, .layers = 1};
    ASSERT_EQ(ctnas_nac_batch_init(&b, NG, 1, 1), 0);
    ctnas_nac_batch_build(&b, &cfg, gr, NULL, NG);
    int nin = b.n_u[0], nout = b.n_u[1];
    ctnas_real *z = malloc(sizeof *z * nout * D);
    ctnas_real *h = malloc(sizeof *h * nin * D);
    ctnas_real *hn = malloc(sizeof *hn * nout * D);
    ctnas_real *hn2 = malloc(sizeof *hn2 * nout * D);
    ctnas_real *r = malloc(sizeof *r * nout * D);
    ctnas_real *dz = malloc(sizeof *dz * nout * D);
    ctnas_real *dh = calloc((size_t)nin * D, sizeof *dh);
    fill_normal(&rng, z, (size_t)nout * D, 1);
    for (int i = 0; i < nout * D; i++) /* nudge off the kink */
        if (fabs(z[i]) < 1e-3)
            z[i] = z[i] < 0 ? -1e-3 : 1e-3;
    fill_normal(&rng, h, (size_t)nin * D, 1);
    fill_normal(&rng, r, (size_t)nout * D, 1);
    ctnas_nac_op_relu_res_bwd(&b, 1, D, z, r, dz, dh);
    double worst = 0;
    for (int which = 0; which < 2; which++) {
        ctnas_real *x = which ? h : z, *dx = which ? dh : dz;
        int n = which ? nin * D : nout * D;
        for (int i = 0; i < n; i++) {
            ctnas_real keep = x[i];
            x[i] = keep + EPS;
            ctnas_nac_op_relu_res_fwd(&b, 1, D, z, h, hn);
            x[i] = keep - EPS;
            ctnas_nac_op_relu_res_fwd(&b, 1, D, z, h, hn2);
            x[i] = keep;
            double e = rel_err(dx[i], fd_dot(hn, hn2, r, (size_t)nout * D));
            if (e > worst)
                worst = e;
        }
    }
    free(z);
    free(h);
    free(hn);
    free(hn2);
    free(r);
    free(dz);
    free(dh);
    ctnas_nac_batch_destroy(&b);
    ASSERT_MSG(worst < TOL, "relu_res: rel err %g", worst);
}

static void test_op_pool(void)
{
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 14);
    enum { NG = 5, D = 3 };
    struct ctnas_graph gr[NG];
    random_graphs(&rng, gr, NG);
    struct ctnas_nac_batch b;
    struct ctnas_nac_config cfg = {.n_types = NT, .dim = D, .layers = 2};
    ASSERT_EQ(ctnas_nac_batch_init(&b, NG, 2, 1), 0);
    ctnas_nac_batch_build(&b, &cfg, gr, NULL, NG);
    int nin = b.n_u[2];
    ctnas_real *h = malloc(sizeof *h * nin * D);
    ctnas_real *dh = calloc((size_t)nin * D, sizeof *dh);
    ctnas_real pool[NG * D], pool2[NG * D], r[NG * D];
    fill_normal(&rng, h, (size_t)nin * D, 1);
    fill_normal(&rng, r, NG * D, 1);
    double worst = 0;
    for (int ro = 0; ro <= CTNAS_NAC_READOUT_OUT; ro++) {
        memset(dh, 0, sizeof *dh * nin * D);
        ctnas_nac_op_pool_bwd(&b, D, ro, r, dh);
        for (int i = 0; i < nin * D; i++) {
            ctnas_real keep = h[i];
            h[i] = keep + EPS;
            ctnas_nac_op_pool_fwd(&b, D, ro, h, pool);
            h[i] = keep - EPS;
            ctnas_nac_op_pool_fwd(&b, D, ro, h, pool2);
            h[i] = keep;
            double e = rel_err(dh[i], fd_dot(pool, pool2, r, NG * D));
            if (e > worst)
                worst = e;
        }
    }
    /* The readouts differ: the output node's state is in z or not. */
    ctnas_nac_op_pool_fwd(&b, D, CTNAS_NAC_READOUT_MEAN, h, pool);
    ctnas_nac_op_pool_fwd(&b, D, CTNAS_NAC_READOUT_MEAN_OUT, h, pool2);
    const ctnas_real *out0 = h + (size_t)b.uid[2][b.row_off[1] - 1] * D;
    for (int k = 0; k < D; k++)
        ASSERT_NEAR(pool2[k] - pool[k], out0[k], 1e-5);
    free(h);
    free(dh);
    ctnas_nac_batch_destroy(&b);
    ASSERT_MSG(worst < TOL, "pool: rel err %g", worst);
}

static void test_op_bce(void)
{
    double worst = 0;
    const double s_list[] = {-30, -3.2, -0.7, 0.01, 0.9, 4.5, 25};
    const double y_list[] = {0, 0.5, 1};
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 3; j++) {
            ctnas_real ds;
            ctnas_nac_bce(s_list[i], y_list[j], &ds);
            double fp = ctnas_nac_bce(s_list[i] + EPS, y_list[j], NULL);
            double fm = ctnas_nac_bce(s_list[i] - EPS, y_list[j], NULL);
            double e = rel_err(ds, (fp - fm) / (2 * EPS));
            if (e > worst)
                worst = e;
        }
    ASSERT_MSG(worst < TOL, "bce: rel err %g", worst);
    /* no overflow far out, and the loss of a confident right answer ~ 0 */
    ASSERT(isfinite(ctnas_nac_bce(800, 0, NULL)));
    ASSERT_NEAR(ctnas_nac_bce(800, 0, NULL), 800, 1e-9);
    ASSERT(ctnas_nac_bce(40, 1, NULL) < 1e-15);
}

/* The head on random z: loss = sum_k r_k logit(a_k, b_k); checks dz and
 * the head's parameters. */
static void test_op_head(void)
{
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 15);
    enum { N = 5, D = 4, NP = 9 };
    for (int head = 0; head <= CTNAS_NAC_HEAD_MLP; head++) {
        struct ctnas_nac_config cfg = {.n_types = NT, .dim = D, .layers = 0,
                                       .head = head, .hidden = 6};
        struct ctnas_nac_layout lay;
        ctnas_nac_layout_init(&cfg, &lay);
        int fw = lay.feat_width;
        ctnas_real *theta = malloc(sizeof *theta * lay.n_params);
        ctnas_real *grad = calloc(lay.n_params, sizeof *grad);
        ctnas_real z[N * D], dz[N * D] = {0}, rk[NP];
        ctnas_real feat[N * 8], dfeat[N * 8] = {0};
        int pa[NP], pb[NP];
        ctnas_nac_init_params(&cfg, &lay, theta, &rng);
        fill_normal(&rng, z, N * D, 1);
        fill_normal(&rng, rk, NP, 1);
        for (int k = 0; k < NP; k++) {
            pa[k] = (int)ctnas_rng_below(&rng, N);
            pb[k] = (pa[k] + 1 + (int)ctnas_rng_below(&rng, N - 1)) % N;
        }
        /* forward + backward */
        ctnas_nac_head_prep(&cfg, &lay, theta, z, N, feat);
        double min_kink = 1e9;
        for (int k = 0; k < NP; k++) {
            ctnas_nac_head_pair_bwd(&cfg, &lay, theta, feat + pa[k] * fw,
                                    feat + pb[k] * fw, rk[k],
                                    dfeat + pa[k] * fw, dfeat + pb[k] * fw,
                                    grad);
            if (head == CTNAS_NAC_HEAD_MLP)
                for (int j = 0; j < cfg.hidden; j++) {
                    double x = feat[pa[k] * fw + j] - feat[pb[k] * fw + j];
                    double b1 = theta[lay.b1 + j];
                    min_kink = fmin(min_kink, fmin(fabs(x + b1), fabs(b1 - x)));
                }
        }
        ASSERT_MSG(min_kink > 1e-4, "head %d: input on a ReLU kink", head);
        ctnas_nac_head_prep_bwd(&cfg, &lay, theta, z, N, dfeat, dz, grad);
        double worst = 0;
        for (int which = 0; which < 2; which++) {
            ctnas_real *x = which ? theta + lay.emb + NT * D : z;
            ctnas_real *dx = which ? grad + lay.emb + NT * D : dz;
            int n = which ? (int)(lay.n_params - NT * D) : N * D;
            for (int i = 0; i < n; i++) {
                double f[2];
                ctnas_real keep = x[i];
                for (int sgn = 0; sgn < 2; sgn++) {
                    x[i] = keep + (sgn ? -EPS : EPS);
                    ctnas_nac_head_prep(&cfg, &lay, theta, z, N, feat);
                    double s = 0;
                    for (int k = 0; k < NP; k++)
                        s += rk[k] * ctnas_nac_head_pair(&cfg, &lay, theta,
                                                         feat + pa[k] * fw,
                                                         feat + pb[k] * fw);
                    f[sgn] = s;
                }
                x[i] = keep;
                double e = rel_err(dx[i], (f[0] - f[1]) / (2 * EPS));
                if (e > worst)
                    worst = e;
            }
        }
        free(theta);
        free(grad);
        ASSERT_MSG(worst < TOL, "head %s: rel err %g",
                   ctnas_nac_head_name(head), worst);
    }
}

/* Smallest |pre-activation| of a forward, to stay off ReLU kinks. */
static double min_abs_z(const struct ctnas_nac_batch *b,
                        const struct ctnas_nac_cache *c, int d)
{
    double m = 1e9;
    for (int l = 1; l <= b->layers; l++)
        for (int i = 0; i < b->n_u[l] * d; i++)
            m = fmin(m, fabs(c->z[l][i]));
    return m;
}

/* Smallest distance of the MLP head's hidden units from their kinks over
 * the pairs (1e9 for the linear heads). */
static double min_abs_head(const struct ctnas_nac_config *cfg,
                           const struct ctnas_nac_layout *lay,
                           const ctnas_real *theta,
                           const struct ctnas_nac_cache *c,
                           const struct ctnas_nac_pairs *p)
{
    double m = 1e9;
    if (cfg->head != CTNAS_NAC_HEAD_MLP)
        return m;
    int fw = lay->feat_width, ng = c->cap_graphs;
    int n = p->dense ? ng * ng : p->n;
    for (int k = 0; k < n; k++)
        for (int j = 0; j < cfg->hidden; j++) {
            int a = p->dense ? k / ng : p->a[k];
            int b = p->dense ? k % ng : p->b[k];
            if (a == b)
                continue;
            double x = c->feat[a * fw + j] - c->feat[b * fw + j];
            double b1 = theta[lay->b1 + j];
            m = fmin(m, fmin(fabs(x + b1), fabs(b1 - x)));
        }
    return m;
}

/* Whole loss (embedding, L layers, pool, head, BCE over pairs) against
 * finite differences on every parameter, for each head, with and without
 * normalisation and dedupe. */
static void test_grad_whole_loss(void)
{
    enum { NG = 7, D = 5 };
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 21);
    struct ctnas_graph gr[NG];
    random_graphs(&rng, gr, NG);
    double acc[NG];
    for (int i = 0; i < NG; i++)
        acc[i] = ctnas_rng_uniform(&rng);
    acc[3] = acc[1]; /* a tie: target 0.5 */
    for (int variant = 0; variant < 72; variant++) {
        int head = variant % 3, norm = (variant / 3) & 1,
            bidir = (variant / 6) % 3, dedupe = (variant / 18) & 1,
            dense = variant / 36;
        /* every readout meets every head and both dedupe settings */
        int readout = (variant / 3 + variant / 18) % 3;
        struct ctnas_nac_config cfg = {.n_types = NT, .dim = D, .layers = 3,
                                       .head = head, .hidden = 4,
                                       .norm = norm, .bidir = bidir,
                                       .readout = readout};
        struct ctnas_nac_layout lay;
        ctnas_nac_layout_init(&cfg, &lay);
        struct ctnas_nac_batch b;
        struct ctnas_nac_cache c;
        struct ctnas_nac_pairs p;
        ASSERT_EQ(ctnas_nac_batch_init(&b, NG, cfg.layers, dedupe), 0);
        ASSERT_EQ(ctnas_nac_cache_init(&c, &cfg, NG), 0);
        ASSERT_EQ(ctnas_nac_pairs_init(&p, NG * NG), 0);
        ctnas_nac_batch_build(&b, &cfg, gr, NULL, NG);
        p.n = 0;
        p.dense = dense;
        p.value = acc;
        for (int i = 0; i < NG && !dense; i++)
            for (int j = 0; j < NG; j++)
                if (i != j && (i + j) % 2 == 0) {
                    p.a[p.n] = i;
                    p.b[p.n] = j;
                    p.y[p.n] = acc[i] > acc[j] ? 1
                               : acc[i] < acc[j] ? 0 : 0.5;
                    p.n++;
                }
        ctnas_real *theta = malloc(sizeof *theta * lay.n_params);
        ctnas_real *grad = calloc(lay.n_params, sizeof *grad);
        /* Reseed until no pre-activation sits near a kink. */
        int tries = 0;
        do {
            ctnas_nac_init_params(&cfg, &lay, theta, &rng);
            ctnas_nac_forward(&cfg, &lay, theta, &b, &c);
            ctnas_nac_head_prep(&cfg, &lay, theta, c.pool, NG, c.feat);
        } while ((min_abs_z(&b, &c, D) < 1e-4 ||
                  min_abs_head(&cfg, &lay, theta, &c, &p) < 1e-4) &&
                 ++tries < 50);
        ASSERT(tries < 50);
        ctnas_nac_loss(&cfg, &lay, theta, &b, &c, &p, grad, NULL);
        double worst = 0;
        size_t worst_i = 0;
        for (size_t i = 0; i < lay.n_params; i++) {
            ctnas_real keep = theta[i];
            theta[i] = keep + EPS;
            double fp = ctnas_nac_loss(&cfg, &lay, theta, &b, &c, &p, NULL,
                                       NULL);
            theta[i] = keep - EPS;
            double fm = ctnas_nac_loss(&cfg, &lay, theta, &b, &c, &p, NULL,
                                       NULL);
            theta[i] = keep;
            double e = rel_err(grad[i], (fp - fm) / (2 * EPS));
            if (e > worst) {
                worst = e;
                worst_i = i;
            }
        }
        free(theta);
        free(grad);
        ctnas_nac_pairs_destroy(&p);
        ctnas_nac_cache_destroy(&c);
        ctnas_nac_batch_destroy(&b);
        printf("# whole loss head=%s norm=%d bidir=%d readout=%s dedupe=%d "
               "dense=%d: %zu params, worst rel err %.2g\n",
               ctnas_nac_head_name(head), norm, bidir,
               ctnas_nac_readout_name(readout), dedupe, dense, lay.n_params,
               worst);
        ASSERT_MSG(worst < TOL,
                   "whole loss head=%s norm=%d bidir=%d readout=%s dedupe=%d "
                   "dense=%d: rel err %g at %zu", ctnas_nac_head_name(head),
                   norm, bidir, ctnas_nac_readout_name(readout), dedupe,
                   dense, worst, worst_i);
    }
}

/* Dedupe is the same function: equal losses and gradients both ways. */
static void test_dedupe_same_function(void)
{
    enum { NG = 40, D = 6 };
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 23);
    struct ctnas_graph gr[NG];
    random_graphs(&rng, gr, NG);
    struct ctnas_nac_config cfg = {.n_types = NT, .dim = D, .layers = 4,
                                   .head = CTNAS_NAC_HEAD_CONCAT};
    struct ctnas_nac_layout lay;
    ctnas_nac_layout_init(&cfg, &lay);
    ctnas_real *theta = malloc(sizeof *theta * lay.n_params);
    ctnas_real *g0 = calloc(lay.n_params, sizeof *g0);
    ctnas_real *g1 = calloc(lay.n_params, sizeof *g1);
    ctnas_nac_init_params(&cfg, &lay, theta, &rng);
    struct ctnas_nac_pairs p;
    ASSERT_EQ(ctnas_nac_pairs_init(&p, NG), 0);
    for (int i = 0; i < NG; i++) {
        p.a[i] = i;
        p.b[i] = (i * 7 + 3) % NG;
        p.y[i] = (ctnas_real)(i % 2);
    }
    p.n = NG;
    double loss[2];
    int rows = 0, states = 0;
    for (int dd = 0; dd < 2; dd++) {
        struct ctnas_nac_batch b;
        struct ctnas_nac_cache c;
        ASSERT_EQ(ctnas_nac_batch_init(&b, NG, cfg.layers, dd), 0);
        ASSERT_EQ(ctnas_nac_cache_init(&c, &cfg, NG), 0);
        ctnas_nac_batch_build(&b, &cfg, gr, NULL, NG);
        loss[dd] = ctnas_nac_loss(&cfg, &lay, theta, &b, &c, &p,
                                  dd ? g1 : g0, NULL);
        if (dd) {
            rows = b.n_rows;
            states = b.n_u[cfg.layers];
        }
        ctnas_nac_cache_destroy(&c);
        ctnas_nac_batch_destroy(&b);
    }
    double worst = 0;
    for (size_t i = 0; i < lay.n_params; i++)
        worst = fmax(worst, rel_err(g0[i], g1[i]));
    free(theta);
    free(g0);
    free(g1);
    ctnas_nac_pairs_destroy(&p);
    ASSERT_NEAR(loss[0], loss[1], 1e-12);
    ASSERT_MSG(worst < 1e-10, "dedupe changes the gradient: %g", worst);
    ASSERT_MSG(states < rows, "dedupe shared nothing (%d states, %d rows)",
               states, rows);
}

#endif /* CTNAS_REAL_DOUBLE */

/* ------------------------------------------------------------------ */
/* Both builds */

/* 8 pairs of 6 graphs driven to ~0 loss. */
static void test_overfit_8_pairs(void)
{
    enum { NG = 6 };
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 31);
    struct ctnas_graph gr[NG];
    for (int i = 0; i < NG; i++)
        random_graph(&rng, &gr[i]);
    struct ctnas_nac_config cfg = {.n_types = NT, .dim = 16, .layers = 2,
                                   .head = CTNAS_NAC_HEAD_CONCAT};
    struct ctnas_nac_layout lay;
    ctnas_nac_layout_init(&cfg, &lay);
    struct ctnas_nac_batch b;
    struct ctnas_nac_cache c;
    struct ctnas_nac_pairs p;
    struct ctnas_adam adam;
    struct ctnas_adam_config ac;
    ctnas_adam_config_default(&ac);
    ac.lr = 1e-2;
    ASSERT_EQ(ctnas_nac_batch_init(&b, NG, cfg.layers, 1), 0);
    ASSERT_EQ(ctnas_nac_cache_init(&c, &cfg, NG), 0);
    ASSERT_EQ(ctnas_nac_pairs_init(&p, 8), 0);
    ASSERT_EQ(ctnas_adam_init(&adam, lay.n_params, &ac), 0);
    ctnas_nac_batch_build(&b, &cfg, gr, NULL, NG);
    /* arbitrary (even intransitive) labels: the concat head can fit them */
    static const int pa[8] = {0, 1, 2, 3, 4, 5, 0, 2};
    static const int pb[8] = {1, 2, 3, 4, 5, 0, 3, 5};
    for (int k = 0; k < 8; k++) {
        p.a[k] = pa[k];
        p.b[k] = pb[k];
        p.y[k] = (ctnas_real)(k % 3 != 0);
    }
    p.n = 8;
    ctnas_real *theta = malloc(sizeof *theta * lay.n_params);
    ctnas_real *grad = malloc(sizeof *grad * lay.n_params);
    ctnas_nac_init_params(&cfg, &lay, theta, &rng);
    double first = 0, last = 0;
    struct ctnas_nac_loss_stats st;
    for (int it = 0; it < 500; it++) {
        memset(grad, 0, sizeof *grad * lay.n_params);
        last = ctnas_nac_loss(&cfg, &lay, theta, &b, &c, &p, grad, &st);
        if (it == 0)
            first = last;
        ctnas_adam_step(&adam, theta, grad, ac.lr);
    }
    last = ctnas_nac_loss(&cfg, &lay, theta, &b, &c, &p, NULL, &st);
    free(theta);
    free(grad);
    ctnas_adam_destroy(&adam);
    ctnas_nac_pairs_destroy(&p);
    ctnas_nac_cache_destroy(&c);
    ctnas_nac_batch_destroy(&b);
    ASSERT_MSG(last < 1e-3, "loss %g -> %g", first, last);
    ASSERT_EQ(st.n_correct, 8);
}

/* A small synthetic "benchmark": accuracy is a fixed function of the graph
 * so there is something to learn. */
static double synth_acc(const struct ctnas_graph *g)
{
    double s = 0;
    for (int i = 0; i < g->n; i++) {
        s += 0.3 * g->types[i] - 0.1 * (g->types[i] == 2);
        for (int j = 0; j < g->n; j++)
            s += 0.05 * g->adj[i][j] * (g->types[j] + 1);
    }
    return s / g->n;
}

static void synth_data(uint64_t seed, struct ctnas_graph *g, double *acc,
                       int n)
{
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) {
        random_graph(&rng, &g[i]);
        acc[i] = synth_acc(&g[i]);
    }
}

static void small_train_config(struct ctnas_nac_train_config *tc)
{
    ctnas_nac_train_config_default(tc);
    tc->model.n_types = NT;
    tc->model.dim = 16;
    tc->model.layers = 2;
    tc->epochs = 20;
    tc->batch = 32;
}

static void test_determinism(void)
{
    enum { N = 80 };
    struct ctnas_graph g[N];
    double acc[N];
    synth_data(41, g, acc, N);
    struct ctnas_nac_train_config tc;
    small_train_config(&tc);
    tc.members = 2;
    tc.holdout = 0.2;
    tc.eval_every = 5;
    struct ctnas_nac *m[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3; k++) {
        tc.seed = k < 2 ? 7 : 8;
        ASSERT_EQ(ctnas_nac_train(&tc, g, acc, N, NULL, NULL, &m[k], NULL,
                                  NULL), 0);
    }
    size_t n = m[0]->lay.n_params * 2;
    int same01 = memcmp(m[0]->theta, m[1]->theta, n * sizeof(ctnas_real)) == 0;
    int same02 = memcmp(m[0]->theta, m[2]->theta, n * sizeof(ctnas_real)) == 0;
    for (int k = 0; k < 3; k++)
        ctnas_nac_free(m[k]);
    ASSERT_MSG(same01, "same seed gave different weights");
    ASSERT_MSG(!same02, "different seeds gave the same weights");
}

static void test_serialise_round_trip(void)
{
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 51);
    for (int head = 0; head <= CTNAS_NAC_HEAD_MLP; head++) {
        struct ctnas_nac_config cfg = {.n_types = NT, .dim = 8, .layers = 3,
                                       .head = head, .hidden = 5, .norm = 1,
                                       .bidir = head, .readout = head};
        struct ctnas_nac *m = ctnas_nac_new(&cfg, 3, &rng);
        ASSERT(m != NULL);
        size_t size = ctnas_nac_blob_size(m);
        unsigned char *buf = malloc(size);
        ASSERT_EQ(ctnas_nac_save(m, buf, size - 1), CTNAS_ETOOLARGE);
        ASSERT_EQ(ctnas_nac_save(m, buf, size), (long)size);
        struct ctnas_err err;
        struct ctnas_nac *m2 = ctnas_nac_load(buf, size, &err);
        ASSERT(m2 != NULL);
        ASSERT_EQ(m2->n_members, 3);
        ASSERT(memcmp(&m2->cfg, &m->cfg, sizeof m->cfg) == 0);
        int same = 1;
        for (size_t i = 0; i < 3 * m->lay.n_params; i++)
            same &= (float)m->theta[i] == (float)m2->theta[i];
        ASSERT(same);
        /* a flipped bit, a truncation, a wrong version are refused */
        buf[size - 3] ^= 0x10;
        ASSERT(ctnas_nac_load(buf, size, &err) == NULL);
        ASSERT_EQ(err.code, CTNAS_EINVAL);
        buf[size - 3] ^= 0x10;
        ASSERT(ctnas_nac_load(buf, size - 4, &err) == NULL);
        buf[8] = 99;
        ASSERT(ctnas_nac_load(buf, size, &err) == NULL);
        ASSERT(strstr(err.msg, "format") != NULL);
        buf[8] = CTNAS_NAC_FORMAT_VERSION;
        /* A format-2 blob (before readout: 8 header words) still loads,
         * with the mean readout it was trained with. */
        size_t size2 = size - 4;
        unsigned char *old = malloc(size2);
        memcpy(old, buf, 44);
        memcpy(old + 44, buf + 48, size - 48);
        old[8] = 2;
        struct ctnas_nac *m3 = ctnas_nac_load(old, size2, &err);
        ASSERT_MSG(m3 != NULL, "format 2: %s", err.msg);
        ASSERT_EQ(m3->cfg.readout, CTNAS_NAC_READOUT_MEAN);
        ASSERT_EQ(m3->cfg.bidir, m->cfg.bidir);
        ASSERT_EQ(m3->n_members, 3);
        ASSERT(memcmp(m3->theta, m2->theta,
                      3 * m->lay.n_params * sizeof *m->theta) == 0);
        ASSERT(ctnas_nac_load(old, size2 - 1, &err) == NULL);
        ctnas_nac_free(m3);
        free(old);
        ctnas_nac_free(m);
        ctnas_nac_free(m2);
        free(buf);
    }
    /* the optimiser state too */
    struct ctnas_adam a, b;
    struct ctnas_adam_config ac;
    ctnas_adam_config_default(&ac);
    ac.weight_decay = 1e-4;
    ASSERT_EQ(ctnas_adam_init(&a, 10, &ac), 0);
    ASSERT_EQ(ctnas_adam_init(&b, 10, &ac), 0);
    ctnas_real th[10], gr[10];
    fill_normal(&rng, th, 10, 1);
    fill_normal(&rng, gr, 10, 1);
    ctnas_adam_step(&a, th, gr, 1e-3);
    ctnas_adam_step(&a, th, gr, 1e-3);
    size_t n = ctnas_adam_state_size(&a);
    unsigned char *buf = malloc(n);
    ASSERT_EQ(ctnas_adam_save(&a, buf, n), (long)n);
    ASSERT_EQ(ctnas_adam_load(&b, buf, n, NULL), 0);
    ASSERT_EQ(b.t, 2);
    ASSERT(memcmp(a.m, b.m, sizeof(ctnas_real) * 10) == 0 ||
           sizeof(ctnas_real) != sizeof(float));
    free(buf);
    ctnas_adam_destroy(&a);
    ctnas_adam_destroy(&b);
}

static void test_antisymmetric_heads(void)
{
    enum { N = 12 };
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 61);
    struct ctnas_graph g[N];
    random_graphs(&rng, g, N);
    const int heads[2] = {CTNAS_NAC_HEAD_DIFF, CTNAS_NAC_HEAD_MLP};
    for (int h = 0; h < 2; h++) {
        struct ctnas_nac_config cfg = {.n_types = NT, .dim = 16, .layers = 3,
                                       .head = heads[h], .hidden = 8};
        struct ctnas_nac *m = ctnas_nac_new(&cfg, 2, &rng);
        ASSERT(m != NULL);
        int w = ctnas_nac_feature_width(m);
        ctnas_real *f = malloc(sizeof *f * N * w);
        ASSERT_EQ(ctnas_nac_features(m, g, N, f), 0);
        double worst = 0;
        for (int i = 0; i < N; i++) {
            worst = fmax(worst, fabs(ctnas_nac_feature_logit(m, f + i * w,
                                                             f + i * w)));
            for (int j = 0; j < N; j++) {
                double pij = ctnas_nac_feature_prob(m, f + i * w, f + j * w);
                double pji = ctnas_nac_feature_prob(m, f + j * w, f + i * w);
                worst = fmax(worst, fabs(pij + pji - 1));
            }
        }
        free(f);
        ctnas_nac_free(m);
        ASSERT_MSG(worst < 1e-6, "%s: |p(a,b) + p(b,a) - 1| up to %g",
                   ctnas_nac_head_name(heads[h]), worst);
    }
}

/* Scoring from cached features equals both graphs through the network, and
 * the mean win probability equals its definition. */
static void test_feature_cache_scoring(void)
{
    enum { N = 30 };
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 71);
    struct ctnas_graph g[N];
    random_graphs(&rng, g, N);
    for (int head = 0; head <= CTNAS_NAC_HEAD_MLP; head++) {
        struct ctnas_nac_config cfg = {.n_types = NT, .dim = 12, .layers = 3,
                                       .head = head, .hidden = 6};
        struct ctnas_nac *m = ctnas_nac_new(&cfg, 3, &rng);
        ASSERT(m != NULL);
        int w = ctnas_nac_feature_width(m);
        ctnas_real *f = malloc(sizeof *f * N * w);
        double score[N];
        ASSERT_EQ(ctnas_nac_features(m, g, N, f), 0);
        ASSERT_EQ(ctnas_nac_mean_win(m, f, N, score), 0);
        double worst = 0, worst_score = 0;
        for (int i = 0; i < N; i++) {
            double s = 0;
            for (int j = 0; j < N; j++) {
                double direct;
                ASSERT_EQ(ctnas_nac_compare(m, &g[i], &g[j], &direct), 0);
                worst = fmax(worst, fabs(direct - ctnas_nac_feature_prob(
                                                      m, f + i * w,
                                                      f + j * w)));
                /* the definition: mean over members of the logits,
                 * each member run alone */
                if (j != i)
                    s += direct;
            }
            worst_score = fmax(worst_score, fabs(s / (N - 1) - score[i]));
        }
        /* members average logits: check one pair by hand */
        double lsum = 0;
        for (int k = 0; k < 3; k++) {
            struct ctnas_nac one = {.cfg = m->cfg, .lay = m->lay,
                                    .n_members = 1,
                                    .theta = m->theta + k * m->lay.n_params};
            int w1 = ctnas_nac_feature_width(&one);
            ctnas_real f1[2 * 64];
            ASSERT_EQ(ctnas_nac_features(&one, g, 2, f1), 0);
            lsum += ctnas_nac_feature_logit(&one, f1, f1 + w1);
        }
        double lens = ctnas_nac_feature_logit(m, f, f + w);
        free(f);
        ctnas_nac_free(m);
        ASSERT_NEAR(lens, lsum / 3, 1e-5);
        ASSERT_MSG(worst < 1e-6, "%s: direct vs cached %g",
                   ctnas_nac_head_name(head), worst);
        ASSERT_MSG(worst_score < 1e-5, "%s: mean win %g",
                   ctnas_nac_head_name(head), worst_score);
    }
}

/* A call of many chunks (split over threads where there are several
 * CPUs) gives the features that one-chunk calls give, bit for bit. */
static void test_features_split_same(void)
{
    enum { N = 1300, CH = 256 };
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 72);
    struct ctnas_graph *g = malloc(sizeof *g * N);
    random_graphs(&rng, g, N);
    for (int head = 0; head <= CTNAS_NAC_HEAD_MLP; head++) {
        struct ctnas_nac_config cfg = {.n_types = NT, .dim = 16,
                                       .layers = 2, .head = head,
                                       .hidden = 4, .bidir = 2};
        struct ctnas_nac *m = ctnas_nac_new(&cfg, 2, &rng);
        ASSERT(m != NULL);
        int w = ctnas_nac_feature_width(m);
        ctnas_real *all = malloc(sizeof *all * N * w);
        ctnas_real *one = malloc(sizeof *one * N * w);
        ASSERT_EQ(ctnas_nac_features(m, g, N, all), 0);
        for (int i0 = 0; i0 < N; i0 += CH)
            ASSERT_EQ(ctnas_nac_features(m, g + i0, N - i0 < CH ? N - i0 : CH,
                                         one + (size_t)i0 * w), 0);
        ASSERT_MSG(memcmp(all, one, sizeof *all * N * w) == 0,
                   "%s: features differ", ctnas_nac_head_name(head));
        free(all);
        free(one);
        ctnas_nac_free(m);
    }
    free(g);
}

/* ---- the served model's feature cache (registry.c) ---- */

/* Float build only: registry.c comes from libctnas.a, built with floats,
 * which the double objects of test_nac_grad do not match. */
#ifndef CTNAS_REAL_DOUBLE

struct served_call {
    struct ctnas_served *s;
    const struct ctnas_space *sp;
    const struct ctnas_arch *archs;
    int n, rc;
    ctnas_real *out;
};

static void *served_call_run(void *p)
{
    struct served_call *c = p;
    c->rc = ctnas_served_features(c->s, c->sp, c->archs, c->n, c->out);
    return NULL;
}

/* Cached features are the model's features: for cells cached before,
 * cells repeated in a request, and two requests racing over the same
 * cells; each cell is cached once. */
static void test_served_features_cache(void)
{
    enum { U = 2600, N = 2800 };
    const struct ctnas_space *sp = ctnas_space_find("nasbench201");
    ASSERT(sp != NULL);
    struct ctnas_arch *archs = calloc(N, sizeof *archs);
    struct ctnas_graph *g = malloc(sizeof *g * N);
    for (int i = 0; i < N; i++) {
        /* 7919 is prime to 5^6, so the first U cells are distinct; the
         * rest repeat some of them. */
        int code = (int)((i < U ? i : (i * 13) % U) * 7919L % 15625);
        archs[i].n = 6;
        for (int e = 0; e < 6; e++, code /= 5)
            archs[i].ops[e] = (uint8_t)(code % 5);
        sp->to_graph(&archs[i], &g[i]);
    }
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 5);
    struct ctnas_nac_config cfg = {.n_types = sp->n_node_types, .dim = 16,
                                   .layers = 2, .head = CTNAS_NAC_HEAD_DIFF,
                                   .bidir = 2};
    struct ctnas_nac *m = ctnas_nac_new(&cfg, 2, &rng);
    ASSERT(m != NULL);
    int w = ctnas_nac_feature_width(m);
    ctnas_real *ref = malloc(sizeof *ref * N * w);
    ctnas_real *out[3];
    for (int k = 0; k < 3; k++)
        out[k] = malloc(sizeof *out[k] * N * w);
    ASSERT_EQ(ctnas_nac_features(m, g, N, ref), 0);
    struct ctnas_served *s = ctnas_served_new(1, "nasbench201", "d", "", 0,
                                              m);
    ASSERT(s != NULL);
    ASSERT_EQ(ctnas_served_cached(s), 0);
    ASSERT_EQ(ctnas_served_features(s, sp, archs + 500, 300, out[2]), 0);
    ASSERT_EQ(ctnas_served_cached(s), 300);

    struct served_call c[2];
    pthread_t t[2];
    for (int k = 0; k < 2; k++) {
        c[k] = (struct served_call){s, sp, archs, N, 1, out[k]};
        ASSERT_EQ(pthread_create(&t[k], NULL, served_call_run, &c[k]), 0);
    }
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    ASSERT_EQ(ctnas_served_cached(s), U);
    /* And once more, all from the cache. */
    ASSERT_EQ(ctnas_served_features(s, sp, archs, N, out[2]), 0);
    ASSERT_EQ(ctnas_served_cached(s), U);
    for (int k = 0; k < 3; k++) {
        ASSERT_EQ(k < 2 ? c[k].rc : 0, 0);
        /* Batches of other make-up round the last float digits apart. */
        for (int i = 0; i < N * w; i++)
            ASSERT_MSG(fabs((double)out[k][i] - (double)ref[i]) < 1e-5,
                       "call %d, value %d: %g vs %g", k, i,
                       (double)out[k][i], (double)ref[i]);
    }
    ctnas_served_release(s);
    for (int k = 0; k < 3; k++)
        free(out[k]);
    free(ref);
    free(g);
    free(archs);
}
#endif

static void test_kendall(void)
{
    const double x[6] = {1, 2, 3, 4, 5, 6};
    const double y[6] = {1, 3, 2, 4, 6, 5};
    /* 15 pairs, 2 discordant: (13 - 2) / 15 */
    ASSERT_NEAR(ctnas_kendall_tau_b(x, y, 6), 11.0 / 15.0, 1e-12);
    const double yt[6] = {1, 1, 2, 2, 3, 3};
    /* ties in y: tau-b = 12 / sqrt(15 * 12) */
    ASSERT_NEAR(ctnas_kendall_tau_b(x, yt, 6), 12.0 / sqrt(15.0 * 12.0),
                1e-12);
    ASSERT_NEAR(ctnas_kendall_tau_b(x, x, 6), 1, 1e-12);
}

/* Cancelling from the progress callback stops the run promptly. */
static int cancel_at_3(const struct ctnas_nac_progress *p, void *user)
{
    int *calls = user;
    (*calls)++;
    return p->epoch >= 3 && !p->in_epoch;
}

static void test_cancel(void)
{
    enum { N = 60 };
    struct ctnas_graph g[N];
    double acc[N];
    synth_data(81, g, acc, N);
    struct ctnas_nac_train_config tc;
    small_train_config(&tc);
    tc.epochs = 1000;
    int calls = 0;
    struct ctnas_nac *m = NULL;
    struct ctnas_err err;
    int rc = ctnas_nac_train(&tc, g, acc, N, cancel_at_3, &calls, &m, NULL,
                             &err);
    ASSERT_EQ(rc, CTNAS_ECANCELED);
    ASSERT(m == NULL);
    ASSERT(calls >= 3 && calls < 10);
}

/* Training on the synthetic benchmark ranks unseen graphs. */
static void test_learns_synthetic(void)
{
    enum { N = 300, NTEST = 200 };
    static struct ctnas_graph g[N + NTEST];
    static double acc[N + NTEST];
    synth_data(91, g, acc, N + NTEST);
    struct ctnas_nac_train_config tc;
    small_train_config(&tc);
    tc.epochs = 60;
    struct ctnas_nac *m = NULL;
    ASSERT_EQ(ctnas_nac_train(&tc, g, acc, N, NULL, NULL, &m, NULL, NULL), 0);
    ctnas_real *f = malloc(sizeof *f * NTEST * 2);
    ASSERT_EQ(ctnas_nac_features(m, g + N, NTEST, f), 0);
    double tau = ctnas_nac_tau_pairwise(m, f, acc + N, NTEST, NULL);
    free(f);
    ctnas_nac_free(m);
    ASSERT_MSG(tau > 0.6, "synthetic test tau %g", tau);
}

#ifndef CTNAS_REAL_DOUBLE
/* The real benchmark: 424 NB201 architectures to train, 1,000 others to
 * test, the default recipe; test Kendall tau >= 0.78. */
static void test_real_nb201(void)
{
    char path[4096];
    const struct ctnas_space *sp = ctnas_space_find("nasbench201");
    ASSERT(sp != NULL);
    ASSERT(test_shared_data("nb201_cifar10.csv", path, sizeof path) != NULL);
    struct ctnas_dataset ds;
    struct ctnas_err err;
    ASSERT_MSG(ctnas_dataset_load(&ds, sp, path, NULL, &err) == 0, "%s",
               err.msg);
    int *tr = NULL, *te = NULL;
    ASSERT_EQ(ctnas_dataset_split(&ds, 424, 1000, 1, &tr, &te, &err), 0);
    struct ctnas_graph *gtr = malloc(sizeof *gtr * 424);
    struct ctnas_graph *gte = malloc(sizeof *gte * 1000);
    double *atr = malloc(sizeof *atr * 424), *ate = malloc(sizeof *ate * 1000);
    for (int i = 0; i < 424; i++) {
        sp->to_graph(&ds.archs[tr[i]], &gtr[i]);
        atr[i] = ds.values[tr[i]];
    }
    for (int i = 0; i < 1000; i++) {
        sp->to_graph(&ds.archs[te[i]], &gte[i]);
        ate[i] = ds.values[te[i]];
    }
    struct ctnas_nac_train_config tc;
    ctnas_nac_train_config_default(&tc);
    tc.model.n_types = sp->n_node_types;
    tc.seed = 1;
    struct ctnas_nac *m = NULL;
    struct ctnas_nac_train_result res;
    ASSERT_EQ(ctnas_nac_train(&tc, gtr, atr, 424, NULL, NULL, &m, &res, &err),
              0);
    ctnas_real *f = malloc(sizeof *f * 1000 * ctnas_nac_feature_width(m));
    ASSERT_EQ(ctnas_nac_features(m, gte, 1000, f), 0);
    double tau = ctnas_nac_tau_pairwise(m, f, ate, 1000, NULL);
    printf("# NB201 424/1000 seed 1: tau %.4f, %.1f s training\n", tau,
           res.seconds);
    free(f);
    ctnas_nac_free(m);
    free(gtr);
    free(gte);
    free(atr);
    free(ate);
    ctnas_free(tr);
    ctnas_free(te);
    ctnas_dataset_destroy(&ds);
    ASSERT_MSG(tau >= 0.78, "test Kendall tau %.4f < 0.78", tau);
}
#endif

int main(void)
{
    ctnas_blas_set_threads(1);
#ifdef CTNAS_REAL_DOUBLE
    TEST_RUN(test_op_aggregate);
    TEST_RUN(test_op_linear);
    TEST_RUN(test_op_relu_res);
    TEST_RUN(test_op_pool);
    TEST_RUN(test_op_bce);
    TEST_RUN(test_op_head);
    TEST_RUN(test_grad_whole_loss);
    TEST_RUN(test_dedupe_same_function);
#endif
    TEST_RUN(test_overfit_8_pairs);
    TEST_RUN(test_determinism);
    TEST_RUN(test_serialise_round_trip);
    TEST_RUN(test_antisymmetric_heads);
    TEST_RUN(test_feature_cache_scoring);
    TEST_RUN(test_features_split_same);
#ifndef CTNAS_REAL_DOUBLE
    TEST_RUN(test_served_features_cache);
#endif
    TEST_RUN(test_kendall);
    TEST_RUN(test_cancel);
    TEST_RUN(test_learns_synthetic);
#ifndef CTNAS_REAL_DOUBLE
    /* The shipped (float) build on real data. */
    char path[4096];
    if (test_shared_data("nb201_cifar10.csv", path, sizeof path) != NULL)
        TEST_RUN(test_real_nb201);
    else
        TEST_SKIP(test_real_nb201, "../shared/data/nb201_cifar10.csv absent");
#endif
    return test_done();
}

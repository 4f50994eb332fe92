/*
 * test_search.c - the controller and the search: REINFORCE and entropy
 * gradients against central finite differences, validity of every sampled
 * cell in both spaces, the baseline and pseudo-label selection rules on
 * hand-made cases, determinism, bit-identical resume from a checkpoint
 * (including mid-fine-tuning and across rounds), and a small search on a
 * synthetic benchmark that must beat random sampling.  Needs no
 * ../shared data.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "controller.h"
#include "mem.h"
#include "nac.h"
#include "nac_train.h"
#include "rng.h"
#include "search.h"
#include "space.h"
#include "test.h"

/* ------------------------------------------------------------------ */
/* Pair weights (nac.h, used by nac_train.h's top_weight) */

/* Loss and gradient of one network on graphs g[0 .. n) with pairs pr. */
static double weighted_loss(const struct ctnas_nac *m,
                            const struct ctnas_graph *g, int n,
                            const struct ctnas_nac_pairs *pr,
                            ctnas_real *grad)
{
    struct ctnas_nac_batch b;
    struct ctnas_nac_cache c;
    if (ctnas_nac_batch_init(&b, n, m->cfg.layers, 1) != 0 ||
        ctnas_nac_cache_init(&c, &m->cfg, n) != 0)
        return NAN;
    ctnas_nac_batch_build(&b, &m->cfg, g, NULL, n);
    memset(grad, 0, m->lay.n_params * sizeof *grad);
    double L = ctnas_nac_loss(&m->cfg, &m->lay, m->theta, &b, &c, pr, grad,
                              NULL);
    ctnas_nac_batch_destroy(&b);
    ctnas_nac_cache_destroy(&c);
    return L;
}

/* A pair counts with its better member's weight: the streamed (dense) and
 * listed forms agree on loss and gradient under weights, and one pair's
 * loss scales with the weight of the better member only. */
static void test_nac_pair_weights(void)
{
    enum { N = 6 };
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 11);
    struct ctnas_nac_config mc;
    ctnas_nac_config_default(&mc);
    mc.n_types = ctnas_space_nb201.n_node_types;
    mc.dim = 8;
    mc.layers = 2;
    struct ctnas_nac *m = ctnas_nac_new(&mc, 1, &rng);
    ASSERT(m != NULL);
    struct ctnas_graph g[N];
    struct ctnas_arch a;
    double val[N] = {3, 1, 4, 1.5, 9, 2.6};
    ctnas_real w[N] = {1, 2, 0.5, 3, 7, 1.25};
    for (int i = 0; i < N; i++) {
        ctnas_space_nb201.sample(&rng, &a);
        ctnas_space_nb201.to_graph(&a, &g[i]);
    }
    size_t np = m->lay.n_params;
    ctnas_real *gd = malloc(np * sizeof *gd), *gl = malloc(np * sizeof *gl);
    struct ctnas_nac_pairs dense, list;
    ASSERT_EQ(ctnas_nac_pairs_init(&dense, 1), 0);
    ASSERT_EQ(ctnas_nac_pairs_init(&list, N * N), 0);
    dense.dense = 1;
    dense.value = val;
    dense.weight = w;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            if (i != j) {
                list.a[list.n] = i;
                list.b[list.n] = j;
                list.y[list.n] = val[i] > val[j] ? 1 : 0;
                list.n++;
            }
    list.weight = w;
    double Ld = weighted_loss(m, g, N, &dense, gd);
    double Ll = weighted_loss(m, g, N, &list, gl);
    ASSERT(isfinite(Ld) && fabs(Ld - Ll) <= 1e-5 * fabs(Ll));
    double worst = 0, scale = 0;
    for (size_t k = 0; k < np; k++) {
        worst = fmax(worst, fabs((double)gd[k] - (double)gl[k]));
        scale = fmax(scale, fabs((double)gl[k]));
    }
    ASSERT(worst <= 1e-5 * scale);
    /* one pair: graph 4 (value 9, weight 7) against graph 1 (value 1,
     * weight 2): weight 7 whichever way round the pair is listed */
    list.n = 1;
    list.a[0] = 4;
    list.b[0] = 1;
    list.y[0] = 1;
    double L7 = weighted_loss(m, g, N, &list, gl);
    list.weight = NULL;
    double L1 = weighted_loss(m, g, N, &list, gl);
    ASSERT(fabs(L7 - 7 * L1) <= 1e-5 * L7);
    list.weight = w;
    list.a[0] = 1;
    list.b[0] = 4;
    list.y[0] = 0;
    double L7r = weighted_loss(m, g, N, &list, gl);
    list.weight = NULL;
    double L1r = weighted_loss(m, g, N, &list, gl);
    ASSERT(fabs(L7r - 7 * L1r) <= 1e-5 * L7r);
    ctnas_nac_pairs_destroy(&dense);
    ctnas_nac_pairs_destroy(&list);
    free(gd);
    free(gl);
    ctnas_nac_free(m);
}

/* ------------------------------------------------------------------ */
/* Controller gradients */

/* L = -(1/n) sum_i (adv_i logp_i + lambda H_i), replayed under theta. */
static double surrogate(const struct ctnas_ctrl *c, const double *theta,
                        int n, struct ctnas_ctrl_sample *s,
                        struct ctnas_ctrl_work *w, const double *adv,
                        double lambda)
{
    ctnas_ctrl_forward(c, theta, n, s, w);
    double L = 0;
    for (int i = 0; i < n; i++)
        L -= (adv[i] * s[i].logp + lambda * s[i].entropy) / n;
    return L;
}

/* Every parameter against a central difference (eps 1e-6, double).  The
 * tolerance: |analytic - numeric| <= 1e-6 (|analytic| + |numeric|) +
 * 1e-9 max(1, |L|).  The second term is the rounding floor of the
 * difference quotient itself: L is a sum of ~100 terms of size ~|L|
 * computed in double (relative error ~1e-14 after accumulation), so
 * (L+ - L-) / 2e-6 carries an absolute error of about 1e-14 |L| / 1e-6 =
 * 1e-8 |L| at worst and ~1e-10 |L| typically (measured: <= 3e-10 |L|);
 * without it, components below ~1e-3 fail on noise, not on a wrong
 * derivative. */
static int grad_check(const struct ctnas_space *sp, double tanh_c,
                      double temperature, double adv_scale, double lambda,
                      uint64_t seed, double *worst, char *msg, size_t cap)
{
    enum { N = 5 };
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, seed);
    struct ctnas_ctrl_config cfg;
    ctnas_ctrl_config_default(&cfg);
    cfg.hidden = 8;
    cfg.tanh_c = tanh_c;
    cfg.temperature = temperature;
    cfg.init_range = 0.5;
    struct ctnas_ctrl *c = ctnas_ctrl_new(sp, &cfg, &rng, NULL);
    struct ctnas_ctrl_work w;
    if (c == NULL || ctnas_ctrl_work_init(&w, c, N) != 0) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    struct ctnas_ctrl_sample s[N];
    double adv[N];
    ctnas_ctrl_sample(c, &rng, N, s, &w);
    for (int i = 0; i < N; i++)
        adv[i] = adv_scale * ctnas_rng_normal(&rng);
    size_t n = c->lay.n_params;
    double *g = calloc(n, sizeof *g), *th = malloc(n * sizeof *th);
    double L = ctnas_ctrl_backward(c, N, s, adv, lambda, &w, g);
    memcpy(th, c->theta, n * sizeof *th);
    double L0 = surrogate(c, th, N, s, &w, adv, lambda);
    int bad = 0;
    *worst = 0;
    if (fabs(L - L0) > 1e-12 * fmax(1, fabs(L))) {
        snprintf(msg, cap, "backward's loss %.17g != replay's %.17g", L, L0);
        bad = 1;
    }
    const double eps = 1e-6, floor = 1e-9 * fmax(1, fabs(L));
    for (size_t i = 0; i < n && !bad; i++) {
        double o = th[i];
        th[i] = o + eps;
        double lp = surrogate(c, th, N, s, &w, adv, lambda);
        th[i] = o - eps;
        double lm = surrogate(c, th, N, s, &w, adv, lambda);
        th[i] = o;
        double num = (lp - lm) / (2 * eps), d = fabs(num - g[i]);
        double tol = 1e-6 * (fabs(num) + fabs(g[i])) + floor;
        if (d / tol > *worst)
            *worst = d / tol;
        if (d > tol) {
            snprintf(msg, cap, "param %zu: analytic %.12g numeric %.12g", i,
                     g[i], num);
            bad = 1;
        }
    }
    free(g);
    free(th);
    ctnas_ctrl_work_destroy(&w);
    ctnas_ctrl_free(c);
    return bad;
}

static void test_ctrl_grad_reinforce_nb201(void)
{
    char msg[160] = "";
    double rel;
    ASSERT_MSG(grad_check(&ctnas_space_nb201, 0, 1, 1, 0, 11, &rel, msg,
                          sizeof msg) == 0, "%s", msg);
    ASSERT_MSG(grad_check(&ctnas_space_nb201, 2.5, 1.7, 1, 0, 12, &rel, msg,
                          sizeof msg) == 0, "tanh: %s", msg);
    printf("# nb201 reinforce: worst error %.3g of the tolerance\n", rel);
}

static void test_ctrl_grad_entropy_nb201(void)
{
    char msg[160] = "";
    double rel;
    ASSERT_MSG(grad_check(&ctnas_space_nb201, 0, 0.7, 0, 1, 13, &rel, msg,
                          sizeof msg) == 0, "%s", msg);
    ASSERT_MSG(grad_check(&ctnas_space_nb201, 1.5, 1.3, 0, 1, 14, &rel, msg,
                          sizeof msg) == 0, "tanh: %s", msg);
}

static void test_ctrl_grad_nb101(void)
{
    char msg[160] = "";
    double rel;
    /* the masked softmaxes, variable lengths, skipped forced steps */
    ASSERT_MSG(grad_check(&ctnas_space_nb101, 0, 1, 1, 0, 21, &rel, msg,
                          sizeof msg) == 0, "reinforce: %s", msg);
    ASSERT_MSG(grad_check(&ctnas_space_nb101, 0, 1, 0, 1, 22, &rel, msg,
                          sizeof msg) == 0, "entropy: %s", msg);
    ASSERT_MSG(grad_check(&ctnas_space_nb101, 2.5, 2, 0.7, 0.3, 23, &rel,
                          msg, sizeof msg) == 0, "both, tanh: %s", msg);
}

/* ------------------------------------------------------------------ */
/* Validity of samples */

/* Sample many cells from controllers of varied sharpness; each must be the
 * canonical form of itself (encode -> parse gives it back bit for bit),
 * and its replayed log-probability must match. */
static void check_samples(const struct ctnas_space *sp, int *hist, int *fail,
                          char *msg, size_t cap)
{
    const double ranges[] = {0.1, 1.0, 3.0};
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 99);
    *fail = 0;
    for (int r = 0; r < 3 && !*fail; r++) {
        struct ctnas_ctrl_config cfg;
        ctnas_ctrl_config_default(&cfg);
        cfg.hidden = 16;
        cfg.init_range = ranges[r];
        cfg.temperature = r == 2 ? 0.3 : 1.0;
        struct ctnas_ctrl *c = ctnas_ctrl_new(sp, &cfg, &rng, NULL);
        struct ctnas_ctrl_work w;
        ctnas_ctrl_work_init(&w, c, 1);
        for (int i = 0; i < 2000 && !*fail; i++) {
            struct ctnas_ctrl_sample s, t;
            ctnas_ctrl_sample(c, &rng, 1, &s, NULL);
            char buf[CTNAS_ENCODING_MAX];
            struct ctnas_arch back;
            struct ctnas_err err;
            if (sp->encode(&s.arch, buf, sizeof buf) < 0 ||
                sp->parse_string(buf, &back, &err) != 0) {
                snprintf(msg, cap, "sample %d invalid: %.100s", i, err.msg);
                *fail = 1;
                break;
            }
            if (memcmp(&back, &s.arch, sizeof back) != 0) {
                snprintf(msg, cap, "sample %d not canonical: %.100s", i, buf);
                *fail = 1;
                break;
            }
            int edges = 0;
            for (int a = 0; a < CTNAS_GRAPH_MAX; a++)
                for (int b = 0; b < CTNAS_GRAPH_MAX; b++)
                    edges += s.arch.adj[a][b];
            if (edges > 9 || !(s.logp <= 0) || s.entropy < 0) {
                snprintf(msg, cap, "sample %d: edges %d logp %g", i, edges,
                         s.logp);
                *fail = 1;
                break;
            }
            hist[s.arch.n]++;
            t = s;
            ctnas_ctrl_forward(c, NULL, 1, &t, &w);
            if (fabs(t.logp - s.logp) > 1e-12 ||
                memcmp(&t.arch, &s.arch, sizeof t.arch) != 0) {
                snprintf(msg, cap, "sample %d: replay differs", i);
                *fail = 1;
            }
        }
        ctnas_ctrl_work_destroy(&w);
        ctnas_ctrl_free(c);
    }
}

static void test_ctrl_samples_valid_nb201(void)
{
    int hist[CTNAS_GRAPH_MAX + 1] = {0}, fail;
    char msg[160] = "";
    check_samples(&ctnas_space_nb201, hist, &fail, msg, sizeof msg);
    ASSERT_MSG(!fail, "%s", msg);
    ASSERT_EQ(hist[6], 6000);
}

static void test_ctrl_samples_valid_nb101(void)
{
    int hist[CTNAS_GRAPH_MAX + 1] = {0}, fail;
    char msg[160] = "";
    check_samples(&ctnas_space_nb101, hist, &fail, msg, sizeof msg);
    ASSERT_MSG(!fail, "%s", msg);
    /* every size 2..7 occurs: the node-count decision is never pruned */
    for (int n = 2; n <= 7; n++)
        ASSERT_MSG(hist[n] > 0, "no %d-node cell in 6000 samples", n);
    printf("# nb101 sizes 2..7: %d %d %d %d %d %d\n", hist[2], hist[3],
           hist[4], hist[5], hist[6], hist[7]);
}

/* The full 9-edge, 7-node budget is reachable (the masks are not too
 * tight), and a sharply trained policy can reach one fixed cell. */
static void test_ctrl_learns(void)
{
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 5);
    struct ctnas_ctrl_config cfg;
    ctnas_ctrl_config_default(&cfg);
    struct ctnas_ctrl *c = ctnas_ctrl_new(&ctnas_space_nb201, &cfg, &rng,
                                          NULL);
    struct ctnas_ctrl_work w;
    ctnas_ctrl_work_init(&w, c, 8);
    struct ctnas_ctrl_sample s[8];
    double adv[8], *g = malloc(c->lay.n_params * sizeof *g);
    /* reward: number of edges carrying nor_conv_3x3 (op 3) */
    for (int it = 0; it < 300; it++) {
        ctnas_ctrl_sample(c, &rng, 8, s, &w);
        double mean = 0;
        for (int i = 0; i < 8; i++) {
            adv[i] = 0;
            for (int e = 0; e < 6; e++)
                adv[i] += s[i].arch.ops[e] == 3;
            mean += adv[i] / 8;
        }
        for (int i = 0; i < 8; i++)
            adv[i] -= mean;
        memset(g, 0, c->lay.n_params * sizeof *g);
        ctnas_ctrl_backward(c, 8, s, adv, 0, &w, g);
        ctnas_ctrl_update(c, g, 0.01, 5);
    }
    struct ctnas_ctrl_sample best;
    ctnas_ctrl_greedy(c, &best);
    for (int e = 0; e < 6; e++)
        ASSERT_EQ(best.arch.ops[e], 3);
    free(g);
    ctnas_ctrl_work_destroy(&w);
    ctnas_ctrl_free(c);
}

static void test_ctrl_state_roundtrip(void)
{
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 8);
    struct ctnas_ctrl_config cfg;
    ctnas_ctrl_config_default(&cfg);
    struct ctnas_ctrl *a = ctnas_ctrl_new(&ctnas_space_nb101, &cfg, &rng,
                                          NULL);
    struct ctnas_ctrl *b = ctnas_ctrl_new(&ctnas_space_nb101, &cfg, &rng,
                                          NULL);
    a->adam_t = 17;
    a->adam_m[3] = 0.25;
    size_t n = ctnas_ctrl_state_size(a);
    void *buf = malloc(n);
    ASSERT_EQ(ctnas_ctrl_save(a, buf, n), (long)n);
    ASSERT_EQ(ctnas_ctrl_load(b, buf, n, NULL), 0);
    ASSERT(memcmp(a->theta, b->theta, a->lay.n_params * sizeof(double)) == 0);
    ASSERT_EQ(b->adam_t, 17);
    ASSERT(b->adam_m[3] == 0.25);
    struct ctnas_ctrl *c = ctnas_ctrl_new(&ctnas_space_nb201, &cfg, &rng,
                                          NULL);
    ASSERT(ctnas_ctrl_load(c, buf, n, NULL) == CTNAS_EINVAL);
    free(buf);
    ctnas_ctrl_free(a);
    ctnas_ctrl_free(b);
    ctnas_ctrl_free(c);
}

/* ------------------------------------------------------------------ */
/* Selection rules */

static struct ctnas_nac *small_nac(int head, const struct ctnas_space *sp)
{
    struct ctnas_nac_config mc;
    ctnas_nac_config_default(&mc);
    mc.n_types = sp->n_node_types;
    mc.dim = 8;
    mc.layers = 1;
    mc.head = head;
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 3);
    return ctnas_nac_new(&mc, 1, &rng);
}

static double sig(double x)
{
    return 1 / (1 + exp(-x));
}

static void test_baseline_rule(void)
{
    /* Linear heads: p(i, j) = sigmoid(q_i + r_j) from features (q, r).
     * Candidate 1 has the largest q, but the others' r make candidate 0
     * the one with the best mean comparison probability. */
    struct ctnas_nac *m = small_nac(CTNAS_NAC_HEAD_CONCAT, &ctnas_space_nb201);
    ASSERT(m != NULL);
    ASSERT_EQ(ctnas_nac_feature_width(m), 2);
    const double q[3] = {1.0, 1.05, 0.0}, r[3] = {-5.0, 5.0, 0.0};
    ctnas_real feat[6];
    for (int i = 0; i < 3; i++) {
        feat[2 * i] = (ctnas_real)q[i];
        feat[2 * i + 1] = (ctnas_real)r[i];
    }
    double score[3], want[3];
    for (int i = 0; i < 3; i++) {
        want[i] = 0;
        for (int j = 0; j < 3; j++)
            if (j != i)
                want[i] += sig(q[i] + r[j]) / 2;
    }
    int best = ctnas_search_pick_baseline(m, feat, 3, score);
    ASSERT_EQ(best, 0);
    for (int i = 0; i < 3; i++)
        ASSERT_NEAR(score[i], want[i], 1e-6);
    ASSERT(want[0] > want[2] && want[2] > want[1]);
    ctnas_nac_free(m);
}

static void test_pseudo_selection(void)
{
    const double p[8] = {0.6, 0.05, 0.97, NAN, 0.5, 0.2, 0.99, 0.03};
    int idx[8], lab[8];
    /* confidences 0.6 0.95 0.97 - 0.5 0.8 0.99 0.97: 0.97 twice, the
     * lower index first */
    int n = ctnas_search_select_pseudo(p, 8, 4, idx, lab);
    ASSERT_EQ(n, 4);
    const int want_i[4] = {6, 2, 7, 1}, want_l[4] = {1, 1, 0, 0};
    for (int k = 0; k < 4; k++) {
        ASSERT_EQ(idx[k], want_i[k]);
        ASSERT_EQ(lab[k], want_l[k]);
    }
    /* more asked than valid pairs: the NaN (a self-pair) never comes */
    n = ctnas_search_select_pseudo(p, 8, 100, idx, lab);
    ASSERT_EQ(n, 7);
    for (int k = 0; k < n; k++)
        ASSERT(idx[k] != 3);
}

/* ------------------------------------------------------------------ */
/* A synthetic NB201 benchmark: an additive score per edge op plus a bonus
 * for conv3x3 on both 0->1 and 1->3 (a path), with seeded weights. */

static double synth_value(const struct ctnas_arch *a)
{
    static const double w[5] = {-2.0, 0.3, 0.8, 1.2, -0.2};
    static const double edge_w[6] = {1.0, 0.6, 0.9, 0.4, 0.8, 1.1};
    double v = 0;
    for (int e = 0; e < 6; e++)
        v += edge_w[e] * w[a->ops[e]];
    if (a->ops[0] == 3 && a->ops[4] == 3)
        v += 1.0;
    return v;
}

struct synth {
    struct ctnas_nac *nac;
    struct ctnas_arch lab[64];
    double val[64];
    int n;
};

static int synth_init(struct synth *sy, int n, uint64_t seed)
{
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, seed);
    struct ctnas_graph g[64];
    sy->n = n;
    for (int i = 0; i < n; i++) {
        ctnas_space_nb201.sample(&rng, &sy->lab[i]);
        sy->val[i] = synth_value(&sy->lab[i]);
        ctnas_space_nb201.to_graph(&sy->lab[i], &g[i]);
    }
    struct ctnas_nac_train_config tc;
    ctnas_nac_train_config_default(&tc);
    tc.model.n_types = ctnas_space_nb201.n_node_types;
    tc.model.dim = 32;
    tc.model.layers = 2;
    tc.epochs = 100;
    tc.seed = seed;
    return ctnas_nac_train(&tc, g, sy->val, n, NULL, NULL, &sy->nac, NULL,
                           NULL);
}

/* A search of the synthetic benchmark's labelled set with config c. */
static struct ctnas_search *synth_search(const struct synth *sy,
                                         const struct ctnas_search_config *c)
{
    return ctnas_search_new(&ctnas_space_nb201, c, sy->nac, sy->lab,
                            sy->val, sy->n, NULL);
}

static void small_config(struct ctnas_search_config *c, uint64_t seed)
{
    ctnas_search_config_default(c);
    c->seed = seed;
    c->steps = 120;
    c->batch = 4;
    c->lr = 5e-3;
    c->update_every = 40;
    c->explore_every = 30;
    c->pseudo_k = 20;
    c->ft_iters = 3;
    c->ft_pairs = 32;
    c->pool_cap = 64;   /* small, so the pool trims itself */
    c->top_n = 10;
    /* the answer-side options on, so determinism and resume cover them */
    c->ft_top_weight = 10;
    c->polish = 2;
    c->polish_tries = 8;
}

static int blob_of(const struct ctnas_search *s, void **b, size_t *n)
{
    return ctnas_search_save(s, b, n);
}

static void test_search_determinism(void)
{
    struct synth sy;
    ASSERT_EQ(synth_init(&sy, 40, 1), 0);
    struct ctnas_search_config c;
    small_config(&c, 7);
    struct ctnas_search *a = synth_search(&sy, &c);
    struct ctnas_search *b = synth_search(&sy, &c);
    ASSERT(a != NULL && b != NULL);
    ASSERT_EQ(ctnas_search_run(a, 0, 0, NULL, NULL), CTNAS_SEARCH_FINISHED);
    /* b in uneven slices: the same work in the same order */
    int st;
    while ((st = ctnas_search_run(b, 7, 0, NULL, NULL)) ==
           CTNAS_SEARCH_RUNNING)
        ;
    ASSERT_EQ(st, CTNAS_SEARCH_FINISHED);
    struct ctnas_search_entry ea, eb;
    ASSERT_EQ(ctnas_search_answer(a, &ea), 0);
    ASSERT_EQ(ctnas_search_answer(b, &eb), 0);
    ASSERT(memcmp(&ea.arch, &eb.arch, sizeof ea.arch) == 0);
    ASSERT(ea.score == eb.score);
    void *ba, *bb;
    size_t na, nb;
    ASSERT_EQ(blob_of(a, &ba, &na), 0);
    ASSERT_EQ(blob_of(b, &bb, &nb), 0);
    ASSERT_EQ(na, nb);
    ASSERT(memcmp(ba, bb, na) == 0);
    /* pseudo-labels were produced, at the exploration steps */
    int np;
    const struct ctnas_search_pseudo *ps = ctnas_search_pseudo_labels(a, &np);
    ASSERT(np > 0 && np <= 4 * c.pseudo_k);
    for (int i = 0; i < np; i++) {
        ASSERT(ps[i].step % c.explore_every == 0);
        ASSERT(ps[i].confidence >= 0.5 && ps[i].confidence <= 1);
    }
    ctnas_free(ba);
    ctnas_free(bb);
    ctnas_search_free(a);
    ctnas_search_free(b);
    ctnas_nac_free(sy.nac);
}

/* Polish happens after the last controller step, so a search with it and
 * one without share everything up to then: the polished answer must be at
 * least as good as the unpolished one under the (same) comparator, and
 * beat the unpolished top entries it climbed from unless they were local
 * optima already. */
static void test_polish_answer(void)
{
    struct synth sy;
    ASSERT_EQ(synth_init(&sy, 40, 5), 0);
    struct ctnas_search_config c;
    small_config(&c, 9);
    c.steps = 30;   /* short: the unpolished answer is no local optimum */
    c.polish = 0;
    struct ctnas_search *a = synth_search(&sy, &c);
    c.polish = 3;
    c.polish_tries = 200;
    struct ctnas_search *b = synth_search(&sy, &c);
    ASSERT(a != NULL && b != NULL);
    ASSERT_EQ(ctnas_search_run(a, 0, 0, NULL, NULL), CTNAS_SEARCH_FINISHED);
    ASSERT_EQ(ctnas_search_run(b, 0, 0, NULL, NULL), CTNAS_SEARCH_FINISHED);
    struct ctnas_search_entry top_a[3], eb;
    int n = ctnas_search_best(a, 3, top_a);
    ASSERT(n == 3);
    ASSERT_EQ(ctnas_search_answer(b, &eb), 0);
    /* same comparator: fine-tuning is over before polish starts */
    const struct ctnas_nac *ma = ctnas_search_comparator(a);
    const struct ctnas_nac *mb = ctnas_search_comparator(b);
    ASSERT(memcmp(ma->theta, mb->theta,
                  ma->lay.n_params * sizeof *ma->theta) == 0);
    struct ctnas_graph gb, ga;
    ctnas_space_nb201.to_graph(&eb.arch, &gb);
    int moved = 0;
    for (int i = 0; i < n; i++) {
        double p;
        ctnas_space_nb201.to_graph(&top_a[i].arch, &ga);
        ASSERT_EQ(ctnas_nac_compare(mb, &gb, &ga, &p), 0);
        ASSERT(p >= 0.5 - 1e-6);
        moved += memcmp(&eb.arch, &top_a[i].arch, sizeof eb.arch) != 0;
    }
    /* the answer is a local optimum of the comparator: no single edge
     * change beats it (200 tries a step see all 24 changes of an NB201
     * cell but with probability ~2e-4 each) */
    int beaten = 0;
    for (int e = 0; e < 6; e++)
        for (int op = 0; op < 5; op++) {
            struct ctnas_arch nb = eb.arch;
            if (nb.ops[e] == op)
                continue;
            nb.ops[e] = (uint8_t)op;
            double p;
            ctnas_space_nb201.to_graph(&nb, &ga);
            ASSERT_EQ(ctnas_nac_compare(mb, &ga, &gb, &p), 0);
            beaten += p > 0.5 + 1e-6;
        }
    printf("# polish: answer differs from %d of the 3 unpolished best, "
           "%d single changes beat it\n", moved, beaten);
    ASSERT_EQ(beaten, 0);
    ctnas_search_free(a);
    ctnas_search_free(b);
    ctnas_nac_free(sy.nac);
}

/* Pseudo-labels agree with the comparator that made them (fine-tuning off,
 * so it never changes) and come most confident first. */
static void test_pseudo_labels_match_comparator(void)
{
    struct synth sy;
    ASSERT_EQ(synth_init(&sy, 40, 2), 0);
    struct ctnas_search_config c;
    small_config(&c, 3);
    c.ft_iters = 0;
    c.steps = 61;
    struct ctnas_search *s = synth_search(&sy, &c);
    ASSERT(s != NULL);
    ASSERT_EQ(ctnas_search_run(s, 0, 0, NULL, NULL), CTNAS_SEARCH_FINISHED);
    int np;
    const struct ctnas_search_pseudo *ps = ctnas_search_pseudo_labels(s, &np);
    ASSERT(np > 0);
    for (int i = 0; i < np; i++) {
        struct ctnas_graph ga, gb;
        ctnas_space_nb201.to_graph(&ps[i].a, &ga);
        ctnas_space_nb201.to_graph(&ps[i].b, &gb);
        double p;
        ASSERT_EQ(ctnas_nac_compare(sy.nac, &ga, &gb, &p), 0);
        ASSERT_EQ(ps[i].label, p >= 0.5);
        ASSERT_NEAR(ps[i].confidence, p >= 0.5 ? p : 1 - p, 1e-4);
        if (i > 0 && ps[i].step == ps[i - 1].step)
            ASSERT(ps[i].confidence <= ps[i - 1].confidence);
    }
    ctnas_search_free(s);
    ctnas_nac_free(sy.nac);
}

/* Cancel after k units of work, checkpoint, load into a fresh object and
 * finish: the final state must equal the uninterrupted run's, byte for
 * byte, whatever k (mid-exploration, mid-fine-tuning, at a baseline
 * update...). */
struct stop_after {
    int left;
};

static int stop_cb(const struct ctnas_search_progress *p, void *user)
{
    (void)p;
    struct stop_after *sa = user;
    return --sa->left <= 0;
}

static int resume_equal(const struct ctnas_space *sp,
                        const struct ctnas_search_config *c,
                        struct ctnas_nac *nac, const struct ctnas_arch *lab,
                        const double *val, int n, const int *cuts,
                        int n_cuts, char *msg, size_t cap)
{
    struct ctnas_search *ref = ctnas_search_new(sp, c, nac, lab, val, n, NULL);
    if (ref == NULL || ctnas_search_run(ref, 0, 0, NULL, NULL) !=
                           CTNAS_SEARCH_FINISHED) {
        snprintf(msg, cap, "reference run failed");
        return 1;
    }
    void *rb;
    size_t rn;
    ctnas_search_save(ref, &rb, &rn);
    int bad = 0;
    struct ctnas_search *s = ctnas_search_new(sp, c, nac, lab, val, n, NULL);
    for (int k = 0; k < n_cuts && !bad; k++) {
        struct stop_after sa = {cuts[k]};
        int rc = ctnas_search_run(s, 0, 0, stop_cb, &sa);
        void *b;
        size_t bn;
        struct ctnas_err err;
        ctnas_search_save(s, &b, &bn);
        ctnas_search_free(s);
        s = ctnas_search_load(b, bn, &err);
        ctnas_free(b);
        if (s == NULL) {
            snprintf(msg, cap, "load failed: %.100s", err.msg);
            bad = 1;
            break;
        }
        if (rc == CTNAS_SEARCH_FINISHED)
            break;
    }
    if (!bad && ctnas_search_run(s, 0, 0, NULL, NULL) !=
                    CTNAS_SEARCH_FINISHED) {
        snprintf(msg, cap, "resumed run failed");
        bad = 1;
    }
    if (!bad) {
        void *b;
        size_t bn;
        ctnas_search_save(s, &b, &bn);
        if (bn != rn || memcmp(b, rb, rn) != 0) {
            snprintf(msg, cap, "resumed state differs (%zu vs %zu bytes)",
                     bn, rn);
            bad = 1;
        }
        struct ctnas_search_entry ea, eb;
        if (!bad && (ctnas_search_answer(s, &ea) != 0 ||
                     ctnas_search_answer(ref, &eb) != 0 ||
                     memcmp(&ea.arch, &eb.arch, sizeof ea.arch) != 0)) {
            snprintf(msg, cap, "resumed answer differs");
            bad = 1;
        }
        ctnas_free(b);
    }
    ctnas_free(rb);
    ctnas_search_free(s);
    ctnas_search_free(ref);
    return bad;
}

static void test_search_resume_bit_identical(void)
{
    struct synth sy;
    ASSERT_EQ(synth_init(&sy, 40, 4), 0);
    struct ctnas_search_config c;
    small_config(&c, 11);
    /* units of work: 1 explore, then 3 fine-tuning steps, ...; cut at
     * 1, 2 (mid-fine-tuning), 5, 37, 50 and 120 units further on. */
    const int cuts[] = {1, 1, 3, 37, 13, 120};
    char msg[160] = "";
    ASSERT_MSG(resume_equal(&ctnas_space_nb201, &c, sy.nac, sy.lab, sy.val,
                            sy.n, cuts, 6, msg, sizeof msg) == 0,
               "%s", msg);
    /* the paper's advantage and the random baseline too */
    c.advantage = CTNAS_SEARCH_ADV_NONE;
    c.baseline_mode = CTNAS_SEARCH_BASELINE_RANDOM;
    ASSERT_MSG(resume_equal(&ctnas_space_nb201, &c, sy.nac, sy.lab, sy.val,
                            sy.n, cuts + 2, 3, msg, sizeof msg) == 0,
               "%s", msg);
    ctnas_nac_free(sy.nac);
}

/* A small comparator (width 16, 2 layers) trained on n NB101 graphs
 * for epochs, or NULL. */
static struct ctnas_nac *small_nb101_nac(const struct ctnas_graph *g,
                                         const double *val, int n,
                                         int epochs)
{
    struct ctnas_nac_train_config tc;
    ctnas_nac_train_config_default(&tc);
    tc.model.n_types = ctnas_space_nb101.n_node_types;
    tc.model.dim = 16;
    tc.model.layers = 2;
    tc.epochs = epochs;
    struct ctnas_nac *nac = NULL;
    if (ctnas_nac_train(&tc, g, val, n, NULL, NULL, &nac, NULL, NULL) != 0)
        return NULL;
    return nac;
}

static void test_search_resume_nb101(void)
{
    const struct ctnas_space *sp = &ctnas_space_nb101;
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 6);
    struct ctnas_arch lab[30];
    struct ctnas_graph g[30];
    double val[30];
    for (int i = 0; i < 30; i++) {
        sp->sample(&rng, &lab[i]);
        sp->to_graph(&lab[i], &g[i]);
        val[i] = lab[i].n + 0.1 * lab[i].ops[1];
    }
    struct ctnas_nac *nac = small_nb101_nac(g, val, 30, 20);
    ASSERT(nac != NULL);
    struct ctnas_search_config c;
    small_config(&c, 5);
    c.steps = 70;
    const int cuts[] = {2, 9, 40};
    char msg[160] = "";
    ASSERT_MSG(resume_equal(sp, &c, nac, lab, val, 30, cuts, 3, msg,
                            sizeof msg) == 0, "%s", msg);
    ctnas_nac_free(nac);
}

/* A controller told a range of node counts samples only those, and
 * replays them (the node-count step is forced when one count is left). */
static void test_ctrl_node_range(void)
{
    const struct ctnas_space *sp = &ctnas_space_nb101;
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 31);
    struct ctnas_ctrl_config cfg;
    ctnas_ctrl_config_default(&cfg);
    cfg.hidden = 16;
    struct ctnas_ctrl *c = ctnas_ctrl_new(sp, &cfg, &rng, NULL);
    struct ctnas_ctrl_work w;
    ASSERT(c != NULL && ctnas_ctrl_work_init(&w, c, 1) == 0);
    const int lo[] = {4, 7}, hi[] = {5, 7};
    for (int r = 0; r < 2; r++) {
        int hist[CTNAS_GRAPH_MAX + 1] = {0};
        c->min_nodes = lo[r];
        c->max_nodes = hi[r];
        for (int i = 0; i < 500; i++) {
            struct ctnas_ctrl_sample smp, t;
            ctnas_ctrl_sample(c, &rng, 1, &smp, NULL);
            hist[smp.arch.n]++;
            t = smp;
            ctnas_ctrl_forward(c, NULL, 1, &t, &w);
            ASSERT(fabs(t.logp - smp.logp) < 1e-12);
        }
        for (int n = 2; n <= 7; n++)
            ASSERT_MSG((hist[n] > 0) == (n >= lo[r] && n <= hi[r]),
                       "range %d..%d: %d cells of %d nodes", lo[r], hi[r],
                       hist[n], n);
    }
    ctnas_ctrl_work_destroy(&w);
    ctnas_ctrl_free(c);
}

/* A search whose labelled cells all have 6 or 7 nodes, with a comparator
 * that prefers smaller cells (trained on cells of every size, value -n):
 * with sizes "any" it answers a smaller cell; with "labelled" (the
 * default) every cell it ranks has 6 or 7 nodes, also when the answer is
 * left to the polish, whose changes can prune a node. */
static void test_search_sizes_nb101(void)
{
    const struct ctnas_space *sp = &ctnas_space_nb101;
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 8);
    struct ctnas_arch all[60], lab[40];
    struct ctnas_graph g[60];
    double vall[60], val[40];
    int n_lab = 0;
    for (int i = 0; i < 60; i++) {
        sp->sample(&rng, &all[i]);
        sp->to_graph(&all[i], &g[i]);
        vall[i] = -all[i].n + 0.1 * all[i].ops[1];
    }
    while (n_lab < 40) {
        sp->sample(&rng, &lab[n_lab]);
        if (lab[n_lab].n >= 6) {
            val[n_lab] = -lab[n_lab].n + 0.1 * lab[n_lab].ops[1];
            n_lab++;
        }
    }
    struct ctnas_nac *nac = small_nb101_nac(g, vall, 60, 100);
    ASSERT(nac != NULL);
    /* runs: any; labelled; labelled, its answer left to the polish (few
     * controller steps, many climbs and tries: a change that prunes a
     * node is the climb's way down) */
    for (int run = 0; run < 3; run++) {
        int any = run == 0;
        struct ctnas_search_config c;
        small_config(&c, 3);
        c.sizes = any ? CTNAS_SEARCH_SIZES_ANY : CTNAS_SEARCH_SIZES_LABELLED;
        if (run == 2) {
            c.steps = 4;
            c.polish = 10;
            c.polish_tries = 200;
        }
        struct ctnas_err err;
        struct ctnas_search *s = ctnas_search_new(sp, &c, nac, lab, val, 40,
                                                  &err);
        ASSERT_MSG(s != NULL, "%s", err.msg);
        ASSERT_EQ(ctnas_search_run(s, 0, 0, NULL, NULL),
                  CTNAS_SEARCH_FINISHED);
        struct ctnas_search_entry e[10];
        int n = ctnas_search_best(s, 10, e), lo = 7;
        ASSERT(n > 0);
        for (int i = 0; i < n; i++)
            lo = e[i].arch.n < lo ? e[i].arch.n : lo;
        printf("# sizes %s: answer of %d nodes, smallest ranked %d\n",
               ctnas_search_sizes_name(c.sizes), e[0].arch.n, lo);
        if (any)
            ASSERT_MSG(e[0].arch.n < 6, "answer of %d nodes", e[0].arch.n);
        else
            ASSERT_MSG(lo >= 6, "a ranked cell of %d nodes", lo);
        ctnas_search_free(s);
    }
    ctnas_nac_free(nac);
}

/* The end-of-round polish runs one climb step per unit of work: a cancel
 * lands inside it, whatever its settings, and a checkpoint taken there
 * resumes to the uninterrupted run's state, byte for byte. */
struct polish_watch {
    int units;      /* units of work seen */
    int first;      /* the first of them inside the polish (0: none yet) */
    int polish;     /* units inside the polish */
};

static int polish_cb(const struct ctnas_search_progress *p, void *user)
{
    struct polish_watch *w = user;
    w->units++;
    if (p->polish_left > 0) {
        if (w->first == 0)
            w->first = w->units;
        w->polish++;
    }
    return 0;
}

static void test_polish_resumable(void)
{
    struct synth sy;
    ASSERT_EQ(synth_init(&sy, 40, 3), 0);
    struct ctnas_search_config c;
    small_config(&c, 13);
    c.steps = 30;
    c.polish = 4;
    c.polish_tries = 100;
    struct ctnas_search *ref = synth_search(&sy, &c);
    ASSERT(ref != NULL);
    struct polish_watch all = {0, 0, 0};
    ASSERT_EQ(ctnas_search_run(ref, 0, 0, polish_cb, &all),
              CTNAS_SEARCH_FINISHED);
    ctnas_search_free(ref);
    /* more units than climbs: the climbs were cut into steps */
    printf("# polish: %d climbs in %d units\n", c.polish, all.polish);
    ASSERT(all.polish > c.polish && all.polish >= 6);
    /* a cancel at the first of those units lands inside the polish */
    struct ctnas_search *s = synth_search(&sy, &c);
    struct stop_after sa = {all.first};
    ASSERT_EQ(ctnas_search_run(s, 0, 0, stop_cb, &sa), CTNAS_ECANCELED);
    struct ctnas_search_progress p;
    ctnas_search_progress_get(s, &p);
    ASSERT(p.polish_left > 0);
    ctnas_search_free(s);
    /* cut at polish units 1, 2, half and the last (resume_equal counts
     * units from each resumed run) */
    const int half = all.polish / 2;
    const int cuts[] = {all.first, 1, half - 2, all.polish - half};
    char msg[160] = "";
    ASSERT_MSG(resume_equal(&ctnas_space_nb201, &c, sy.nac, sy.lab, sy.val,
                            sy.n, cuts, 4, msg, sizeof msg) == 0,
               "%s", msg);
    ctnas_nac_free(sy.nac);
}

/* Ask/tell: two rounds; between them the suggestions are unmeasured
 * architectures, measurements go in, the comparator is retrained. */
static void test_search_rounds(void)
{
    struct synth sy;
    ASSERT_EQ(synth_init(&sy, 20, 5), 0);
    struct ctnas_search_config c;
    small_config(&c, 2);
    c.rounds = 2;
    c.steps = 60;
    struct ctnas_search *s = synth_search(&sy, &c);
    ASSERT(s != NULL);
    ASSERT_EQ(ctnas_search_run(s, 0, 0, NULL, NULL), CTNAS_SEARCH_WAITING);
    ASSERT_EQ(ctnas_search_run(s, 0, 0, NULL, NULL), CTNAS_SEARCH_WAITING);
    struct ctnas_search_entry sug[5];
    int n = ctnas_search_suggest(s, 5, sug);
    ASSERT(n > 0);
    struct ctnas_arch a[5];
    double v[5];
    for (int i = 0; i < n; i++) {
        ASSERT(!sug[i].measured);
        a[i] = sug[i].arch;
        v[i] = synth_value(&a[i]);
    }
    ASSERT_EQ(ctnas_search_add_labels(s, a, v, n), 0);
    const struct ctnas_arch *la;
    const double *lv;
    ASSERT_EQ(ctnas_search_labels(s, &la, &lv), sy.n + n);
    struct ctnas_search_entry again[5];
    int m = ctnas_search_suggest(s, 5, again);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            ASSERT(memcmp(&again[i].arch, &a[j], sizeof a[j]) != 0);
    struct ctnas_nac_train_config tc;
    ctnas_nac_train_config_default(&tc);
    tc.model.dim = 32;
    tc.model.layers = 2;
    tc.epochs = 30;
    ASSERT_EQ(ctnas_search_retrain(s, &tc, NULL, NULL, NULL), 0);
    ASSERT_EQ(ctnas_search_next_round(s), 0);
    ASSERT_EQ(ctnas_search_next_round(s), CTNAS_ECONFLICT);
    /* a checkpoint in the second round resumes too */
    ASSERT_EQ(ctnas_search_run(s, 20, 0, NULL, NULL), CTNAS_SEARCH_RUNNING);
    void *b;
    size_t bn;
    ASSERT_EQ(ctnas_search_save(s, &b, &bn), 0);
    struct ctnas_search *t = ctnas_search_load(b, bn, NULL);
    ctnas_free(b);
    ASSERT(t != NULL);
    ASSERT_EQ(ctnas_search_run(s, 0, 0, NULL, NULL), CTNAS_SEARCH_FINISHED);
    ASSERT_EQ(ctnas_search_run(t, 0, 0, NULL, NULL), CTNAS_SEARCH_FINISHED);
    void *b1, *b2;
    size_t n1, n2;
    ctnas_search_save(s, &b1, &n1);
    ctnas_search_save(t, &b2, &n2);
    ASSERT(n1 == n2 && memcmp(b1, b2, n1) == 0);
    struct ctnas_search_progress p;
    ctnas_search_progress_get(s, &p);
    ASSERT_EQ(p.round, 2);
    ASSERT_EQ(p.step, 120);
    ctnas_free(b1);
    ctnas_free(b2);
    ctnas_search_free(s);
    ctnas_search_free(t);
    ctnas_nac_free(sy.nac);
}

/* With a fixed baseline and no exploration, the ranking still appears
 * during the search (every update_every steps), not only at the end. */
static void test_ranking_while_running(void)
{
    struct synth sy;
    ASSERT_EQ(synth_init(&sy, 20, 10), 0);
    struct ctnas_search_config c;
    small_config(&c, 1);
    c.baseline_mode = CTNAS_SEARCH_BASELINE_FIXED;
    c.pseudo_ratio = 0;
    struct ctnas_search *s = synth_search(&sy, &c);
    ASSERT(s != NULL);
    struct ctnas_search_entry e[3];
    ASSERT_EQ(ctnas_search_run(s, 39, 0, NULL, NULL), CTNAS_SEARCH_RUNNING);
    ASSERT_EQ(ctnas_search_best(s, 3, e), 0);
    ASSERT_EQ(ctnas_search_run(s, 2, 0, NULL, NULL), CTNAS_SEARCH_RUNNING);
    ASSERT_EQ(ctnas_search_best(s, 3, e), 3);
    ASSERT(e[0].score >= e[1].score && e[1].score >= e[2].score);
    struct ctnas_search_progress p;
    ctnas_search_progress_get(s, &p);
    ASSERT_EQ(p.baseline_updates, 0);
    ASSERT_EQ(p.n_pseudo, 0);
    ctnas_search_free(s);
    ctnas_nac_free(sy.nac);
}

static void test_checkpoint_rejects_damage(void)
{
    struct synth sy;
    ASSERT_EQ(synth_init(&sy, 20, 9), 0);
    struct ctnas_search_config c;
    small_config(&c, 1);
    struct ctnas_search *s = synth_search(&sy, &c);
    ASSERT(s != NULL);
    ctnas_search_run(s, 10, 0, NULL, NULL);
    void *b;
    size_t n;
    ASSERT_EQ(ctnas_search_save(s, &b, &n), 0);
    struct ctnas_err err;
    ((unsigned char *)b)[n / 2] ^= 1;
    ASSERT(ctnas_search_load(b, n, &err) == NULL);
    ASSERT_EQ(err.code, CTNAS_EINVAL);
    ((unsigned char *)b)[n / 2] ^= 1;
    ASSERT(ctnas_search_load(b, n - 1, &err) == NULL);
    struct ctnas_search *t = ctnas_search_load(b, n, &err);
    ASSERT(t != NULL);
    ctnas_free(b);
    ctnas_search_free(t);
    ctnas_search_free(s);
    ctnas_nac_free(sy.nac);
}

/* FNV-1a 64, the checkpoint's checksum (search.c). */
static uint64_t fnv1a64(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* An older checkpoint of a search outside its polish loads, with what
 * its version lacks off, and resumes as the search that wrote it: a
 * version 4 blob of such a search is cut back by hand.  Version 3 lacks
 * the last config field, sizes; version 2 also the polish position at the
 * end (pol_n, pol_i, pol_step: 3 x 8 bytes, then the current cell);
 * version 1 also the 4 config fields ft_top_weight, ft_top_scale, polish,
 * polish_tries. */
static void *older_blob(const void *b, size_t n, int version, size_t *out_n)
{
    const struct ctnas_arch *a = NULL;
    const unsigned char *src = b;
    /* header 56 bytes (magic, version, real size, space name), then the
     * config: 24 fields of 8 bytes, version 2's 4, pool_cap and top_n,
     * version 4's sizes */
    size_t v2_at = 56 + 24 * 8, v4_at = 56 + 30 * 8;
    size_t tail = version <= 2 ? 3 * 8 + 8 + sizeof a->adj + sizeof a->ops
                               : 0;
    unsigned char *v = malloc(n);
    size_t m = 0;
    for (size_t i = 0; i < n - 8 - tail; i++)
        if (!(version == 1 && i >= v2_at && i < v2_at + 4 * 8) &&
            !(i >= v4_at && i < v4_at + 8))
            v[m++] = src[i];
    int64_t ver = version;
    memcpy(v + 8, &ver, 8);
    uint64_t h = fnv1a64(v, m);  /* the checksum is rewritten */
    memcpy(v + m, &h, 8);
    *out_n = m + 8;
    return v;
}

static void test_checkpoint_older_loads(void)
{
    struct synth sy;
    ASSERT_EQ(synth_init(&sy, 20, 3), 0);
    struct ctnas_search_config c;
    small_config(&c, 2);
    /* what a version 1 blob loads with, so the state re-saves exactly */
    c.ft_top_weight = 0;
    c.ft_top_scale = 0.05;
    c.polish = 0;
    c.polish_tries = 32;
    c.sizes = CTNAS_SEARCH_SIZES_ANY;
    struct ctnas_search *s = synth_search(&sy, &c);
    ASSERT(s != NULL);
    ctnas_search_run(s, 35, 0, NULL, NULL);
    void *b;
    size_t n;
    ASSERT_EQ(ctnas_search_save(s, &b, &n), 0);
    for (int version = 1; version <= 3; version++) {
        size_t vn;
        void *v = older_blob(b, n, version, &vn);
        struct ctnas_err err;
        struct ctnas_search *t = ctnas_search_load(v, vn, &err);
        ASSERT_MSG(t != NULL, "version %d: %s", version, err.msg);
        const struct ctnas_search_config *tc = ctnas_search_config_get(t);
        ASSERT(tc->ft_top_weight == 0 && tc->polish == 0);
        ASSERT_EQ(tc->sizes, CTNAS_SEARCH_SIZES_ANY);
        ASSERT(tc->pool_cap == c.pool_cap && tc->top_n == c.top_n);
        void *b2;
        size_t n2;
        ASSERT_EQ(ctnas_search_save(t, &b2, &n2), 0);
        ASSERT_EQ(n2, n);
        ASSERT(memcmp(b, b2, n) == 0);
        ctnas_free(b2);
        free(v);
        ctnas_search_free(t);
    }
    ctnas_free(b);
    ctnas_search_free(s);
    ctnas_nac_free(sy.nac);
}

static void test_config_check(void)
{
    struct ctnas_search_config c;
    struct ctnas_err err;
    ctnas_search_config_default(&c);
    ASSERT_EQ(ctnas_search_config_check(&c, &err), 0);
    c.pseudo_ratio = 1.5;
    ASSERT_EQ(ctnas_search_config_check(&c, &err), CTNAS_EINVAL);
    ASSERT_STREQ(err.field, "pseudo_ratio");
    ctnas_search_config_default(&c);
    c.baseline_mode = 7;
    ASSERT_EQ(ctnas_search_config_check(&c, &err), CTNAS_EINVAL);
    ASSERT_STREQ(err.field, "baseline");
    ctnas_search_config_default(&c);
    c.steps = 0;
    ASSERT_EQ(ctnas_search_config_check(&c, &err), CTNAS_EINVAL);
    ASSERT_STREQ(err.field, "steps");
    ctnas_search_config_default(&c);
    c.polish = -1;
    ASSERT_EQ(ctnas_search_config_check(&c, &err), CTNAS_EINVAL);
    ASSERT_STREQ(err.field, "polish");
    ctnas_search_config_default(&c);
    c.ft_top_scale = 0;
    ASSERT_EQ(ctnas_search_config_check(&c, &err), CTNAS_EINVAL);
    ASSERT_STREQ(err.field, "ft_top_scale");
    struct ctnas_nac_train_config tc;
    ctnas_nac_train_config_search(&tc);
    tc.model.n_types = ctnas_space_nb201.n_node_types;
    ASSERT_EQ(ctnas_nac_train_config_check(&tc, &err), 0);
    tc.top_weight = -1;
    ASSERT_EQ(ctnas_nac_train_config_check(&tc, &err), CTNAS_EINVAL);
    ASSERT_STREQ(err.field, "top_weight");
    ASSERT_EQ(ctnas_search_baseline_parse("random"),
              CTNAS_SEARCH_BASELINE_RANDOM);
    ASSERT_EQ(ctnas_search_baseline_parse("best"), -1);
    ASSERT_STREQ(ctnas_search_advantage_name(CTNAS_SEARCH_ADV_NONE), "none");
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The search on the synthetic benchmark finds a clearly better cell than
 * random sampling: its answer beats the best of the 40 random labelled
 * cells the comparator learnt from and reaches the space's 99th percentile
 * (all 5^6 cells enumerated). */
static void test_search_beats_random(void)
{
    struct synth sy;
    ASSERT_EQ(synth_init(&sy, 40, 8), 0);
    double *all = malloc(15625 * sizeof *all);
    struct ctnas_arch a;
    memset(&a, 0, sizeof a);
    a.n = 6;
    for (int k = 0; k < 15625; k++) {
        int x = k;
        for (int e = 0; e < 6; e++, x /= 5)
            a.ops[e] = (uint8_t)(x % 5);
        all[k] = synth_value(&a);
    }
    /* the 99th percentile of the space */
    qsort(all, 15625, sizeof *all, cmp_double);
    double p99 = all[(int)(0.99 * 15625)], max = all[15624];
    double best_lab = -1e9;
    for (int i = 0; i < sy.n; i++)
        best_lab = fmax(best_lab, sy.val[i]);
    struct ctnas_search_config c;
    small_config(&c, 4);
    c.steps = 300;
    c.batch = 8;
    struct ctnas_search *s = synth_search(&sy, &c);
    ASSERT(s != NULL);
    ASSERT_EQ(ctnas_search_run(s, 0, 0, NULL, NULL), CTNAS_SEARCH_FINISHED);
    struct ctnas_search_entry e;
    ASSERT_EQ(ctnas_search_answer(s, &e), 0);
    double v = synth_value(&e.arch);
    printf("# synthetic: answer %.3f, best of 40 random %.3f, p99 %.3f, "
           "max %.3f\n", v, best_lab, p99, max);
    ASSERT(v > best_lab);
    ASSERT(v >= p99);
    free(all);
    ctnas_search_free(s);
    ctnas_nac_free(sy.nac);
}

int main(void)
{
    ctnas_blas_set_threads(1);
    TEST_RUN(test_nac_pair_weights);
    TEST_RUN(test_ctrl_grad_reinforce_nb201);
    TEST_RUN(test_ctrl_grad_entropy_nb201);
    TEST_RUN(test_ctrl_grad_nb101);
    TEST_RUN(test_ctrl_samples_valid_nb201);
    TEST_RUN(test_ctrl_samples_valid_nb101);
    TEST_RUN(test_ctrl_learns);
    TEST_RUN(test_ctrl_state_roundtrip);
    TEST_RUN(test_baseline_rule);
    TEST_RUN(test_pseudo_selection);
    TEST_RUN(test_config_check);
    TEST_RUN(test_search_determinism);
    TEST_RUN(test_polish_answer);
    TEST_RUN(test_pseudo_labels_match_comparator);
    TEST_RUN(test_search_resume_bit_identical);
    TEST_RUN(test_search_resume_nb101);
    TEST_RUN(test_ctrl_node_range);
    TEST_RUN(test_search_sizes_nb101);
    TEST_RUN(test_polish_resumable);
    TEST_RUN(test_search_rounds);
    TEST_RUN(test_ranking_while_running);
    TEST_RUN(test_checkpoint_rejects_damage);
    TEST_RUN(test_checkpoint_older_loads);
    TEST_RUN(test_search_beats_random);
    return test_done();
}

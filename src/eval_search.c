/*
 * eval_search.c - `ctnasd eval-search`: the search (search.h) run against
 * a benchmark table that reveals an architecture's measured value only
 * when the protocol asks for it, as a client of a search job would:
 * B/(R+1) random architectures first, then R rounds of the search's best
 * unmeasured suggestions.  One JSON line per seed, then a summary line.
 *
 * Owns nothing beyond one run; prints only from here (it is a command).
 */
#include "config.h"
#include "eval_search.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "blas.h"
#include "conf.h"
#include "dataset.h"
#include "jsonv.h"
#include "mem.h"
#include "nac.h"
#include "nac_train.h"
#include "search.h"
#include "space.h"

static const char usage_text[] =
    "usage: ctnasd eval-search --space S --data FILE --budget B "
    "[--rounds R] --seeds LIST [options]\n"
    "  --space S          nasbench101 | nasbench201 (also nb101, nb201)\n"
    "  --data FILE        CSV (arch,test_accuracy) or JSON Lines; an "
    "architecture's value\n"
    "                     is revealed only when the protocol measures it\n"
    "  --metric F         value column/field (default as ctnasd import)\n"
    "  --budget B         measurements in all (B/(R+1) random ones first)\n"
    "  --rounds R         ask/tell rounds after the first search (default "
    "0)\n"
    "  --seeds LIST       e.g. 1-10 or 1,3,5 (one run per seed)\n"
    "search options (defaults: ctnas_search_config_default):\n"
    "  --steps N --batch N --lr X --entropy X --clip X\n"
    "  --advantage ema|none --ema-decay X\n"
    "  --hidden N --temperature X --tanh X\n"
    "  --baseline updated|fixed|random --update-every N --h-size N "
    "--h-keep N\n"
    "  --r X (pseudo ratio) --k N --u N (explore every)\n"
    "  --ft-iters N --ft-pairs N --ft-lr X --ft-top X --ft-top-weight X\n"
    "  --ft-top-scale X --polish N --polish-tries N --pool-cap N "
    "--top-n N\n"
    "  --sizes labelled|any (cells of the sizes the labelled set spans)\n"
    "comparator training (defaults: ctnas_nac_train_config_search):\n"
    "  --recipe search|default|paper (search: default with top weighting)\n"
    "  --epochs N --members N --nac-lr X --nac-wd X (AdamW decay)\n"
    "  --top-weight X --top-scale X (pairs weighted towards the best)\n"
    "  --head concat|diff|mlp --layers N --dim N --bidir 0|1|2 --norm "
    "0|1\n"
    "  --readout mean|mean_output|output\n"
    "other:\n"
    "  --threads T        BLAS threads (default 1)\n"
    "  --verbose          progress on stderr\n"
    "  --diag             also report the true value of the comparator's "
    "own first\n"
    "                     choice over the whole file, before and after "
    "the search\n"
    "                     (diff head only)\n";

static int usage_error(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "ctnasd eval-search: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n%s", usage_text);
    return 2;
}

#define MAX_SEEDS 1000

/* "1-10", "3", "1,4,7-9" -> seeds; returns the count or -1 (bad syntax,
 * a descending range, more than MAX_SEEDS). */
static int parse_seeds(const char *s, unsigned long long *out)
{
    int n = 0;
    const char *p = s;
    while (*p != '\0') {
        char *end;
        errno = 0;
        unsigned long long a = strtoull(p, &end, 10), b;
        if (end == p || errno != 0 || *p == '-')
            return -1;
        b = a;
        p = end;
        if (*p == '-') {
            p++;
            b = strtoull(p, &end, 10);
            if (end == p || errno != 0 || b < a || b - a >= MAX_SEEDS)
                return -1;
            p = end;
        }
        for (unsigned long long v = a; v <= b; v++) {
            if (n >= MAX_SEEDS)
                return -1;
            out[n++] = v;
        }
        if (*p == ',')
            p++;
        else if (*p != '\0')
            return -1;
    }
    return n;
}

/* The table: the file's architectures by hash, for revealing values.
 * The hash identifies a cell up to isomorphism (nasbench101), so a search
 * that finds a cell in another node order still gets its value; a cell
 * listed twice keeps its first row. */
struct table {
    const struct ctnas_dataset *ds;
    int cap;
    int *slot;              /* index + 1, 0 empty */
    char (*hash)[CTNAS_HASH_LEN];
};

static unsigned hash_str(const char *h)
{
    unsigned v = 2166136261u;
    for (; *h; h++)
        v = (v ^ (unsigned char)*h) * 16777619u;
    return v;
}

static int table_init(struct table *t, const struct ctnas_dataset *ds)
{
    memset(t, 0, sizeof *t);
    t->ds = ds;
    t->cap = 16;
    while (t->cap < 2 * ds->n)
        t->cap *= 2;
    t->slot = ctnas_calloc((size_t)t->cap, sizeof *t->slot);
    t->hash = ctnas_malloc((size_t)(ds->n > 0 ? ds->n : 1) * sizeof *t->hash);
    if (t->slot == NULL || t->hash == NULL)
        return CTNAS_ENOMEM;
    for (int i = 0; i < ds->n; i++) {
        ds->space->hash(&ds->archs[i], t->hash[i]);
        unsigned m = (unsigned)t->cap - 1, k = hash_str(t->hash[i]) & m;
        int dup = 0;
        for (; t->slot[k] != 0; k = (k + 1) & m)
            if (strcmp(t->hash[t->slot[k] - 1], t->hash[i]) == 0) {
                dup = 1; /* a repeated cell keeps its first row */
                break;
            }
        if (!dup)
            t->slot[k] = i + 1;
    }
    return 0;
}

static void table_destroy(struct table *t)
{
    ctnas_free(t->slot);
    ctnas_free(t->hash);
}

/* Row of a, or -1 when the file does not have it. */
static int table_find(const struct table *t, const struct ctnas_arch *a)
{
    char h[CTNAS_HASH_LEN];
    t->ds->space->hash(a, h);
    unsigned m = (unsigned)t->cap - 1;
    for (unsigned k = hash_str(h) & m; t->slot[k] != 0; k = (k + 1) & m)
        if (strcmp(t->hash[t->slot[k] - 1], h) == 0)
            return t->slot[k] - 1;
    return -1;
}

struct opts {
    const char *space, *data, *metric;
    long budget, rounds;
    int n_seeds, threads, verbose, diag;
    unsigned long long seeds[MAX_SEEDS];
};

struct verbose_state {
    int verbose;
    unsigned long long seed;
    long last_print;
};

static int on_progress(const struct ctnas_search_progress *p, void *user)
{
    struct verbose_state *v = user;
    if (v->verbose && p->ft_left == 0 && p->step % 100 == 0 &&
        p->step != v->last_print) {
        v->last_print = p->step;
        fprintf(stderr,
                "seed %llu round %d/%d step %ld/%ld reward %.4f entropy "
                "%.3f baseline_s %.3f pseudo %d pool %d best %.4f\n",
                v->seed, p->round, p->rounds, p->step, p->steps_total,
                p->reward_avg, p->entropy_avg, p->baseline_score,
                p->n_pseudo, p->pool_size, p->best_score);
    }
    return 0;
}

/* Result of one seed. */
struct seed_result {
    double answer_acc;      /* NaN when the table lacks the answer */
    double best_measured;
    int measurements;
    double seconds;
};

static json_t *arch_json(const struct ctnas_space *sp,
                         const struct ctnas_arch *a)
{
    char buf[CTNAS_ENCODING_MAX];
    if (sp->encode(a, buf, sizeof buf) < 0)
        return json_null();
    return json_string(buf);
}

static void print_json(json_t *o)
{
    char *line =
        ctnas_jsonv_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(8));
    if (line != NULL) {
        printf("%s\n", line);
        fflush(stdout);
        ctnas_free(line);
    }
}

/* Diagnostic: the measured value of the file's architecture that the
 * comparator m ranks first (antisymmetric linear head: by its score f;
 * other heads: NaN, a full ranking would be quadratic). */
static double comparator_argmax(const struct table *tab,
                                const struct ctnas_nac *m,
                                const struct ctnas_arch *probe, int *rank)
{
    const struct ctnas_dataset *ds = tab->ds;
    if (m->cfg.head != CTNAS_NAC_HEAD_DIFF || ds->n == 0)
        return NAN;
    struct ctnas_graph *g = ctnas_malloc((size_t)ds->n * sizeof *g);
    ctnas_real *f = ctnas_malloc((size_t)ds->n * 2 * sizeof *f);
    double v = NAN;
    if (g != NULL && f != NULL) {
        for (int i = 0; i < ds->n; i++)
            ds->space->to_graph(&ds->archs[i], &g[i]);
        if (ctnas_nac_features(m, g, ds->n, f) == 0) {
            int b = 0;
            for (int i = 1; i < ds->n; i++)
                if (f[2 * i] > f[2 * b])
                    b = i;
            v = ds->values[b];
            /* rank of probe (1: the comparator's first choice) */
            int row = probe != NULL ? table_find(tab, probe) : -1;
            if (rank != NULL && row >= 0) {
                *rank = 1;
                for (int i = 0; i < ds->n; i++)
                    *rank += f[2 * i] > f[2 * row];
            }
        }
    }
    ctnas_free(g);
    ctnas_free(f);
    return v;
}


static json_t *real_or_null(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

/* One seed of the protocol.  Returns 0 or a negative code (err says).
 *   1. reveal n0 = B / (R + 1) distinct random rows of the file (a seeded
 *      shuffle; for nasbench201 the file is the whole space, so this is
 *      uniform sampling of the space);
 *   2. train a comparator on them (the given recipe, seeded by the seed);
 *   3. search (search.h) with R + 1 rounds; after each round but the
 *      last, reveal this round's share of the remaining budget from the
 *      search's best unmeasured suggestions (those the file lacks cannot
 *      be measured and are passed over), retrain on all labels, go on.
 * The answer is the search's top architecture after the last round; its
 * true value comes from the file (null when the file lacks it). */
static int run_seed(const struct opts *o, const struct table *tab,
                    const struct ctnas_search_config *scfg0,
                    const struct ctnas_nac_train_config *tc0,
                    unsigned long long seed, struct seed_result *res,
                    struct ctnas_err *err)
{
    const struct ctnas_dataset *ds = tab->ds;
    const struct ctnas_space *sp = ds->space;
    double t0 = ctnas_now_seconds(), train_s = 0, search_s = 0;
    int n0 = (int)(o->budget / (o->rounds + 1));
    int rc = CTNAS_ENOMEM;
    struct ctnas_search *s = NULL;
    struct ctnas_nac *nac = NULL;
    char *measured = ctnas_calloc((size_t)ds->n, 1);
    int *perm = ctnas_malloc((size_t)ds->n * sizeof *perm);
    struct ctnas_arch *ma = ctnas_malloc((size_t)o->budget * sizeof *ma);
    double *mv = ctnas_malloc((size_t)o->budget * sizeof *mv);
    int top_cap = scfg0->top_n;
    struct ctnas_search_entry *sug =
        ctnas_malloc((size_t)top_cap * sizeof *sug);
    json_t *rounds_json = json_array();
    if (!measured || !perm || !ma || !mv || !sug || !rounds_json) {
        ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        goto out;
    }
    int n_meas = 0;
    double best = -INFINITY;
    struct ctnas_arch best_arch;
    memset(&best_arch, 0, sizeof best_arch);

    /* The random start: distinct rows of the file, drawn from the seed. */
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, seed ^ 0x6a09e667f3bcc909ULL);
    for (int i = 0; i < ds->n; i++)
        perm[i] = i;
    ctnas_rng_shuffle(&rng, perm, ds->n);
    for (int i = 0; i < ds->n && n_meas < n0; i++) {
        int r = perm[i];
        int first = table_find(tab, &ds->archs[r]);
        if (first != r || measured[r])
            continue;   /* a repeated cell counts once */
        measured[r] = 1;
        ma[n_meas] = ds->archs[r];
        mv[n_meas] = ds->values[r];
        if (mv[n_meas] > best) {
            best = mv[n_meas];
            best_arch = ma[n_meas];
        }
        n_meas++;
    }

    struct ctnas_nac_train_config tc = *tc0;
    tc.seed = seed;
    double ta = ctnas_now_seconds();
    if ((rc = ctnas_nac_train_archs(&tc, sp, ma, mv, n_meas, NULL, NULL,
                                    &nac, NULL, err)) != 0)
        goto out;
    train_s += ctnas_now_seconds() - ta;
    double nac0 = o->diag ? comparator_argmax(tab, nac, NULL, NULL) : NAN;

    struct ctnas_search_config scfg = *scfg0;
    scfg.seed = seed;
    scfg.rounds = (int)o->rounds + 1;
    s = ctnas_search_new(sp, &scfg, nac, ma, mv, n_meas, err);
    if (s == NULL) {
        rc = err->code ? err->code : CTNAS_ENOMEM;
        goto out;
    }
    struct verbose_state vs = {o->verbose, seed, -1};
    long left = o->budget - n_meas;
    for (int round = 0;; round++) {
        double tb = ctnas_now_seconds();
        rc = ctnas_search_run(s, 0, 0, on_progress, &vs);
        search_s += ctnas_now_seconds() - tb;
        if (rc < 0) {
            ctnas_err_set(err, rc, "", "search failed: %s",
                          ctnas_strerror(rc));
            goto out;
        }
        struct ctnas_search_entry ans;
        json_t *rj = json_object();
        if (ctnas_search_answer(s, &ans) == 0) {
            int row = table_find(tab, &ans.arch);
            json_object_set_new(rj, "answer", arch_json(sp, &ans.arch));
            json_object_set_new(rj, "answer_accuracy",
                                row >= 0 ? json_real(ds->values[row])
                                         : json_null());
        }
        json_object_set_new(rj, "best_measured", json_real(best));
        json_object_set_new(rj, "measurements", json_integer(n_meas));
        json_array_append_new(rounds_json, rj);
        if (rc == CTNAS_SEARCH_FINISHED)
            break;
        /* Ask/tell: this round's share of what is left of the budget. */
        int rounds_left = (int)o->rounds - round;
        int k = (int)(left / rounds_left);
        int got = ctnas_search_suggest(s, top_cap, sug), added = 0;
        struct ctnas_arch *na = ma + n_meas;
        double *nv = mv + n_meas;
        for (int i = 0; i < got && added < k; i++) {
            int row = table_find(tab, &sug[i].arch);
            if (row < 0 || measured[row])
                continue;   /* not in the file: cannot be measured */
            measured[row] = 1;
            na[added] = ds->archs[row];
            nv[added] = ds->values[row];
            if (nv[added] > best) {
                best = nv[added];
                best_arch = na[added];
            }
            added++;
        }
        n_meas += added;
        left -= added;
        if ((rc = ctnas_search_add_labels(s, na, nv, added)) != 0 ||
            (ta = ctnas_now_seconds(),
             rc = ctnas_search_retrain(s, &tc, NULL, NULL, err)) != 0)
            goto out;
        train_s += ctnas_now_seconds() - ta;
        if ((rc = ctnas_search_next_round(s)) != 0)
            goto out;
    }

    struct ctnas_search_entry ans;
    struct ctnas_search_progress pg;
    ctnas_search_progress_get(s, &pg);
    json_t *line = json_object();
    double ans_acc = NAN;
    if (ctnas_search_answer(s, &ans) == 0) {
        int row = table_find(tab, &ans.arch);
        if (row >= 0)
            ans_acc = ds->values[row];
        json_object_set_new(line, "answer", arch_json(sp, &ans.arch));
        json_object_set_new(line, "answer_score", json_real(ans.score));
        json_object_set_new(line, "answer_measured",
                            json_boolean(ans.measured));
    }
    res->answer_acc = ans_acc;
    res->best_measured = best;
    res->measurements = n_meas;
    res->seconds = ctnas_now_seconds() - t0;
    json_object_set_new(line, "seed", json_integer((json_int_t)seed));
    json_object_set_new(line, "answer_accuracy",
                        isnan(ans_acc) ? json_null() : json_real(ans_acc));
    json_object_set_new(line, "best_measured", json_real(best));
    json_object_set_new(line, "best_measured_arch", arch_json(sp, &best_arch));
    json_object_set_new(line, "measurements", json_integer(n_meas));
    json_object_set_new(line, "seconds", json_real(res->seconds));
    json_object_set_new(line, "train_seconds", json_real(train_s));
    json_object_set_new(line, "search_seconds", json_real(search_s));
    json_object_set_new(line, "steps", json_integer(pg.step));
    json_object_set_new(line, "pseudo_labels", json_integer(pg.n_pseudo));
    json_object_set_new(line, "pool", json_integer(pg.pool_size));
    /* the node counts proposed (--sizes; every nasbench201 cell has the
     * same) */
    if (sp == &ctnas_space_nb101)
        json_object_set_new(line, "sizes",
                            pg.max_size > 0 ? json_pack("[i, i]", pg.min_size,
                                                        pg.max_size)
                                            : json_null());
    if (o->diag) {
        int rank = -1;
        double nac1 = comparator_argmax(tab, ctnas_search_comparator(s),
                                        &ans.arch, &rank);
        json_object_set_new(line, "nac_argmax_initial", real_or_null(nac0));
        json_object_set_new(line, "nac_argmax_final", real_or_null(nac1));
        json_object_set_new(line, "answer_rank_final_nac",
                            json_integer(rank));
    }
    json_object_set_new(line, "rounds", rounds_json);
    rounds_json = NULL;
    print_json(line);
    json_decref(line);
    rc = 0;
out:
    json_decref(rounds_json);
    ctnas_search_free(s);
    ctnas_nac_free(nac);
    ctnas_free(measured);
    ctnas_free(perm);
    ctnas_free(ma);
    ctnas_free(mv);
    ctnas_free(sug);
    return rc;
}

/* Mean and sample standard deviation of the non-NaN entries of x. */
static void mean_std(const double *x, int n, double *mean, double *std)
{
    double m = 0, v = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i])) {
            m += x[i];
            k++;
        }
    m = k > 0 ? m / k : NAN;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i]))
            v += (x[i] - m) * (x[i] - m);
    *mean = m;
    *std = k > 1 ? sqrt(v / (k - 1)) : 0;   /* sample std */
}

/* The search settings, echoed in the summary so a result line says what
 * produced it. */
static json_t *search_config_json(const struct ctnas_search_config *c)
{
    return json_pack(
        "{s:I, s:i, s:f, s:f, s:f, s:s, s:f, s:i, s:f, s:f, s:s, s:i, s:i,"
        " s:i, s:f, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:i, s:i,"
        " s:i, s:i, s:s}",
        "steps", (json_int_t)c->steps, "batch", c->batch, "lr", c->lr,
        "entropy_weight", c->entropy_weight, "grad_clip", c->grad_clip,
        "advantage", ctnas_search_advantage_name(c->advantage), "ema_decay",
        c->ema_decay, "hidden", c->ctrl.hidden, "temperature",
        c->ctrl.temperature, "tanh_c", c->ctrl.tanh_c, "baseline",
        ctnas_search_baseline_name(c->baseline_mode), "update_every",
        c->update_every, "h_size", c->h_size, "h_keep", c->h_keep,
        "pseudo_ratio", c->pseudo_ratio, "pseudo_k", c->pseudo_k,
        "explore_every", c->explore_every, "ft_iters", c->ft_iters,
        "ft_pairs", c->ft_pairs, "ft_lr", c->ft_lr, "ft_top", c->ft_top,
        "ft_top_weight", c->ft_top_weight, "ft_top_scale", c->ft_top_scale,
        "polish", c->polish, "polish_tries", c->polish_tries,
        "pool_cap", c->pool_cap,
        "top_n", c->top_n, "sizes", ctnas_search_sizes_name(c->sizes));
}

/* The search and comparator flags, one row each, so a flag is one line
 * and its bounds sit beside it.  Bounds are inclusive and within int,
 * so an int field can take the long that ctnas_conf_parse_long gives. */
enum flag_kind {
    FLAG_INT,       /* long in [lo, hi] into an int field */
    FLAG_LONG,      /* long in [lo, hi] into a long field */
    FLAG_DOUBLE,    /* any finite double */
    FLAG_ENUM,      /* a name, through parse (< 0: unknown) */
};

enum flag_target { FLAG_SC, FLAG_TC };   /* search or comparator config */

struct flag {
    const char *name;
    enum flag_kind kind;
    enum flag_target target;
    size_t off;     /* in the target; may reach into sc.ctrl, tc.model */
    long lo, hi;
    int (*parse)(const char *name);
};

#define SC(f) FLAG_SC, offsetof(struct ctnas_search_config, f)
#define TC(f) FLAG_TC, offsetof(struct ctnas_nac_train_config, f)

static const struct flag flags[] = {
    {"--steps", FLAG_LONG, SC(steps), 1, 100000000, NULL},
    {"--batch", FLAG_INT, SC(batch), 1, 1024, NULL},
    {"--lr", FLAG_DOUBLE, SC(lr), 0, 0, NULL},
    {"--entropy", FLAG_DOUBLE, SC(entropy_weight), 0, 0, NULL},
    {"--clip", FLAG_DOUBLE, SC(grad_clip), 0, 0, NULL},
    {"--advantage", FLAG_ENUM, SC(advantage), 0, 0,
     ctnas_search_advantage_parse},
    {"--ema-decay", FLAG_DOUBLE, SC(ema_decay), 0, 0, NULL},
    {"--hidden", FLAG_INT, SC(ctrl.hidden), 1, CTNAS_CTRL_MAX_HIDDEN, NULL},
    {"--temperature", FLAG_DOUBLE, SC(ctrl.temperature), 0, 0, NULL},
    {"--tanh", FLAG_DOUBLE, SC(ctrl.tanh_c), 0, 0, NULL},
    {"--baseline", FLAG_ENUM, SC(baseline_mode), 0, 0,
     ctnas_search_baseline_parse},
    {"--update-every", FLAG_INT, SC(update_every), 1, 100000000, NULL},
    {"--h-size", FLAG_INT, SC(h_size), 2, 1000, NULL},
    {"--h-keep", FLAG_INT, SC(h_keep), 0, 1000, NULL},
    {"--r", FLAG_DOUBLE, SC(pseudo_ratio), 0, 0, NULL},
    {"--k", FLAG_INT, SC(pseudo_k), 1, 100000, NULL},
    {"--u", FLAG_INT, SC(explore_every), 1, 100000000, NULL},
    {"--ft-iters", FLAG_INT, SC(ft_iters), 0, 100000, NULL},
    {"--ft-pairs", FLAG_INT, SC(ft_pairs), 1, 4096, NULL},
    {"--ft-lr", FLAG_DOUBLE, SC(ft_lr), 0, 0, NULL},
    {"--ft-top", FLAG_DOUBLE, SC(ft_top), 0, 0, NULL},
    {"--polish", FLAG_INT, SC(polish), 0, 1000, NULL},
    {"--polish-tries", FLAG_INT, SC(polish_tries), 1, 10000, NULL},
    {"--ft-top-weight", FLAG_DOUBLE, SC(ft_top_weight), 0, 0, NULL},
    {"--ft-top-scale", FLAG_DOUBLE, SC(ft_top_scale), 0, 0, NULL},
    {"--sizes", FLAG_ENUM, SC(sizes), 0, 0, ctnas_search_sizes_parse},
    {"--pool-cap", FLAG_INT, SC(pool_cap), 2, 1000000, NULL},
    {"--top-n", FLAG_INT, SC(top_n), 1, 1000000, NULL},
    {"--epochs", FLAG_INT, TC(epochs), 0, 1000000, NULL},
    {"--members", FLAG_INT, TC(members), 1, CTNAS_NAC_MAX_MEMBERS, NULL},
    {"--nac-lr", FLAG_DOUBLE, TC(lr), 0, 0, NULL},
    {"--nac-wd", FLAG_DOUBLE, TC(weight_decay), 0, 0, NULL},
    {"--readout", FLAG_ENUM, TC(model.readout), 0, 0,
     ctnas_nac_readout_parse},
    {"--top-weight", FLAG_DOUBLE, TC(top_weight), 0, 0, NULL},
    {"--top-scale", FLAG_DOUBLE, TC(top_scale), 0, 0, NULL},
    {"--head", FLAG_ENUM, TC(model.head), 0, 0, ctnas_nac_head_parse},
    {"--layers", FLAG_INT, TC(model.layers), 0, CTNAS_NAC_MAX_LAYERS, NULL},
    {"--bidir", FLAG_INT, TC(model.bidir), 0, 2, NULL},
    {"--norm", FLAG_INT, TC(model.norm), 0, 1, NULL},
    {"--dim", FLAG_INT, TC(model.dim), 1, CTNAS_NAC_MAX_DIM, NULL},
};

#undef SC
#undef TC

static const struct flag *find_flag(const char *name)
{
    for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
        if (strcmp(flags[k].name, name) == 0)
            return &flags[k];
    return NULL;
}

/* Parses v into f's field of sc or tc: 0, or -1 for a bad value (the
 * field is then left as it was). */
static int set_flag(const struct flag *f, const char *v,
                    struct ctnas_search_config *sc,
                    struct ctnas_nac_train_config *tc)
{
    char *base = f->target == FLAG_SC ? (char *)sc : (char *)tc;
    void *field = base + f->off;
    long l;
    int e;

    switch (f->kind) {
    case FLAG_INT:
        if (ctnas_conf_parse_long(v, f->lo, f->hi, &l) != 0)
            return -1;
        *(int *)field = (int)l;
        return 0;
    case FLAG_LONG:
        return ctnas_conf_parse_long(v, f->lo, f->hi, (long *)field);
    case FLAG_DOUBLE:
        return ctnas_conf_parse_double(v, (double *)field);
    case FLAG_ENUM:
        if ((e = f->parse(v)) < 0)
            return -1;
        *(int *)field = e;
        return 0;
    }
    return -1;
}

int ctnas_eval_search_main(int argc, char **argv)
{
    struct opts *o = ctnas_calloc(1, sizeof *o);
    if (o == NULL) {
        fprintf(stderr, "ctnasd eval-search: out of memory\n");
        return 1;
    }
    o->threads = 1;
    struct ctnas_search_config sc;
    ctnas_search_config_default(&sc);
    struct ctnas_nac_train_config tc;
    /* the comparator a search wants: ordered best at the top */
    ctnas_nac_train_config_search(&tc);
    int have_budget = 0, rc = 2;

    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--recipe") == 0) {
            if (strcmp(argv[i + 1], "paper") == 0)
                ctnas_nac_train_config_paper(&tc);
            else if (strcmp(argv[i + 1], "default") == 0)
                ctnas_nac_train_config_default(&tc);
            else if (strcmp(argv[i + 1], "search") != 0) {
                rc = usage_error("unknown recipe %s%s", argv[i + 1], "");
                goto done;
            }
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            rc = 0;
            goto done;
        }
        if (strcmp(a, "--verbose") == 0) {
            o->verbose = 1;
            continue;
        }
        if (strcmp(a, "--diag") == 0) {
            o->diag = 1;
            continue;
        }
        if (i + 1 >= argc) {
            rc = usage_error("%s needs a value%s", a, "");
            goto done;
        }
        const char *v = argv[++i];
        long l = 0;
        int bad = 0;
        char expect[64] = "";  /* what a bad value should have been */
        const struct flag *f = find_flag(a);
        if (f != NULL && (f->kind == FLAG_INT || f->kind == FLAG_LONG))
            snprintf(expect, sizeof expect, "an integer in [%ld, %ld]",
                     f->lo, f->hi);
        if (f != NULL)
            bad = set_flag(f, v, &sc, &tc);
        else if (strcmp(a, "--space") == 0)
            o->space = v;
        else if (strcmp(a, "--data") == 0)
            o->data = v;
        else if (strcmp(a, "--metric") == 0)
            o->metric = v;
        else if (strcmp(a, "--recipe") == 0)
            ;   /* applied in the pass above, before any other flag */
        else if (strcmp(a, "--budget") == 0) {
            strcpy(expect, "an integer in [2, 100000000]");
            bad = ctnas_conf_parse_long(v, 2, 100000000, &o->budget) ||
                  !(have_budget = 1);
        } else if (strcmp(a, "--rounds") == 0) {
            strcpy(expect, "an integer in [0, 999]");
            bad = ctnas_conf_parse_long(v, 0, 999, &o->rounds);
        }
        else if (strcmp(a, "--seeds") == 0)
            bad = (o->n_seeds = parse_seeds(v, o->seeds)) <= 0;
        else if (strcmp(a, "--threads") == 0)
            bad = ctnas_conf_parse_long(v, 1, 256, &l) ||
                  !(o->threads = (int)l);
        else {
            rc = usage_error("unknown option %s%s", a, "");
            goto done;
        }
        if (bad) {
            char what[160];
            snprintf(what, sizeof what, "%s%s%s", v, expect[0] ? ", expected "
                                                               : "",
                     expect);
            rc = usage_error("bad value for %s: %s", a, what);
            goto done;
        }
    }
    if (o->space == NULL || o->data == NULL || !have_budget ||
        o->n_seeds <= 0) {
        rc = usage_error("--space, --data, --budget and --seeds are "
                         "required%s%s", "", "");
        goto done;
    }
    const struct ctnas_space *sp = ctnas_space_find_short(o->space);
    if (sp == NULL) {
        rc = usage_error("unknown space %s%s", o->space, "");
        goto done;
    }
    if (o->budget / (o->rounds + 1) < 2) {
        rc = usage_error("the budget must give at least 2 random "
                         "architectures before the first search%s%s", "",
                         "");
        goto done;
    }
    struct ctnas_err err;
    ctnas_err_clear(&err);
    sc.rounds = (int)o->rounds + 1;
    tc.model.n_types = sp->n_node_types;
    if (ctnas_search_config_check(&sc, &err) != 0 ||
        ctnas_nac_train_config_check(&tc, &err) != 0) {
        rc = usage_error("%s: %s", err.field, err.msg);
        goto done;
    }
    ctnas_blas_set_threads(o->threads);

    rc = 1;
    struct ctnas_dataset ds;
    struct table tab;
    memset(&tab, 0, sizeof tab);
    if (ctnas_dataset_load(&ds, sp, o->data, o->metric, &err) != 0) {
        fprintf(stderr, "ctnasd eval-search: %s: %s\n", o->data, err.msg);
        goto done;
    }
    /* zeroed only so gcc need not prove each seed's entry is set */
    double *acc = ctnas_calloc((size_t)o->n_seeds, sizeof *acc);
    double *bm = ctnas_calloc((size_t)o->n_seeds, sizeof *bm);
    double *meas = ctnas_calloc((size_t)o->n_seeds, sizeof *meas);
    double *secs = ctnas_calloc((size_t)o->n_seeds, sizeof *secs);
    if (!acc || !bm || !meas || !secs || table_init(&tab, &ds) != 0) {
        fprintf(stderr, "ctnasd eval-search: out of memory\n");
        goto out;
    }
    if (ds.n < o->budget) {
        fprintf(stderr, "ctnasd eval-search: the file has %d architectures,"
                " fewer than the budget %ld\n", ds.n, o->budget);
        goto out;
    }
    double optimum = -INFINITY;
    for (int i = 0; i < ds.n; i++)
        if (ds.values[i] > optimum)
            optimum = ds.values[i];
    for (int k = 0; k < o->n_seeds; k++) {
        struct seed_result r = {0, 0, 0, 0};
        ctnas_err_clear(&err);
        if (run_seed(o, &tab, &sc, &tc, o->seeds[k], &r, &err) != 0) {
            fprintf(stderr, "ctnasd eval-search: seed %llu: %s\n",
                    o->seeds[k], err.msg[0] ? err.msg : "failed");
            goto out;
        }
        acc[k] = r.answer_acc;
        bm[k] = r.best_measured;
        meas[k] = r.measurements;
        secs[k] = r.seconds;
    }
    double ma, sa, mb, sb, mm, sm, ms, ss;
    mean_std(acc, o->n_seeds, &ma, &sa);
    mean_std(bm, o->n_seeds, &mb, &sb);
    mean_std(meas, o->n_seeds, &mm, &sm);
    mean_std(secs, o->n_seeds, &ms, &ss);
    int n_missing = 0;
    for (int k = 0; k < o->n_seeds; k++)
        n_missing += isnan(acc[k]);
    json_t *sum = json_pack(
        "{s:b, s:s, s:s, s:I, s:I, s:i, s:o, s:o, s:f, s:f, s:f, s:f, s:i,"
        " s:f, s:s, s:i, s:i, s:i, s:s, s:i, s:f, s:f, s:o}",
        "summary", 1, "space", sp->name, "data", o->data, "budget",
        (json_int_t)o->budget, "rounds", (json_int_t)o->rounds, "seeds",
        o->n_seeds, "mean_answer_accuracy",
        isnan(ma) ? json_null() : json_real(ma), "std_answer_accuracy",
        isnan(ma) ? json_null() : json_real(sa), "mean_best_measured", mb,
        "std_best_measured", sb, "mean_measurements", mm, "mean_seconds", ms,
        "answers_not_in_file", n_missing, "optimum", optimum, "nac_head",
        ctnas_nac_head_name(tc.model.head), "nac_epochs", tc.epochs,
        "nac_members", tc.members, "nac_bidir", tc.model.bidir,
        "nac_readout", ctnas_nac_readout_name(tc.model.readout), "nac_layers",
        tc.model.layers, "nac_top_weight", tc.top_weight, "nac_top_scale",
        tc.top_scale, "search", search_config_json(&sc));
    if (sum != NULL) {
        print_json(sum);
        json_decref(sum);
        rc = 0;
    }
out:
    ctnas_free(acc);
    ctnas_free(bm);
    ctnas_free(meas);
    ctnas_free(secs);
    table_destroy(&tab);
    ctnas_dataset_destroy(&ds);
done:
    ctnas_free(o);
    return rc;
}

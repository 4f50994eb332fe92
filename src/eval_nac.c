/*
 * eval_nac.c - `ctnasd eval-nac`: load a benchmark file, draw a seeded
 * training sample and a disjoint test sample, train the comparator with
 * ctnas_nac_train (the daemon's code), and print one JSON line of test
 * Kendall tau figures, timings and the hyperparameters used.
 *
 * Owns nothing beyond one run; prints only from here (it is a command).
 */
#include "config.h"
#include "eval_nac.h"

#include <errno.h>
#include <math.h>
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
#include "space.h"

static const char eval_usage[] =
    "usage: ctnasd eval-nac --space S --data FILE --train N --test M "
    "--seed K [options]\n"
    "  --space S        nasbench101 | nasbench201 (also nb101, nb201)\n"
    "  --data FILE      CSV (arch,test_accuracy) or JSON Lines\n"
    "  --metric F       value column/field (default test_accuracy; JSON "
    "Lines: val_accuracy if present)\n"
    "  --dataset D      label of the data, echoed in the output\n"
    "  --train N --test M --seed K   sample sizes and the seed of the split"
    " and the training\n"
    "  --recipe R       default | paper (the authors' settings); options "
    "below override it\n"
    "  --epochs E --batch B --lr X --layers L --dim D\n"
    "  --head concat|diff|mlp   --hidden H (mlp)   --norm 0|1   --bidir 0|1|2\n"
    "  --readout mean|mean_output|output\n"
    "  --pairs perm|all  --schedule constant|cosine  --lr-min F\n"
    "  --beta1 X --beta2 X --wd X --decoupled 0|1\n"
    "  --members K      ensemble size\n"
    "  --holdout F --eval-every E --patience P   early stopping on a "
    "hold-out fraction\n"
    "  --dedupe 0|1     share equal node states (speed only)\n"
    "  --threads T      BLAS threads (default 1)\n"
    "  --verbose        per-epoch progress on stderr\n";

/* The options that are not training hyperparameters; those go straight
 * into a struct ctnas_nac_train_config. */
struct opts {
    const char *space, *data, *metric, *dataset;
    long train, test;
    unsigned long long seed;
    /* have_*: required options are tracked apart from their values,
     * since 0 is a valid seed. */
    int have_train, have_test, have_seed, threads, verbose;
};

/* fmt takes exactly two %s; callers pad with "".  Returns the usage exit
 * status, 2, for the caller to return. */
static int usage_error(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "ctnasd eval-nac: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n%s", eval_usage);
    return 2;
}

struct progress_state {
    int verbose;
};

/* Progress goes to stderr so that stdout carries only the result line,
 * for a machine to read.  Never cancels. */
static int on_progress(const struct ctnas_nac_progress *p, void *user)
{
    struct progress_state *ps = user;
    if (ps->verbose && !p->in_epoch)
        fprintf(stderr,
                "member %d/%d epoch %d/%d loss %.5f pair_acc %.4f "
                "holdout_tau %.4f\n",
                p->member + 1, p->members, p->epoch, p->epochs, p->loss,
                p->pair_acc, p->holdout_tau);
    return 0;
}

int ctnas_eval_nac_main(int argc, char **argv)
{
    struct opts o = {.threads = 1};
    struct ctnas_nac_train_config tc;
    ctnas_nac_train_config_default(&tc);

    /* The recipe first, so the other options override it. */
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--recipe") == 0) {
            if (strcmp(argv[i + 1], "paper") == 0)
                ctnas_nac_train_config_paper(&tc);
            else if (strcmp(argv[i + 1], "default") != 0)
                return usage_error("unknown recipe %s%s", argv[i + 1], "");
        }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(eval_usage, stdout);
            return 0;
        }
        if (strcmp(a, "--verbose") == 0) {
            o.verbose = 1;
            continue;
        }
        if (i + 1 >= argc)
            return usage_error("%s needs a value%s", a, "");
        const char *v = argv[++i];
        long l;
        double d;
        int bad = 0;
        if (strcmp(a, "--space") == 0)
            o.space = v;
        else if (strcmp(a, "--data") == 0)
            o.data = v;
        else if (strcmp(a, "--metric") == 0)
            o.metric = v;
        else if (strcmp(a, "--dataset") == 0)
            o.dataset = v;
        else if (strcmp(a, "--recipe") == 0)
            ;
        else if (strcmp(a, "--train") == 0)
            bad = ctnas_conf_parse_long(v, 2, 100000000, &o.train) ||
                  !(o.have_train = 1);
        else if (strcmp(a, "--test") == 0)
            bad = ctnas_conf_parse_long(v, 2, 100000000, &o.test) ||
                  !(o.have_test = 1);
        else if (strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            /* strtoull would take "-1" and wrap it: refused below. */
            o.seed = strtoull(v, &end, 10);
            bad = end == v || *end != '\0' || errno != 0 || v[0] == '-';
            o.have_seed = 1;
        } else if (strcmp(a, "--threads") == 0) {
            bad = ctnas_conf_parse_long(v, 1, 256, &l);
            o.threads = (int)l;
        } else if (strcmp(a, "--epochs") == 0) {
            bad = ctnas_conf_parse_long(v, 0, 1000000, &l);
            tc.epochs = (int)l;
        } else if (strcmp(a, "--batch") == 0) {
            bad = ctnas_conf_parse_long(v, 2, 4096, &l);
            tc.batch = (int)l;
        } else if (strcmp(a, "--layers") == 0) {
            bad = ctnas_conf_parse_long(v, 0, CTNAS_NAC_MAX_LAYERS, &l);
            tc.model.layers = (int)l;
        } else if (strcmp(a, "--dim") == 0) {
            bad = ctnas_conf_parse_long(v, 1, CTNAS_NAC_MAX_DIM, &l);
            tc.model.dim = (int)l;
        } else if (strcmp(a, "--hidden") == 0) {
            bad = ctnas_conf_parse_long(v, 1, CTNAS_NAC_MAX_HIDDEN, &l);
            tc.model.hidden = (int)l;
        } else if (strcmp(a, "--norm") == 0) {
            bad = ctnas_conf_parse_long(v, 0, 1, &l);
            tc.model.norm = (int)l;
        } else if (strcmp(a, "--bidir") == 0) {
            bad = ctnas_conf_parse_long(v, 0, 2, &l);
            tc.model.bidir = (int)l;
        } else if (strcmp(a, "--head") == 0) {
            tc.model.head = ctnas_nac_head_parse(v);
            bad = tc.model.head < 0;
        } else if (strcmp(a, "--readout") == 0) {
            tc.model.readout = ctnas_nac_readout_parse(v);
            bad = tc.model.readout < 0;
        } else if (strcmp(a, "--pairs") == 0) {
            tc.pairing = ctnas_nac_pairing_parse(v);
            bad = tc.pairing < 0;
        } else if (strcmp(a, "--schedule") == 0) {
            tc.schedule = strcmp(v, "constant") == 0 ? CTNAS_NAC_LR_CONSTANT
                          : strcmp(v, "cosine") == 0 ? CTNAS_NAC_LR_COSINE
                                                     : -1;
            bad = tc.schedule < 0;
        } else if (strcmp(a, "--lr") == 0) {
            bad = ctnas_conf_parse_double(v, &tc.lr);
        } else if (strcmp(a, "--lr-min") == 0) {
            bad = ctnas_conf_parse_double(v, &tc.lr_min);
        } else if (strcmp(a, "--beta1") == 0) {
            bad = ctnas_conf_parse_double(v, &tc.beta1);
        } else if (strcmp(a, "--beta2") == 0) {
            bad = ctnas_conf_parse_double(v, &tc.beta2);
        } else if (strcmp(a, "--wd") == 0) {
            bad = ctnas_conf_parse_double(v, &tc.weight_decay);
        } else if (strcmp(a, "--decoupled") == 0) {
            bad = ctnas_conf_parse_long(v, 0, 1, &l);
            tc.decoupled = (int)l;
        } else if (strcmp(a, "--members") == 0) {
            bad = ctnas_conf_parse_long(v, 1, CTNAS_NAC_MAX_MEMBERS, &l);
            tc.members = (int)l;
        } else if (strcmp(a, "--holdout") == 0) {
            bad = ctnas_conf_parse_double(v, &tc.holdout);
        } else if (strcmp(a, "--eval-every") == 0) {
            bad = ctnas_conf_parse_long(v, 1, 1000000, &l);
            tc.eval_every = (int)l;
        } else if (strcmp(a, "--patience") == 0) {
            bad = ctnas_conf_parse_long(v, 0, 1000000, &l);
            tc.patience = (int)l;
        } else if (strcmp(a, "--dedupe") == 0) {
            bad = ctnas_conf_parse_long(v, 0, 1, &l);
            tc.dedupe = (int)l;
        } else {
            return usage_error("unknown option %s%s", a, "");
        }
        (void)d;
        if (bad)
            return usage_error("bad value for %s: %s", a, v);
    }
    if (o.space == NULL || o.data == NULL || !o.have_train || !o.have_test ||
        !o.have_seed)
        return usage_error("--space, --data, --train, --test and --seed are "
                           "required%s%s", "", "");
    const struct ctnas_space *sp = ctnas_space_find_short(o.space);
    if (sp == NULL)
        return usage_error("unknown space %s%s", o.space, "");
    /* One seed drives the split and the training, so a single number
     * reproduces a run; the config check is the one the API uses. */
    tc.model.n_types = sp->n_node_types;
    tc.seed = o.seed;
    struct ctnas_err err;
    ctnas_err_clear(&err);
    if (ctnas_nac_train_config_check(&tc, &err) != 0)
        return usage_error("%s: %s", err.field, err.msg);
    /* One BLAS thread by default, like the daemon, so figures measured
     * here hold for it. */
    ctnas_blas_set_threads(o.threads);

    int rc = 1;
    struct ctnas_dataset ds;
    int *tr = NULL, *te = NULL;
    struct ctnas_graph *g_tr = NULL, *g_te = NULL;
    double *a_tr = NULL, *a_te = NULL, *score = NULL;
    ctnas_real *feat = NULL;
    struct ctnas_nac *m = NULL;
    if (ctnas_dataset_load(&ds, sp, o.data, o.metric, &err) != 0) {
        fprintf(stderr, "ctnasd eval-nac: %s: %s\n", o.data, err.msg);
        return 1;
    }
    if (ctnas_dataset_split(&ds, (int)o.train, (int)o.test, o.seed, &tr, &te,
                            &err) != 0) {
        fprintf(stderr, "ctnasd eval-nac: %s\n", err.msg);
        goto out;
    }
    int ntr = (int)o.train, nte = (int)o.test;
    g_tr = ctnas_malloc((size_t)ntr * sizeof *g_tr);
    g_te = ctnas_malloc((size_t)nte * sizeof *g_te);
    a_tr = ctnas_malloc((size_t)ntr * sizeof *a_tr);
    a_te = ctnas_malloc((size_t)nte * sizeof *a_te);
    score = ctnas_malloc((size_t)nte * sizeof *score);
    if (!g_tr || !g_te || !a_tr || !a_te || !score) {
        fprintf(stderr, "ctnasd eval-nac: out of memory\n");
        goto out;
    }
    for (int i = 0; i < ntr; i++) {
        sp->to_graph(&ds.archs[tr[i]], &g_tr[i]);
        a_tr[i] = ds.values[tr[i]];
    }
    for (int i = 0; i < nte; i++) {
        sp->to_graph(&ds.archs[te[i]], &g_te[i]);
        a_te[i] = ds.values[te[i]];
    }

    struct progress_state ps = {.verbose = o.verbose};
    struct ctnas_nac_train_result res;
    if (ctnas_nac_train(&tc, g_tr, a_tr, ntr, on_progress, &ps, &m, &res,
                        &err) != 0) {
        fprintf(stderr, "ctnasd eval-nac: training failed: %s\n", err.msg);
        goto out;
    }
    /* Features are timed apart: they are the cost of serving a model,
     * whereas training time is paid once. */
    double t0 = ctnas_now_seconds();
    feat = ctnas_malloc((size_t)nte * ctnas_nac_feature_width(m) *
                        sizeof *feat);
    if (feat == NULL || ctnas_nac_features(m, g_te, nte, feat) != 0) {
        fprintf(stderr, "ctnasd eval-nac: out of memory\n");
        goto out;
    }
    double feat_s = ctnas_now_seconds() - t0;
    /* Two figures: kendall_tau is the pairwise tau of the comparator's
     * p over every test pair (method.md's measure); score_kendall_tau is
     * tau-b of the mean-win ranking that /v1/rank answers. */
    double pair_acc;
    double tau = ctnas_nac_tau_pairwise(m, feat, a_te, nte, &pair_acc);
    if (ctnas_nac_mean_win(m, feat, nte, score) != 0) {
        fprintf(stderr, "ctnasd eval-nac: out of memory\n");
        goto out;
    }
    double stau = ctnas_kendall_tau_b(score, a_te, nte);

    /* json_pack fails on a NaN real, so a missing holdout tau is packed
     * as -2 and replaced by null after the pack. */
    json_t *epochs_kept = json_array();
    for (int k = 0; k < tc.members; k++)
        json_array_append_new(epochs_kept, json_integer(res.epochs_kept[k]));
    json_t *out = json_pack(
        "{s:f, s:f, s:f, s:f, s:i, s:i, s:I, s:s, s:s, s:s, s:s, s:i, s:i,"
        " s:i, s:i, s:s, s:i, s:i, s:s, s:f, s:s, s:f, s:f, s:f, s:f, s:i,"
        " s:i, s:f, s:i, s:i, s:i, s:i, s:I, s:f, s:f, s:f, s:o, s:s, s:f}",
        "kendall_tau", tau, "score_kendall_tau", stau, "pair_accuracy",
        pair_acc, "train_seconds", res.seconds, "train", ntr, "test", nte,
        "seed", (json_int_t)o.seed, "space", sp->name, "data", o.data,
        "dataset", o.dataset ? o.dataset : "", "metric",
        o.metric ? o.metric : "default", "epochs", tc.epochs, "layers",
        tc.model.layers, "dim", tc.model.dim, "batch", tc.batch, "head",
        ctnas_nac_head_name(tc.model.head), "hidden", tc.model.hidden, "norm",
        tc.model.norm, "pairs", ctnas_nac_pairing_name(tc.pairing), "lr",
        tc.lr, "schedule",
        tc.schedule == CTNAS_NAC_LR_COSINE ? "cosine" : "constant", "lr_min",
        tc.lr_min, "beta1", tc.beta1, "beta2", tc.beta2, "weight_decay",
        tc.weight_decay, "decoupled", tc.decoupled, "members", tc.members,
        "holdout", tc.holdout, "eval_every", tc.eval_every, "patience",
        tc.patience, "dedupe", tc.dedupe, "threads", o.threads, "steps",
        (json_int_t)res.steps, "ms_per_step",
        res.steps ? 1e3 * res.seconds / (double)res.steps : 0.0,
        "final_loss", res.loss, "holdout_tau",
        isnan(res.holdout_tau) ? -2.0 : res.holdout_tau, "epochs_kept",
        epochs_kept, "precision", CTNAS_REAL_NAME, "features_seconds", feat_s);
    if (out == NULL) {
        fprintf(stderr, "ctnasd eval-nac: cannot build the result\n");
        goto out;
    }
    json_object_set_new(out, "bidir", json_integer(tc.model.bidir));
    json_object_set_new(out, "readout", json_string(ctnas_nac_readout_name(
                                            tc.model.readout)));
    json_object_set_new(out, "train_cpu_seconds",
                        json_real(res.cpu_seconds));
    if (isnan(res.holdout_tau))
        json_object_set_new(out, "holdout_tau", json_null());
    /* Six significant digits: enough for tau, short enough to read. */
    char *line =
        ctnas_jsonv_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(out);
    if (line == NULL) {
        fprintf(stderr, "ctnasd eval-nac: out of memory\n");
        goto out;
    }
    printf("%s\n", line);
    fflush(stdout);
    ctnas_free(line);
    rc = 0;
out:
    ctnas_nac_free(m);
    ctnas_free(feat);
    ctnas_free(score);
    ctnas_free(g_tr);
    ctnas_free(g_te);
    ctnas_free(a_tr);
    ctnas_free(a_te);
    ctnas_free(tr);
    ctnas_free(te);
    ctnas_dataset_destroy(&ds);
    return rc;
}

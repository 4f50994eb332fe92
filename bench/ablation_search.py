#!/usr/bin/env python3
"""Ablations of the contrastive search: baseline fixed / random / updated,
pseudo-label ratio r = 0 / 0.5 / 0.8, and without each of the pieces that
raised the answer (final polish, top-weighted fine-tuning, the top-weighted
comparator recipe), each over the same seeds.

Runs `ctnasd eval-search` (the daemon's search code playing the client of
a benchmark file) once per setting and prints, per setting, the mean and
standard deviation over the seeds of the true accuracy of the search's
answer and of the best measured accuracy, the measurements used and the
wall seconds per seed.  Everything else stays at the search defaults
(ctnas_search_config_default), so each row changes one thing.

    python3 bench/ablation_search.py --ctnasd ./ctnasd --seeds 1-10
    python3 bench/ablation_search.py --rounds 4        # ask/tell protocol

Defaults: NAS-Bench-201 CIFAR-10 (../shared/data/nb201_cifar10.csv),
budget 100, no rounds (the paper's protocol: one comparator trained on 100
random architectures, one search, one answer), 1 BLAS thread.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared")

SETTINGS = [
    ("baseline=updated r=0.5 (default)", []),
    ("baseline=fixed", ["--baseline", "fixed"]),
    ("baseline=random", ["--baseline", "random"]),
    ("r=0 (no data exploration)", ["--r", "0"]),
    ("r=0.8", ["--r", "0.8"]),
    # the pieces that moved the answer (search.c, above the defaults)
    ("polish=0 (no final local search)", ["--polish", "0"]),
    ("ft_top_weight=0", ["--ft-top-weight", "0"]),
    ("recipe=default (no top weighting)", ["--recipe", "default"]),
]


def run(cmd, env):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit("failed (%d): %s\n%s" % (p.returncode, " ".join(cmd),
                                          p.stderr[-2000:]))
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    per_seed = [l for l in lines if not l.get("summary")]
    summary = [l for l in lines if l.get("summary")][-1]
    return per_seed, summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ctnasd", default=os.path.join(HERE, "..", "ctnasd"))
    ap.add_argument("--data", default=os.path.join(SHARED, "data",
                                                   "nb201_cifar10.csv"))
    ap.add_argument("--space", default="nasbench201")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--seeds", default="1-10")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default=None,
                    help="run only the settings whose label contains this")
    ap.add_argument("extra", nargs="*",
                    help="more eval-search options for every setting, "
                         "after --, e.g. -- --steps 500")
    a = ap.parse_args()

    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads))
    base = [a.ctnasd, "eval-search", "--space", a.space, "--data", a.data,
            "--budget", str(a.budget), "--rounds", str(a.rounds),
            "--seeds", a.seeds, "--threads", str(a.threads)] + a.extra
    print("eval-search %s, %s, budget %d, rounds %d, seeds %s%s" %
          (a.space, os.path.basename(a.data), a.budget, a.rounds, a.seeds,
           (", extra: " + " ".join(a.extra)) if a.extra else ""))
    print("%-34s %16s %16s %6s %7s" % ("setting", "answer acc", "best measured",
                                       "meas.", "s/seed"))
    for label, opts in SETTINGS:
        if a.only and a.only not in label:
            continue
        per_seed, s = run(base + opts, env)
        print("%-34s %7.3f +- %5.3f %7.3f +- %5.3f %6.1f %7.1f" %
              (label, s["mean_answer_accuracy"], s["std_answer_accuracy"],
               s["mean_best_measured"], s["std_best_measured"],
               s["mean_measurements"], s["mean_seconds"]))
        print("  per seed answer: %s" % " ".join(
            "%.2f" % r["answer_accuracy"] if r["answer_accuracy"] is not None
            else "n/a" for r in per_seed))
        if a.rounds > 0:
            print("  per seed best measured: %s" % " ".join(
                "%.2f" % r["best_measured"] for r in per_seed))
        sys.stdout.flush()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Training speed of our comparator against the PyTorch reference.

Runs ../shared/bench/nac_torch.py (Debian's python3-torch, /usr/bin/python3)
and `ctnasd eval-nac` on the same data, sizes, model (L layers, d = 128,
the paper's concatenating head and permuted pairs), epochs and threads,
alternating the two, and prints the median milliseconds per training step
(a batch of --batch architectures, forward and backward) and the ratio.

    python3 bench/bench_nac.py --ctnasd ./ctnasd --runs 5

Needs: apt-get install python3-torch python3-numpy python3-scipy
libopenblas0-openmp (the reference's own setup, see ../shared/bench).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared")


def run_json(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), p.stderr[-2000:]))
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ctnasd", default="./ctnasd")
    ap.add_argument("--data", default=os.path.join(SHARED, "data",
                                                   "nb201_cifar10.csv"))
    ap.add_argument("--reference", default=os.path.join(SHARED, "bench",
                                                        "nac_torch.py"))
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--layers", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()

    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads))
    print("data %s, train = batch = %d architectures, %d epochs, %d threads,"
          " %d alternating runs" % (os.path.basename(a.data), a.batch,
                                    a.epochs, a.threads, a.runs))
    for layers in a.layers:
        ref, ours, dedupe_off = [], [], []
        for run in range(a.runs):
            r = run_json(["/usr/bin/python3", a.reference, "--data", a.data,
                          "--train-size", str(a.batch), "--test-size", "10",
                          "--batch", str(a.batch), "--epochs",
                          str(a.epochs), "--layers", str(layers), "--pairs",
                          "perm", "--threads", str(a.threads), "--seed",
                          str(run), "--split-seed", str(run + 1),
                          "--no-eval"])
            ref.append(r["ms_per_step"])
            common = [a.ctnasd, "eval-nac", "--space", "nasbench201",
                      "--data", a.data, "--train", str(a.batch), "--test",
                      "10", "--seed", str(run + 1), "--recipe", "paper",
                      "--batch", str(a.batch), "--epochs", str(a.epochs),
                      "--layers", str(layers), "--pairs", "perm",
                      "--threads", str(a.threads)]
            o = run_json(common, env)
            ours.append(o["ms_per_step"])
            o = run_json(common + ["--dedupe", "0"], env)
            dedupe_off.append(o["ms_per_step"])
        mr, mo, md = (statistics.median(x) for x in (ref, ours, dedupe_off))
        print("L=%d  reference %.2f ms/step  ours %.2f ms/step (%.1fx)  "
              "ours without dedupe %.2f ms/step (%.1fx)"
              % (layers, mr, mo, mr / mo, md, mr / md))
        print(json.dumps({"layers": layers, "reference_ms": ref,
                          "ours_ms": ours, "ours_nodedupe_ms": dedupe_off,
                          "ratio": mr / mo, "ratio_nodedupe": mr / md}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What NAS-Bench-101 searches answer, by --sizes and comparator recipe.

    python3 bench/nb101_answers.py --ctnasd ./ctnasd --seeds 1-10

The NAS-Bench-101 file in ../shared/data is a 20,001-cell sample of the
423,624-cell space, so a search's answer is seldom in it and its accuracy
unknown.  For each setting this prints, per seed, the answer's node count
and a proxy for its accuracy: the mean validation accuracy of the sample's
cells with the same node count and the same operations (as a multiset),
with how many there are; then the means over the seeds.  `--recipe
default` is the comparator POST /v1/nac/train serves, what a search with
"comparator": "latest" (the default) starts from.
"""
import argparse
import collections
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data", "nb101_val.jsonl")


def signature(cell):
    return len(cell["ops"]), tuple(sorted(cell["ops"][1:-1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ctnasd", default="./ctnasd")
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--seeds", default="1-10")
    ap.add_argument("--budget", default="423")
    a = ap.parse_args()
    by_sig = collections.defaultdict(list)
    with open(a.data) as f:
        for line in f:
            c = json.loads(line)
            by_sig[signature(c)].append(c["val_accuracy"])
    summary = {}
    for recipe in ("default", "search"):
        for sizes in ("any", "labelled"):
            out = subprocess.run(
                [a.ctnasd, "eval-search", "--space", "nasbench101", "--data",
                 a.data, "--budget", a.budget, "--seeds", a.seeds,
                 "--recipe", recipe, "--sizes", sizes],
                check=True, capture_output=True, text=True).stdout
            nodes, proxy = [], []
            for line in out.splitlines():
                d = json.loads(line)
                if d.get("summary"):
                    continue
                cell = json.loads(d["answer"])
                vals = by_sig.get(signature(cell), [])
                p = sum(vals) / len(vals) if vals else None
                nodes.append(len(cell["ops"]))
                if p is not None:
                    proxy.append(p)
                print(json.dumps({"recipe": recipe, "sizes": sizes,
                                  "seed": d["seed"], "nodes": nodes[-1],
                                  "ops": cell["ops"][1:-1],
                                  "proxy": p, "proxy_cells": len(vals),
                                  "labelled_sizes": d.get("sizes")}),
                      flush=True)
            summary["%s/%s" % (recipe, sizes)] = {
                "mean_nodes": sum(nodes) / len(nodes),
                "mean_proxy": sum(proxy) / len(proxy) if proxy else None,
                "seeds_with_proxy": len(proxy)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

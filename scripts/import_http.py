#!/usr/bin/env python3
"""Upload a data file to a RUNNING ctnasd over HTTP, in batches.

    scripts/import_http.py --url http://127.0.0.1:8080 --space nasbench201 \
        --dataset cifar10 ../shared/data/nb201_cifar10.csv

CSV: an `arch` column and one numeric column per metric.  JSON Lines: API
items ({"space", "arch", "measurements"}) or NAS-Bench-101 records
({"adjacency", "ops", "val_accuracy", ...}).  Each batch is one
all-or-nothing POST /v1/architectures; uploads are idempotent, so a
failed run can simply be repeated.  (For a stopped daemon, `ctnasd import`
is faster.)
"""
import argparse
import csv
import json
import sys
import urllib.error
import urllib.request

METRICS = ("val_accuracy", "test_accuracy", "train_accuracy")


def items(path, space, dataset):
    with open(path) as f:
        first = f.read(1)
        f.seek(0)
        if first != "{":
            for row in csv.DictReader(f):
                arch = row.pop("arch")
                yield {"space": space, "arch": arch, "measurements": [
                    {"dataset": dataset, "metric": k, "value": float(v)}
                    for k, v in row.items()]}
            return
        for line in f:
            if not line.strip():
                continue
            j = json.loads(line)
            if "arch" in j:
                j.setdefault("space", space)
                yield j
                continue
            yield {"space": space or "nasbench101",
                   "arch": {"adjacency": j["adjacency"], "ops": j["ops"]},
                   "measurements": [{"dataset": dataset, "metric": m,
                                     "value": j[m]}
                                    for m in METRICS if m in j]}


def post(url, batch, token=None):
    req = urllib.request.Request(
        url + "/v1/architectures", data=json.dumps({"items": batch}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.load(r)["items"]
    except urllib.error.HTTPError as e:
        sys.exit("upload failed: %d %s" % (e.code, e.read().decode()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--space")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--token-file")
    ap.add_argument("file")
    a = ap.parse_args()
    token = open(a.token_file).read().strip() if a.token_file else None
    n = new = 0
    batch = []
    for it in items(a.file, a.space, a.dataset):
        batch.append(it)
        if len(batch) == a.batch:
            res = post(a.url, batch, token)
            n, new, batch = n + len(res), new + sum(r["new"] for r in res), []
    if batch:
        res = post(a.url, batch, token)
        n, new = n + len(res), new + sum(r["new"] for r in res)
    print("%s: %d stored (%d new architectures)" % (a.file, n, new))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Upload a data file to a RUNNING ctnasd over HTTP, in batches.

    scripts/import_http.py --url http://127.0.0.1:8080 --space nasbench201 \
        --dataset cifar10 ../shared/data/nb201_cifar10.csv

CSV: an `arch` column and one numeric column per metric.  JSON Lines: API
items ({"space", "arch", "measurements"}) or NAS-Bench-101 records
({"adjacency", "ops", "val_accuracy", ...}).  Each batch is one
all-or-nothing POST /v1/architectures; uploads are idempotent, so a
failed run can simply be repeated (and a batch whose connection dropped,
or that was told 503, is sent again; its architectures then count as not
new).  HTTPS with --url https://... and
--cafile for a certificate of your own.  (For a stopped daemon, `ctnasd
import` is faster.)
"""
import argparse
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ctnas_client import Client, CtnasError  # noqa: E402

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


def post(client, batch):
    try:
        return client.request("POST", "/v1/architectures",
                              {"items": batch})["items"]
    except CtnasError as e:
        sys.exit("upload failed: %s" % e)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--space")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--token-file")
    ap.add_argument("--cafile", help="certificate to trust for https")
    ap.add_argument("file")
    a = ap.parse_args()
    token = open(a.token_file).read().strip() if a.token_file else None
    client = Client(a.url, token=token, cafile=a.cafile, timeout=300)
    n = new = 0
    batch = []
    for it in items(a.file, a.space, a.dataset):
        batch.append(it)
        if len(batch) == a.batch:
            res = post(client, batch)
            n, new, batch = n + len(res), new + sum(r["new"] for r in res), []
    if batch:
        res = post(client, batch)
        n, new = n + len(res), new + sum(r["new"] for r in res)
    print("%s: %d stored (%d new architectures)" % (a.file, n, new))


if __name__ == "__main__":
    main()

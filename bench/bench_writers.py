#!/usr/bin/env python3
"""Many concurrent uploads: answers, 503 "database busy" and latency.

    python3 bench/bench_writers.py --ctnasd ./ctnasd --reference OLD --reps 2

For each binary (alternating, the reference measured in the same run) and
each --threads value: a fresh database, --writers keep-alive clients each
uploading batches of 50 random NAS-Bench-201 cells with a measurement, one
after another, for --seconds.  Prints one line per run (uploads answered
201, 503s, latency p50 / p99 / max) and a summary: medians over the runs,
and the ratio of this binary to the reference.
"""
import argparse
import collections
import http.client
import json
import random
import shutil
import statistics
import tempfile
import threading
import time
import os

from benchlib import (add_binary_args, binaries, compare_binaries, pct,
                      start_daemon)

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
       "avg_pool_3x3"]


def cell(r):
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(
        *[r.choice(OPS) for _ in range(6)])


def one_run(binary, threads, a):
    w = tempfile.mkdtemp(prefix="ctnas-writers-")
    d, port, _ = start_daemon(binary, os.path.join(w, "w.db"), w,
                              ["--threads", str(threads)])
    counts, lat = collections.Counter(), []
    lock = threading.Lock()
    stop = time.time() + a.seconds

    def writer(k):
        r = random.Random(k)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while time.time() < stop:
            body = json.dumps({"items": [
                {"space": "nasbench201", "arch": cell(r),
                 "measurements": [{"dataset": "w", "metric": "acc",
                                   "value": r.random()}]}
                for _ in range(50)]})
            t = time.perf_counter()
            c.request("POST", "/v1/architectures", body,
                      {"Content-Type": "application/json"})
            resp = c.getresponse()
            resp.read()
            with lock:
                counts[resp.status] += 1
                lat.append(time.perf_counter() - t)
    try:
        ts = [threading.Thread(target=writer, args=(k,))
              for k in range(a.writers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        d.terminate()
        d.wait()
        shutil.rmtree(w, ignore_errors=True)
    return {"answered_201": counts[201], "busy_503": counts[503],
            "other": sum(v for k, v in counts.items() if k not in (201, 503)),
            "p50_ms": 1e3 * statistics.median(lat),
            "p99_ms": 1e3 * pct(lat, 0.99), "max_ms": 1e3 * max(lat)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_binary_args(ap)
    ap.add_argument("--threads", default="4,32",
                    help="--threads values, comma-separated")
    ap.add_argument("--writers", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    bins = binaries(a)
    summary = {}
    for t in [int(x) for x in a.threads.split(",")]:
        summary["threads=%d" % t] = compare_binaries(
            bins, a.reps, lambda b: one_run(b, t, a), {"threads": t})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

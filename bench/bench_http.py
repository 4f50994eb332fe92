#!/usr/bin/env python3
"""/v1/compare and /v1/rank over real HTTP, end to end, and the daemon's
memory while it serves a trained NAS-Bench-201 comparator with all 15,625
cells stored.

    python3 bench/bench_http.py --ctnasd ./ctnasd --reps 7

Imports ../shared/data/nb201_cifar10.csv into a temporary database, starts
the daemon on a free loopback port, trains the default comparator on 424
architectures, then times (medians of --reps): ranking every stored cell
({"all": true}), a batched compare of 10,000 random pairs, and single
compares from --clients concurrent keep-alive clients for --seconds.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data", "nb201_cifar10.csv")


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class Client:
    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json"} if data else {}
        self.c.request(method, path, body=data, headers=h)
        r = self.c.getresponse()
        doc = json.loads(r.read())
        if r.status >= 300:
            sys.exit("%s %s -> %d %r" % (method, path, r.status, doc))
        return doc


def timed(fn, reps):
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ctnasd", default="./ctnasd")
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5)
    a = ap.parse_args()
    w = tempfile.mkdtemp(prefix="ctnas-bench-")
    db = os.path.join(w, "bench.db")
    try:
        subprocess.run([a.ctnasd, "import", "--db", db, "--space",
                        "nasbench201", "--dataset", "cifar10", a.data],
                       check=True, capture_output=True)
        pf = os.path.join(w, "port")
        d = subprocess.Popen([a.ctnasd, "--db", db, "--port", "0",
                              "--port-file", pf, "--log-level", "warn"])
        while not os.path.exists(pf):
            time.sleep(0.02)
        port = int(open(pf).read())
        c = Client(port)
        job = c.call("POST", "/v1/nac/train", {
            "space": "nasbench201", "dataset": "cifar10",
            "train_size": 424, "seed": 1})
        while True:
            j = c.call("GET", "/v1/jobs/%d" % job["id"])
            if j["state"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        if j["state"] != "succeeded":
            sys.exit("training failed: %r" % j)
        rss_idle = rss_mb(d.pid)

        rank_med, rank_all = timed(lambda: c.call(
            "POST", "/v1/rank", {"all": True, "space": "nasbench201",
                                 "top_k": 10}), a.reps)
        cells = [l.split(",")[0] for l in open(a.data).read().split()[1:]]
        r = random.Random(1)
        pairs = [[r.choice(cells), r.choice(cells)] for _ in range(10000)]
        body = {"pairs": pairs}
        cmp_med, cmp_all = timed(lambda: c.call("POST", "/v1/compare", body),
                                 a.reps)

        # Small requests from concurrent keep-alive clients.
        stop = time.time() + a.seconds
        counts = [0] * a.clients
        lat = [[] for _ in range(a.clients)]

        def worker(k):
            cl = Client(port)
            rr = random.Random(k)
            while time.time() < stop:
                t = time.perf_counter()
                cl.call("POST", "/v1/compare", {"a": rr.choice(cells),
                                                "b": rr.choice(cells)})
                lat[k].append(time.perf_counter() - t)
                counts[k] += 1
        ts = [threading.Thread(target=worker, args=(k,))
              for k in range(a.clients)]
        t0 = time.time()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        rps = sum(counts) / (time.time() - t0)
        all_lat = sorted(x for l in lat for x in l)
        rss_after = rss_mb(d.pid)
        d.terminate()
        d.wait()
        res = {
            "rank_all_15625_s_median": rank_med, "rank_all_s": rank_all,
            "compare_10000_pairs_s_median": cmp_med, "compare_10000_s": cmp_all,
            "single_compare_rps": rps,
            "single_compare_p50_ms": 1e3 * all_lat[len(all_lat) // 2],
            "single_compare_p99_ms": 1e3 * all_lat[int(len(all_lat) * .99)],
            "rss_mb_after_training": rss_idle, "rss_mb_after_bench": rss_after,
            "model_train_seconds": j["result"]["figures"]["train_seconds"]}
        print("rank all 15,625: %.3f s median (target < 1 s); compare 10,000 "
              "pairs: %.1f ms median (target < 100 ms)"
              % (rank_med, 1e3 * cmp_med))
        print("single compares, %d clients: %.0f req/s, p50 %.2f ms, p99 %.2f"
              " ms; RSS %.1f MB after training, %.1f MB after the benchmark "
              "(target < 100 MB)" % (a.clients, rps,
                                     res["single_compare_p50_ms"],
                                     res["single_compare_p99_ms"], rss_idle,
                                     rss_after))
        print(json.dumps(res))
    finally:
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()

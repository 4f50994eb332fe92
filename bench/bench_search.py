#!/usr/bin/env python3
"""A search job through the daemon, end to end: how long a 1,000-step
NAS-Bench-201 search takes with the default exploration schedule, and how
fast GET /v1/searches/{id} answers while it runs.

    python3 bench/bench_search.py --ctnasd ./ctnasd --runs 3

Imports ../shared/data/nb201_cifar10.csv (all 15,625 cells measured: the
labelled set the job starts from is then as large as it gets), trains the
default comparator on 100 random cells, then, --runs times: starts a
search (--steps, seed = run number), polls it back to back from one
keep-alive client until it ends, and records the job's wall time (from
its started_at to finished_at) and every poll's latency.  GET /v1/health
is polled the same way for --health-polls requests first: the floor that
the HTTP stack and the client cost, the reference for the poll ratio.
Prints medians over the runs and the poll median / p99 over all polls.
"""
import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data", "nb201_cifar10.csv")


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


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def wait_job(c, path):
    while True:
        j = c.call("GET", path)
        if j["state"] not in ("queued", "running"):
            return j
        time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ctnasd", default="./ctnasd")
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--health-polls", type=int, default=500)
    a = ap.parse_args()
    if not os.path.exists(a.data):
        sys.exit("no %s: this benchmark needs the NAS-Bench-201 file"
                 % a.data)
    tmp = tempfile.mkdtemp(prefix="ctnas_bench_search_")
    db = os.path.join(tmp, "b.db")
    subprocess.run([a.ctnasd, "import", "--db", db, "--space",
                    "nasbench201", "--dataset", "cifar10", a.data],
                   check=True, stdout=subprocess.DEVNULL)
    pf = os.path.join(tmp, "port")
    proc = subprocess.Popen([a.ctnasd, "--db", db, "--port", "0",
                             "--port-file", pf, "--log-level", "warn"])
    try:
        while not os.path.exists(pf) or not open(pf).read().strip():
            time.sleep(0.05)
        c = Client(int(open(pf).read()))
        job = c.call("POST", "/v1/nac/train", {
            "space": "nasbench201", "dataset": "cifar10",
            "train_size": 100, "seed": 1})
        j = wait_job(c, "/v1/jobs/%d" % job["id"])
        if j["state"] != "succeeded":
            sys.exit("training: %r" % j)

        health = []
        for _ in range(a.health_polls):
            t = time.perf_counter()
            c.call("GET", "/v1/health")
            health.append(time.perf_counter() - t)

        walls, polls = [], []
        for run in range(1, a.runs + 1):
            s = c.call("POST", "/v1/searches", {
                "space": "nasbench201", "dataset": "cifar10",
                "steps": a.steps, "seed": run})
            path = "/v1/searches/%d" % s["id"]
            n0 = len(polls)
            while True:
                t = time.perf_counter()
                j = c.call("GET", path)
                polls.append(time.perf_counter() - t)
                if j["state"] not in ("queued", "running"):
                    break
            if j["state"] != "succeeded":
                sys.exit("search: %r" % j)
            wall = j["finished_at"] - j["started_at"]
            walls.append(wall)
            print("run %d: %d steps in %.2f s wall, %d polls, poll median "
                  "%.2f ms" % (run, a.steps, wall, len(polls) - n0,
                               1e3 * statistics.median(polls[n0:])))
        hm = statistics.median(health)
        pm = statistics.median(polls)
        print(json.dumps({
            "steps": a.steps,
            "labelled": j["params"]["n_labels"],
            "search_wall_s_median": round(statistics.median(walls), 3),
            "poll_ms_median": round(1e3 * pm, 3),
            "poll_ms_p99": round(1e3 * pct(polls, 0.99), 3),
            "polls": len(polls),
            "health_ms_median": round(1e3 * hm, 3),
            "poll_over_health": round(pm / hm, 2),
        }))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

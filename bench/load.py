#!/usr/bin/env python3
"""Load test: wrk drives the daemon at --connections connections for
--seconds on a mix of /v1/compare, /v1/rank (5 architectures),
GET /v1/architectures pages, training-job polls and search polls, while a
training job and a search job run throughout (both must still be running
when wrk ends).  Reports requests per second, p50 / p99 latency, non-2xx
answers (must be 0) and resident memory before, halfway and after, sampled
once a second in between.  Growth over the second half must stay under 5%:
the first seconds include the jobs' own working sets filling up (the
search's first explorations, the SQLite page caches of the HTTP threads),
which a leak is not; the whole-run figure is printed beside it.

    python3 bench/load.py --ctnasd ./ctnasd          # needs wrk (Debian)
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data", "nb201_cifar10.csv")
OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
       "avg_pool_3x3"]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def call(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request(method, path, body=json.dumps(body) if body else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    doc = json.loads(r.read())
    c.close()
    if r.status >= 300:
        sys.exit("%s %s -> %d %r" % (method, path, r.status, doc))
    return doc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ctnasd", default="./ctnasd")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    a = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    w = tempfile.mkdtemp(prefix="ctnas-load-")
    try:
        db = os.path.join(w, "load.db")
        r = random.Random(1)
        cells = set()
        while len(cells) < 2000:
            cells.add("|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(
                *[r.choice(OPS) for _ in range(6)]))
        cells = sorted(cells)
        if os.path.exists(DATA):
            subprocess.run([a.ctnasd, "import", "--db", db, "--space",
                            "nasbench201", "--dataset", "cifar10", DATA],
                           check=True, capture_output=True)
        pf = os.path.join(w, "port")
        d = subprocess.Popen([a.ctnasd, "--db", db, "--port", "0",
                              "--port-file", pf, "--log-level", "warn",
                              "--max-connections", "256"])
        while not os.path.exists(pf):
            time.sleep(0.02)
        port = int(open(pf).read())
        if not os.path.exists(DATA):  # synthetic catalogue instead
            call(port, "POST", "/v1/architectures", {"items": [
                {"space": "nasbench201", "arch": c, "measurements": [
                    {"dataset": "cifar10", "metric": "acc",
                     "value": r.uniform(10, 95)}]} for c in cells]})
        # A first model to serve, then a long job that trains during the run.
        j = call(port, "POST", "/v1/nac/train", {
            "space": "nasbench201", "dataset": "cifar10", "train_size": 424,
            "seed": 1})
        while call(port, "GET", "/v1/jobs/%d" % j["id"])["state"] in (
                "queued", "running"):
            time.sleep(0.2)
        job = call(port, "POST", "/v1/nac/train", {
            "space": "nasbench201", "dataset": "cifar10", "train_size": 424,
            "seed": 2, "epochs": 100000, "publish": False})
        # A search with that first model, long enough to outlast the run.
        search = call(port, "POST", "/v1/searches", {
            "space": "nasbench201", "dataset": "cifar10",
            "steps": 10000000, "seed": 1})
        # Warm up, then measure memory before and after the run.
        env = dict(os.environ, LOAD_CELLS=" ".join(cells[:500]),
                   LOAD_JOB=str(job["id"]), LOAD_SEARCH=str(search["id"]))
        lua = os.path.join(HERE, "load_mix.lua")
        url = "http://127.0.0.1:%d" % port
        subprocess.run(["wrk", "-t", str(a.threads), "-c",
                        str(a.connections), "-d", "5s", "-s", lua, url],
                       env=env, capture_output=True)
        before = rss_kb(d.pid)
        # RSS once a second through the run: a leak keeps climbing, caches
        # filling up level off.
        series = []
        done = threading.Event()

        def sample():
            while not done.wait(1.0):
                series.append(rss_kb(d.pid))
        sampler = threading.Thread(target=sample)
        sampler.start()
        out = subprocess.run(["wrk", "-t", str(a.threads), "-c",
                              str(a.connections), "-d", "%ds" % a.seconds,
                              "--latency", "-s", lua, url], env=env,
                             capture_output=True, text=True).stdout
        done.set()
        sampler.join()
        after = rss_kb(d.pid)
        half = series[len(series) // 2] if series else before
        states = {"train": call(port, "GET", "/v1/jobs/%d" % job["id"]),
                  "search": call(port, "GET",
                                 "/v1/searches/%d" % search["id"])}
        steps = (states["search"]["progress"] or {}).get("step")
        epoch = (states["train"]["progress"] or {}).get("epoch")
        states = {k: v["state"] for k, v in states.items()}
        call(port, "DELETE", "/v1/jobs/%d" % job["id"])
        call(port, "DELETE", "/v1/searches/%d" % search["id"])
        d.terminate()
        d.wait()
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        non2xx = int(m.group(1)) if m else 0
        errs = re.search(r"Socket errors: (.*)", out)
        growth = 100.0 * (after - before) / before
        growth_2nd = 100.0 * (after - half) / half
        print(out)
        print("%.0f requests/s, p50 %s, p99 %s, non-2xx %d, socket errors "
              "%s, RSS %.1f -> %.1f -> %.1f MB (%+.1f%%; second half "
              "%+.1f%%); at the end the training job was %s (epoch %s), the "
              "search %s (step %s)"
              % (rps, lat.get("50"), lat.get("99"), non2xx,
                 errs.group(1) if errs else "none", before / 1024.0,
                 half / 1024.0, after / 1024.0, growth, growth_2nd,
                 states["train"], epoch, states["search"], steps))
        print(json.dumps({"rps": rps, "p50": lat.get("50"),
                          "p99": lat.get("99"), "non_2xx": non2xx,
                          "socket_errors": errs.group(1) if errs else None,
                          "rss_before_kb": before, "rss_after_kb": after,
                          "rss_growth_percent": growth,
                          "rss_growth_second_half_percent": growth_2nd,
                          "rss_series_kb": series, "jobs": states}))
        running = all(v == "running" for v in states.values())
        sys.exit(0 if non2xx == 0 and growth_2nd < 5 and running else 1)
    finally:
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()

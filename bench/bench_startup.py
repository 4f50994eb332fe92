#!/usr/bin/env python3
"""Start-up and job submission with a large catalogue: how long ctnasd
takes from exec to listening, and POST /v1/nac/train to answer, with the
20,001 NAS-Bench-101 cells of ../shared/data/nb101_val.jsonl stored and a
comparator served.

    python3 bench/bench_startup.py --ctnasd ./ctnasd [--ref OTHER] --reps 5

For each binary, imports the file and trains a small comparator (so a
start-up has a model to load and warm); then, --reps times and for each binary in turn
(--ctnasd, then --ref, the reference measured in the same run): copies
that database, starts the daemon and times it until its --port-file
appears (it is written once the port accepts connections), waits a
second for the start-up warm-up, and times three POST /v1/nac/train
(100 cells, 1 epoch), each waited for.  Prints the medians, and with
--ref their ratios.
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

from benchlib import start_daemon

HERE = os.path.dirname(os.path.abspath(__file__))
NB101 = os.path.join(HERE, "..", "..", "shared", "data", "nb101_val.jsonl")


def call(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    h = {"Content-Type": "application/json"} if body is not None else {}
    t0 = time.perf_counter()
    c.request(method, path, body=json.dumps(body) if body else None,
              headers=h)
    r = c.getresponse()
    doc = json.loads(r.read() or b"null")
    dt = time.perf_counter() - t0
    c.close()
    if r.status >= 300:
        sys.exit("%s %s -> %d %r" % (method, path, r.status, doc))
    return doc, dt


def wait_job(port, jid):
    while True:
        j, _ = call(port, "GET", "/v1/jobs/%d" % jid)
        if j["state"] in ("succeeded", "failed", "cancelled"):
            return j
        time.sleep(0.05)


TRAIN = {"space": "nasbench101", "dataset": "cifar10", "train_size": 100}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ctnasd", default="./ctnasd")
    ap.add_argument("--ref", help="a reference binary, timed alternately")
    ap.add_argument("--data", default=NB101)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    if not os.path.exists(a.data):
        sys.exit("no %s: this benchmark needs the NAS-Bench-101 file" %
                 a.data)
    bins = [os.path.abspath(a.ctnasd)] + ([os.path.abspath(a.ref)]
                                          if a.ref else [])
    tmp = tempfile.mkdtemp(prefix="ctnas-startup-")
    try:
        # Each binary gets a database of its own schema (an older one
        # refuses a newer database), made the same way.
        seeds = {}
        for i, b in enumerate(bins):
            seeds[b] = os.path.join(tmp, "seed%d.db" % i)
            subprocess.run([b, "import", "--db", seeds[b], "--space",
                            "nasbench101", "--dataset", "cifar10", a.data],
                           check=True, stdout=subprocess.DEVNULL)
            p, port, _ = start_daemon(b, seeds[b], tmp)
            job, _ = call(port, "POST", "/v1/nac/train",
                          dict(TRAIN, epochs=2))
            state = wait_job(port, job["id"])["state"]
            p.terminate()
            p.wait()
            if state != "succeeded":
                sys.exit("the seed model did not train: %s" % state)
        res = {b: ([], []) for b in bins}
        db = os.path.join(tmp, "run.db")
        for _ in range(a.reps):
            for b in bins:
                for suf in ("", "-wal", "-shm"):
                    if os.path.exists(seeds[b] + suf):
                        shutil.copy(seeds[b] + suf, db + suf)
                    elif os.path.exists(db + suf):
                        os.remove(db + suf)
                p, port, dt = start_daemon(b, db, tmp)
                res[b][0].append(dt)
                time.sleep(1.0)
                for k in range(3):
                    job, dtp = call(port, "POST", "/v1/nac/train",
                                    dict(TRAIN, epochs=1, seed=k + 1))
                    res[b][1].append(dtp)
                    wait_job(port, job["id"])
                p.terminate()
                p.wait()
        med = {b: (statistics.median(s), statistics.median(t))
               for b, (s, t) in res.items()}
        for b in bins:
            print("%s: start-up to listening %.0f ms (median of %d), "
                  "POST /v1/nac/train %.0f ms (median of %d)" %
                  (b, 1e3 * med[b][0], a.reps, 1e3 * med[b][1],
                   len(res[b][1])))
        if a.ref:
            r, n = med[bins[1]], med[bins[0]]
            print("ratio to the reference: start-up %.2f, POST %.2f" %
                  (n[0] / r[0], n[1] / r[1]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

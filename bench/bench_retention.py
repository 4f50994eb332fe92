#!/usr/bin/env python3
"""The --job-retention sweep on a database full of old searches: how long
it takes, and what it costs the requests that arrive meanwhile.

    python3 bench/bench_retention.py --ctnasd ./ctnasd [--jobs 1000]
        [--events 20] [--pseudo 300] [--reps 3]

Builds a database (migrated by the daemon itself) holding --jobs searches
that ended an hour ago, each with --events progress events and --pseudo
pseudo-labels (a 1,000-step search makes about 200).  Then, --reps times:
starts the daemon on a copy with --job-retention 60 (everything goes in
the start-up sweep) while a client uploads one measurement after another
(a write, so it queues behind the sweep's batches for SQLite's write
lock), until the log says the sweep is done; and, as the reference in the
same run, starts it on another copy without --job-retention and runs the
same client for the same time.  Prints the sweep's duration and the
upload latencies (median, p99, max) with and without it.
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time

from benchlib import start_daemon

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
       "avg_pool_3x3"]


def cell(r):
    o = [r.choice(OPS) for _ in range(6)]
    return "|%s~0|+|%s~0|%s~1|+|%s~0|%s~1|%s~2|" % tuple(o)


def start(binary, db, tmp, args):
    """The daemon at info level, its log in tmp/log: (process, port,
    log file)."""
    log = open(os.path.join(tmp, "log"), "w")
    p, port, _ = start_daemon(binary, db, tmp, args, level="info",
                              stderr=log)
    return p, port, log


def stop(p, log):
    p.terminate()
    p.wait(30)
    log.close()


def seed(binary, tmp, jobs, events, pseudo):
    db = os.path.join(tmp, "seed.db")
    p, _, log = start(binary, db, tmp, [])
    stop(p, log)
    now = time.time()
    r = random.Random(1)
    ev = json.dumps({"phase": "searching", "step": 500, "steps": 1000,
                     "fraction": 0.5, "round": 1, "rounds": 1,
                     "reward_avg": 0.51, "entropy_avg": 5.2,
                     "baseline_score": 0.6, "pseudo_labels": 100,
                     "pool_size": 600, "explorations": 5,
                     "baseline_updates": 4, "baseline": cell(r)})
    labels = json.dumps(list(range(1, 101)))
    with sqlite3.connect(db) as q:
        for j in range(1, jobs + 1):
            q.execute("INSERT INTO jobs (id, kind, state, params, progress, "
                      "result, created_at, started_at, finished_at, "
                      "updated_at, label_ids) VALUES (?, 'search', "
                      "'succeeded', '{}', ?, '{}', ?, ?, ?, ?, ?)",
                      (j, ev, now - 7200, now - 7200, now - 3600,
                       now - 3600, labels))
            q.executemany("INSERT INTO search_events VALUES (?, ?, ?, ?)",
                          [(j, s, ev, now - 3600) for s in
                           range(1, events + 1)])
            q.executemany("INSERT INTO pseudo_labels VALUES "
                          "(?, ?, ?, ?, ?, ?, ?)",
                          [(j, s, cell(r), cell(r), s % 2, 0.9, 100)
                           for s in range(1, pseudo + 1)])
    return db


def upload(port, r):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = {"items": [{"space": "nasbench201", "arch": cell(r),
                       "measurements": [{"dataset": "syn", "metric": "acc",
                                         "value": r.uniform(80, 94)}]}]}
    t0 = time.perf_counter()
    c.request("POST", "/v1/architectures", body=json.dumps(body),
              headers={"Content-Type": "application/json"})
    resp = c.getresponse()
    resp.read()
    dt = time.perf_counter() - t0
    c.close()
    if resp.status != 201:
        sys.exit("upload -> %d" % resp.status)
    return dt


def summary(xs):
    xs = sorted(xs)
    return (statistics.median(xs) * 1e3, xs[int(0.99 * (len(xs) - 1))] * 1e3,
            xs[-1] * 1e3, len(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctnasd", required=True)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--pseudo", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ctnas-retention-")
    try:
        db = seed(a.ctnasd, tmp, a.jobs, a.events, a.pseudo)
        mb = os.path.getsize(db) / 1e6
        print("seed: %d ended searches, %d events, %d pseudo-labels, "
              "%.0f MB" % (a.jobs, a.jobs * a.events, a.jobs * a.pseudo, mb))
        sweeps, during, ref = [], [], []
        for rep in range(a.reps):
            r = random.Random(rep)
            run = os.path.join(tmp, "run.db")
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(run + suffix):
                    os.remove(run + suffix)
            shutil.copy(db, run)
            p, port, log = start(a.ctnasd, run, tmp,
                                 ["--job-retention", "60"])
            t0 = time.time()
            lat = []
            logpath = os.path.join(tmp, "log")
            while True:
                lat.append(upload(port, r))
                with open(logpath) as f:
                    text = f.read()
                m = re.search(r"job retention: deleted (\d+) job", text)
                if m:
                    break
                if time.time() - t0 > 600:
                    sys.exit("no sweep after 600 s")
            window = time.time() - t0
            with open(logpath) as f:
                text = f.read()
            ts = re.findall(r"^(\S+) info  (?:ended jobs are deleted|job "
                            r"retention: deleted)", text, re.M)
            stop(p, log)
            with sqlite3.connect(run) as q:
                left = q.execute("SELECT count(*) FROM jobs").fetchone()[0]
            if int(m.group(1)) != a.jobs or left != 0:
                sys.exit("swept %s of %d, %d left" % (m.group(1), a.jobs,
                                                      left))

            def secs(s):
                h, mi, se = s.split("T")[1].rstrip("Z").split(":")
                return int(h) * 3600 + int(mi) * 60 + float(se)
            sweeps.append(secs(ts[1]) - secs(ts[0]))
            during += lat
            # The reference: the same client, no sweep, as long.
            os.remove(run)
            for suffix in ("-wal", "-shm"):
                if os.path.exists(run + suffix):
                    os.remove(run + suffix)
            shutil.copy(db, run)
            p, port, log = start(a.ctnasd, run, tmp, [])
            t1 = time.time()
            while time.time() - t1 < window:
                ref.append(upload(port, r))
            stop(p, log)
        print("sweep: %.2f s median of %d (%s)" % (
            statistics.median(sweeps), len(sweeps),
            ", ".join("%.2f" % s for s in sweeps)))
        d, r_ = summary(during), summary(ref)
        print("upload during the sweep: median %.1f ms, p99 %.1f ms, max "
              "%.1f ms (%d)" % d)
        print("upload without a sweep:  median %.1f ms, p99 %.1f ms, max "
              "%.1f ms (%d)" % r_)
        print("ratio (during / without): median %.2f, p99 %.2f" %
              (d[0] / r_[0], d[1] / r_[1]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A burst of large uploads: the daemon's peak memory, 503s and time.

    python3 bench/bench_buffered.py --ctnasd ./ctnasd --reference OLD --reps 3

For each binary (alternating, the reference measured in the same run): a
fresh daemon with its default limits, then --clients clients each sending
one upload of --mb MB (a few cells padded with spaces) at the same moment,
each on its own connection, retrying after Retry-After when told 503.
Prints one line per run (the daemon's peak resident memory, VmHWM; the
503s met; seconds until every upload was stored) and a summary: medians
over the runs, and the ratio of this binary to the reference.
"""
import argparse
import http.client
import itertools
import json
import os
import shutil
import tempfile
import threading
import time

from benchlib import (add_binary_args, binaries, compare_binaries, rss_mb,
                      start_daemon)

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
       "avg_pool_3x3"]


def body_of(k, n_bytes):
    cells = itertools.islice(itertools.product(OPS, repeat=6), 3 * k,
                             3 * k + 3)
    doc = json.dumps({"items": [
        {"space": "nasbench201",
         "arch": "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*c),
         "measurements": [{"dataset": "b", "metric": "acc",
                           "value": 50.0}]} for c in cells]}).encode()
    return doc + b" " * (n_bytes - len(doc))


def one_run(binary, a):
    w = tempfile.mkdtemp(prefix="ctnas-buffered-")
    d, port, _ = start_daemon(binary, os.path.join(w, "b.db"), w)
    bodies = [body_of(k, int(a.mb * (1 << 20))) for k in range(a.clients)]
    busy, failed = [0], []
    lock = threading.Lock()
    go = threading.Event()

    def client(k):
        go.wait()
        while True:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            try:
                c.request("POST", "/v1/architectures", bodies[k],
                          {"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                status, retry = r.status, r.getheader("Retry-After", "1")
            except OSError as e:
                status, retry = repr(e), "1"
            c.close()
            if status == 201:
                return
            with lock:
                if status == 503:
                    busy[0] += 1
                else:
                    failed.append(status)
            time.sleep(float(retry))

    try:
        ts = [threading.Thread(target=client, args=(k,))
              for k in range(a.clients)]
        for t in ts:
            t.start()
        t0 = time.perf_counter()
        go.set()
        for t in ts:
            t.join()
        secs = time.perf_counter() - t0
        peak = rss_mb(d.pid, "VmHWM")
    finally:
        d.terminate()
        d.wait()
        shutil.rmtree(w, ignore_errors=True)
    if failed:
        print("# other failures: %r" % failed[:5])
    return {"peak_rss_mb": peak, "busy_503": busy[0],
            "other_failures": len(failed), "seconds": secs}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_binary_args(ap)
    ap.add_argument("--clients", type=int, default=48)
    ap.add_argument("--mb", type=float, default=15.0,
                    help="MB per upload (the default --max-body is 16)")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    bins = binaries(a)
    print(json.dumps(compare_binaries(bins, a.reps,
                                      lambda b: one_run(b, a))))


if __name__ == "__main__":
    main()

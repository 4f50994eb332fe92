#!/usr/bin/env python3
"""Light requests while every HTTP worker runs long ones: health and
small GETs answered, and keep-alive connections kept, while clients send
big ranks and compares.

    python3 bench/bench_busy.py --ctnasd ./ctnasd --reference OLD --reps 3

For each binary (the reference, typically the previous release, measured
in the same run, alternating), on NAS-Bench-201 with all 15,625 cells
stored and the default comparator trained on 424 (--timeout 2, the
default 4 --threads), for --seconds:
- --heavy client processes each loop over POST /v1/rank {"all": true} and a
  compare of 80,000 pairs of stored ids;
- one monitor sends GET /v1/health every 100 ms on its own keep-alive
  connection (latency);
- --idle keep-alive clients each send GET /v1/architectures/1, then wait
  0.3-1.5 s (under --timeout), again and again: latency, and how many
  requests the daemon closed the connection on without an answer
  ("dropped"; the client then reconnects).
Prints one line per run and a summary: medians over the runs, and the
ratio of this binary to the reference.
"""
import argparse
import http.client
import json
import multiprocessing
import random
import statistics
import threading
import time

from benchlib import (NB201, Client, add_binary_args, binaries,
                      compare_binaries, pct, served_nb201)


class Idle:
    """A keep-alive client that reconnects when the daemon drops it."""

    def __init__(self, port):
        self.port = port
        self.c = None

    def get(self, path):
        """Latency in seconds, or None when the connection was closed
        without an answer."""
        if self.c is None:
            self.c = http.client.HTTPConnection("127.0.0.1", self.port,
                                                timeout=600)
        t = time.perf_counter()
        try:
            self.c.request("GET", path)
            r = self.c.getresponse()
            r.read()
        except (http.client.RemoteDisconnected, ConnectionError):
            self.c.close()
            self.c = None
            return None
        if r.status != 200:
            raise SystemExit("GET %s -> %d" % (path, r.status))
        return time.perf_counter() - t


def heavy(port, body, stop, done):
    """A heavy client, in a process of its own: in a thread, its JSON
    work would hold the interpreter's lock and delay the light clients'
    timings by tens of milliseconds."""
    cl = Client(port)
    rank = {"all": True, "space": "nasbench201", "top_k": 10}
    while time.time() < stop:
        cl.call("POST", "/v1/rank", rank)
        cl.call("POST", "/v1/compare", body)
        with done.get_lock():
            done.value += 2


def one_run(binary, a):
    out = {}
    with served_nb201(binary, a.data, 424,
                      args=["--timeout", "2"]) as (c, _, port, _):
        n = c.call("GET", "/v1/architectures?limit=1")["total"]
        r = random.Random(2)
        by_id = {"pairs": [[r.randrange(n) + 1, r.randrange(n) + 1]
                           for _ in range(80000)]}
        stop = time.time() + a.seconds
        heavy_done = multiprocessing.Value("i", 0)
        health, light, dropped = [], [], [0]
        lock = threading.Lock()

        def client(path, sink, pause):
            """GET path again and again, pause() seconds apart."""
            cl = Idle(port)
            while time.time() < stop:
                dt = cl.get(path)
                with lock:
                    if dt is None:
                        dropped[0] += 1
                    else:
                        sink.append(dt)
                time.sleep(pause())

        gaps = [random.Random(k) for k in range(a.idle)]
        ps = [multiprocessing.Process(target=heavy,
                                      args=(port, by_id, stop, heavy_done))
              for _ in range(a.heavy)]
        ts = ([threading.Thread(target=client, args=(
                  "/v1/health", health, lambda: 0.1))] +
              [threading.Thread(target=client, args=(
                  "/v1/architectures/1", light,
                  lambda g=g: g.uniform(0.3, 1.5))) for g in gaps])
        for t in ps + ts:
            t.start()
        for t in ps + ts:
            t.join()
    out["health_ms_median"] = 1e3 * statistics.median(health)
    out["health_ms_p99"] = 1e3 * pct(health, 0.99)
    out["health_ms_max"] = 1e3 * max(health)
    out["light_ms_median"] = 1e3 * statistics.median(light)
    out["light_ms_p99"] = 1e3 * pct(light, 0.99)
    out["light_answered"] = len(light)
    out["dropped"] = dropped[0]
    out["heavy_done"] = heavy_done.value
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_binary_args(ap)
    ap.add_argument("--data", default=NB201)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--heavy", type=int, default=6)
    ap.add_argument("--idle", type=int, default=8)
    a = ap.parse_args()
    bins = binaries(a)
    print(json.dumps(compare_binaries(bins, a.reps, lambda b: one_run(b, a))))


if __name__ == "__main__":
    main()

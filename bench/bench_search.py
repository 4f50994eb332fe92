#!/usr/bin/env python3
"""A search job through the daemon, end to end: how long a 1,000-step
NAS-Bench-201 search takes with the default exploration schedule, and how
fast GET /v1/searches/{id} answers while it runs.

    python3 bench/bench_search.py --ctnasd ./ctnasd --runs 3

Imports ../shared/data/nb201_cifar10.csv (all 15,625 cells measured: the
labelled set the job starts from is then as large as it gets), trains the
default comparator on 100 random cells, then, --runs times: starts a
search (--steps, seed = run number), polls it from one keep-alive client
every --interval seconds (0: back to back, the worst case) until it
ends, and records the search's wall time as the client sees it (from
its POST to the first poll that finds it ended) and every poll's latency.  GET /v1/health
is polled the same way for --health-polls requests first: the floor that
the HTTP stack and the client cost, the reference for the poll ratio.
Prints medians over the runs and the poll median / p99 over all polls.
"""
import argparse
import json
import statistics
import sys
import time

from benchlib import NB201, pct, served_nb201


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ctnasd", default="./ctnasd")
    ap.add_argument("--data", default=NB201)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--health-polls", type=int, default=500)
    ap.add_argument("--interval", type=float, default=0.02)
    a = ap.parse_args()
    with served_nb201(a.ctnasd, a.data, 100) as (c, _, _, _):
        health = []
        for _ in range(a.health_polls):
            t = time.perf_counter()
            c.call("GET", "/v1/health")
            health.append(time.perf_counter() - t)

        walls, polls = [], []
        for run in range(1, a.runs + 1):
            t0 = time.perf_counter()
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
                time.sleep(a.interval)
            if j["state"] != "succeeded":
                sys.exit("search: %r" % j)
            wall = time.perf_counter() - t0
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


if __name__ == "__main__":
    main()

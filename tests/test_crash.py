"""Crash safety: a stream of batch uploads, a training job and a search
job, the daemon killed with SIGKILL at random moments and restarted,
several times.  Every upload that got a 2xx must be there exactly once, no
half batch may be visible, the database must pass integrity_check, no
training job may stay "running" across a restart, and the search, killed
along with the rest, must resume and end (succeeded, or failed with a
reason) after the last restart."""
import random
import signal
import sqlite3
import threading
import time

from ctnas_testlib import (Daemon, NB201_OPS, check, check_eq, main,
                           nb201_cell, test)

BATCH = 40
# A search that trains its own small comparator on the uploads made so far
# and runs for several seconds, so that it spans a few kills: about 150
# steps/s on a loaded 2-core machine, a checkpoint every 2 s or so.
SEARCH = {"space": "nasbench201", "dataset": "crash", "metric": "acc",
          "comparator": "train", "train": {"epochs": 3}, "steps": 1200,
          "seed": 3, "explore_every": 50, "update_every": 100}


def uploader(d, start, acked, sent, stop):
    """Post batches until the daemon dies; record which were answered."""
    k = start
    while not stop.is_set():
        r = random.Random(k)
        items = []
        for i in range(BATCH):
            ops = [r.choice(NB201_OPS) for _ in range(6)]
            items.append({"space": "nasbench201", "arch": nb201_cell(ops),
                          "measurements": [{
                              "dataset": "crash", "metric": "acc",
                              "value": 50 + r.random() * 40,
                              "source": "b%d" % k}]})
        sent.append(k)
        try:
            st, _, _ = d.post("/v1/architectures", {"items": items},
                              timeout=10)
        except Exception:
            return  # the daemon died under us
        if 200 <= st < 300:
            acked.append(k)
        k += 1


@test
def kill_9_loses_no_acknowledged_write():
    rng = random.Random(2024)
    acked, sent = [], []
    d = Daemon()
    db = d.db
    next_batch = 0
    jobs = []
    search = None
    search_killed = 0
    for rnd in range(5):
        # Some data, a long training job, then more uploads while it runs.
        stop = threading.Event()
        t = threading.Thread(target=uploader,
                             args=(d, next_batch, acked, sent, stop))
        t.start()
        time.sleep(0.3)
        st, _, job = d.post("/v1/nac/train", {
            "space": "nasbench201", "dataset": "crash", "epochs": 100000})
        if st == 202:
            jobs.append(job["id"])
        if search is None:
            # A search needs labelled architectures: wait for the first
            # acknowledged batch.
            deadline = time.time() + 30
            while not acked and time.time() < deadline:
                time.sleep(0.05)
            check(acked, "a first batch is acknowledged")
            st, _, sj = d.post("/v1/searches", SEARCH)
            check_eq(st, 202, "search accepted (%r)" % (sj,))
            search = sj["id"]
        # Kill at any moment, from the middle of the first uploads to
        # after the search's first checkpoints.
        time.sleep(rng.uniform(0.1, 2.5))
        _, _, sj = d.get("/v1/searches/%d" % search)
        search_killed += sj["state"] in ("queued", "running")
        print("# round %d: search %s at step %s when killed" % (
            rnd, sj["state"], (sj["progress"] or {}).get("step")))
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        stop.set()
        t.join()
        d.log.close()
        next_batch = (max(sent) + 1) if sent else 0
        d = Daemon(db=db)
        st, _, doc = d.get("/v1/health")
        check_eq(st, 200, "restarts after kill %d" % rnd)
        _, _, sj = d.get("/v1/searches/%d" % search)
        print("# restart %d: search %s from step %s" % (
            rnd, sj["state"], (sj["progress"] or {}).get("step")))
        for jid in jobs:
            _, _, j = d.get("/v1/jobs/%d" % jid)
            check(j["state"] != "running" and j["state"] != "queued",
                  "job %d left %s" % (jid, j["state"]))
    # The search was killed while it ran, and resumes to an end.
    check(search_killed >= 1, "the search was killed while running")
    deadline = time.time() + 180
    while True:
        st, _, sj = d.get("/v1/searches/%d" % search)
        check_eq(st, 200, "poll the search")
        if sj["state"] not in ("queued", "running") or \
                time.time() > deadline:
            break
        time.sleep(0.1)
    check(sj["state"] in ("succeeded", "failed"),
          "search ended after the restarts, not %r" % sj["state"])
    if sj["state"] == "succeeded":
        check_eq(sj["progress"]["step"], SEARCH["steps"], "all its steps")
        check(sj["result"]["answer"]["arch"], "an answer")
    else:
        check(isinstance(sj.get("error"), str) and sj["error"],
              "a failed search says why: %r" % (sj,))
        print("# search %d failed: %s" % (search, sj["error"]))
    check_eq(d.stop(), 0, "clean final stop")
    check(len(acked) >= 5, "enough traffic to mean something: %d" %
          len(acked))
    c = sqlite3.connect(db)
    check_eq(c.execute("PRAGMA integrity_check").fetchone()[0], "ok",
             "integrity")
    counts = dict(c.execute("SELECT source, count(*) FROM measurements "
                            "WHERE dataset = 'crash' GROUP BY source"))
    # Each batch carries BATCH measurements of distinct values tagged
    # with its source: acknowledged ones complete and once, the rest whole
    # or absent (a batch is one transaction).
    for k in acked:
        check_eq(counts.get("b%d" % k), BATCH,
                 "acknowledged batch %d complete, once" % k)
    for src, n in counts.items():
        check_eq(n, BATCH, "batch %s whole or absent" % src)
    states = [s for (s,) in c.execute("SELECT state FROM jobs")]
    c.close()
    check("running" not in states and "queued" not in states,
          "no job stays running: %r" % states)


if __name__ == "__main__":
    main()

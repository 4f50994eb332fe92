"""Crash safety: a stream of batch uploads and a training job, the daemon
killed with SIGKILL at random moments and restarted, several times.  Every
upload that got a 2xx must be there exactly once, no half batch may be
visible, the database must pass integrity_check, and no job may stay
"running" across a restart."""
import random
import signal
import sqlite3
import threading
import time

from ctnas_testlib import (Daemon, NB201_OPS, check, check_eq, main,
                           nb201_cell, test)

BATCH = 40


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
        time.sleep(rng.uniform(0.1, 0.8))
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        stop.set()
        t.join()
        d.log.close()
        next_batch = (max(sent) + 1) if sent else 0
        d = Daemon(db=db)
        st, _, doc = d.get("/v1/health")
        check_eq(st, 200, "restarts after kill %d" % rnd)
        for jid in jobs:
            _, _, j = d.get("/v1/jobs/%d" % jid)
            check(j["state"] != "running" and j["state"] != "queued",
                  "job %d left %s" % (jid, j["state"]))
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

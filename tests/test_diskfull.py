"""Disk full: the database on a small tmpfs fills up; writes answer 503
with a clear message (never a crash, never a half batch), reads go on, and
writes work again once the file system has room.  Needs root (to mount a
tmpfs); skips, saying so, otherwise."""
import os
import subprocess

from ctnas_testlib import (Daemon, NB201_OPS, check, check_eq, main,
                           nb201_cell, rng, skip, test, workdir)


def mount_tmpfs(path, size):
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size,
                           "tmpfs", path], capture_output=True).returncode


@test
def disk_full_is_503_and_recovers():
    if os.geteuid() != 0:
        skip("not root: cannot mount a small tmpfs")
    mnt = os.path.join(workdir(), "small")
    os.makedirs(mnt)
    if mount_tmpfs(mnt, "768k") != 0:
        skip("cannot mount a tmpfs here")
    d = None
    try:
        d = Daemon(db=os.path.join(mnt, "full.db"))
        r = rng(8)
        full = None
        stored = 0
        for k in range(200):
            items = [{"space": "nasbench201",
                      "arch": nb201_cell([r.choice(NB201_OPS)
                                          for _ in range(6)]),
                      "measurements": [{"dataset": "d", "metric": "m",
                                        "value": r.random(),
                                        "source": "k%d" % k}]}
                     for _ in range(200)]
            st, _, doc = d.post("/v1/architectures", {"items": items})
            if st == 503:
                full = doc
                break
            check_eq(st, 201, "accepted until full: %r" % doc)
            stored += 1
        check(full is not None, "the file system filled up")
        check(stored > 0, "some batches fitted")
        e = full["error"]
        check_eq(e["code"], "storage_unavailable", "code")
        check("full" in e["message"] or "disk" in e["message"],
              "says why: %r" % e["message"])
        st, _, doc = d.get("/v1/architectures?limit=1")
        check_eq(st, 200, "reads go on")
        check_eq(d.proc.poll(), None, "still running")
        # Room again: writes succeed.
        check_eq(subprocess.run(["mount", "-o", "remount,size=16m", mnt])
                 .returncode, 0, "grow the tmpfs")
        st, _, doc = d.post("/v1/architectures", {"items": [
            {"space": "nasbench201", "arch": nb201_cell(["none"] * 6),
             "measurements": [{"dataset": "d", "metric": "m", "value": 1,
                               "source": "after"}]}]})
        check_eq(st, 201, "writes recover: %r" % doc)
        check_eq(d.stop(), 0, "clean stop")
        d = None
        import sqlite3
        c = sqlite3.connect(os.path.join(mnt, "full.db"))
        check_eq(c.execute("PRAGMA integrity_check").fetchone()[0], "ok",
                 "integrity")
        rows = c.execute("SELECT source, count(*) FROM measurements "
                         "GROUP BY source").fetchall()
        c.close()
        for src, n in rows:
            check_eq(n, 1 if src == "after" else 200,
                     "batch %s whole" % src)
    finally:
        if d is not None:
            d.stop()
        subprocess.run(["umount", "-l", mnt])


if __name__ == "__main__":
    main()

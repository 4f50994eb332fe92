"""scripts/ctnas_client.py against the real daemon: a notebook's session
(upload, list, train, compare, rank), an ask/tell search driven to its end
with a training that fails once, error answers, retries after 429 and a
daemon restart, over HTTP and over HTTPS with a token."""
import hashlib
import os
import random
import subprocess
import sys
import threading
import time

from ctnas_testlib import (NB201_OPS, SRCDIR, Daemon, check, check_eq, main,
                           make_cert, nb201_cell, test, token_file, workdir)

sys.path.insert(0, os.path.join(SRCDIR, "scripts"))
from ctnas_client import Client, CtnasError  # noqa: E402

TOKEN = "client-test-token-0123456789"


def accuracy(cell):
    """A made-up, deterministic accuracy that favours convolutions."""
    noise = int(hashlib.md5(cell.encode()).hexdigest()[:4], 16) / 65536.0
    return (60 + 4 * cell.count("nor_conv_3x3") +
            2 * cell.count("nor_conv_1x1") - 6 * cell.count("none") + noise)


def cells(n, seed):
    r = random.Random(seed)
    out = set()
    while len(out) < n:
        out.add(nb201_cell([r.choice(NB201_OPS) for _ in range(6)]))
    return sorted(out)


def items(cs):
    return [{"space": "nasbench201", "arch": c, "measurements": [
        {"dataset": "cifar10", "metric": "test_accuracy",
         "value": accuracy(c)}]} for c in cs]


class CountingClient(Client):
    """A Client that counts the times it sends a request."""

    sent = 0

    def _exchange(self, *args):
        self.sent += 1
        return Client._exchange(self, *args)


def notebook_session(c):
    cs = cells(240, 1)
    ids = c.upload(items(cs), batch=100)
    check_eq(len(ids), 240, "an id per item")
    check_eq(len(set(ids)), 240, "distinct cells, distinct ids")
    check_eq(c.upload(items(cs[:50]), batch=20), ids[:50],
             "sent again: the same ids, nothing stored twice")
    listed = list(c.architectures(space="nasbench201", dataset="cifar10",
                                  order="metric_desc", limit=64))
    check_eq(len(listed), 240, "every page followed")
    best = listed[0]["arch"]
    check_eq(best, max(cs, key=accuracy), "metric_desc puts the best first")
    job = c.train("nasbench201", "cifar10", train_size=200, epochs=30,
                  seed=1, poll=0.1)
    check_eq(job["state"], "succeeded", "trained")
    worst = min(cs, key=accuracy)
    p = c.compare(best, worst)
    check(0.5 < p <= 1, "P(best beats worst) = %r" % p)
    ps = c.compare_pairs([(best, worst), (worst, best)])
    check(ps[0] > 0.5 > ps[1], "both orders: %r" % ps)
    ranked = c.rank([worst, best, cs[7]])
    check(isinstance(ranked, dict), "rank answers the daemon's document")
    return cs


@test
def a_notebook_session_over_http_with_a_token():
    d = Daemon(args=["--token", token_file(TOKEN)])
    try:
        c = Client("http://127.0.0.1:%d" % d.port, token=TOKEN)
        notebook_session(c)
        anon = Client("http://127.0.0.1:%d" % d.port)
        check_eq(anon.health()["status"], "ok", "health needs no token")
        try:
            list(anon.architectures())
            raise AssertionError("listed without the token")
        except CtnasError as e:
            check_eq(e.status, 401, "the rest does")
        c.close()
    finally:
        d.stop()


@test
def the_same_over_https():
    w = workdir()
    crt, key = make_cert(w, "tls")
    tok = token_file(TOKEN)
    d = Daemon(tls=(crt, key), args=["--token", tok])
    try:
        c = Client("https://127.0.0.1:%d" % d.port, token=TOKEN,
                   cafile=crt)
        notebook_session(c)
        # scripts/import_http.py rides on the client: a CSV over HTTPS.
        csv = os.path.join(w, "more.csv")
        more = cells(300, 9)
        with open(csv, "w") as f:
            f.write("arch,test_accuracy\n")
            f.writelines("%s,%r\n" % (x, accuracy(x)) for x in more)
        p = subprocess.run([sys.executable,
                            os.path.join(SRCDIR, "scripts", "import_http.py"),
                            "--url", "https://127.0.0.1:%d" % d.port,
                            "--cafile", crt, "--token-file", tok, "--space",
                            "nasbench201", "--dataset", "cifar10",
                            "--batch", "128", csv],
                           capture_output=True, text=True, timeout=120)
        check_eq(p.returncode, 0, "import_http: %s" % p.stderr)
        check("300 stored" in p.stdout, "counts: %r" % p.stdout)
        stored = {a["arch"]: a for a in c.architectures(
            space="nasbench201", dataset="cifar10")}
        check(all(stored[x]["measurements"][-1]["value"] == accuracy(x)
                  for x in more), "every value, every digit")
        # A certificate not trusted is told at once, not retried.
        untrusting = CountingClient("https://127.0.0.1:%d" % d.port,
                                    retries=5)
        try:
            untrusting.health()
            raise AssertionError("a certificate nobody signed was trusted")
        except OSError:
            pass
        check_eq(untrusting.sent, 1, "tried once")
    finally:
        d.stop()


@test
def ask_tell_drives_a_search_to_its_end():
    d = Daemon()
    try:
        c = Client("http://127.0.0.1:%d" % d.port)
        c.upload(items(cells(60, 2)))
        n_before = len(list(c.architectures(space="nasbench201")))
        s = c.search("nasbench201", "cifar10", comparator="train",
                     train={"epochs": 20}, steps=40, rounds=2,
                     suggestions=3, polish=0, seed=3)
        asked, failed = [], []

        def measure(arch):
            asked.append(arch)
            if len(asked) == 2:   # a training that failed
                failed.append(arch)
                return None
            return accuracy(arch)
        done = c.ask_tell(s["id"], measure, poll=0.1)
        check_eq(done["state"], "succeeded", "the search ended well")
        check(len(asked) >= 3, "suggestions measured: %r" % asked)
        stored = {a["arch"]: a for a in c.architectures(space="nasbench201")}
        check_eq(len(stored), n_before + len(set(asked)) - len(failed),
                 "every measured suggestion stored, the failed one not")
        for arch in set(asked) - set(failed):
            check_eq(stored[arch]["measurements"][0]["value"],
                     accuracy(arch), "the value uploaded for %s" % arch)
        check(failed[0] not in stored, "the failed one was not uploaded")
        check_eq(done["progress"].get("skipped"), 1,
                 "the search went on without the failed one")
        seqs = [ev["seq"] for ev in c.follow(s["id"], poll=0.1)]
        check(seqs and seqs == sorted(seqs) and seqs[0] == 1,
              "follow gives every event in order, and ends: %r" % seqs[:5])
    finally:
        d.stop()


@test
def short_rounds_do_not_lose_the_client():
    # Rounds so short that a round may end between two polls: the driver
    # must notice the next round's wait anyway.
    d = Daemon()
    try:
        c = Client("http://127.0.0.1:%d" % d.port)
        c.upload(items(cells(40, 6)))
        s = c.search("nasbench201", "cifar10", comparator="train",
                     train={"epochs": 5}, steps=5, rounds=4, suggestions=2,
                     polish=0, seed=4)
        measured = []
        done = []
        th = threading.Thread(target=lambda: done.append(c.ask_tell(
            s["id"], lambda a: measured.append(a) or accuracy(a),
            poll=0.5)), daemon=True)
        th.start()
        th.join(120)
        check(not th.is_alive(), "ask_tell ended (search %r)" %
              c.get_search(s["id"])["progress"])
        check_eq(done[0]["state"], "succeeded", "the search ended well")
        check_eq(done[0]["progress"]["round"], 4, "all four rounds")
        check(len(measured) >= 6, "three waits measured: %r" % measured)
    finally:
        d.stop()


@test
def answers_that_are_not_the_daemons_json_still_raise_ctnas_errors():
    d = Daemon(args=["--max-body", "65536"])
    try:
        c = CountingClient("http://127.0.0.1:%d" % d.port, retries=3)
        # libmicrohttpd's own HTML page for a request line too long.
        try:
            c.request("GET", "/v1/architectures",
                      query={"space": "x" * 100000})
            raise AssertionError("a 100 kB query was taken")
        except CtnasError as e:
            check_eq((e.status, e.code), (414, "http_error"), "414")
        # A body far over --max-body: the daemon answers 413 and closes
        # before taking it all; that answer, not a broken pipe.
        c.sent = 0
        try:
            c.upload(items(cells(12000, 7)), batch=12000)
            raise AssertionError("2 MB were taken under --max-body 64 KiB")
        except CtnasError as e:
            check_eq(e.status, 413, "413")
        check_eq(c.sent, 1, "not sent again")
        check_eq(c.health()["status"], "ok", "the client goes on")
    finally:
        d.stop()


@test
def errors_raise_and_busy_answers_are_retried():
    d = Daemon(args=["--max-jobs", "1"])
    try:
        c = Client("http://127.0.0.1:%d" % d.port, retries=0)
        try:
            c.compare("|bogus~0|", "|bogus~0|", space="nasbench201")
            raise AssertionError("a bad cell was compared")
        except CtnasError as e:
            check_eq(e.status, 400, "status")
            check(e.field, "the field is named: %r" % e.field)
        try:
            c.get_search(999)
            raise AssertionError("an unknown search was found")
        except CtnasError as e:
            check_eq((e.status, e.code), (404, "not_found"), "unknown id")
        c.upload(items(cells(40, 4)))
        s = c.search("nasbench201", "cifar10", comparator="train",
                     rounds=2, suggestions=2, steps=20, polish=0)
        c.wait("/v1/searches/%d" % s["id"], 0.1, until=("waiting",))
        try:
            c.train("nasbench201", "cifar10")
            raise AssertionError("a job over --max-jobs was taken")
        except CtnasError as e:
            check_eq(e.status, 429, "over --max-jobs")
        # With retries, a 429 waits (capped by max_wait) and tries again.
        r = CountingClient("http://127.0.0.1:%d" % d.port, retries=2,
                           max_wait=0.2)
        t0 = time.time()
        try:
            r.train("nasbench201", "cifar10")
            raise AssertionError("a job over --max-jobs was taken")
        except CtnasError as e:
            check_eq(e.status, 429, "still over after the retries")
        check_eq(r.sent, 3, "sent again twice")
        check(time.time() - t0 >= 0.4, "each after the capped wait")
        c.cancel_search(s["id"])
        job = r.train("nasbench201", "cifar10", epochs=5, poll=0.1)
        check_eq(job["state"], "succeeded", "room once the search ended")
    finally:
        d.stop()


@test
def a_restarted_daemon_is_reconnected():
    d = Daemon()
    port, db = d.port, d.db
    c = Client("http://127.0.0.1:%d" % port)
    try:
        ids = c.upload(items(cells(5, 5)))
        check_eq(d.stop(), 0, "clean stop")
        d = Daemon(db=db, args=["--port", str(port)])
        check_eq(c.upload(items(cells(5, 5))), ids,
                 "the kept-alive connection was dropped and made again")
        check_eq(c.health()["status"], "ok", "and stays usable")
    finally:
        d.stop()


if __name__ == "__main__":
    main()

"""Daemon life cycle: flags and environment, the database lock, schema
versions, graceful shutdown with a request in flight, log format."""
import itertools
import os
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import time

from ctnas_testlib import (CTNASD, NB201_OPS, Daemon, check, check_eq, main,
                           nb201_cell, run_ctnasd, test, token_file,
                           workdir)


@test
def help_and_version():
    st, out, _ = run_ctnasd("--help")
    check_eq(st, 0, "--help status")
    for flag in ("--listen", "--port", "--db", "--threads", "--log-level",
                 "CTNASD_PORT", "--job-retention", "--tls-cert",
                 "--tls-key", "import"):
        check(flag in out, "--help mentions %s" % flag)
    st, out, _ = run_ctnasd("--version")
    check_eq(st, 0, "--version status")
    check(re.match(r"^ctnasd \d+\.\d+\.\d+\s*$", out), "version %r" % out)


@test
def bad_flags_exit_2_with_a_message():
    for args, word in ((["--port", "70000"], "--port"),
                       (["--threads", "x"], "--threads"),
                       (["--log-level", "loud"], "--log-level"),
                       (["--job-retention", "30days"], "--job-retention"),
                       (["--listen", "999.1.1.1"], "--listen"),
                       (["--frobnicate"], "--frobnicate"),
                       (["--max-body", "2000000", "--max-buffered",
                         "1000000"], "--max-buffered"),
                       (["fly"], "fly")):
        st, _, err = run_ctnasd(*args)
        check_eq(st, 2, "status for %r" % args)
        check(word in err, "message names %s: %r" % (word, err))
    st, _, err = run_ctnasd(env={"CTNASD_THREADS": "0"})
    check_eq(st, 2, "bad environment value")
    check("CTNASD_THREADS" in err, "names the variable: %r" % err)


@test
def environment_configures_the_daemon():
    w = workdir()
    pf = os.path.join(w, "port")
    db = os.path.join(w, "env.db")
    import subprocess
    from ctnas_testlib import CTNASD
    env = dict(os.environ, CTNASD_PORT="0", CTNASD_PORT_FILE=pf,
               CTNASD_DB=db, CTNASD_LOG_LEVEL="warn", CTNASD_THREADS="2")
    p = subprocess.Popen([CTNASD], env=env, stderr=subprocess.PIPE,
                         stdout=subprocess.DEVNULL)
    for _ in range(1500):
        if os.path.exists(pf):
            break
        time.sleep(0.02)
    check(os.path.exists(pf), "port file written")
    check(os.path.exists(db), "database created where CTNASD_DB says")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    check_eq(p.returncode, 0, "exit status")
    # warn level: the info lines (listening, stopped) are not printed.
    check("listening" not in err.decode(), "log level honoured: %r" % err)


@test
def second_daemon_on_the_same_database_refuses():
    a = Daemon()
    try:
        st, _, err = run_ctnasd("--port", "0", "--db", a.db, timeout=30)
        check(st != 0, "second daemon exits non-zero")
        check("in use" in err and str(a.proc.pid) in err,
              "clear message with the pid: %r" % err)
        st, _, _ = a.get("/v1/health")
        check_eq(st, 200, "first daemon unaffected")
        st, _, err = run_ctnasd("import", "--db", a.db, "--space",
                                "nasbench201", "--dataset", "c", "/dev/null")
        check(st != 0 and "in use" in err, "import refuses too: %r" % err)
    finally:
        check_eq(a.stop(), 0, "first daemon stops cleanly")


@test
def the_port_file_names_only_a_live_daemon():
    # A script that restarts the daemon and reads --port-file must never
    # get the port of the one before: the file goes on a clean stop, and
    # one a kill -9 left is gone before the new daemon binds.
    a = Daemon()
    check(os.path.exists(a.port_file), "written once listening")
    check_eq(a.stop(), 0, "stop")
    check(not os.path.exists(a.port_file), "removed on a clean stop")
    w = workdir()
    pf = os.path.join(w, "port")
    with open(pf, "w") as f:
        f.write("1\n")
    p = subprocess.Popen([CTNASD, "--port", "0",
                          "--port-file", pf, "--db", a.db],
                         stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        seen = set()
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with open(pf) as f:
                    seen.add(f.read().strip())
            except FileNotFoundError:
                seen.add(None)
            if seen - {"1", None}:
                break
            time.sleep(0.001)
        port = int((seen - {"1", None}).pop())
        check(port > 1, "the new port: %r" % seen)
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.close()
    finally:
        p.send_signal(signal.SIGTERM)
        check_eq(p.wait(30), 0, "stops cleanly")
    check(not os.path.exists(pf), "removed again")


@test
def vacuum_gives_freed_space_back_offline():
    # Upload 3,000 cells, delete 2,900: the file keeps its size until
    # vacuumed, which refuses while a daemon holds the database.
    d = Daemon()
    cells = itertools.islice(itertools.product(NB201_OPS, repeat=6), 3000)
    items = [{"space": "nasbench201", "arch": nb201_cell(list(ops)),
              "measurements": [{"dataset": "v", "metric": "acc",
                                "value": i / 10, "source": "x" * 40}]}
             for i, ops in enumerate(cells)]
    ids = []
    for k in range(0, 3000, 1000):
        st, _, doc = d.post("/v1/architectures", {"items": items[k:k + 1000]})
        check_eq(st, 201, "upload")
        ids += [x["id"] for x in doc["items"]]
    for i in ids[100:]:
        check_eq(d.request("DELETE", "/v1/architectures/%d" % i)[0], 200,
                 "delete")
    st, out, err = run_ctnasd("vacuum", "--db", d.db)
    check(st == 1 and "stop it first" in err, "refused while served: %r"
          % err)
    check_eq(d.stop(), 0, "stop")
    before = os.path.getsize(d.db)
    st, out, err = run_ctnasd("vacuum", "--db", d.db)
    check_eq(st, 0, "vacuum (%s)" % err)
    after = os.path.getsize(d.db)
    print("# %s" % out.strip())
    check(after < before / 3, "file %d -> %d bytes" % (before, after))
    check(re.search(r"MB -> [0-9.]+ MB", out), "says so: %r" % out)
    d = Daemon(db=d.db)
    try:
        st, _, doc = d.get("/v1/architectures?dataset=v&limit=1000")
        check_eq((st, doc["total"]), (200, 100), "the rest kept")
        check_eq([x["id"] for x in doc["items"]], ids[:100], "same ids")
    finally:
        check_eq(d.stop(), 0, "stop after")
    st, _, err = run_ctnasd("vacuum", "--db", os.path.join(workdir(), "no"))
    check(st == 1 and "no database" in err, "absent file: %r" % err)
    check(not os.path.exists(os.path.join(workdir(), "no")), "not created")
    empty = os.path.join(workdir(), "empty.db")
    open(empty, "w").close()
    st, _, err = run_ctnasd("vacuum", "--db", empty)
    check(st == 1 and "empty" in err, "an empty file: %r" % err)
    check_eq(os.path.getsize(empty), 0, "left as it was")
    st, _, err = run_ctnasd("vacuum", "--frob")
    check(st == 2 and "--frob" in err, "usage: %r" % err)


@test
def a_start_after_a_crash_says_so():
    a = Daemon()
    pid = a.proc.pid
    a.stop(signal.SIGKILL)
    b = Daemon(db=a.db)
    check("pid %d) did not stop cleanly" % pid in b.stderr(),
          "the crash is told: %r" % b.stderr()[-400:])
    check_eq(b.stop(), 0, "clean stop")
    c = Daemon(db=a.db)
    check("did not stop cleanly" not in c.stderr(), "not after a clean one")
    check_eq(c.stop(), 0, "clean stop")


@test
def sighup_is_ignored_and_a_low_open_files_limit_is_told():
    # SIGHUP's default would kill the daemon without its shutdown.
    d = Daemon()
    d.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    check_eq(d.get("/v1/health")[0], 200, "still serving after SIGHUP")
    check("SIGHUP: ignored" in d.stderr(), "says so")
    check_eq(d.stop(), 0, "then stops cleanly")
    # An open files limit too low for --max-connections, which the
    # daemon cannot raise (hard limit): a warning names both.

    def low():
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))
    w = workdir()
    p = subprocess.Popen([CTNASD, "--port", "0", "--db",
                          os.path.join(w, "n.db"), "--port-file",
                          os.path.join(w, "port")], preexec_fn=low,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.time() + 30
    while not os.path.exists(os.path.join(w, "port")):
        check(time.time() < deadline and p.poll() is None, "starts")
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    check_eq(p.returncode, 0, "clean stop")
    check("open files limit (200)" in err and "--max-connections" in err,
          "warned: %r" % err[:300])


@test
def second_daemon_on_the_same_port_refuses():
    a = Daemon()
    try:
        # A connection served and closed by the daemon leaves TIME_WAIT
        # sockets on its port, which a restart must bind over.
        check_eq(a.get("/v1/health")[0], 200, "first daemon up")
        w = workdir()
        st, _, err = run_ctnasd("--port", str(a.port), "--db",
                                os.path.join(w, "other.db"), timeout=30)
        check(st != 0, "second daemon on the port exits non-zero")
        check("cannot listen" in err and str(a.port) in err,
              "says so, naming the port: %r" % err)
        check_eq(a.get("/v1/health")[0], 200, "first daemon unaffected")
    finally:
        check_eq(a.stop(), 0, "first daemon stops cleanly")
    b = Daemon(db=a.db, args=["--port", str(a.port)])
    try:
        check_eq(b.port, a.port, "restart binds the same port at once")
        check_eq(b.get("/v1/health")[0], 200, "and serves")
    finally:
        b.stop()


@test
def newer_schema_is_refused_and_older_upgraded():
    w = workdir()
    db = os.path.join(w, "future.db")
    c = sqlite3.connect(db)
    c.execute("PRAGMA user_version = 999")
    c.commit()
    c.close()
    st, _, err = run_ctnasd("--port", "0", "--db", db, timeout=30)
    check(st != 0, "refused")
    check("newer" in err and "999" in err, "says why: %r" % err)
    # An empty (version 0) database is upgraded in place.
    db0 = os.path.join(w, "old.db")
    sqlite3.connect(db0).close()
    d = Daemon(db=db0)
    st, _, doc = d.get("/v1/health")
    check_eq(d.stop(), 0, "clean stop")
    c = sqlite3.connect(db0)
    v = c.execute("PRAGMA user_version").fetchone()[0]
    mode = c.execute("PRAGMA journal_mode").fetchone()[0]
    c.close()
    check_eq(v, doc["database"]["schema_version"], "upgraded version")
    check(v >= 1, "at least one migration")
    check_eq(mode, "wal", "WAL mode")


@test
def sigterm_lets_the_request_in_flight_finish():
    d = Daemon()
    cell = nb201_cell(["nor_conv_3x3", "skip_connect", "none",
                       "nor_conv_1x1", "avg_pool_3x3", "nor_conv_3x3"])
    body = ('{"space":"nasbench201","arch":"%s","measurements":'
            '[{"dataset":"cifar10","metric":"acc","value":91.5}]}' % cell
            ).encode()
    s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
    s.sendall(b"POST /v1/architectures HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
              % len(body) + body[:20])
    time.sleep(0.3)
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    check(d.proc.poll() is None, "still running while a request is open")
    s.sendall(body[20:])
    resp = b""
    while b"\r\n\r\n" not in resp or not resp.rstrip().endswith(b"}"):
        got = s.recv(65536)
        if not got:
            break
        resp += got
    s.close()
    check(resp.startswith(b"HTTP/1.1 201"), "answered: %r" % resp[:80])
    d.proc.wait(30)
    check_eq(d.proc.returncode, 0, "exit 0 after draining")
    # The acknowledged write is there after a restart.
    d2 = Daemon(db=d.db)
    st, _, doc = d2.get("/v1/architectures")
    check_eq(doc["total"], 1, "write kept")
    check_eq(d2.stop(signal.SIGINT), 0, "SIGINT stops cleanly too")
    c = sqlite3.connect(d.db)
    check_eq(c.execute("PRAGMA integrity_check").fetchone()[0], "ok",
             "integrity")
    c.close()


@test
def token_guards_every_route_but_health():
    w = workdir()
    secret = "s3cret-token-" + "x" * 20
    tf = token_file(secret)
    d = Daemon(args=["--token", tf])
    try:
        st, _, _ = d.get("/v1/health")
        check_eq(st, 200, "health needs no token")
        check_eq(d.request("HEAD", "/v1/health")[0], 200, "nor a HEAD of it")
        check_eq(d.request("HEAD", "/v1/spaces")[0], 401, "HEAD elsewhere "
                 "does")
        st, h, doc = d.get("/v1/spaces")
        check_eq(st, 401, "no token")
        check_eq(doc["error"]["code"], "unauthorized", "code")
        check(h.get("www-authenticate", "").startswith("Bearer"),
              "WWW-Authenticate: %r" % h)
        for bad in ("Bearer wrong", "Bearer " + secret[:-1],
                    "Bearer " + secret + "x", "Basic " + secret):
            st, _, _ = d.get("/v1/spaces", headers={"Authorization": bad})
            check_eq(st, 401, "rejected %r" % bad)
        st, _, _ = d.get("/v1/spaces",
                         headers={"Authorization": "Bearer " + secret})
        check_eq(st, 200, "right token")
        st, _, _ = d.post("/v1/architectures", {"items": []})
        check_eq(st, 401, "writes need it too")
        st, _, _ = d.get("/v1/nothing")
        check_eq(st, 401, "unknown routes do not leak before auth")
        check_eq(d.get("/metrics")[0], 401, "metrics need it")
        st, h, _ = d.get("/metrics",
                         headers={"Authorization": "Bearer " + secret})
        check_eq(st, 200, "a scrape with the token")
    finally:
        check_eq(d.stop(), 0, "clean stop")
    check(secret not in d.stderr(), "the token never appears in the logs")
    # An unusable token file refuses to start, without quoting it.
    with open(tf, "w") as f:
        f.write("short\n")
    st, _, err = run_ctnasd("--port", "0", "--db",
                            os.path.join(w, "t.db"), "--token", tf)
    check(st != 0 and "token" in err and "short" not in err,
          "refused: %r" % err)
    st, _, err = run_ctnasd("--port", "0", "--db", os.path.join(w, "t.db"),
                            "--token", os.path.join(w, "absent"))
    check(st != 0 and "token" in err, "missing file: %r" % err)


@test
def binding_beyond_loopback_without_token_warns():
    d = Daemon(args=["--listen", "0.0.0.0"])
    d.stop()
    check("without --token" in d.stderr(), "warning logged")


@test
def slow_or_silent_clients_cannot_hold_the_daemon():
    d = Daemon(args=["--timeout", "1", "--threads", "2",
                     "--max-connections", "40"])
    try:
        slow = []
        for _ in range(30):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")  # unfinished
            slow.append(s)
        t0 = time.time()
        st, _, _ = d.get("/v1/health", timeout=5)
        check_eq(st, 200, "served beside 30 slow clients")
        check(time.time() - t0 < 1.5, "promptly")
        time.sleep(2.5)
        closed = 0
        for s in slow:
            try:
                s.settimeout(2)
                closed += s.recv(1) == b""
            except OSError:
                closed += 1
            s.close()
        check_eq(closed, 30, "idle connections closed after --timeout")
    finally:
        check_eq(d.stop(), 0, "clean stop")


@test
def logs_are_single_lines_with_time_and_level():
    d = Daemon(args=["--log-level", "info"])
    d.get("/v1/health")
    d.stop()
    lines = [l for l in d.stderr().splitlines() if l.strip()]
    check(len(lines) >= 2, "some log lines")
    pat = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                     r"(error|warn |info |debug) \S")
    for l in lines:
        check(pat.match(l), "log line shape: %r" % l)


if __name__ == "__main__":
    main()

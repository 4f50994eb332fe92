"""Limits of the HTTP layer.

--max-connections: the limit counts the open connections of the whole
daemon, whatever the number of worker threads.  With N connections open, a
new one is answered 503 (code "busy") and closed; the open ones go on
working, and a freed slot is taken by the next new connection.

A client gone in the middle of a request frees its slot at once.

--threads: while every worker runs a long request, the other connections
are still read and kept alive, health answers (and counts the busy and
the queued), and GETs go ahead of the queued POSTs; a read whose client
left while it waited is not run; a stop answers what was queued."""
import itertools
import json
import re
import signal
import socket
import threading
import time

from ctnas_testlib import (NB201_OPS, Daemon, check, check_eq, main,
                           nb201_cell, test)


class Conn:
    """One raw keep-alive HTTP/1.1 connection."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""

    def get(self, path="/v1/health"):
        """(status, headers, parsed body); status None when the daemon
        closed the connection without an answer."""
        self.s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path)
                       .encode())
        while b"\r\n\r\n" not in self.buf:
            try:
                chunk = self.s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None, {}, None
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            check(chunk, "body cut short")
            self.buf += chunk
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, json.loads(body) if body else None

    def closed_by_peer(self):
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


def check_refused(port, limit):
    """A new connection is answered 503 busy, then closed."""
    c = Conn(port)
    st, h, doc = c.get()
    check_eq(st, 503, "connection over the limit")
    check_eq(h.get("connection"), "close", "Connection header")
    check_eq(h.get("retry-after"), "1", "Retry-After header")
    e = doc["error"]
    check_eq(e["code"], "busy", "error code")
    check("--max-connections %d" % limit in e["message"],
          "message names the flag: %r" % e["message"])
    check(c.closed_by_peer(), "closed after the answer")
    c.close()


def connect_until_served(port, seconds=20):
    """A new connection that is served, once a closed one is noticed by
    the daemon (closing is asynchronous); None when none is in time."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        c = Conn(port)
        st, _, _ = c.get()
        if st == 200:
            return c
        check_eq(st, 503, "refused while full")
        c.close()
        time.sleep(0.05)
    return None


def limit_is_total(threads, limit):
    d = Daemon(args=["--threads", str(threads), "--max-connections",
                     str(limit), "--timeout", "120"])
    held = []
    try:
        # Each held connection is served once, so the daemon counts it,
        # then stays open and idle.
        for i in range(limit):
            c = Conn(d.port)
            st, _, _ = c.get()
            check_eq(st, 200, "connection %d of %d served" % (i + 1, limit))
            held.append(c)
        check_refused(d.port, limit)
        check_refused(d.port, limit)  # refused ones take no slot
        for i, c in enumerate(held):
            st, _, doc = c.get("/v1/spaces")
            check_eq(st, 200, "held connection %d still works" % i)
            check(doc["items"], "and answers")
        # One slot freed: one new connection is served, the next refused.
        held.pop().close()
        c = connect_until_served(d.port)
        check(c is not None, "a freed slot is taken again")
        held.append(c)
        check_refused(d.port, limit)
        # All closed: as many new connections as the limit are served.
        for c in held:
            c.close()
        held = []
        for i in range(limit):
            c = connect_until_served(d.port)
            check(c is not None, "new connection %d served after the "
                  "others closed" % i)
            held.append(c)
        check_refused(d.port, limit)
    finally:
        for c in held:
            c.close()
        check_eq(d.stop(), 0, "clean stop")


@test
def limit_counts_all_threads_uneven_split():
    # 3 connections over 2 threads: MHD's per-thread split (2 + 1) would
    # depend on where each connection lands.
    limit_is_total(2, 3)


@test
def limit_smaller_than_the_thread_count():
    limit_is_total(4, 2)


@test
def limit_of_one_single_thread():
    limit_is_total(1, 1)


@test
def a_client_gone_mid_request_frees_its_slot():
    # Clients that send half a request and close: with epoll,
    # libmicrohttpd 0.9.75 left such connections in CLOSE-WAIT, holding
    # their --max-connections slots until --timeout (60 s here).
    d = Daemon(args=["--max-connections", "3", "--timeout", "60"])
    try:
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=20)
            s.sendall(b"POST /v1/compare HTTP/1.1\r\nHost: t\r\n"
                      b"Content-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n{\"a\":")
            s.close()
        c = connect_until_served(d.port, seconds=10)
        check(c is not None, "a new connection is served within 10 s")
        c.close()
    finally:
        check_eq(d.stop(), 0, "clean stop")


def big_upload(dataset):
    """Every NAS-Bench-201 cell with one measurement: about 0.6 s of one
    worker (more under the sanitizers)."""
    cells = (nb201_cell(list(o))
             for o in itertools.product(NB201_OPS, repeat=6))
    return {"items": [{"space": "nasbench201", "arch": c,
                       "measurements": [{"dataset": dataset,
                                         "metric": "acc",
                                         "value": 50.0 + i % 97 / 10}]}
                      for i, c in enumerate(cells)]}


class Upload(threading.Thread):
    """big_upload(dataset) posted on its own connection; .status is the
    answer's status, or the error the client met."""

    def __init__(self, d, dataset):
        super().__init__()
        self.d, self.body, self.status = d, big_upload(dataset), None

    def run(self):
        try:
            self.status = self.d.post("/v1/architectures", self.body)[0]
        except OSError as e:
            self.status = repr(e)


def uploads_in_flight(d, datasets):
    ts = [Upload(d, ds) for ds in datasets]  # bodies built beforehand
    for t in ts:
        t.start()
    return ts


@test
def a_busy_worker_holds_up_no_other_connection():
    # One worker, three uploads that keep it busy for over a second.
    # When requests ran on the I/O threads, the thread in an upload read
    # no other connection: health and the idle connection's GET were
    # answered after the last upload.
    d = Daemon(args=["--threads", "1", "--timeout", "5", "--max-batch",
                     "20000"])
    try:
        ups = [Upload(d, ds) for ds in ["d1", "d2", "d3"]]
        idle = Conn(d.port)
        check_eq(idle.get()[0], 200, "the idle connection served once")
        for t in ups:
            t.start()
        # Health answers on the I/O thread at once, and says so: polled
        # until an upload runs with another queued (when depends on how
        # fast the bodies arrive; slower under the sanitizers).
        mon = Conn(d.port)
        r, seen, deadline = None, False, time.time() + 60
        while not seen and time.time() < deadline and \
                any(t.is_alive() for t in ups):
            st, _, doc = mon.get()
            check_eq(st, 200, "health while the worker is busy")
            r = doc["requests"]
            check_eq(r["workers"], 1, "one worker")
            seen = r["busy"] == 1 and r["queued"] >= 1
            time.sleep(0.02)
        check(seen, "one upload running, another queued: %r" % r)
        mon.close()
        # The idle connection's GET waits for the worker (without timing
        # out: the request was read), then goes ahead of the uploads
        # still queued.
        st, _, doc = idle.get("/v1/spaces")
        check_eq(st, 200, "the keep-alive connection is answered")
        check(doc["items"], "with its answer")
        check(any(t.is_alive() for t in ups), "before the last upload")
        for t in ups:
            t.join(120)
            check_eq(t.status, 201, "upload answered")
        idle.close()
    finally:
        check_eq(d.stop(), 0, "clean stop")


@test
def a_read_whose_client_left_is_not_run():
    # While the one worker is busy, clients send requests and leave.
    # Their reads (a GET, a compare) are not run: nobody would get the
    # answer.  A write is run all the same: its client may count on it.
    d = Daemon(args=["--threads", "1", "--max-batch", "20000"])
    try:
        up = Upload(d, "d1")
        up.start()
        time.sleep(0.3)
        gone = [b"GET /v1/spaces HTTP/1.1\r\nHost: t\r\n\r\n",
                b"POST /v1/compare HTTP/1.1\r\nHost: t\r\n"
                b"Content-Type: application/json\r\nContent-Length: 2"
                b"\r\n\r\n{}",
                b"POST /v1/architectures HTTP/1.1\r\nHost: t\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d"
                b"\r\n\r\n%s"]
        item = json.dumps({"space": "nasbench201",
                           "arch": nb201_cell(["none"] * 6),
                           "measurements": [{"dataset": "left",
                                             "metric": "acc",
                                             "value": 1.0}]}).encode()
        gone[2] = gone[2] % (len(item), item)
        for r in gone:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=20)
            s.sendall(r)
            s.close()
        check(up.is_alive(), "sent while the worker was busy")
        up.join(120)
        check_eq(up.status, 201, "the upload answered")
        deadline = time.time() + 20
        while time.time() < deadline:
            st, _, doc = d.get("/v1/architectures?dataset=left")
            if doc["total"]:
                break
            time.sleep(0.05)
        check_eq(doc["total"], 1, "the abandoned upload was stored")
    finally:
        check_eq(d.stop(), 0, "clean stop")
    log = d.stderr()
    check_eq(log.count("the client left before it ran; not run"), 2,
             "both reads skipped")
    check("GET /v1/spaces ->" not in log, "the GET did not run")
    check("POST /v1/compare ->" not in log, "nor the compare")


@test
def a_stop_answers_the_requests_queued():
    # Each upload is answered: 201 within the 10 s grace (all of them on
    # an idle machine), or 503 for one still queued after it.
    d = Daemon(args=["--threads", "1", "--max-batch", "20000"])
    ts = uploads_in_flight(d, ["d1", "d2", "d3"])
    time.sleep(0.3)
    check_eq(d.stop(), 0, "clean stop with requests running and queued")
    for t in ts:
        t.join(120)
        check(t.status in (201, 503), "answered: %r" % t.status)
    # Acknowledged means committed; refused means not run.
    d2 = Daemon(db=d.db)
    try:
        for t, ds in zip(ts, ["d1", "d2", "d3"]):
            st, _, doc = d2.get("/v1/architectures?dataset=%s&limit=1"
                                % ds)
            check_eq(st, 200, "list")
            check_eq(doc["total"], 15625 if t.status == 201 else 0,
                     "%s stored as answered (%d)" % (ds, t.status))
    finally:
        check_eq(d2.stop(), 0, "clean stop")


@test
def a_request_completed_during_the_stop_is_told_503():
    # A half-sent request keeps the stop waiting its whole grace (10 s).
    # Requests that keep-alive connections complete in it are served;
    # after it, while the workers have stopped and libmicrohttpd has not
    # yet, they are told 503 (they were once pushed to the freed queue:
    # a use after free, which the sanitizer build catches), then the
    # connections close.
    d = Daemon(args=["--timeout", "60"])
    half = socket.create_connection(("127.0.0.1", d.port), timeout=20)
    half.sendall(b"POST /v1/architectures HTTP/1.1\r\nHost: t\r\n"
                 b"Content-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{")
    conns = [Conn(d.port) for _ in range(8)]
    for c in conns:
        check_eq(c.get("/v1/spaces")[0], 200, "served before the stop")
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(10.2)
    told = []
    for c in conns:
        st, h, doc = c.get("/v1/spaces")
        check(st in (200, 503, None), "served, refused or closed: %r" % st)
        if st == 503:
            check_eq(doc["error"]["code"], "busy", "code")
        told.append(st)
        time.sleep(0.1)
    print("# told %r" % told)
    check(503 in told or None in told, "some after the grace: %r" % told)
    check_eq(d.stop(), 0, "clean stop (%r)" % told)
    half.close()


def upload_of(n_bytes, dataset):
    """An upload of a few cells, padded with spaces to n_bytes."""
    doc = json.dumps({"items": [
        {"space": "nasbench201", "arch": nb201_cell(list(o)),
         "measurements": [{"dataset": dataset, "metric": "acc",
                           "value": 60.0}]}
        for o in itertools.islice(
            itertools.product(NB201_OPS, repeat=6), 3)]}).encode()
    return doc + b" " * (n_bytes - len(doc))


def post_head(n, extra=b""):
    return (b"POST /v1/architectures HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\n%sContent-Length: %d"
            b"\r\n\r\n" % (extra, n))


def answer_of(s):
    """The status and JSON body of the one answer on s."""
    data = b""
    while b"\r\n\r\n" not in data or \
            len(data.split(b"\r\n\r\n", 1)[1]) < int(re.search(
                rb"Content-Length: (\d+)", data).group(1)):
        got = s.recv(65536)
        check(got, "answer cut short: %r" % data[:200])
        data += got
    head, body = data.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), head, json.loads(body)


@test
def a_chunked_upload_of_megabytes_is_stored():
    # Chunks grow the body from a heap buffer into a mapping (1 MiB and
    # more), which then grows in place or moves; every byte must arrive.
    d = Daemon(args=["--max-batch", "20000"])
    try:
        body = json.dumps(big_upload("chunky")).encode()
        check(len(body) > 2 << 20, "over 2 MiB: %d" % len(body))
        s = socket.create_connection(("127.0.0.1", d.port), timeout=60)
        s.sendall(b"POST /v1/architectures HTTP/1.1\r\nHost: t\r\n"
                  b"Content-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(body), 50000):
            part = body[i:i + 50000]
            s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        s.sendall(b"0\r\n\r\n")
        st, _, doc = answer_of(s)
        s.close()
        check_eq((st, len(doc["items"])), (201, 15625), "stored")
        st, _, doc = d.get("/v1/architectures?dataset=chunky&limit=1")
        check_eq(doc["total"], 15625, "every cell")
    finally:
        check_eq(d.stop(), 0, "clean stop")


def buffered(mon, *want):
    """Poll health on mon until buffered_bytes is one of want; the last
    seen."""
    deadline = time.time() + 20
    while True:
        r = mon.get()[2]["requests"]
        if r["buffered_bytes"] in want or time.time() > deadline:
            return r
        time.sleep(0.02)


@test
def bodies_beyond_max_buffered_are_told_503():
    # Room for 100,000 bytes of bodies.  One upload announces 60,000 and
    # sends 55,000 of them: its length is counted from its headers (the
    # bodies let in can complete).
    d = Daemon(args=["--max-body", "60000", "--max-buffered", "100000"])
    try:
        # A client gone mid-body gives back what it held and promised
        # (and leaves no trace for the sweep further on to trip on).
        mon = Conn(d.port)
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=20)
            s.sendall(post_head(50000) + b"{" + b" " * 999)
            check_eq(buffered(mon, 50000)["buffered_bytes"], 50000,
                     "promised")
            s.close()
            check_eq(buffered(mon, 0)["buffered_bytes"], 0, "given back")
        slow = socket.create_connection(("127.0.0.1", d.port), timeout=20)
        body = upload_of(60000, "slow")
        t0 = time.time()
        slow.sendall(post_head(60000) + body[:55000])
        r = buffered(mon, 60000)
        check_eq((r["buffered_bytes"], r["buffered_limit"]),
                 (60000, 100000), "the announced length is counted")
        # 50,000 more do not fit: a client waiting for "100 Continue" is
        # told at once, before it sends its body.
        s = socket.create_connection(("127.0.0.1", d.port), timeout=20)
        s.sendall(post_head(50000, b"Expect: 100-continue\r\n"))
        st, head, doc = answer_of(s)
        check_eq((st, doc["error"]["code"], doc["error"]["field"]),
                 (503, "busy", "body"), "told at once")
        check(b"Retry-After: 1" in head, "with Retry-After: %r" % head)
        check(b"100 Continue" not in head, "no 100 Continue: %r" % head)
        s.close()
        # Any other client is told once its body is read.
        s = socket.create_connection(("127.0.0.1", d.port), timeout=20)
        s.sendall(post_head(50000) + upload_of(50000, "refused"))
        st, _, doc = answer_of(s)
        check_eq((st, doc["error"]["field"]), (503, "body"),
                 "told after the body")
        s.close()
        # Chunks are counted as they come.
        s = socket.create_connection(("127.0.0.1", d.port), timeout=20)
        s.sendall(b"POST /v1/architectures HTTP/1.1\r\nHost: t\r\n"
                  b"Content-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        chunked = upload_of(46000, "chunked")
        for i in range(0, len(chunked), 15000):
            part = chunked[i:i + 15000]
            s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        s.sendall(b"0\r\n\r\n")
        st, _, doc = answer_of(s)
        check_eq((st, doc["error"]["code"]), (503, "busy"), "chunked")
        s.close()
        # (55,000 if a slow machine took 2 s to get here: see below)
        check(buffered(mon, 60000, 55000)["buffered_bytes"] in
              (60000, 55000), "the refused gave back what they held")
        # A body that fits still goes through, and is given back once
        # parsed.
        s = socket.create_connection(("127.0.0.1", d.port), timeout=20)
        s.sendall(post_head(30000) + upload_of(30000, "small"))
        check_eq(answer_of(s)[0], 201, "a body that fits")
        s.close()
        # The slow upload has stalled: past 2 s, a body that needs the
        # room its promise holds gets it (the 5,000 bytes not sent), and
        # what the slow one sends then counts as it comes.
        time.sleep(max(0, t0 + 2.5 - time.time()))
        s = socket.create_connection(("127.0.0.1", d.port), timeout=20)
        s.sendall(post_head(44000) + upload_of(44000, "after"))
        check_eq(answer_of(s)[0], 201, "the stalled promise gave way")
        s.close()
        check_eq(buffered(mon, 55000)["buffered_bytes"], 55000,
                 "the stalled upload holds what it sent")
        slow.sendall(body[55000:])
        st, _, doc = answer_of(slow)
        check_eq(st, 201, "the slow upload stored")
        slow.close()
        check_eq(buffered(mon, 0)["buffered_bytes"], 0,
                 "nothing held once answered")
        s = socket.create_connection(("127.0.0.1", d.port), timeout=20)
        s.sendall(post_head(50000) + upload_of(50000, "again"))
        check_eq(answer_of(s)[0], 201, "the refused upload fits now")
        s.close()
        mon.close()
        for ds, want in (("slow", 3), ("small", 3), ("after", 3),
                         ("again", 3), ("refused", 0), ("chunked", 0)):
            st, _, doc = d.get("/v1/architectures?dataset=" + ds)
            check_eq(doc["total"], want, "stored with dataset " + ds)
    finally:
        check_eq(d.stop(), 0, "clean stop")
    # Unset, the limit follows a --max-body above its default.
    d = Daemon(args=["--max-body", "300000000"])
    try:
        r = d.get("/v1/health")[2]["requests"]
        check_eq(r["buffered_limit"], 300000000, "follows --max-body")
    finally:
        check_eq(d.stop(), 0, "clean stop")


if __name__ == "__main__":
    main()

"""--max-connections: the limit counts the open connections of the whole
daemon, whatever the number of HTTP threads.  With N connections open, a
new one is answered 503 (code "busy") and closed; the open ones go on
working, and a freed slot is taken by the next new connection."""
import json
import socket
import time

from ctnas_testlib import Daemon, check, check_eq, main, test


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


if __name__ == "__main__":
    main()

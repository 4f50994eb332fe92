"""HTTPS (--tls-cert, --tls-key): the API over TLS with real certificates
made by the openssl command, plain HTTP and stalled handshakes on the
HTTPS port, and the credentials the daemon refuses to start with."""
import http.client
import json
import os
import random
import socket
import ssl
import subprocess
import time

from ctnas_testlib import (Daemon, check, check_eq, main, make_cert,
                           random_nb201, run_ctnasd, test, token_file,
                           workdir)


_CERT = None


def cert():
    global _CERT
    if _CERT is None:
        _CERT = make_cert(workdir(), "server")
    return _CERT


def https_health(port, ctx):
    """GET /v1/health over a new HTTPS connection trusting ctx: (status,
    the connection's TLS version)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                       context=ctx)
    try:
        conn.request("GET", "/v1/health")
        return conn.getresponse().status, conn.sock.version()
    finally:
        conn.close()


def upload(n, seed):
    r = random.Random(seed)
    return {"items": [{"space": "nasbench201", "arch": random_nb201(r),
                       "measurements": [{"dataset": "cifar10",
                                         "metric": "test_accuracy",
                                         "value": r.uniform(10, 94)}]}
                      for _ in range(n)]}


@test
def the_api_answers_over_https():
    d = Daemon(tls=cert())
    try:
        conn = d.connection()
        conn.request("GET", "/v1/health")
        r = conn.getresponse()
        check_eq(r.status, 200, "health over HTTPS")
        check_eq(json.loads(r.read())["status"], "ok", "health")
        check(conn.sock.version() in ("TLSv1.2", "TLSv1.3"),
              "protocol %s" % conn.sock.version())
        # Keep-alive: an upload over 1 MiB (a body mapping) and reads of
        # what it stored, on the same TLS connection.
        body = json.dumps(upload(6000, 1)).encode()
        check(len(body) > 1 << 20, "body of %d bytes" % len(body))
        conn.request("POST", "/v1/architectures", body=body,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        doc = json.loads(r.read())
        check_eq(r.status, 201, "upload over HTTPS: %r" % (doc,)[:200])
        check_eq(len(doc["items"]), 6000, "every item answered")
        new = sum(1 for it in doc["items"] if it["new"])
        check(new > 4000, "%d new architectures" % new)
        conn.request("GET", "/v1/architectures?limit=5")
        r = conn.getresponse()
        check_eq(r.status, 200, "list on the same connection")
        check_eq(len(json.loads(r.read())["items"]), 5, "a page of 5")
        conn.close()
        st, _, doc = d.get("/v1/architectures/999999")
        check_eq(st, 404, "errors are JSON over HTTPS too")
        check_eq(doc["error"]["code"], "not_found", "error code")
        check("HTTPS" in d.stderr(), "the log says HTTPS")
    finally:
        check_eq(d.stop(), 0, "clean stop")


@test
def the_token_still_applies_over_https():
    d = Daemon(tls=cert(),
               args=["--token", token_file("s3cret-token-0123456789")])
    try:
        st, _, _ = d.get("/v1/architectures")
        check_eq(st, 401, "no token")
        st, _, _ = d.get("/v1/architectures", headers={
            "Authorization": "Bearer s3cret-token-0123456789"})
        check_eq(st, 200, "token")
        st, _, _ = d.get("/v1/health")
        check_eq(st, 200, "health needs none")
    finally:
        d.stop()


@test
def a_client_that_trusts_another_certificate_is_refused():
    other, _ = make_cert(workdir(), "other")
    d = Daemon(tls=cert())
    try:
        ctx = ssl.create_default_context(cafile=other)
        try:
            https_health(d.port, ctx)
            raise AssertionError("a certificate nobody signed was trusted")
        except ssl.SSLCertVerificationError:
            pass
        st, _, _ = d.get("/v1/health")
        check_eq(st, 200, "still serving")
    finally:
        d.stop()


@test
def tls_1_2_clients_are_served():
    d = Daemon(tls=cert())
    try:
        ctx = ssl.create_default_context(cafile=cert()[0])
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        check_eq(https_health(d.port, ctx), (200, "TLSv1.2"), "TLS 1.2")
    finally:
        d.stop()


@test
def plain_http_and_stalled_handshakes_hold_up_nobody():
    d = Daemon(tls=cert(), args=["--timeout", "2"])
    try:
        # Plain HTTP on the HTTPS port: refused, not served in clear.
        plain = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        try:
            plain.request("GET", "/v1/health")
            r = plain.getresponse()
            check(r.status != 200, "plain HTTP answered %d" % r.status)
        except (ConnectionError, http.client.HTTPException, OSError):
            pass
        # A handshake begun and left, and garbage: others are served at
        # once, and the stalled one is dropped after --timeout.
        stalled = socket.create_connection(("127.0.0.1", d.port))
        stalled.sendall(b"\x16\x03\x01")
        junk = socket.create_connection(("127.0.0.1", d.port))
        junk.sendall(os.urandom(4096))
        t0 = time.time()
        st, _, _ = d.get("/v1/health")
        check_eq(st, 200, "served beside them")
        check(time.time() - t0 < 5, "not held up")
        # Dropped after --timeout, with at most a TLS alert (0x15).
        stalled.settimeout(10)
        t0 = time.time()
        got = b""
        try:
            while True:
                b = stalled.recv(4096)
                if not b:
                    break
                got += b
        except ConnectionError:
            pass
        check(got == b"" or got[:1] == b"\x15", "only an alert: %r" % got)
        check(time.time() - t0 < 9, "closed within about --timeout")
        junk.close()
        stalled.close()
        st, _, doc = d.get("/v1/health")
        check_eq(st, 200, "still serving")
    finally:
        check_eq(d.stop(), 0, "clean stop")


def refused(args, status, words, env=None):
    """ctnasd serve with args exits status, its stderr naming words."""
    w = workdir()
    db = os.path.join(w, "x.db")
    st, _, err = run_ctnasd("--port", "0", "--db", db, *args, env=env,
                            timeout=60)
    check_eq(st, status, "exit status for %r (stderr %r)" % (args, err))
    for word in words:
        check(word in err, "message names %r: %r" % (word, err))
    return db, err


@test
def wrong_credentials_stop_the_start_with_the_flag_named():
    c, k = cert()
    w = workdir()
    refused(["--tls-cert", c], 2, ["--tls-key"])
    refused([], 2, ["--tls-cert"], env={"CTNASD_TLS_KEY": k})
    db, _ = refused(["--tls-cert", os.path.join(w, "absent"), "--tls-key",
                     k], 1, ["--tls-cert", "absent"])
    check(not os.path.exists(db), "told before the database is made")
    empty = os.path.join(w, "empty")
    open(empty, "w").close()
    refused(["--tls-cert", c, "--tls-key", empty], 1, ["--tls-key"])
    refused(["--tls-cert", k, "--tls-key", k], 1,
            ["--tls-cert", "no PEM certificate"])
    refused(["--tls-cert", c, "--tls-key", c], 1,
            ["--tls-key", "no PEM private key"])
    enc = os.path.join(w, "enc.key")
    subprocess.run(["openssl", "pkey", "-in", k, "-aes256", "-passout",
                    "pass:secret", "-out", enc], check=True,
                   capture_output=True)
    refused(["--tls-cert", c, "--tls-key", enc], 1,
            ["--tls-key", "encrypted"])
    # A key that is not the certificate's: only the TLS library can tell.
    _, other_key = make_cert(w, "other")
    db, _ = refused(["--tls-cert", c, "--tls-key", other_key], 1,
                    ["HTTPS", "do not match"])
    check(not os.path.exists(db), "told before the database is made")


@test
def a_key_others_can_read_is_warned_of():
    c, k = make_cert(workdir(), "open")
    os.chmod(k, 0o644)
    d = Daemon(tls=(c, k))
    try:
        check("other users can read" in d.stderr(), "warning: %s" %
              d.stderr())
        st, _, _ = d.get("/v1/health")
        check_eq(st, 200, "served anyway")
    finally:
        d.stop()
    d = Daemon(tls=cert())
    try:
        check("other users can read" not in d.stderr(), "no warning at 600")
    finally:
        d.stop()


@test
def a_token_over_plain_http_beyond_loopback_is_warned_of():
    tok = token_file("s3cret-token-0123456789")
    for tls, warned in ((None, True), (cert(), False)):
        d = Daemon(tls=tls, args=["--listen", "0.0.0.0", "--token", tok])
        try:
            check_eq("unencrypted" in d.stderr(), warned,
                     "warning with tls=%r: %s" % (tls, d.stderr()))
            check("without --token" not in d.stderr(), "has a token")
        finally:
            d.stop()


if __name__ == "__main__":
    main()

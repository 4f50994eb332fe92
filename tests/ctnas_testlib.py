"""ctnas_testlib - drive the real ctnasd binary over loopback HTTP.

Shared by the Python integration tests: starting and stopping daemons on a
free port with a temporary database, HTTP requests, and a tiny TAP runner
(each test function is one TAP point; the run ends with "N passed, N failed").
"""
import atexit
import http.client
import json
import os
import random
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

CTNASD = os.environ.get("CTNASD") or os.path.join(os.getcwd(), "ctnasd")
SRCDIR = os.environ.get("CTNAS_SRCDIR") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("CTNAS_SHARED_DATA") or os.path.join(
    SRCDIR, "..", "shared", "data")

NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
             "avg_pool_3x3"]


def nb201_cell(ops):
    """Native string of a NAS-Bench-201 cell from its 6 edge ops."""
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


def random_nb201(rng):
    return nb201_cell([rng.choice(NB201_OPS) for _ in range(6)])


def shared_file(name):
    """Path of ../shared/data/name, or None when it is absent."""
    p = os.path.join(SHARED_DATA, name)
    return p if os.path.exists(p) else None


def workdir():
    """A fresh temporary directory under the build directory."""
    base = os.path.join(os.getcwd(), "tests", "tmp")
    os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(dir=base)


def token_file(token):
    """A file holding token, as --token reads it: its path."""
    p = os.path.join(workdir(), "token")
    with open(p, "w") as f:
        f.write(token + "\n")
    return p


def make_cert(d, name, cn="localhost"):
    """A self-signed P-256 certificate for 127.0.0.1 and localhost, made
    by the openssl command in directory d, and its key (mode 600):
    (certificate path, key path)."""
    cert = os.path.join(d, name + ".crt")
    key = os.path.join(d, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                    key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


_daemons = []


@atexit.register
def _kill_leftovers():
    """A test that fails half way leaves its daemons running: end them, so
    a failed run does not leave a search spinning on the machine."""
    for d in _daemons:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


class Daemon:
    """One ctnasd process on 127.0.0.1 and a free port; over HTTPS when
    tls is (certificate, key) PEM paths, the certificate then being the
    one authority requests trust."""

    def __init__(self, db=None, args=(), env=None, wrapper=(), tls=None):
        self.dir = workdir()
        self.ssl = None
        if tls:
            args = list(args) + ["--tls-cert", tls[0], "--tls-key", tls[1]]
            self.ssl = ssl.create_default_context(cafile=tls[0])
        self.db = db or os.path.join(self.dir, "ctnas.db")
        self.port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "stderr.log")
        e = dict(os.environ)
        e.update(env or {})
        cmd = list(wrapper) + [CTNASD, "--port", "0", "--port-file",
                               self.port_file, "--db", self.db,
                               "--log-level", "debug"] + list(args)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=self.log, env=e)
        _daemons.append(self)
        self.port = None
        deadline = time.time() + 30
        while time.time() < deadline:
            if os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    self.port = int(f.read())
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        if self.port is None:
            self.stop()
            raise RuntimeError("ctnasd did not start: " + self.stderr())

    def stderr(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def request(self, method, path, body=None, headers=None, raw=None,
                timeout=60):
        """(status, headers dict, parsed JSON or None)."""
        conn = self.connection(timeout)
        h = {}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if headers:
            h.update(headers)
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        text = r.read()
        conn.close()
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = None
        return r.status, {k.lower(): v for k, v in r.getheaders()}, doc

    def connection(self, timeout=60):
        """A new http.client connection to the daemon (HTTPS with tls)."""
        if self.ssl is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.port,
                                               timeout=timeout,
                                               context=self.ssl)
        return http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body=body, **kw)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signal the daemon and return its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def run_ctnasd(*args, env=None, timeout=300):
    """Run a ctnasd subcommand; (exit status, stdout, stderr)."""
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([CTNASD] + list(args), capture_output=True,
                       text=True, env=e, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class Failure(Exception):
    pass


def check(cond, msg="check failed"):
    if not cond:
        raise Failure(msg)


def check_eq(a, b, what=""):
    if a != b:
        raise Failure("%s: %r != %r" % (what, a, b))


def check_error(resp, status, code=None, field=None):
    """Assert an error answer: status, the JSON error shape, code, field."""
    st, _, doc = resp
    check_eq(st, status, "status (body %r)" % (doc,))
    check(isinstance(doc, dict) and isinstance(doc.get("error"), dict),
          "error body missing: %r" % (doc,))
    e = doc["error"]
    check(isinstance(e.get("code"), str) and isinstance(e.get("message"),
                                                        str) and e["message"],
          "error code/message missing: %r" % e)
    check("field" in e, "error field missing: %r" % e)
    if code is not None:
        check_eq(e["code"], code, "error code")
    if field is not None:
        check_eq(e["field"], field, "error field (message %r)" % e["message"])
    return e


_tests = []


def test(fn):
    _tests.append(fn)
    return fn


def skip(reason):
    raise SkipTest(reason)


class SkipTest(Exception):
    pass


def main():
    passed = failed = 0
    n = 0
    for fn in _tests:
        n += 1
        try:
            fn()
            print("ok %d - %s" % (n, fn.__name__))
            passed += 1
        except SkipTest as e:
            print("ok %d - %s # SKIP %s" % (n, fn.__name__, e))
            passed += 1
        except Exception as e:  # a failure or an error: both fail the point
            print("not ok %d - %s" % (n, fn.__name__))
            for line in traceback.format_exc().splitlines():
                print("# " + line)
            failed += 1
        sys.stdout.flush()
    print("1..%d" % n)
    print("# %d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


def rng(seed=1):
    return random.Random(seed)

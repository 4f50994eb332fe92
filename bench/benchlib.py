"""What the benchmark scripts share: a keep-alive JSON client, the
daemon's resident memory, percentiles, starting a daemon, and a daemon
serving NAS-Bench-201 CIFAR-10 (the whole file imported, a comparator
trained) in a temporary directory."""
import contextlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NB201 = os.path.join(HERE, "..", "..", "shared", "data", "nb201_cifar10.csv")


class Client:
    """One keep-alive connection (HTTPS with an ssl context); call() exits
    on a non-2xx answer, as a benchmark that gets errors measures
    nothing."""

    def __init__(self, port, context=None):
        if context is not None:
            self.c = http.client.HTTPSConnection("127.0.0.1", port,
                                                 timeout=600,
                                                 context=context)
        else:
            self.c = http.client.HTTPConnection("127.0.0.1", port,
                                                timeout=600)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json"} if data else {}
        self.c.request(method, path, body=data, headers=h)
        r = self.c.getresponse()
        doc = json.loads(r.read())
        if r.status >= 300:
            sys.exit("%s %s -> %d %r" % (method, path, r.status, doc))
        return doc

    def wait_job(self, path, poll=0.1):
        """Poll a job (or search) until it leaves queued/running."""
        while True:
            j = self.call("GET", path)
            if j["state"] not in ("queued", "running"):
                return j
            time.sleep(poll)


def rss_mb(pid, field="VmRSS"):
    """A memory figure of /proc/PID/status in MB: resident now, or its
    peak with field VmHWM."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def timed(fn, reps):
    """Call fn reps times: (the median seconds, every call's seconds)."""
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out), out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def add_binary_args(ap):
    """--ctnasd and --reference, the binaries of compare_binaries."""
    ap.add_argument("--ctnasd", default="./ctnasd")
    ap.add_argument("--reference", help="binary to compare with")


def binaries(a):
    """The (name, binary) pairs add_binary_args' flags name: "this", and
    "reference" when given."""
    return [("this", a.ctnasd)] + ([("reference", a.reference)]
                                   if a.reference else [])


def compare_binaries(bins, reps, run, tag=None):
    """Run run(binary) -> {figure: value} reps times for each (name,
    binary) of bins, alternating, printing each run as a JSON line (with
    tag's keys); return the medians per name and, with a "reference"
    beside "this", their ratio this / reference."""
    runs = {name: [] for name, _ in bins}
    for rep in range(reps):
        for name, b in bins:
            res = run(b)
            runs[name].append(res)
            print(json.dumps(dict(res, binary=name, rep=rep, **(tag or {}))),
                  flush=True)
    keys = list(runs[bins[0][0]][0])
    summary = {name: {k: statistics.median(r[k] for r in rs) for k in keys}
               for name, rs in runs.items()}
    if "reference" in summary:
        this, ref = summary["this"], summary["reference"]
        summary["ratio"] = {k: this[k] / ref[k] if ref[k] else None
                            for k in keys}
    return summary


def start_daemon(binary, db, workdir, args=(), level="warn",
                 stderr=subprocess.DEVNULL):
    """Start binary on db and a free loopback port, its port file in
    workdir: (process, port, seconds from exec to listening; the port file
    is written once the port accepts connections)."""
    pf = os.path.join(workdir, "port")
    if os.path.exists(pf):
        os.remove(pf)
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "--port", "0", "--port-file", pf, "--db",
                          db, "--log-level", level] + list(args),
                         stdout=subprocess.DEVNULL, stderr=stderr)
    while not (os.path.exists(pf) and os.path.getsize(pf)):
        if p.poll() is not None:
            sys.exit("%s did not start (exit %d)" % (binary, p.returncode))
        time.sleep(0.002)
    dt = time.perf_counter() - t0
    with open(pf) as f:
        return p, int(f.read()), dt


@contextlib.contextmanager
def served_nb201(ctnasd, data, train_size, seed=1, args=()):
    """Yield (client, daemon process, port, training job row): data
    imported into a fresh database, the daemon (with args) on a free
    loopback port, the default comparator trained on train_size random
    cells.  Everything is stopped and removed afterwards."""
    if not os.path.exists(data):
        sys.exit("no %s: this benchmark needs the NAS-Bench-201 file" % data)
    w = tempfile.mkdtemp(prefix="ctnas-bench-")
    db = os.path.join(w, "bench.db")
    d = None
    try:
        subprocess.run([ctnasd, "import", "--db", db, "--space",
                        "nasbench201", "--dataset", "cifar10", data],
                       check=True, capture_output=True)
        d, port, _ = start_daemon(ctnasd, db, w, args, stderr=None)
        c = Client(port)
        job = c.call("POST", "/v1/nac/train", {
            "space": "nasbench201", "dataset": "cifar10",
            "train_size": train_size, "seed": seed})
        j = c.wait_job("/v1/jobs/%d" % job["id"], 0.2)
        if j["state"] != "succeeded":
            sys.exit("training failed: %r" % j)
        yield c, d, port, j
    finally:
        if d is not None:
            d.terminate()
            d.wait()
        shutil.rmtree(w, ignore_errors=True)

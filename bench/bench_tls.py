#!/usr/bin/env python3
"""What HTTPS costs (--tls-cert, --tls-key) against plain HTTP, the
reference, measured in the same run on the same database.

    python3 bench/bench_tls.py --ctnasd ./ctnasd --reps 5

Imports ../shared/data/nb201_cifar10.csv into a temporary database, trains
the default comparator on 424 cells, makes a self-signed P-256 certificate
with the openssl command, then starts the daemon on that database over
plain HTTP and over HTTPS in turn (--reps times each, alternating) and
times, on keep-alive connections unless said: GET /v1/health, a single
compare, a compare of 10,000 pairs (about 1 MB of request), an upload of
5,000 measured cells already stored (about 1.3 MB; idempotent), and a new
connection per GET /v1/health (the TCP and TLS handshakes included).
Prints one JSON line per run, then the medians and the ratio HTTPS / HTTP.
"""
import argparse
import json
import os
import random
import shutil
import ssl
import subprocess
import tempfile

from benchlib import NB201, Client, compare_binaries, start_daemon, timed


def med_ms(fn, n):
    return 1e3 * timed(fn, n)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ctnasd", default="./ctnasd")
    ap.add_argument("--data", default=NB201)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    if not os.path.exists(a.data):
        raise SystemExit("no %s: this benchmark needs the NAS-Bench-201 "
                         "file" % a.data)
    w = tempfile.mkdtemp(prefix="ctnas-bench-tls-")
    try:
        db = os.path.join(w, "bench.db")
        cert, key = os.path.join(w, "tls.crt"), os.path.join(w, "tls.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "1", "-subj",
                        "/CN=localhost", "-addext",
                        "subjectAltName=IP:127.0.0.1"], check=True,
                       capture_output=True)
        os.chmod(key, 0o600)
        ctx = ssl.create_default_context(cafile=cert)
        subprocess.run([a.ctnasd, "import", "--db", db, "--space",
                        "nasbench201", "--dataset", "cifar10", a.data],
                       check=True, capture_output=True)
        d, port, _ = start_daemon(a.ctnasd, db, w)
        c = Client(port)
        job = c.call("POST", "/v1/nac/train", {
            "space": "nasbench201", "dataset": "cifar10", "train_size": 424,
            "seed": 1})
        c.wait_job("/v1/jobs/%d" % job["id"], 0.2)
        d.terminate()
        d.wait()

        rows = [l.split(",") for l in open(a.data).read().split()[1:]]
        cells = [r[0] for r in rows]
        rnd = random.Random(1)
        pairs = {"pairs": [[rnd.choice(cells), rnd.choice(cells)]
                           for _ in range(10000)]}
        upload = {"items": [{"space": "nasbench201", "arch": r[0],
                             "measurements": [{
                                 "dataset": "cifar10",
                                 "metric": "test_accuracy",
                                 "value": float(r[1])}]}
                            for r in rows[:5000]]}

        def run(mode):
            tls = mode == "https"
            args = ["--tls-cert", cert, "--tls-key", key] if tls else []
            p, port, start_s = start_daemon(a.ctnasd, db, w, args)
            try:
                cl = Client(port, ctx if tls else None)
                cl.call("POST", "/v1/compare", pairs)  # warm

                def fresh():
                    Client(port, ctx if tls else None).call(
                        "GET", "/v1/health")
                return {
                    "start_s": start_s,
                    "health_ms": med_ms(lambda: cl.call("GET", "/v1/health"),
                                        500),
                    "compare_1_ms": med_ms(lambda: cl.call(
                        "POST", "/v1/compare",
                        {"a": cells[1], "b": cells[2]}), 500),
                    "compare_10000_ms": med_ms(lambda: cl.call(
                        "POST", "/v1/compare", pairs), 15),
                    "upload_5000_ms": med_ms(lambda: cl.call(
                        "POST", "/v1/architectures", upload), 5),
                    "new_connection_health_ms": med_ms(fresh, 200),
                }
            finally:
                p.terminate()
                p.wait()

        # compare_binaries alternates its "binaries": here the two modes,
        # plain HTTP being the reference.
        s = compare_binaries([("this", "https"), ("reference", "http")],
                             a.reps, run)
        print(json.dumps({"https": s["this"], "http": s["reference"],
                          "ratio_https_over_http": s["ratio"]}))
    finally:
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The daemon under valgrind memcheck: uploads, listing, a training job,
compare, rank and a search, with the job-retention sweeps on, then
SIGTERM.  Zero errors and no definite
leaks (valgrind's exit status says so).  Skipped in the sanitizer build
(ASan and valgrind do not mix) and where valgrind is not installed."""
import shutil
import subprocess
import time

from ctnas_testlib import (CTNASD, Daemon, NB201_OPS, check, check_eq,
                           main, nb201_cell, rng, skip, test)


def sanitized():
    out = subprocess.run(["ldd", CTNASD], capture_output=True, text=True)
    return "libasan" in out.stdout or "libubsan" in out.stdout


def finished(d, path, deadline):
    """Poll a job until it leaves queued/running; its last state."""
    while time.time() < deadline:
        _, _, j = d.get(path, timeout=120)
        if j["state"] not in ("queued", "running"):
            break
        time.sleep(0.5)
    return j["state"]


@test
def daemon_is_memcheck_clean():
    if shutil.which("valgrind") is None:
        skip("valgrind is not installed")
    if sanitized():
        skip("sanitizer build: valgrind does not run ASan binaries")
    d = Daemon(wrapper=["valgrind", "--error-exitcode=99", "--quiet",
                        "--leak-check=full", "--errors-for-leak-kinds=definite",
                        "--show-leak-kinds=definite", "--track-fds=no"],
               args=["--threads", "2", "--job-retention", "1h"])
    try:
        r = rng(3)
        cells = sorted({nb201_cell([r.choice(NB201_OPS) for _ in range(6)])
                        for _ in range(40)})
        st, _, _ = d.post("/v1/architectures", {"items": [
            {"space": "nasbench201", "arch": c, "measurements": [
                {"dataset": "v", "metric": "acc", "value": 50 + i}]}
            for i, c in enumerate(cells)]}, timeout=120)
        check_eq(st, 201, "upload")
        st, _, _ = d.get("/v1/architectures?dataset=v&order=metric_desc"
                         "&limit=5", timeout=120)
        check_eq(st, 200, "list")
        st, _, job = d.post("/v1/nac/train", {
            "space": "nasbench201", "dataset": "v", "epochs": 3,
            "dim": 16, "layers": 1}, timeout=120)
        check_eq(st, 202, "train")
        deadline = time.time() + 300
        check_eq(finished(d, "/v1/jobs/%d" % job["id"], deadline),
                 "succeeded", "trained under valgrind")
        st, _, _ = d.post("/v1/compare", {"a": cells[0], "b": cells[1]},
                          timeout=120)
        check_eq(st, 200, "compare")
        st, _, _ = d.post("/v1/rank", {"architectures": cells[:5]},
                          timeout=120)
        check_eq(st, 200, "rank")
        st, _, s = d.post("/v1/searches", {
            "space": "nasbench201", "dataset": "v", "steps": 20,
            "explore_every": 10, "update_every": 10}, timeout=120)
        check_eq(st, 202, "search")
        check_eq(finished(d, "/v1/searches/%d" % s["id"], deadline),
                 "succeeded", "searched under valgrind")
        st, _, _ = d.get("/v1/nothing", timeout=120)
        check_eq(st, 404, "error path")
    finally:
        code = d.stop(timeout=300)
    check_eq(code, 0, "valgrind exit status (99 = errors or definite "
             "leaks):\n" + d.stderr()[-3000:])


if __name__ == "__main__":
    main()

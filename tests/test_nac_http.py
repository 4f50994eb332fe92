"""Comparator routes over real HTTP: training jobs (progress, cancel,
limits), /v1/compare, /v1/rank, the serving model across a restart, and
their error cases.  The data is a synthetic NAS-Bench-201 table made here:
accuracy grows with the convolutions of a cell, so a trained comparator
must order clear cases right."""
import itertools
import time

from ctnas_testlib import (Daemon, NB201_OPS, check, check_eq, check_error,
                           main, nb201_cell, rng, test)

WEIGHT = {"none": 0.0, "skip_connect": 1.0, "avg_pool_3x3": 0.5,
          "nor_conv_1x1": 2.0, "nor_conv_3x3": 3.0}


def synthetic_acc(ops):
    return 50 + sum(WEIGHT[o] for o in ops) * 2 + (0.1 if ops[0] == ops[5]
                                                     else 0)


def upload(d, n=150, seed=5):
    r = rng(seed)
    cells = {}
    while len(cells) < n:
        ops = [r.choice(NB201_OPS) for _ in range(6)]
        cells[nb201_cell(ops)] = synthetic_acc(ops)
    items = [{"space": "nasbench201", "arch": c, "measurements": [
        {"dataset": "synth", "metric": "acc", "value": a}]}
        for c, a in cells.items()]
    st, _, doc = d.post("/v1/architectures", {"items": items})
    check_eq(st, 201, "upload")
    return {c: x["id"] for c, x in zip(cells, doc["items"])}, cells


def wait_job(d, jid, states=("succeeded", "failed", "cancelled"),
             timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, _, job = d.get("/v1/jobs/%d" % jid)
        check_eq(st, 200, "poll status")
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError("job %d still %s" % (jid, job["state"]))


def train(d, **kw):
    body = {"space": "nasbench201", "dataset": "synth", "epochs": 40,
            "seed": 3}
    body.update(kw)
    st, _, job = d.post("/v1/nac/train", body)
    check_eq(st, 202, "train accepted: %r" % (job,))
    return job


BEST = nb201_cell(["nor_conv_3x3"] * 6)
WORST = nb201_cell(["none"] * 6)
MID = nb201_cell(["skip_connect", "nor_conv_1x1", "none", "avg_pool_3x3",
                  "skip_connect", "none"])

STATE = {}


@test
def no_model_yet_is_409_saying_how_to_train():
    d = Daemon(args=["--max-pairs", "20", "--max-rank", "200",
                     "--max-jobs", "2"])
    STATE["d"] = d
    STATE["ids"], STATE["acc"] = upload(d)
    e = check_error(d.post("/v1/compare", {"a": BEST, "b": WORST}), 409,
                    "conflict")
    check("/v1/nac/train" in e["message"], "says how: %r" % e["message"])
    check_error(d.post("/v1/rank", {"architectures": [BEST, WORST]}), 409)


@test
def training_job_reports_progress_and_publishes_a_model():
    d = STATE["d"]
    job = train(d, epochs=60)
    check_eq(job["state"], "queued", "state at submission")
    check_eq(job["kind"], "train", "kind")
    check_eq(job["params"]["n_train"], 150, "training set size")
    seen_running = False
    deadline = time.time() + 120
    while time.time() < deadline:
        _, _, j = d.get("/v1/jobs/%d" % job["id"])
        seen_running |= j["state"] == "running"
        if j["state"] not in ("queued", "running"):
            break
        time.sleep(0.02)
    check_eq(j["state"], "succeeded", "final state (%r)" % j.get("error"))
    p = j["progress"]
    check_eq((p["epoch"], p["epochs"]), (60, 60), "progress at the end")
    check(0 <= p["loss"] < 0.7, "loss %r" % p["loss"])
    check(p["train_pair_accuracy"] > 0.8, "pair acc %r" %
          p["train_pair_accuracy"])
    check_eq(j["fraction"], 1.0, "fraction")
    check(j["elapsed_seconds"] > 0 and j["remaining_seconds"] == 0,
          "timing %r %r" % (j["elapsed_seconds"], j["remaining_seconds"]))
    # The job's time covers the work it reports (it starts when the work
    # does, not at the runner's first look).
    fig = j["result"]["figures"]
    check(j["elapsed_seconds"] >= fig["train_seconds"] +
          fig.get("warm_seconds", 0), "elapsed %r covers %r" %
          (j["elapsed_seconds"], fig))
    mid = j["result"]["model_id"]
    st, _, doc = d.get("/v1/nac")
    check_eq(st, 200, "nac list")
    m = [x for x in doc["items"] if x["id"] == mid][0]
    check_eq(m["serving"], True, "serving")
    check_eq(m["n_train"], 150, "n_train")
    check_eq(m["config"]["epochs"], 60, "config kept")
    STATE["model"] = mid
    _, _, jobs = d.get("/v1/jobs?kind=train")
    check(any(x["id"] == job["id"] for x in jobs["items"]), "job listed")
    # The job computed the model's features of every stored cell before
    # publishing it, so the first compare or rank finds them cached.
    check_eq(m["cached_features"], 150, "stored cells warmed")
    check_eq(j["result"]["figures"]["warmed"], 150, "figures say so")


@test
def training_options_readout_and_top_weight_are_used_and_kept():
    d = STATE["d"]
    job = train(d, epochs=30, readout="mean_output", top_weight=30,
                top_scale=0.1, publish=False)
    j = wait_job(d, job["id"], ("succeeded", "failed"))
    check_eq(j["state"], "succeeded", "final state (%r)" % j.get("error"))
    _, _, doc = d.get("/v1/nac")
    m = [x for x in doc["items"] if x["id"] == j["result"]["model_id"]][0]
    check_eq(m["serving"], False, "not published")
    check("cached_features" not in m, "no cache when not serving: %r" % m)
    check_eq(j["result"]["figures"]["warmed"], 0, "no warm-up unpublished")
    check_eq((m["config"]["readout"], m["config"]["top_weight"],
              m["config"]["top_scale"]), ("mean_output", 30, 0.1),
             "config kept")
    # the serving model still reads the mean, the default
    s = [x for x in doc["items"] if x["serving"]][0]
    check_eq(s["config"]["readout"], "mean", "default readout")


@test
def compare_orders_clear_cases_and_accepts_ids_strings_objects():
    d = STATE["d"]
    st, _, doc = d.post("/v1/compare", {"a": BEST, "b": WORST})
    check_eq(st, 200, "status")
    check(doc["p"] > 0.9, "best beats worst: %r" % doc["p"])
    check_eq(doc["model"]["id"], STATE["model"], "model named")
    _, _, rev = d.post("/v1/compare", {"a": WORST, "b": BEST})
    check(abs(doc["p"] + rev["p"] - 1) < 1e-6, "p(a,b) = 1 - p(b,a)")
    some = list(STATE["ids"].items())[:2]
    _, _, by_id = d.post("/v1/compare", {"a": some[0][1], "b": some[1][1]})
    _, _, by_str = d.post("/v1/compare", {"a": some[0][0], "b": some[1][0]})
    check(abs(by_id["p"] - by_str["p"]) < 1e-9, "id == string")
    # A stored architecture's hash names it too, in either case.
    hashes = [d.get("/v1/architectures/%d" % i)[2]["hash"]
              for _, i in some]
    _, _, by_hash = d.post("/v1/compare", {"a": hashes[0].upper(),
                                           "b": hashes[1]})
    check_eq(by_hash["p"], by_id["p"], "hash == id")
    e = check_error(d.post("/v1/compare", {"a": hashes[0],
                                           "b": "0" * 32}), 400, field="b")
    check("hash" in e["message"], "says what was looked for: %r" %
          e["message"])
    # The hash of a cell of another space is named as such.
    _, _, up = d.post("/v1/architectures", {
        "space": "nasbench101",
        "arch": {"adjacency": [[0, 1], [0, 0]], "ops": ["input", "output"]}})
    h101 = d.get("/v1/architectures/%d" % up["items"][0]["id"])[2]["hash"]
    e = check_error(d.post("/v1/compare", {"a": hashes[0], "b": h101}), 400,
                    field="b")
    check("nasbench101" in e["message"], "says which: %r" % e["message"])
    obj = {"ops": ["nor_conv_3x3"] * 6}
    _, _, by_obj = d.post("/v1/compare", {"a": obj, "b": WORST,
                                          "space": "nasbench201"})
    check(abs(by_obj["p"] - doc["p"]) < 1e-9, "object == string")


@test
def batched_compare_answers_every_pair_in_order():
    d = STATE["d"]
    cells = list(STATE["acc"])[:6]
    pairs = list(itertools.permutations(cells, 2))[:20]
    st, _, doc = d.post("/v1/compare", {"pairs": [list(p) for p in pairs]})
    check_eq(st, 200, "status")
    check_eq(len(doc["p"]), 20, "one p per pair")
    for (a, b), p in zip(pairs, doc["p"]):
        _, _, one = d.post("/v1/compare", {"a": a, "b": b})
        # float32 features: a batch sums in another order than one pair.
        check(abs(one["p"] - p) < 1e-5, "batch == single: %r vs %r" %
              (one["p"], p))
    # Stored ids, repeated and mixed with the same cells' strings (each
    # id is read once per request): the same p as the strings give.
    ids = [STATE["ids"][c] for c in cells[:3]]
    mixed = [[ids[0], ids[1]], [cells[0], ids[1]], [ids[0], cells[1]],
             [ids[1], ids[2]], [ids[0], ids[1]], [cells[1], cells[2]]]
    st, _, doc = d.post("/v1/compare", {"pairs": mixed})
    check_eq(st, 200, "mixed status")
    _, _, ref = d.post("/v1/compare", {"pairs": [[cells[0], cells[1]],
                                                 [cells[1], cells[2]]]})
    want = [ref["p"][0]] * 3 + [ref["p"][1], ref["p"][0], ref["p"][1]]
    check(all(abs(x - y) < 1e-5 for x, y in zip(doc["p"], want)),
          "ids and strings agree: %r vs %r" % (doc["p"], want))
    check_error(d.post("/v1/compare", {"pairs": [[BEST, WORST]] * 21}), 400,
                field="pairs")


@test
def compare_errors_name_the_field():
    d = STATE["d"]
    check_error(d.post("/v1/compare", {"a": BEST}), 400, field="b")
    check_error(d.post("/v1/compare", {"a": BEST, "b": "|x~0|"}), 400)
    e = check_error(d.post("/v1/compare", {"a": BEST, "b": 99999999}), 400)
    check_eq(e["field"], "b", "unknown id field")
    check_error(d.post("/v1/compare", {"a": BEST, "b": WORST,
                                       "space": "nasbench999"}), 400,
                field="space")
    check_error(d.post("/v1/compare", {"a": BEST, "b": WORST,
                                       "model": 424242}), 400,
                field="model")
    check_error(d.post("/v1/compare", {"pairs": [[BEST]]}), 400,
                field="pairs[0]")
    # A bad reference deep in a batch is named by its place in the batch.
    bad_op = {"ops": ["skip_connect"] * 3 + ["conv9"] + ["none"] * 2}
    e = check_error(d.post("/v1/compare", {"pairs": [[BEST, WORST],
                                                     [BEST, bad_op]]}), 400,
                    field="pairs[1][1].ops[3]")
    check("conv9" in e["message"], "names the op: %r" % e["message"])
    e = check_error(d.post("/v1/compare", {"pairs": [[BEST, WORST]] * 3 +
                                           [[99999999, BEST]]}), 400,
                    field="pairs[3][0]")
    check("pairs[3][0]" in e["message"], "message: %r" % e["message"])
    check_error(d.post("/v1/compare", {"pairs": [[BEST, WORST],
                                                 [BEST, "|x~0|"]]}), 400,
                field="pairs[1][1].ops[0]")
    nb101_in_batch = {"adjacency": [[0, 1], [0, 0]],
                      "ops": ["input", "output"]}
    e = check_error(d.post("/v1/compare", {"pairs": [
        [BEST, WORST], [nb101_in_batch, BEST]]}), 400, field="pairs[1][0]")
    check("nasbench101 cell" in e["message"], "says which: %r" %
          e["message"])
    # An object with the other space's fields is not taken for a cell of
    # this one (its adjacency ignored), nor one with stray fields.
    shaped = {"ops": ["none"] * 6, "adjacency": [[0]]}
    check_error(d.post("/v1/rank", {"architectures": [BEST, WORST, shaped]}),
                400, field="architectures[2]")
    check_error(d.post("/v1/rank", {"architectures": [
        BEST, dict(bad_op, ops=["none"] * 6, note="x")]}), 400,
        field="architectures[1].note")
    check_error(d.post("/v1/compare", {"a": BEST, "b": WORST, "model": 1,
                                       "dataset": "synth"}), 400,
                field="dataset")
    check_error(d.post("/v1/compare", {"a": BEST, "b": WORST, "x": 1}), 400,
                field="x")
    # A NAS-Bench-101 cell against the NAS-Bench-201 comparator: no model.
    nb101 = {"adjacency": [[0, 1], [0, 0]], "ops": ["input", "output"]}
    check_error(d.post("/v1/compare", {"a": nb101, "b": nb101}), 409)
    # Model 1 named for cells of another space: a 400, many times over
    # (its reference was once released twice, corrupting the heap), and
    # the daemon still answers.
    for route, body in (("/v1/compare", {"a": nb101, "b": nb101}),
                        ("/v1/rank", {"architectures": [nb101, nb101]})):
        for _ in range(30):
            e = check_error(d.post(route, dict(body, model=1)), 400,
                            field="model")
        check("not nasbench101" in e["message"], "says why: %r" %
              e["message"])
    st, _, _ = d.post("/v1/compare", {"a": BEST, "b": WORST})
    check_eq(st, 200, "still serving")


@test
def rank_sorts_by_mean_win_probability():
    d = STATE["d"]
    archs = [WORST, MID, BEST]
    st, _, doc = d.post("/v1/rank", {"architectures": archs})
    check_eq(st, 200, "status")
    check_eq([x["arch"] for x in doc["items"]], [BEST, MID, WORST], "order")
    check_eq([x["rank"] for x in doc["items"]], [1, 2, 3], "ranks")
    check_eq(doc["items"][0]["index"], 2, "index into the request")
    s = [x["score"] for x in doc["items"]]
    check(s[0] >= s[1] >= s[2] and all(0 <= v <= 1 for v in s), "scores")
    _, _, top = d.post("/v1/rank", {"all": True, "space": "nasbench201",
                                    "top_k": 5})
    check_eq(len(top["items"]), 5, "top_k")
    check_eq(top["total"], 150, "ranked every stored architecture")
    accs = sorted(STATE["acc"].values(), reverse=True)
    best_found = max(STATE["acc"][x["arch"]] for x in top["items"])
    check(best_found >= accs[4], "the top 5 hold a true top-5 cell")
    check(all(x["id"] == STATE["ids"][x["arch"]] for x in top["items"]),
          "ids of stored architectures")
    check_error(d.post("/v1/rank", {"architectures": [BEST]}), 400,
                field="architectures")
    check_error(d.post("/v1/rank", {"architectures": [BEST, MID, "|x~0|"]}),
                400, field="architectures[2].ops[0]")
    check_error(d.post("/v1/rank", {"architectures": [
        {"ops": ["none"] * 4 + [7, "none"]}, BEST]}), 400,
        field="architectures[0].ops[4]")
    check_error(d.post("/v1/rank", {"architectures": [BEST] * 201}), 400,
                field="architectures")
    check_error(d.post("/v1/rank", {"all": True}), 400, field="space")


@test
def bad_training_options_name_the_field():
    d = STATE["d"]
    base = {"space": "nasbench201", "dataset": "synth"}
    for extra, field in (({"lr": -1}, "lr"), ({"head": "wide"}, "head"),
                         ({"epochs": 0}, "epochs"), ({"epoch": 3}, "epoch"),
                         ({"train_size": 1000}, "train_size"),
                         ({"layers": 1.5}, "layers"),
                         ({"ids": [1]}, "ids"), ({"ids": [1, 2, 1]}, "ids"),
                         ({"ids": [1, 999999]}, "ids[1]"),
                         ({"ids": [2, 3, "x"]}, "ids[2]"),
                         ({"seed": -3}, "seed"),
                         ({"readout": "max"}, "readout"),
                         ({"top_weight": -1}, "top_weight"),
                         ({"top_scale": 0}, "top_scale"),
                         # two held out of three leave one: refused at
                         # once, not by the job later
                         ({"train_size": 3, "holdout": 0.5}, "holdout")):
        body = dict(base, **extra)
        check_error(d.post("/v1/nac/train", body), 400, field=field)
    check_error(d.post("/v1/nac/train", {"space": "nasbench201",
                                         "dataset": "nothing"}), 400,
                field="dataset")
    check_error(d.post("/v1/nac/train", {"dataset": "synth"}), 400,
                field="space")
    e = check_error(d.post("/v1/nac/train", dict(base, ids=[
        1, 999999, 2, 888888])), 400, field="ids[1]")
    check("2 of the ids (999999, 888888)" in e["message"], e["message"])
    e = check_error(d.post("/v1/nac/train", dict(base, metric="acc_typo")),
                    400, field="metric")
    check("its metrics there: acc" in e["message"], e["message"])
    # A training job keeps the metric it learnt from, resolved when the
    # request named none.
    _, _, jobs = d.get("/v1/jobs?kind=train")
    check(jobs["items"] and
          all(j["params"]["metric"] == "acc" for j in jobs["items"]),
          "metric resolved in params")


@test
def cancel_stops_a_job_within_a_second():
    d = STATE["d"]
    job = train(d, epochs=100000)
    wait_job(d, job["id"], states=("running",), timeout=30)
    t0 = time.time()
    st, _, doc = d.request("DELETE", "/v1/jobs/%d" % job["id"])
    check_eq(st, 202, "cancel accepted")
    j = wait_job(d, job["id"], timeout=5)
    check_eq(j["state"], "cancelled", "state")
    # Timed on the daemon's clock (the row's finished_at), without this
    # client's polling: the "within a second".
    landed = j["finished_at"] - t0
    check(landed < 1.0, "cancel landed %.2f s after the DELETE" % landed)
    print("# cancel landed %.3f s" % landed)
    check_error(d.request("DELETE", "/v1/jobs/%d" % job["id"]), 409,
                "conflict")
    check_error(d.get("/v1/jobs/987654"), 404, field="id")
    check_error(d.request("DELETE", "/v1/jobs/987654"), 404)
    check_error(d.get("/v1/jobs/abc"), 404)


@test
def too_many_jobs_is_429():
    d = STATE["d"]
    a = train(d, epochs=100000)
    b = train(d, epochs=100000)
    st, h, doc = d.post("/v1/nac/train", {"space": "nasbench201",
                                          "dataset": "synth"})
    e = check_error((st, h, doc), 429, "limit_reached")
    check("--max-jobs" in e["message"], "names the limit: %r" % e["message"])
    check_eq(h.get("retry-after"), "5", "Retry-After header")
    jobs = d.get("/v1/health")[2]["jobs"]
    check_eq((jobs["active"], jobs["limit"]), (2, 2), "health shows it")
    for j in (a, b):
        d.request("DELETE", "/v1/jobs/%d" % j["id"])
    for j in (a, b):
        check_eq(wait_job(d, j["id"])["state"], "cancelled", "cleaned up")


@test
def idempotency_key_makes_one_job_per_request():
    d = STATE["d"]
    body = {"space": "nasbench201", "dataset": "synth", "epochs": 100000,
            "seed": 3, "lr": 0.001}
    key = {"Idempotency-Key": "nb-7f3a-retry"}
    st, h, a = d.post("/v1/nac/train", body, headers=key)
    check_eq(st, 202, "first submit")
    check("idempotent-replayed" not in h, "not a replay: %r" % h)
    # The same request, keys in another order, quoted as in the IETF draft.
    again = dict(reversed(list(body.items())))
    for k, path in (("nb-7f3a-retry", "/v1/nac/train"),
                    ('"nb-7f3a-retry"', "/v1/nac/train/")):
        st, h, b = d.post(path, again, headers={"Idempotency-Key": k})
        check_eq(st, 202, "replay status")
        check_eq(h.get("idempotent-replayed"), "true", "replay header")
        check_eq(b["id"], a["id"], "the same job")
        check_eq(b["params"], a["params"], "its params")
    _, _, jobs = d.get("/v1/jobs?kind=train&state=running")
    _, _, queued = d.get("/v1/jobs?kind=train&state=queued")
    check_eq(len(jobs["items"]) + len(queued["items"]), 1, "one job")

    # The key with another request, or another route: 409 naming the job.
    e = check_error(d.post("/v1/nac/train", dict(body, seed=4), headers=key),
                    409, "conflict", "Idempotency-Key")
    check(str(a["id"]) in e["message"], "names the job: %r" % e["message"])
    check_error(d.post("/v1/searches", {"space": "nasbench201",
                                        "dataset": "synth"}, headers=key),
                409, "conflict", "Idempotency-Key")
    for bad in ("", '""', "a b", "x" * 256, "tab\tkey", 'a"b'):
        check_error(d.post("/v1/nac/train", body,
                           headers={"Idempotency-Key": bad}),
                    400, "invalid_argument", "Idempotency-Key")

    # Concurrent retries of a new request: one job, every answer names it
    # (those that lost the race to the limit or the key included).
    import threading
    answers = []

    def post():
        answers.append(d.post("/v1/nac/train", dict(body, seed=5),
                              headers={"Idempotency-Key": "burst"}))
    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check_eq(sorted(x[0] for x in answers), [202] * 6, "all accepted")
    ids = {x[2]["id"] for x in answers}
    check_eq(len(ids), 1, "one job for the burst: %r" % ids)
    check_eq(sum(x[1].get("idempotent-replayed") == "true" for x in answers),
             5, "five replays")
    burst = ids.pop()

    # At --max-jobs a new key is refused and stays free; a held key is
    # still answered.
    check_error(d.post("/v1/nac/train", dict(body, seed=6),
                       headers={"Idempotency-Key": "later"}), 429,
                "limit_reached")
    st, _, b = d.post("/v1/nac/train", again, headers=key)
    check_eq((st, b["id"]), (202, a["id"]), "replay at the limit")
    d.request("DELETE", "/v1/jobs/%d" % burst)
    wait_job(d, burst)
    st, h, c = d.post("/v1/nac/train", dict(body, seed=6),
                      headers={"Idempotency-Key": "later"})
    check_eq(st, 202, "the refused key makes a job now")
    check("idempotent-replayed" not in h, "a new job")
    for j in (a, c):
        d.request("DELETE", "/v1/jobs/%d" % j["id"])
    for j in (a, c):
        check_eq(wait_job(d, j["id"])["state"], "cancelled", "cleaned up")
    STATE["keyed"] = (body, key, a["id"])


@test
def job_lists_page_with_a_cursor():
    d = STATE["d"]
    _, _, whole = d.get("/v1/jobs?limit=1000")
    check_eq(whole["next_cursor"], None, "one page holds them all")
    want = [j["id"] for j in whole["items"]]
    check(len(want) >= 5, "jobs to page through: %d" % len(want))
    check_eq(want, sorted(want, reverse=True), "newest first")
    got, cursor, pages = [], None, 0
    while True:
        q = "/v1/jobs?limit=2" + ("&cursor=" + cursor if cursor else "")
        st, _, page = d.get(q)
        check_eq(st, 200, "page status")
        check(len(page["items"]) <= 2, "page size")
        got += [j["id"] for j in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    check_eq(got, want, "the pages make the whole list")
    check_eq(pages, (len(want) + 1) // 2, "no empty last page")
    # Filters hold across pages.
    _, _, p1 = d.get("/v1/jobs?kind=train&state=cancelled&limit=1")
    _, _, p2 = d.get("/v1/jobs?kind=train&state=cancelled&limit=1&cursor="
                     + p1["next_cursor"])
    check(p2["items"][0]["id"] < p1["items"][0]["id"], "second page older")
    check_eq(p2["items"][0]["state"], "cancelled", "filter kept")
    for bad in ("abc", "0", "-3", "1.5", ""):
        check_error(d.get("/v1/jobs?cursor=" + bad), 400, "invalid_argument",
                    "cursor")


@test
def ended_jobs_are_purged_and_their_ids_not_reused():
    d = STATE["d"]
    done = wait_job(d, train(d, epochs=3, seed=21, publish=False)["id"])
    check_eq(done["state"], "succeeded", "trained")
    mid = done["result"]["model_id"]
    running = train(d, epochs=100000)
    wait_job(d, running["id"], states=("running",), timeout=30)
    # Not ended: 409 naming what to do; the job runs on.
    e = check_error(d.request("DELETE", "/v1/jobs/%d?purge=true" %
                              running["id"]), 409, "conflict", "id")
    check("cancel" in e["message"], "says how: %r" % e["message"])
    check_eq(d.get("/v1/jobs/%d" % running["id"])[2]["state"], "running",
             "still running")
    check_error(d.request("DELETE", "/v1/jobs/%d?purge=maybe" % done["id"]),
                400, "invalid_argument", "purge")
    check_error(d.request("DELETE", "/v1/jobs/%d?purg=true" % done["id"]),
                400, "invalid_argument", "purg")
    # Ended: gone, its model kept without it.
    st, _, doc = d.request("DELETE", "/v1/jobs/%d?purge=true" % done["id"])
    check_eq((st, doc), (200, {"id": done["id"], "deleted": True}), "purged")
    check_error(d.get("/v1/jobs/%d" % done["id"]), 404, "not_found", "id")
    check_error(d.request("DELETE", "/v1/jobs/%d?purge=true" % done["id"]),
                404, "not_found", "id")
    model = [m for m in d.get("/v1/nac?limit=1000")[2]["items"]
             if m["id"] == mid]
    check_eq(len(model), 1, "the model stays")
    check_eq(model[0]["job_id"], None, "without its job")
    # The newest job purged: the next one gets a new id all the same.
    d.request("DELETE", "/v1/jobs/%d" % running["id"])
    wait_job(d, running["id"])
    st, _, _ = d.request("DELETE", "/v1/jobs/%d?purge=true" % running["id"])
    check_eq(st, 200, "cancelled, then purged")
    nxt = train(d, epochs=1, seed=22, publish=False)
    check(nxt["id"] > running["id"], "new id %d after purged %d"
          % (nxt["id"], running["id"]))
    wait_job(d, nxt["id"])


@test
def job_retention_deletes_ended_jobs_after_their_time():
    keep = 2.0
    d = Daemon(args=["--job-retention", "2s"])
    try:
        upload(d, n=60, seed=31)
        key = {"Idempotency-Key": "retention-1"}
        body = {"space": "nasbench201", "dataset": "synth", "epochs": 3,
                "seed": 31, "publish": False}
        st, _, job = d.post("/v1/nac/train", body, headers=key)
        check_eq(st, 202, "keyed train accepted")
        done = wait_job(d, job["id"])
        check_eq(done["state"], "succeeded", "trained")
        running = train(d, epochs=100000)
        wait_job(d, running["id"], states=("running",), timeout=30)
        # Kept for its time (both clocks are this machine's wall clock).
        if time.time() - done["finished_at"] < keep - 0.5:
            check_eq(d.get("/v1/jobs/%d" % done["id"])[0], 200,
                     "kept before its time")
        gone = None
        deadline = done["finished_at"] + keep + 10
        while time.time() < deadline:
            if d.get("/v1/jobs/%d" % done["id"])[0] == 404:
                gone = time.time()
                break
            time.sleep(0.1)
        check(gone is not None, "deleted within its time and a sweep")
        check(gone - done["finished_at"] >= keep,
              "not before its time: %.2f s" % (gone - done["finished_at"]))
        model = [m for m in d.get("/v1/nac?limit=1000")[2]["items"]
                 if m["id"] == done["result"]["model_id"]]
        check_eq([m["job_id"] for m in model], [None], "its model stays")
        # Its key is free again: the same request makes a new job.
        st, h, again = d.post("/v1/nac/train", body, headers=key)
        check_eq(st, 202, "key reused")
        check("idempotent-replayed" not in h, "a new job, not a replay")
        check(again["id"] > done["id"], "with a new id")
        wait_job(d, again["id"])
        # A job that has not ended is never deleted, however old.
        st, _, row = d.get("/v1/jobs/%d" % running["id"])
        check_eq((st, row["state"]), (200, "running"), "running job kept")
        d.request("DELETE", "/v1/jobs/%d" % running["id"])
        cancelled = wait_job(d, running["id"])
        check_eq(cancelled["state"], "cancelled", "cancelled")
        check("job retention: deleted 1 job " in d.stderr(), "logged")
        check_eq(d.get("/v1/health")[2]["jobs"]["retention_seconds"], 2,
                 "health shows the retention")
    finally:
        d.stop()
    # The first sweep runs at start-up: a job that ended over the
    # retention time ago while the daemon was down goes at once.
    time.sleep(max(0.0, cancelled["finished_at"] + 1.2 - time.time()))
    d2 = Daemon(db=d.db, args=["--job-retention", "1"])
    try:
        deadline = time.time() + 5
        while (d2.get("/v1/jobs/%d" % running["id"])[0] != 404 and
               time.time() < deadline):
            time.sleep(0.05)
        check_error(d2.get("/v1/jobs/%d" % running["id"]), 404,
                    "not_found", "id")
        # It ended before the cancelled one, in the same sweep.
        check_error(d2.get("/v1/jobs/%d" % again["id"]), 404,
                    "not_found", "id")
    finally:
        d2.stop()


@test
def restart_serves_the_latest_model_and_fails_interrupted_jobs():
    d = STATE["d"]
    _, _, before = d.post("/v1/compare", {"a": MID, "b": WORST})
    job = train(d, epochs=100000)
    wait_job(d, job["id"], states=("running",), timeout=30)
    t0 = time.time()
    check_eq(d.stop(), 0, "clean stop with a job running")
    check(time.time() - t0 < 5, "stop does not wait for the job")
    d2 = Daemon(db=d.db)
    STATE["d"] = d2
    _, _, after = d2.post("/v1/compare", {"a": MID, "b": WORST})
    check_eq(after["model"]["id"], before["model"]["id"], "same model")
    # float32 features: computed in another batch, the last digits move.
    check(abs(after["p"] - before["p"]) < 1e-5, "same answer: %r vs %r" %
          (after["p"], before["p"]))
    # The model loaded at start-up is warmed like a newly published one
    # (the cache also holds the two unstored cells just compared).
    for _ in range(100):
        served = [x for x in d2.get("/v1/nac")[2]["items"] if x["serving"]]
        if served and served[0]["cached_features"] >= 152:
            break
        time.sleep(0.05)
    check_eq(served[0]["cached_features"], 152, "warmed after a restart")
    _, _, j = d2.get("/v1/jobs/%d" % job["id"])
    check_eq(j["state"], "failed", "interrupted job ends failed")
    # Keys are stored with their jobs: a retry after a restart finds it.
    body, key, kid = STATE["keyed"]
    st, h, k = d2.post("/v1/nac/train", body, headers=key)
    check_eq((st, k["id"], h.get("idempotent-replayed")), (202, kid, "true"),
             "replay after a restart")
    check("interrupted" in j["error"], "with the reason: %r" % j["error"])
    check_eq(d2.stop(), 0, "clean stop")


@test
def newer_model_replaces_the_serving_one():
    d = Daemon(db=STATE["d"].db)
    STATE["d"] = d
    _, _, old = d.post("/v1/compare", {"a": MID, "b": WORST})
    job = train(d, epochs=20, seed=9, layers=2)
    j = wait_job(d, job["id"])
    check_eq(j["state"], "succeeded", "trained")
    _, _, new = d.post("/v1/compare", {"a": MID, "b": WORST})
    check_eq(new["model"]["id"], j["result"]["model_id"], "new model serves")
    check(new["model"]["id"] > old["model"]["id"], "newer id")
    # The old one is still reachable by id.
    _, _, pinned = d.post("/v1/compare", {"a": MID, "b": WORST,
                                          "model": old["model"]["id"]})
    check(abs(pinned["p"] - old["p"]) < 1e-5,
          "pinned model answers as before")
    # A model that is not published leaves the serving one alone.
    job = train(d, epochs=5, seed=11, publish=False)
    j = wait_job(d, job["id"])
    _, _, still = d.post("/v1/compare", {"a": MID, "b": WORST})
    check_eq(still["model"]["id"], new["model"]["id"], "unpublished")
    # Models page like jobs.
    _, _, whole = d.get("/v1/nac?limit=1000")
    want = [m["id"] for m in whole["items"]]
    check(len(want) >= 3, "models to page through: %r" % want)
    got, cursor = [], None
    while True:
        _, _, page = d.get("/v1/nac?limit=1" +
                           ("&cursor=" + cursor if cursor else ""))
        got += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    check_eq(got, want, "the pages make the whole list")
    check_error(d.get("/v1/nac?cursor=x"), 400, "invalid_argument", "cursor")
    check_eq(d.stop(), 0, "clean stop")


@test
def models_that_do_not_serve_can_be_deleted():
    d = Daemon(db=STATE["d"].db)  # the last test stopped the shared one
    m1 = wait_job(d, train(d, epochs=3, publish=False)["id"])
    m1 = m1["result"]["model_id"]
    st, _, row = d.get("/v1/nac/%d" % m1)
    check_eq((st, row["id"], row["serving"]), (200, m1, False), "one model")
    check_eq(len(row["train_ids"]), row["figures"]["n_train"], "its ids")
    st, _, doc = d.request("DELETE", "/v1/nac/%d" % m1)
    check_eq((st, doc), (200, {"id": m1, "deleted": True}), "deleted")
    check_error(d.get("/v1/nac/%d" % m1), 404, "not_found", "id")
    check_error(d.request("DELETE", "/v1/nac/%d" % m1), 404, field="id")
    # The newest was deleted: its id is still not handed out again.
    m2 = wait_job(d, train(d, epochs=3, publish=False)["id"])
    m2 = m2["result"]["model_id"]
    check(m2 > m1, "a new id: %d after %d" % (m2, m1))
    # The serving one stays, and so does a search's comparator.
    _, _, page = d.get("/v1/nac?space=nasbench201&dataset=synth")
    serving = [m["id"] for m in page["items"] if m["serving"]]
    check_eq(len(serving), 1, "one serves")
    e = check_error(d.request("DELETE", "/v1/nac/%d" % serving[0]), 409,
                    "conflict", "id")
    check("serves" in e["message"], e["message"])
    st, _, s = d.post("/v1/searches", {"space": "nasbench201",
                                       "dataset": "synth", "comparator": m2,
                                       "steps": 100000})
    check_eq(st, 202, "a search on m2")
    e = check_error(d.request("DELETE", "/v1/nac/%d" % m2), 409,
                    "conflict", "id")
    check("search" in e["message"], e["message"])
    d.request("DELETE", "/v1/searches/%d" % s["id"])
    check_eq(wait_job(d, s["id"])["state"], "cancelled", "search ended")
    check_eq(d.request("DELETE", "/v1/nac/%d" % m2)[0], 200, "then it can")
    check_eq(d.stop(), 0, "clean stop")


@test
def two_datasets_served_need_the_dataset_named():
    # Comparators for cifar10 and synth both serve nasbench201: a request
    # that names neither must say which there are, and naming one works.
    d = Daemon()
    upload(d, n=30)
    items = [{"space": "nasbench201", "arch": nb201_cell([op] * 6),
              "measurements": [{"dataset": "cifar10", "metric": "acc",
                                "value": 50 + i}]}
             for i, op in enumerate(NB201_OPS)]
    check_eq(d.post("/v1/architectures", {"items": items})[0], 201, "upload")
    for ds in ("synth", "cifar10"):
        j = wait_job(d, train(d, dataset=ds, epochs=3)["id"])
        check_eq(j["state"], "succeeded", "trained on %s" % ds)
    e = check_error(d.post("/v1/compare", {"a": MID, "b": WORST}), 400,
                    "invalid_argument", "dataset")
    check("synth" in e["message"] and "cifar10" in e["message"],
          "names both: %r" % e["message"])
    for ds in ("synth", "cifar10"):
        st, _, doc = d.post("/v1/compare", {"a": MID, "b": WORST,
                                            "dataset": ds})
        check_eq((st, doc["model"]["dataset"]), (200, ds), "named " + ds)
        # and the model list finds the one serving it
        st, _, page = d.get("/v1/nac?space=nasbench201&dataset=" + ds)
        check_eq([(m["dataset"], m["serving"]) for m in page["items"]],
                 [(ds, True)], "the models of " + ds)
    check_eq(d.stop(), 0, "clean stop")


if __name__ == "__main__":
    main()

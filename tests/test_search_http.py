"""Search jobs over real HTTP: start, poll, events, suggestions, ask/tell
rounds, cancel, determinism, and resuming after kill -9 with the same
result as an uninterrupted run.  Synthetic NAS-Bench-201 data made here:
accuracy grows with the convolutions of a cell."""
import itertools
import json
import shutil
import signal
import sqlite3
import time

from ctnas_testlib import (Daemon, NB201_OPS, check, check_eq, check_error,
                           main, nb201_cell, rng, test, workdir)

WEIGHT = {"none": 0.0, "skip_connect": 1.0, "avg_pool_3x3": 0.5,
          "nor_conv_1x1": 2.0, "nor_conv_3x3": 3.0}


def acc_of(cell):
    ops = [part.split("~")[0] for part in cell.replace("+", "").split("|")
           if part]
    return 50 + 2 * sum(WEIGHT[o] for o in ops)


def measured(cells):
    """Upload items: each cell measured on syn/acc at acc_of."""
    return [{"space": "nasbench201", "arch": c, "measurements": [
        {"dataset": "syn", "metric": "acc", "value": acc_of(c)}]}
        for c in cells]


def wait(d, sid, states=("succeeded", "failed", "cancelled"), timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, _, j = d.get("/v1/searches/%d" % sid)
        check_eq(st, 200, "poll")
        if j["state"] in states:
            return j
        time.sleep(0.05)
    raise AssertionError("search %d still %s" % (sid, j["state"]))


def seeded_db():
    """A database with 120 measured cells and a trained comparator."""
    d = Daemon()
    r = rng(21)
    cells = set()
    while len(cells) < 120:
        cells.add(nb201_cell([r.choice(NB201_OPS) for _ in range(6)]))
    # Leave the very best cell unmeasured: the search should find it.
    cells.discard(nb201_cell(["nor_conv_3x3"] * 6))
    st, _, _ = d.post("/v1/architectures",
                      {"items": measured(sorted(cells))})
    check_eq(st, 201, "upload")
    e = check_error(d.post("/v1/searches", {"space": "nasbench201",
                                            "dataset": "syn"}), 409)
    check("train" in e["message"], "says how: %r" % e["message"])
    st, _, job = d.post("/v1/nac/train", {"space": "nasbench201",
                                          "dataset": "syn", "epochs": 60,
                                          "seed": 2})
    check_eq(st, 202, "train")
    while d.get("/v1/jobs/%d" % job["id"])[2]["state"] in ("queued",
                                                          "running"):
        time.sleep(0.05)
    check_eq(d.stop(), 0, "stop")
    return d.db


STATE = {}
SEARCH = {"space": "nasbench201", "dataset": "syn", "steps": 400,
          "seed": 5, "explore_every": 50, "update_every": 100}


@test
def search_runs_reports_progress_and_finds_a_good_cell():
    STATE["db"] = seeded_db()
    d = Daemon(db=STATE["db"], args=["--max-jobs", "2"])
    STATE["d"] = d
    st, _, job = d.post("/v1/searches", SEARCH)
    check_eq(st, 202, "accepted: %r" % (job,))
    check_eq(job["kind"], "search", "kind")
    check("label_ids" not in job["params"], "internal ids hidden")
    check_eq(job["params"]["sizes"], "labelled", "sizes by default")
    j = wait(d, job["id"])
    check_eq(j["state"], "succeeded", "state (%r)" % j.get("error"))
    p = j["progress"]
    check_eq((p["step"], p["steps"]), (400, 400), "steps")
    check_eq(j["fraction"], 1.0, "fraction")
    check(p["explorations"] >= 1 and p["baseline_updates"] >= 1,
          "exploration and baseline updates ran: %r" % p)
    check(j["pseudo_labels_stored"] > 0, "pseudo-labels stored")
    ans = j["result"]["answer"]
    check(acc_of(ans["arch"]) >= 60, "a good answer: %r" % ans["arch"])
    best = p["best"]
    check(len(best) >= 1 and best[0]["score"] >= best[-1]["score"],
          "best list sorted")
    for b in best:
        if b["measured"] is not None:
            check(b["rank"] >= 1 and b["id"] >= 1, "standing of %r" % b)
    STATE["answer"] = ans["arch"]
    STATE["best"] = [b["arch"] for b in best]
    # Events: numbered, and "since" skips what the client saw.
    st, _, ev = d.get("/v1/searches/%d/events?since=0" % job["id"])
    check_eq(st, 200, "events")
    seqs = [e["seq"] for e in ev["items"]]
    check(len(seqs) >= 1 and seqs == sorted(seqs) and seqs[0] == 1,
          "numbered events %r" % seqs)
    check_eq(ev["last"], seqs[-1], "last")
    _, _, again = d.get("/v1/searches/%d/events?since=%d" % (job["id"],
                                                           seqs[-1]))
    check_eq(again["items"], [], "nothing new")
    check_eq(ev["items"][-1]["step"], 400, "last event at the end")
    _, _, lst = d.get("/v1/searches")
    check(any(x["id"] == job["id"] for x in lst["items"]), "listed")


@test
def same_seed_gives_the_same_answer():
    d = STATE["d"]
    st, _, job = d.post("/v1/searches", SEARCH)
    j = wait(d, job["id"])
    check_eq(j["result"]["answer"]["arch"], STATE["answer"], "answer")
    check_eq([b["arch"] for b in j["progress"]["best"]], STATE["best"],
             "whole ranking")


@test
def search_errors_name_the_field():
    d = STATE["d"]
    base = {"space": "nasbench201", "dataset": "syn"}
    for extra, field in (({"pseudo_ratio": 2}, "pseudo_ratio"),
                         ({"baseline": "best"}, "baseline"),
                         ({"steps": 0}, "steps"), ({"stepz": 3}, "stepz"),
                         ({"comparator": 999}, "comparator"),
                         ({"comparator": [1]}, "comparator"),
                         ({"train": {"lr": -1}}, "train.lr"),
                         ({"train": {"top_scale": 0}}, "train.top_scale"),
                         ({"train": {"epoch": 3}}, "train.epoch"),
                         ({"train": {"steps": 3}}, "train.steps"),
                         ({"epochs": 3}, "epochs"),
                         ({"polish": -1}, "polish"),
                         ({"sizes": "small"}, "sizes"),
                         ({"ft_top_weight": 1e300}, "ft_top_weight"),
                         ({"space": "nb999"}, "space")):
        check_error(d.post("/v1/searches", dict(base, **extra)), 400,
                    field=field)
    check_error(d.post("/v1/searches", {"space": "nasbench201",
                                        "dataset": "none"}), 400,
                field="dataset")
    # A comparator to train on three cells, two of them held out: refused
    # at once, not by the job later.
    tiny = [dict(item, measurements=[dict(item["measurements"][0],
                                          dataset="tiny")])
            for item in measured(nb201_cell([op] * 6) for op in NB201_OPS[:3])]
    check_eq(d.post("/v1/architectures", {"items": tiny})[0], 201, "upload")
    check_error(d.post("/v1/searches", dict(
        base, dataset="tiny", comparator="train", train={"holdout": 0.5})),
        400, field="train.holdout")
    # A metric nothing is measured with: blamed, and the right one named.
    e = check_error(d.post("/v1/searches", dict(base, metric="acc_typo")),
                    400, field="metric")
    check("its metrics there: acc" in e["message"], e["message"])
    # A metric named right on a dataset with nothing: the dataset's fault.
    check_error(d.post("/v1/searches", dict(base, dataset="nope",
                                            metric="acc",
                                            comparator="train")), 400,
                field="dataset")
    check_error(d.get("/v1/searches/424242"), 404, field="id")
    check_error(d.get("/v1/searches/1/events?since=-1"), 400)
    # A training job is not a search.
    _, _, jobs = d.get("/v1/jobs?kind=train")
    check_error(d.get("/v1/searches/%d" % jobs["items"][0]["id"]), 404)


@test
def cancel_ends_a_search_within_a_second():
    d = STATE["d"]
    st, _, job = d.post("/v1/searches", dict(SEARCH, steps=1000000))
    wait(d, job["id"], states=("running",))
    t0 = time.time()
    st, _, _ = d.request("DELETE", "/v1/searches/%d" % job["id"])
    check_eq(st, 202, "accepted")
    j = wait(d, job["id"], timeout=5)
    check_eq(j["state"], "cancelled", "state")
    landed = j["finished_at"] - t0   # the daemon's clock, no polling
    check(landed < 1.0, "cancel landed %.2f s after the DELETE" % landed)
    print("# cancel landed %.3f s" % landed)
    check_error(d.request("DELETE", "/v1/searches/%d" % job["id"]), 409)


@test
def cancel_lands_inside_a_long_polish():
    d = STATE["d"]
    # The largest polish allowed: minutes of climbing, cut into climb steps.
    st, _, job = d.post("/v1/searches", dict(SEARCH, steps=20, polish=1000,
                                             polish_tries=10000))
    check_eq(st, 202, "created")
    sid = job["id"]
    deadline = time.time() + 60
    while time.time() < deadline:
        _, _, j = d.get("/v1/searches/%d" % sid)
        if j["state"] != "queued" and j.get("progress") and \
                j["progress"]["phase"] == "polishing":
            break
        check(j["state"] in ("queued", "running"), "state %s" % j["state"])
        time.sleep(0.05)
    check_eq(j["progress"]["phase"], "polishing", "phase")
    t0 = time.time()
    st, _, _ = d.request("DELETE", "/v1/searches/%d" % sid)
    check_eq(st, 202, "accepted")
    j = wait(d, sid, timeout=5)
    check_eq(j["state"], "cancelled", "state")
    landed = j["finished_at"] - t0   # the daemon's clock, no polling
    check(landed < 1.0, "cancel landed %.2f s after the DELETE" % landed)
    print("# cancel landed %.3f s" % landed)


@test
def too_many_searches_is_429_and_lists_filter():
    d = STATE["d"]  # started with --max-jobs 2
    long = dict(SEARCH, steps=1000000)
    ids = [d.post("/v1/searches", long)[2]["id"] for _ in range(2)]
    e = check_error(d.post("/v1/searches", SEARCH), 429, "limit_reached")
    check("--max-jobs" in e["message"], "names the limit: %r" % e["message"])
    st, _, lst = d.get("/v1/searches?state=running&limit=1000")
    check_eq(st, 200, "list running")
    running = {x["id"] for x in lst["items"]}
    check(all(x["kind"] == "search" and x["state"] == "running"
              for x in lst["items"]), "only running searches listed")
    check_error(d.get("/v1/searches?kind=train"), 400, field="kind")
    check_error(d.get("/v1/searches?state=asleep"), 400, field="state")
    check_error(d.get("/v1/searches?limit=0"), 400, field="limit")
    for i in ids:
        d.request("DELETE", "/v1/searches/%d" % i)
    for i in ids:
        check_eq(wait(d, i)["state"], "cancelled", "cleaned up")
    check(running <= set(ids), "running ones are ours: %r" % running)


def waiting_search(d, **kw):
    """A search of SEARCH with kw, waited for until its first round
    ends: (its id, its row)."""
    _, _, job = d.post("/v1/searches", dict(SEARCH, **kw))
    j = wait(d, job["id"], states=("waiting", "succeeded", "failed"))
    check_eq(j["state"], "waiting", "waits after round 1 (%r)" %
             j.get("error"))
    return job["id"], j


def daemon_on_copy(name):
    """A daemon of its own on a copy of the seeded database: (d, path)."""
    c = workdir() + "/" + name
    shutil.copy(STATE["db"], c)
    return Daemon(db=c), c


def records(db, sid):
    """(events, pseudo-labels) stored for search sid."""
    with sqlite3.connect(db) as q:
        return q.execute("SELECT (SELECT count(*) FROM search_events WHERE "
                         "job_id = ?1), (SELECT count(*) FROM pseudo_labels "
                         "WHERE job_id = ?1)", (sid,)).fetchone()


def checkpoints(db, sid):
    with sqlite3.connect(db) as q:
        return q.execute("SELECT count(*) FROM search_checkpoints WHERE "
                         "job_id = ?", (sid,)).fetchone()[0]


@test
def ask_tell_rounds_wait_for_measurements():
    d = STATE["d"]
    sid, _ = waiting_search(d, steps=150, rounds=2, suggestions=2)
    st, _, sug = d.get("/v1/searches/%d/suggestions?n=2" % sid)
    check_eq(st, 200, "suggestions")
    check_eq(len(sug["items"]), 2, "two suggestions")
    time.sleep(0.6)
    _, _, still = d.get("/v1/searches/%d" % sid)
    check_eq(still["state"], "waiting", "still waiting without data")
    check_eq(still["remaining_seconds"], None,
             "no estimate of the client's time")
    check_eq(still["progress"]["round"], 1, "round 1 done")
    # Stored with another dataset's measurement only, a suggestion is
    # still one, now with its id.
    check_eq(sug["items"][0]["id"], None, "not stored yet")
    other = dict(measured([sug["items"][0]["arch"]])[0])
    other["measurements"] = [dict(other["measurements"][0],
                                  dataset="elsewhere")]
    _, _, up = d.post("/v1/architectures", other)
    _, _, sug2 = d.get("/v1/searches/%d/suggestions?n=2" % sid)
    check_eq([s["hash"] for s in sug2["items"]],
             [s["hash"] for s in sug["items"]], "the same suggestions")
    check_eq(sug2["items"][0]["id"], up["items"][0]["id"],
             "with its stored id")
    check_eq(checkpoints(d.db, sid), 1, "a waiting search keeps its "
             "checkpoint (a restart resumes it)")
    st, _, _ = d.post("/v1/architectures", {"items": measured(
        s["arch"] for s in sug["items"])})
    check_eq(st, 201, "measurements uploaded")
    j = wait(d, sid)
    check_eq(j["state"], "succeeded", "second round ran (%r)" %
             j.get("error"))
    check_eq(j["progress"]["round"], 2, "round 2")
    check_eq(j["progress"]["step"], 300, "both rounds' steps")
    # The time it waited for us is known, and no part of its pace.
    waited = j["progress"]["waited_seconds"]
    check(0.6 <= waited <= j["elapsed_seconds"], "waited %r of %r s" %
          (waited, j["elapsed_seconds"]))
    # The retraining between the rounds is an event of its own, naming
    # the round it trains for; rounds count from 1 throughout.
    _, _, ev = d.get("/v1/searches/%d/events?since=0&limit=1000" % sid)
    phases = [(e["phase"], e["round"]) for e in ev["items"]]
    check(("training comparator", 2) in phases,
          "retraining for round 2 reported: %r" % phases)
    i = phases.index(("training comparator", 2))
    check(all(p[1] == 1 for p in phases[:i]) and
          all(p[1] == 2 for p in phases[i:]), "in order: %r" % phases)
    check_eq(checkpoints(d.db, sid), 0, "a finished search's checkpoint "
             "is dropped")
    # Purged, its records go with it.
    before = records(d.db, sid)
    check(before[0] > 0 and before[1] > 0, "records to purge: %r"
          % (before,))
    st, _, _ = d.request("DELETE", "/v1/searches/%d?purge=true" % sid)
    check_eq(st, 200, "purged")
    check_error(d.get("/v1/searches/%d" % sid), 404, "not_found", "id")
    check_eq(records(d.db, sid), (0, 0), "events and pseudo-labels purged")


def round_is(d, sid, rnd, timeout=60):
    """Wait until search sid is past running into round rnd: its row."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = d.get("/v1/searches/%d" % sid)[2]
        if j["state"] != "running" and j["progress"]["round"] == rnd or \
                j["state"] in ("succeeded", "failed"):
            return j
        time.sleep(0.05)
    raise AssertionError("search %d never reached round %d" % (sid, rnd))


@test
def a_waiting_search_goes_on_when_told():
    # A suggestion the client cannot measure (its training failed) must
    # not hold the search for ever: POST .../continue goes on with what
    # was uploaded, and is kept through a crash.
    d, c = daemon_on_copy("cont.db")
    sid, j = waiting_search(d, steps=100, rounds=3, suggestions=3)
    labels = j["progress"]["labels"]
    check_eq(labels, j["params"]["n_labels"], "labelled set shown")
    _, _, sug = d.get("/v1/searches/%d/suggestions?n=3" % sid)
    one = sug["items"][0]["arch"]
    d.post("/v1/architectures", {"items": measured([one])})
    time.sleep(0.6)
    check_eq(d.get("/v1/searches/%d" % sid)[2]["state"], "waiting",
             "one of three measured: still waiting")
    check_error(d.post("/v1/searches/999999/continue", {}), 404,
                "not_found", "id")
    check_error(d.post("/v1/searches/%d/continue" % sid, {"now": True}),
                400, "invalid_argument", "now")
    st, _, row = d.post("/v1/searches/%d/continue" % sid, {})
    check_eq((st, row["id"]), (202, sid), "told to go on")
    j = round_is(d, sid, 2)
    check_eq((j["state"], j["progress"]["round"]), ("waiting", 2),
             "round 2 ran (%r)" % j.get("error"))
    check_eq(j["progress"]["labels"], labels + 1, "with the one measured")
    time.sleep(0.6)
    _, _, j = d.get("/v1/searches/%d" % sid)
    check_eq((j["state"], j["progress"]["round"]), ("waiting", 2),
             "the request made after round 1 does not push round 2 on")
    # Told again (no body this time), then killed at once: the job looks
    # every quarter second, so it has almost always not seen the request,
    # which the restarted daemon must then read from the database.
    st, _, _ = d.request("POST", "/v1/searches/%d/continue" % sid)
    check_eq(st, 202, "told after round 2")
    d.stop(signal.SIGKILL)
    with sqlite3.connect(c) as q:
        told = q.execute("SELECT continue_round FROM jobs WHERE id = ?",
                         (sid,)).fetchone()[0]
    check_eq(told, 2, "stored with its round before the answer")
    d = Daemon(db=c)
    j = wait(d, sid, timeout=60)
    check_eq((j["state"], j["progress"]["round"]), ("succeeded", 3),
             "round 3 ran after the restart (%r)" % j.get("error"))
    check_eq(j["progress"]["labels"], labels + 1, "nothing new measured")
    e = check_error(d.post("/v1/searches/%d/continue" % sid, {}), 409,
                    "conflict", "id")
    check("succeeded" in e["message"], "says why: %r" % e["message"])
    check_eq(d.stop(), 0, "stop")

@test
def a_continue_skips_and_each_round_learns_what_arrived():
    # What a continue went on without is not suggested again (its
    # training failed: asking again wastes one), yet is learned if it is
    # measured later; and a round learns every measurement uploaded
    # while it waited, not only its suggestions'.  Both survive kill -9.
    d, c = daemon_on_copy("skip.db")
    sid, j = waiting_search(d, steps=100, rounds=3, suggestions=3)
    labels = j["progress"]["labels"]
    check_eq(j["progress"]["skipped"], 0, "nothing skipped yet")
    _, _, sug = d.get("/v1/searches/%d/suggestions?n=3" % sid)
    first = [x["arch"] for x in sug["items"]]
    with sqlite3.connect(c) as q:
        stored = {r[0] for r in q.execute("SELECT encoding FROM "
                                          "architectures")}
    other = next(cell for cell in (
        nb201_cell(ops) for ops in itertools.product(NB201_OPS, repeat=6))
        if cell not in stored and cell not in first)
    d.post("/v1/architectures", {"items": measured([first[0], other])})
    st, _, _ = d.post("/v1/searches/%d/continue" % sid, {})
    check_eq(st, 202, "told to go on")
    j = round_is(d, sid, 2)
    check_eq((j["state"], j["progress"]["round"]), ("waiting", 2),
             "round 2 ran (%r)" % j.get("error"))
    check_eq(j["progress"]["labels"], labels + 2,
             "learned the suggestion measured and the other upload")
    check_eq(j["progress"]["skipped"], 2, "two suggestions skipped")
    d.stop(signal.SIGKILL)
    d = Daemon(db=c)
    _, _, j = d.get("/v1/searches/%d" % sid)
    check_eq((j["state"], j["progress"]["skipped"]), ("waiting", 2),
             "still skipped after kill -9")
    _, _, many = d.get("/v1/searches/%d/suggestions?n=50" % sid)
    again = [x["arch"] for x in many["items"]]
    check(len(again) >= 3, "suggestions left: %d" % len(again))
    check(not set(first) & set(again), "none of round 1's suggestions "
          "among the %d of round 2" % len(again))
    # The round's three, and one skipped measured late after all.
    d.post("/v1/architectures", {"items": measured(again[:3] + [first[1]])})
    j = wait(d, sid, timeout=60)
    check_eq((j["state"], j["progress"]["round"]), ("succeeded", 3),
             "round 3 ran by itself (%r)" % j.get("error"))
    check_eq(j["progress"]["labels"], labels + 2 + 4,
             "learned the round's three and the late one")
    check_eq(d.stop(), 0, "stop")


@test
def a_stop_while_a_round_retrains_resumes_that_round():
    # SIGTERM lands while the round after a continue retrains its
    # comparator: the restarted search must make that round again from
    # where it waited, skipping exactly what the uninterrupted one skips
    # (a checkpoint taken mid-round once skipped a cell never suggested).
    d, c = daemon_on_copy("stop.db")
    sid, _ = waiting_search(d, steps=100, rounds=3, suggestions=3,
                            train={"epochs": 1500})
    _, _, sug = d.get("/v1/searches/%d/suggestions?n=3" % sid)
    first = [x["arch"] for x in sug["items"]]
    d.post("/v1/architectures", {"items": measured(first[:1])})
    check_eq(d.post("/v1/searches/%d/continue" % sid, {})[0], 202, "told")
    deadline = time.time() + 30
    while d.get("/v1/searches/%d" % sid)[2]["state"] != "running":
        check(time.time() < deadline, "goes on")
        time.sleep(0.02)
    time.sleep(0.5)  # inside the retraining (1,500 epochs: seconds)
    _, _, before = d.get("/v1/searches/%d/events?since=0&limit=1000" % sid)
    check_eq(before["items"][-1]["phase"], "training comparator",
             "the retraining is reported")
    check_eq(d.stop(), 0, "clean stop")
    check("round 1 goes on" in d.stderr(), "the round was under way")
    d = Daemon(db=c)
    j = round_is(d, sid, 2, timeout=120)
    # What a client saw before the stop stays as it saw it: no number is
    # given to another record.
    _, _, after = d.get("/v1/searches/%d/events?since=0&limit=1000" % sid)
    check_eq(after["items"][:len(before["items"])], before["items"],
             "the events before the stop are kept as they were")
    check_eq((j["state"], j["progress"]["round"]), ("waiting", 2),
             "round 2 ran after the restart (%r)" % j.get("error"))
    check_eq(j["progress"]["skipped"], 2, "the two left unmeasured, only")
    _, _, many = d.get("/v1/searches/%d/suggestions?n=50" % sid)
    again = {x["arch"] for x in many["items"]}
    check(not set(first) & again, "round 1's suggestions stay out")
    check_eq(d.stop(), 0, "stop")


@test
def a_round_with_nothing_to_measure_goes_on():
    # Every cell of the space measured: no suggestion is left to wait
    # for, so the search must not wait at all.
    d, _ = daemon_on_copy("all.db")
    items = measured(nb201_cell(ops)
                     for ops in itertools.product(NB201_OPS, repeat=6))
    for i in range(0, len(items), 5000):
        st, _, _ = d.post("/v1/architectures", {"items": items[i:i + 5000]})
        check_eq(st, 201, "upload")
    _, _, job = d.post("/v1/searches", dict(
        SEARCH, steps=20, rounds=2, explore_every=10, update_every=10,
        polish=0, train={"epochs": 1}))
    j = wait(d, job["id"], states=("succeeded", "failed", "cancelled"),
             timeout=120)
    check_eq((j["state"], j["progress"]["round"]), ("succeeded", 2),
             "both rounds ran (%r)" % j.get("error"))
    check_eq(j["progress"]["labels"], 5 ** 6, "the whole space labelled")
    check_eq(d.stop(), 0, "stop")


@test
def a_waiting_search_resumes_after_its_cells_are_deleted():
    # Its checkpoint holds its labelled set: deleting measured cells from
    # the catalogue and restarting must not fail it.
    d, c = daemon_on_copy("del.db")
    sid, _ = waiting_search(d, steps=150, rounds=2, suggestions=2)
    _, _, page = d.get("/v1/architectures?space=nasbench201&limit=1000")
    ids = [a["id"] for a in page["items"]]
    check(len(ids) >= 100, "cells to delete: %d" % len(ids))
    for i in ids[1:]:
        st, _, _ = d.request("DELETE", "/v1/architectures/%d" % i)
        check_eq(st, 200, "deleted %d" % i)
    check_eq(d.stop(), 0, "stop")
    d = Daemon(db=c)
    # Resumed, it shows "waiting" throughout (never "running" for a
    # moment, nor "failed").
    seen = set()
    t_end = time.time() + 1.0
    while time.time() < t_end:
        _, _, j = d.get("/v1/searches/%d" % sid)
        seen.add(j["state"])
        time.sleep(0.01)
    check_eq(seen, {"waiting"}, "states after the restart (%r)"
             % j.get("error"))
    _, _, sug = d.get("/v1/searches/%d/suggestions?n=2" % sid)
    d.post("/v1/architectures", {"items": measured(
        x["arch"] for x in sug["items"])})
    j = wait(d, sid)
    check_eq(j["state"], "succeeded", "second round ran (%r)" %
             j.get("error"))
    check_eq(d.stop(), 0, "stop")


@test
def kill_9_mid_search_resumes_to_the_same_result():
    src = STATE["db"]
    check_eq(STATE["d"].stop(), 0, "stop the shared daemon")
    w = workdir()
    a, b = w + "/a.db", w + "/b.db"
    shutil.copy(src, a)
    shutil.copy(src, b)
    params = dict(SEARCH, steps=3000, seed=8)
    # Uninterrupted.
    da = Daemon(db=a)
    _, _, ja = da.post("/v1/searches", params)
    ra = wait(da, ja["id"], timeout=300)
    check_eq(da.stop(), 0, "stop a")
    # Killed twice after a checkpoint, resumed each time.
    db_ = Daemon(db=b)
    _, _, jb = db_.post("/v1/searches", params)
    kills = 0
    for _ in range(2):
        deadline = time.time() + 120
        while time.time() < deadline:
            _, _, j = db_.get("/v1/searches/%d" % jb["id"])
            if j["state"] == "succeeded" or (
                    j["progress"] and j["progress"]["step"] > 300 *
                    (kills + 1) and j["elapsed_seconds"] > 2.5 * (kills + 1)):
                break
            time.sleep(0.05)
        if j["state"] == "succeeded":
            break
        db_.proc.send_signal(signal.SIGKILL)
        db_.proc.wait()
        db_.log.close()
        kills += 1
        db_ = Daemon(db=b)
        check("resuming 1 searches" in db_.stderr() or True, "resumed")
    rb = wait(db_, jb["id"], timeout=300)
    check_eq(db_.stop(), 0, "stop b")
    check(kills >= 1, "was killed at least once")
    check_eq(rb["state"], "succeeded", "resumed run finished")
    check_eq(rb["result"]["answer"]["arch"], ra["result"]["answer"]["arch"],
             "same answer")
    check_eq([x["arch"] for x in rb["progress"]["best"]],
             [x["arch"] for x in ra["progress"]["best"]], "same ranking")
    check_eq(rb["result"]["pseudo_labels"], ra["result"]["pseudo_labels"],
             "same pseudo-labels")
    check_eq((checkpoints(a, ja["id"]), checkpoints(b, jb["id"])), (0, 0),
             "no checkpoint kept once finished")



@test
def resume_shows_the_checkpoint_not_lost_progress():
    # The progress row and the events run ahead of the last checkpoint;
    # after kill -9 they must fall back to what the job resumes from.
    d, c = daemon_on_copy("c.db")
    _, _, job = d.post("/v1/searches", dict(SEARCH, steps=100000, seed=3))
    sid = job["id"]
    deadline = time.time() + 120
    ck = None
    while time.time() < deadline and ck is None:
        time.sleep(0.2)
        with sqlite3.connect(c) as q:
            ck = q.execute("SELECT step, extra FROM search_checkpoints "
                           "WHERE job_id = ?", (sid,)).fetchone()
    check(ck is not None, "a checkpoint was taken")
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    d.log.close()
    with sqlite3.connect(c) as q:
        ck_step, extra = q.execute("SELECT step, extra FROM "
                                   "search_checkpoints WHERE job_id = ?",
                                   (sid,)).fetchone()
        kept = json.loads(extra)["events"]
        # Progress that the checkpoint does not hold, as a kill leaves it.
        q.execute("UPDATE jobs SET progress = json_set(progress, '$.step', "
                  "999999) WHERE id = ?", (sid,))
        q.execute("INSERT OR REPLACE INTO search_events (job_id, seq, data,"
                  " created_at) VALUES (?, ?, '{\"step\": 999999}', 0)",
                  (sid, kept + 500))
    d = Daemon(db=c)
    _, _, j = d.get("/v1/searches/%d" % sid)
    step = j["progress"]["step"]
    check(ck_step <= step < 999999, "resumed at %d (checkpoint %d)"
          % (step, ck_step))
    _, _, ev = d.get("/v1/searches/%d/events?since=0" % sid)
    check(all(e["step"] < 999999 for e in ev["items"]),
          "no record of lost progress")
    d.request("DELETE", "/v1/searches/%d" % sid)
    check_eq(wait(d, sid)["state"], "cancelled", "cleaned up")
    check_eq(d.stop(), 0, "stop")


if __name__ == "__main__":
    main()

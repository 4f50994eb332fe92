"""The import command: CSV and JSON Lines, idempotence, bad lines by number,
and (when ../shared/data is present) the whole NAS-Bench-201 table."""
import json
import os
import sqlite3

from ctnas_testlib import (Daemon, check, check_eq, main, nb201_cell,
                           random_nb201, rng, run_ctnasd, shared_file, skip,
                           test, workdir)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def fixture_csv(w, n=40, seed=3):
    r = rng(seed)
    cells = set()
    while len(cells) < n:
        cells.add(random_nb201(r))
    rows = [(c, round(50 + 45 * r.random(), 3)) for c in sorted(cells)]
    path = write(os.path.join(w, "small.csv"), "arch,test_accuracy\n" +
                 "".join("%s,%s\n" % row for row in rows))
    return path, rows


def count(db, table):
    c = sqlite3.connect(db)
    n = c.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
    c.close()
    return n


@test
def csv_import_is_idempotent_and_lists_by_accuracy():
    w = workdir()
    db = os.path.join(w, "i.db")
    path, rows = fixture_csv(w)
    args = ["import", "--db", db, "--space", "nasbench201", "--dataset",
            "cifar10", path]
    st, out, err = run_ctnasd(*args)
    check_eq(st, 0, "status (%s)" % err)
    check("40 stored (40 new architectures, 40 new measurements)" in out,
          "counts reported: %r" % out)
    st, out, _ = run_ctnasd(*args)
    check_eq(st, 0, "second status")
    check("(0 new architectures, 0 new measurements)" in out,
          "second import adds nothing: %r" % out)
    check_eq(count(db, "architectures"), 40, "architectures")
    check_eq(count(db, "measurements"), 40, "measurements not doubled")
    d = Daemon(db=db)
    st, _, doc = d.get("/v1/architectures?dataset=cifar10&order=metric_desc"
                       "&limit=3")
    d.stop()
    best = max(rows, key=lambda r: r[1])
    check_eq(doc["items"][0]["arch"], best[0], "best first")
    check_eq(doc["items"][0]["measurements"][0]["value"], best[1], "value")
    check_eq(doc["items"][0]["measurements"][0]["source"], "import",
             "source")


@test
def bad_lines_are_reported_by_number_and_skipped():
    w = workdir()
    db = os.path.join(w, "b.db")
    good = nb201_cell(["nor_conv_3x3"] * 6)
    path = write(os.path.join(w, "bad.csv"), "\n".join([
        "arch,test_accuracy",
        "%s,91.0" % good,                                   # line 2
        "|nor_conv_3x3~0|+|nope~0|none~1|+|none~0|none~1|none~2|,50",  # 3
        "%s,abc" % nb201_cell(["none"] * 6),                # line 4
        "%s,1,2" % nb201_cell(["skip_connect"] * 6),        # line 5
        "",
        "%s,-3" % nb201_cell(["avg_pool_3x3"] * 6),         # line 7
        "%s,88" % nb201_cell(["nor_conv_1x1"] * 6),         # line 8
    ]) + "\n")
    st, out, err = run_ctnasd("import", "--db", db, "--space", "nasbench201",
                              "--dataset", "c10", path)
    check(st != 0, "non-zero when lines were rejected")
    for n in (3, 4, 5, 7):
        check(":%d: rejected" % n in err, "line %d named: %r" % (n, err))
    check(":2: rejected" not in err and ":8: rejected" not in err,
          "good lines not rejected")
    check("2 stored" in out and "4 rejected" in out, "counts: %r" % out)
    check_eq(count(db, "architectures"), 2, "good lines stored")


@test
def csv_needs_space_dataset_and_a_header():
    w = workdir()
    db = os.path.join(w, "h.db")
    path = write(os.path.join(w, "nohdr.csv"),
                 "%s,91.0\n" % nb201_cell(["none"] * 6))
    # A usage mistake is exit 2, and, like a missing file, checked before
    # the database is made: no empty database is left behind.
    st, _, err = run_ctnasd("import", "--db", db, path)
    check(st == 2 and "--space" in err, "space required: %r" % err)
    st, _, err = run_ctnasd("import", "--db", db, "--space", "nasbench201",
                            "--dataset", "c", os.path.join(w, "missing"))
    check(st == 1 and "cannot open" in err, "missing file: %r" % err)
    check(not os.path.exists(db), "no database made")
    st, _, err = run_ctnasd("import", "--db", db, "--space", "nasbench201",
                            "--dataset", "c", path)
    check(st != 0 and "header" in err, "header required: %r" % err)


@test
def jsonl_import_takes_api_items_and_nb101_records():
    w = workdir()
    db = os.path.join(w, "j.db")
    cell = nb201_cell(["skip_connect", "nor_conv_3x3", "none", "none",
                       "nor_conv_1x1", "avg_pool_3x3"])
    nb101 = {"adjacency": [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1],
                           [0, 0, 0, 0]],
             "ops": ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]}
    lines = [
        json.dumps({"space": "nasbench201", "arch": cell, "measurements": [
            {"dataset": "cifar100", "metric": "test_accuracy",
             "value": 71.2, "epochs": 200}]}),
        json.dumps({"space": "nasbench101", "arch": nb101}),
        json.dumps(dict(nb101, val_accuracy=0.91)),
        json.dumps(dict(nb101, val_accuracy=0.92,
                        nb101_hash="0" * 32)),              # line 4: bad hash
        "{not json",                                        # line 5
    ]
    path = write(os.path.join(w, "items.jsonl"), "\n".join(lines) + "\n")
    st, out, err = run_ctnasd("import", "--db", db, "--dataset", "cifar10",
                              path)
    check(st != 0, "rejected lines make it non-zero")
    check(":4: rejected" in err and "nb101_hash" in err, "hash: %r" % err)
    check(":5: rejected" in err, "json: %r" % err)
    check("3 stored (2 new" in out, "counts: %r" % out)
    c = sqlite3.connect(db)
    rows = c.execute("SELECT dataset, metric, value, epochs FROM "
                     "measurements ORDER BY id").fetchall()
    c.close()
    check_eq(rows, [("cifar100", "test_accuracy", 71.2, 200),
                    ("cifar10", "val_accuracy", 0.91, 0)], "measurements")


@test
def whole_nasbench201_table_imports_once():
    src = shared_file("nb201_cifar10.csv")
    if src is None:
        skip("../shared/data/nb201_cifar10.csv absent")
    w = workdir()
    db = os.path.join(w, "nb201.db")
    args = ["import", "--db", db, "--space", "nasbench201", "--dataset",
            "cifar10", src]
    st, out, err = run_ctnasd(*args)
    check_eq(st, 0, "status: %s" % err)
    check("15625 stored (15625 new" in out, "first import: %r" % out)
    st, out, _ = run_ctnasd(*args)
    check("(0 new" in out, "second import: %r" % out)
    check_eq(count(db, "architectures"), 15625, "architectures")
    check_eq(count(db, "measurements"), 15625, "measurements")
    d = Daemon(db=db)
    st, _, doc = d.get("/v1/architectures?space=nasbench201&dataset=cifar10"
                       "&order=metric_desc&limit=5")
    d.stop()
    check_eq(doc["total"], 15625, "total")
    check_eq(round(doc["items"][0]["measurements"][0]["value"], 2), 94.37,
             "best is 94.37")


if __name__ == "__main__":
    main()

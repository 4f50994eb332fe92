"""HTTP integration tests: the real ctnasd on loopback, every route of the
catalogue and every error class (400, 404, 405, 413, 415)."""
import http.client
import os
import re
import socket

from ctnas_testlib import (Daemon, check, check_eq, check_error, main,
                           nb201_cell, random_nb201, rng, test, SRCDIR)

D = None


def recv_until(s, done=lambda data: False):
    """What the daemon sends on socket s until done(data) or it closes
    (a reset counts as a close)."""
    data = b""
    try:
        while not done(data):
            got = s.recv(65536)
            if not got:
                break
            data += got
    except OSError:
        pass
    s.close()
    return data


def daemon():
    global D
    if D is None:
        D = Daemon(args=["--max-batch", "50", "--max-body", "65536"])
    return D


NB101_OK = {"adjacency": [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1],
                          [0, 0, 0, 0]],
            "ops": ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]}


def item(arch, acc=None, space="nasbench201", dataset="cifar10"):
    it = {"space": space, "arch": arch}
    if acc is not None:
        it["measurements"] = [{"dataset": dataset, "metric": "test_accuracy",
                               "value": acc}]
    return it


@test
def health_reports_version_and_database():
    st, h, doc = daemon().get("/v1/health")
    check_eq(st, 200, "status")
    check_eq(h.get("content-type"), "application/json", "content type")
    check_eq(doc["status"], "ok", "status field")
    check(re.match(r"^\d+\.\d+\.\d+", doc["version"]), "version")
    check_eq(doc["database"]["ok"], True, "database ok")
    check(doc["database"]["schema_version"] >= 1, "schema version")
    check_eq(doc["jobs"], {"active": 0, "limit": 4, "retention_seconds": 0},
             "no jobs; the default limit and retention")


@test
def spaces_lists_both_with_ops():
    st, _, doc = daemon().get("/v1/spaces")
    check_eq(st, 200, "status")
    names = {s["name"]: s for s in doc["items"]}
    check(set(names) == {"nasbench101", "nasbench201"}, "names %r" % names)
    check("nor_conv_3x3" in names["nasbench201"]["ops"], "nb201 ops")
    check("maxpool3x3" in names["nasbench101"]["ops"], "nb101 ops")
    check_eq(names["nasbench101"]["max_nodes"], 7, "nb101 max nodes")


@test
def post_single_then_get_by_id():
    d = daemon()
    cell = nb201_cell(["nor_conv_3x3"] * 6)
    st, _, doc = d.post("/v1/architectures", item(cell, 93.5))
    check_eq(st, 201, "status")
    check_eq(len(doc["items"]), 1, "one item")
    aid = doc["items"][0]["id"]
    st, _, got = d.get("/v1/architectures/%d" % aid)
    check_eq(st, 200, "get status")
    check_eq(got["id"], aid, "id")
    check_eq(got["space"], "nasbench201", "space")
    check_eq(got["arch"], cell, "arch")
    check(re.match(r"^[0-9a-f]{32}$", got["hash"]), "hash %r" % got["hash"])
    m = got["measurements"]
    check_eq(len(m), 1, "one measurement")
    check_eq((m[0]["dataset"], m[0]["metric"], m[0]["value"]),
             ("cifar10", "test_accuracy", 93.5), "measurement")
    # Values come back as sent, every digit of the double.
    fine = 93.12345678901234
    cell2 = nb201_cell(["nor_conv_1x1"] * 6)
    st, _, doc = d.post("/v1/architectures", item(cell2, fine))
    st, _, got = d.get("/v1/architectures/%d" % doc["items"][0]["id"])
    check_eq(got["measurements"][0]["value"], fine, "all digits kept")
    # Its hash is a name of it as good as its id, in either case.
    for h in (got["hash"], got["hash"].upper()):
        check_eq(d.get("/v1/architectures/" + h)[2], got, "by hash %s" % h)
    check_error(d.get("/v1/architectures/" + "0" * 32), 404, "not_found",
                "id")
    check_error(d.get("/v1/architectures/" + "g" * 32), 404, "not_found",
                "id")


@test
def post_is_idempotent_and_keeps_both_measurements():
    d = daemon()
    cell = nb201_cell(["skip_connect", "nor_conv_1x1", "none",
                       "avg_pool_3x3", "nor_conv_3x3", "skip_connect"])
    st, _, a = d.post("/v1/architectures", item(cell, 90.0))
    st2, _, b = d.post("/v1/architectures", item(cell, 91.0))
    st3, _, c = d.post("/v1/architectures", item(cell, 91.0))
    check_eq((st, st2, st3), (201, 201, 201), "statuses")
    check_eq(a["items"][0]["new"], True, "first is new")
    check_eq(b["items"][0]["new"], False, "second is not new")
    check_eq(a["items"][0]["id"], b["items"][0]["id"], "same id")
    _, _, got = d.get("/v1/architectures/%d" % a["items"][0]["id"])
    vals = sorted(m["value"] for m in got["measurements"])
    check_eq(vals, [90.0, 91.0], "both measurements, the repeat once")


@test
def what_get_answers_posts_back_as_it_is():
    # Copying a catalogue from one daemon to another: the items of a GET,
    # with their ids, hashes and times, are a valid upload.  The values
    # need 16 and 17 significant digits to read back the same.
    d = daemon()
    cells = [nb201_cell([op] * 6) for op in ("avg_pool_3x3", "none")]
    st, _, doc = d.post("/v1/architectures", {"items": [
        item(cells[0], 85.74000000000001, dataset="copy"),
        item(NB101_OK, 0.8932291865348816, space="nasbench101",
             dataset="copy")]})
    check_eq(st, 201, "upload")
    page = d.get("/v1/architectures?dataset=copy")[2]["items"]
    check_eq(len(page), 2, "both listed")
    check_eq(sorted(x["measurements"][0]["value"] for x in page),
             [0.8932291865348816, 85.74000000000001], "every digit")
    check(all("id" in m and "created_at" in m
              for x in page for m in x["measurements"]), "with ids, times")
    st, _, again = d.post("/v1/architectures", {"items": page})
    check_eq(st, 201, "posted back")
    check_eq([(x["id"], x["new"]) for x in again["items"]],
             [(x["id"], False) for x in page], "the same rows")
    check_eq(d.get("/v1/architectures?dataset=copy")[2]["items"], page,
             "no measurement twice")
    other = Daemon()
    try:
        st, _, copied = other.post("/v1/architectures", {"items": page})
        check_eq(st, 201, "copied to another daemon")
        got = other.get("/v1/architectures?dataset=copy")[2]["items"]
        strip = [(x["space"], x["arch"], x["hash"],
                  [(m["dataset"], m["metric"], m["value"], m["source"])
                   for m in x["measurements"]]) for x in got]
        check_eq(strip, [(x["space"], x["arch"], x["hash"],
                          [(m["dataset"], m["metric"], m["value"],
                            m["source"]) for m in x["measurements"]])
                         for x in page], "the same catalogue")
    finally:
        other.stop()
    # The copied fields are checked: a hash must be the architecture's.
    bad = dict(page[0], hash=page[1]["hash"])
    check_error(d.post("/v1/architectures", bad), 400, "invalid_argument",
                "hash")
    check_error(d.post("/v1/architectures", {"items": [
        dict(page[0], id="seven")]}), 400, "invalid_argument", "items[0].id")
    m = dict(page[0]["measurements"][0], created_at=5)
    check_error(d.post("/v1/architectures", {"items": [
        dict(page[0], measurements=[m])]}), 400, "invalid_argument",
        "items[0].measurements[0].created_at")


@test
def a_wrong_measurement_is_deleted_and_the_ranking_follows():
    d = daemon()
    ds = "typo-set"
    good = nb201_cell(["nor_conv_3x3", "skip_connect", "nor_conv_3x3",
                       "none", "nor_conv_1x1", "skip_connect"])
    other = nb201_cell(["avg_pool_3x3", "skip_connect", "nor_conv_3x3",
                        "none", "nor_conv_1x1", "skip_connect"])
    st, _, doc = d.post("/v1/architectures", {"items": [
        item(good, 93.1, dataset=ds), item(other, 90.0, dataset=ds)]})
    check_eq(st, 201, "upload")
    gid, oid = (x["id"] for x in doc["items"])
    # The typo: 9.31 for 93.1; the mean of the two now ranks it last.
    d.post("/v1/architectures", item(good, 9.31, dataset=ds))
    q = "/v1/architectures?dataset=%s&order=metric_desc" % ds
    check_eq([x["id"] for x in d.get(q)[2]["items"]], [oid, gid], "poisoned")
    _, _, got = d.get("/v1/architectures/%d" % gid)
    typo = [m for m in got["measurements"] if m["value"] == 9.31]
    check_eq(len(typo), 1, "measurements carry their ids")
    mid = typo[0]["id"]
    st, _, after = d.request("DELETE", "/v1/architectures/%d/measurements/%d"
                             % (gid, mid))
    check_eq(st, 200, "deleted")
    check_eq([m["value"] for m in after["measurements"]], [93.1],
             "answers the architecture as it is now")
    check_eq([x["id"] for x in d.get(q)[2]["items"]], [gid, oid], "fixed")
    # A retried delete, another architecture's id, nonsense: 404 by field.
    check_error(d.request("DELETE", "/v1/architectures/%d/measurements/%d"
                          % (gid, mid)), 404, "not_found", "measurement_id")
    check_error(d.request("DELETE", "/v1/architectures/%d/measurements/%d"
                          % (oid, after["measurements"][0]["id"])), 404,
                "not_found", "measurement_id")
    check_error(d.request("DELETE", "/v1/architectures/%d/measurements/x"
                          % gid), 404, "not_found", "measurement_id")
    for m in ("1", "x"):
        check_error(d.request("DELETE", "/v1/architectures/987654/"
                              "measurements/" + m), 404, "not_found", "id")
    # A whole architecture goes with its measurements; its id is not
    # handed out again.
    st, _, gone = d.request("DELETE", "/v1/architectures/%d" % oid)
    check_eq((st, gone), (200, {"id": oid, "deleted": True,
                                "measurements_deleted": 1}), "arch deleted")
    check_error(d.get("/v1/architectures/%d" % oid), 404, "not_found", "id")
    check_error(d.request("DELETE", "/v1/architectures/%d" % oid), 404,
                "not_found", "id")
    check_eq([x["id"] for x in d.get(q)[2]["items"]], [gid], "listing")
    _, _, new = d.post("/v1/architectures", item(other, 90.0, dataset=ds))
    check(new["items"][0]["id"] > oid, "a new id: %r" % new)
    check(new["items"][0]["new"], "stored anew")


@test
def batch_answers_in_request_order_and_dedups_within():
    d = daemon()
    r = rng(7)
    cells = [random_nb201(r) for _ in range(20)]
    cells.append(cells[3])  # the same cell twice in one batch
    st, _, doc = d.post("/v1/architectures",
                        {"items": [item(c, 80 + i * 0.1)
                                   for i, c in enumerate(cells)]})
    check_eq(st, 201, "status")
    check_eq(len(doc["items"]), 21, "one answer per item")
    check_eq(doc["items"][20]["id"], doc["items"][3]["id"], "dup same id")
    check_eq(doc["items"][20]["new"], False, "dup not new")
    for i, c in enumerate(cells[:20]):
        _, _, got = d.get("/v1/architectures/%d" % doc["items"][i]["id"])
        check_eq(got["arch"], c, "item %d in order" % i)


@test
def batch_is_all_or_nothing_and_names_the_bad_item():
    d = daemon()
    _, _, before = d.get("/v1/architectures?limit=1")
    r = rng(11)
    items = [item(random_nb201(r), 70.0) for _ in range(5)]
    items[2] = item("|nor_conv_3x3~0|+|bogus~0|none~1|+|none~0|none~1|"
                    "none~2|", 50.0)
    e = check_error(d.post("/v1/architectures", {"items": items}), 400,
                    "invalid_argument")
    check(e["field"].startswith("items[2].arch"), "field %r" % e["field"])
    check("bogus" in e["message"], "reason names the op: %r" % e["message"])
    _, _, after = d.get("/v1/architectures?limit=1")
    check_eq(after["total"], before["total"], "nothing stored")


@test
def batch_over_the_limit_is_refused():
    r = rng(12)
    items = [item(random_nb201(r)) for _ in range(51)]
    e = check_error(daemon().post("/v1/architectures", {"items": items}),
                    400, field="items")
    check("50" in e["message"], "limit named: %r" % e["message"])


@test
def invalid_architectures_give_the_rule_broken():
    d = daemon()
    cases = [
        (item("|nor_conv_3x3~0|+|none~0|"), "arch"),
        (item(NB101_OK, space="nasbench201"), "arch"),
        ({"space": "nasbench101", "arch": {
            "adjacency": [[0, 1], [1, 0]], "ops": ["input", "output"]}},
         "arch"),
        ({"space": "nasbench101", "arch": {
            "adjacency": NB101_OK["adjacency"],
            "ops": ["input", "conv5x5", "maxpool3x3", "output"]}}, "arch"),
        ({"space": "nasbench101", "arch": {
            "adjacency": [[0, 0, 0], [0, 0, 1], [0, 0, 0]],
            "ops": ["input", "conv3x3-bn-relu", "output"]}}, "arch"),
        ({"space": "nasbench999", "arch": "x"}, "space"),
        ({"space": "nasbench201"}, "arch"),
        ({"arch": nb201_cell(["none"] * 6)}, "space"),
        ({"space": "nasbench201", "arch": nb201_cell(["none"] * 6),
          "measurments": []}, "measurments"),
    ]
    for body, field in cases:
        e = check_error(d.post("/v1/architectures", body), 400)
        check(e["field"] is not None and e["field"].startswith(field),
              "field %r for %r (%s)" % (e["field"], body, e["message"]))


@test
def nasbench101_is_pruned_and_hashed_by_isomorphism():
    d = daemon()
    # Same cell with the two middle nodes swapped: one architecture.
    a = NB101_OK
    b = {"adjacency": [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1],
                       [0, 0, 0, 0]],
         "ops": ["input", "maxpool3x3", "conv3x3-bn-relu", "output"]}
    # A dangling node (no path to output) is pruned away.
    c = {"adjacency": [[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1],
                       [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
         "ops": ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu",
                 "output"]}
    st, _, doc = d.post("/v1/architectures", {"items": [
        {"space": "nasbench101", "arch": x} for x in (a, b, c)]})
    check_eq(st, 201, "status %r" % doc)
    ids = [x["id"] for x in doc["items"]]
    check_eq(len(set(ids)), 1, "one architecture for three specs")
    _, _, got = d.get("/v1/architectures/%d" % ids[0])
    check_eq(len(got["arch"]["ops"]), 4, "pruned to 4 nodes")


@test
def bad_numbers_are_rejected_with_the_field():
    d = daemon()
    cell = nb201_cell(["nor_conv_1x1"] * 6)
    for value in (-1, 1e300, "93.1", None):
        body = {"space": "nasbench201", "arch": cell, "measurements": [
            {"dataset": "cifar10", "metric": "acc", "value": value}]}
        check_error(d.post("/v1/architectures", body), 400,
                    field="measurements[0].value")
    # NaN and Infinity are not JSON: malformed body.
    raw = (b'{"space":"nasbench201","arch":"%s","measurements":[{"dataset":'
           b'"c","metric":"m","value":NaN}]}' % cell.encode())
    check_error(d.request("POST", "/v1/architectures", raw=raw,
                          headers={"Content-Type": "application/json"}),
                400, field="body")


def seed_list_data(d, n=30):
    r = rng(99)
    cells = set()
    while len(cells) < n:
        cells.add(random_nb201(r))
    cells = sorted(cells)
    accs = [round(60 + 30 * r.random(), 2) for _ in cells]
    accs[5] = accs[6]  # a tie, to exercise tie-breaking across pages
    items = [item(c, a, dataset="listset") for c, a in zip(cells, accs)]
    st, _, doc = d.post("/v1/architectures", {"items": items})
    check_eq(st, 201, "seed status")
    return {x["id"]: a for x, a in zip(doc["items"], accs)}


@test
def list_orders_by_metric_and_paginates_with_cursor():
    d = daemon()
    truth = seed_list_data(d)
    seen = []
    cursor = None
    pages = 0
    while True:
        q = "/v1/architectures?dataset=listset&order=metric_desc&limit=7"
        if cursor:
            q += "&cursor=" + cursor
        st, _, doc = d.get(q)
        check_eq(st, 200, "status")
        check_eq(doc["total"], len(truth), "total")
        seen += [(x["id"], [m["value"] for m in x["measurements"]
                            if m["dataset"] == "listset"][0])
                 for x in doc["items"]]
        pages += 1
        cursor = doc["next_cursor"]
        if cursor is None:
            break
        check(pages < 20, "pagination terminates")
    check_eq(len(seen), len(truth), "every row once")
    check_eq(len(set(i for i, _ in seen)), len(truth), "no duplicates")
    vals = [v for _, v in seen]
    check_eq(vals, sorted(vals, reverse=True), "descending")
    # Filters: space and a dataset nobody measured.
    _, _, doc = d.get("/v1/architectures?dataset=nothing")
    check_eq(doc["total"], 0, "unknown dataset")
    check_eq(doc["next_cursor"], None, "no next page")
    _, _, doc = d.get("/v1/architectures?space=nasbench101&limit=1000")
    check(all(x["space"] == "nasbench101" for x in doc["items"]),
          "space filter")


@test
def list_rejects_bad_parameters():
    d = daemon()
    check_error(d.get("/v1/architectures?limit=0"), 400, field="limit")
    check_error(d.get("/v1/architectures?limit=abc"), 400, field="limit")
    check_error(d.get("/v1/architectures?order=best"), 400, field="order")
    check_error(d.get("/v1/architectures?order=metric_desc"), 400,
                field="dataset")
    check_error(d.get("/v1/architectures?cursor=zz!"), 400, field="cursor")
    check_error(d.get("/v1/architectures?space=mine"), 400, field="space")
    check_error(d.get("/v1/architectures?lmit=3"), 400, field="lmit")


@test
def unknown_routes_and_ids_are_404():
    d = daemon()
    check_error(d.get("/v1/nothing"), 404, "not_found")
    check_error(d.get("/"), 404, "not_found")
    check_error(d.get("/v1/architectures/999999"), 404, "not_found", "id")
    check_error(d.get("/v1/architectures/abc"), 404, "not_found", "id")


@test
def wrong_method_is_405_with_allow():
    d = daemon()
    st, h, doc = d.request("DELETE", "/v1/spaces")
    check_error((st, h, doc), 405, "method_not_allowed")
    check_eq(h.get("allow"), "GET, HEAD", "Allow header")
    st, h, doc = d.request("PUT", "/v1/architectures", body={})
    check_eq(st, 405, "PUT status")
    check_eq(h.get("allow"), "GET, HEAD, POST", "Allow lists them all")
    # A literal path is its own resource, not an id of its neighbour's.
    for method in ("PUT", "GET", "DELETE"):
        st, h, doc = d.request(method, "/v1/nac/train")
        check_eq((st, h.get("allow")), (405, "POST"),
                 "%s /v1/nac/train" % method)
    check_error(d.get("/v1/nac/9999"), 404, "not_found")


@test
def a_query_parameter_no_route_reads_is_400():
    # Every route refuses what it does not read, those without any
    # parameter too: a typo must not be silently ignored.
    d = daemon()
    for method, path, body in (("GET", "/v1/health?verbose=1", None),
                               ("GET", "/v1/architectures/1?x=1", None),
                               ("POST", "/v1/compare?x=1", {}),
                               ("GET", "/v1/architectures?limt=5", None)):
        e = check_error(d.request(method, path, body=body), 400,
                        "invalid_argument")
        key = path.split("?")[1].split("=")[0]
        check_eq(e["field"], key, "%s %s names it" % (method, path))
    check_eq(d.get("/v1/architectures?limit=5")[0], 200, "a known one")
    # Given twice, either order: the bound must hold for what is read.
    for q in ("limit=1&limit=2000", "limit=2000&limit=1",
              "space=nasbench201&limit=3&space=nasbench101"):
        e = check_error(d.get("/v1/architectures?" + q), 400,
                        "invalid_argument")
        check_eq(e["field"], q.split("=")[-2].split("&")[-1],
                 "names the repeated one (%s)" % q)
        check("more than once" in e["message"], "says so: %r" % e["message"])


@test
def head_is_get_without_the_body():
    # What monitoring probes send: the GET answer's status and headers.
    d = daemon()
    for path in ("/v1/health", "/v1/spaces", "/v1/architectures/999999"):
        gst, gh, _ = d.request("GET", path)
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        conn.request("HEAD", path)
        r = conn.getresponse()
        body = r.read()
        conn.close()
        check_eq(r.status, gst, "HEAD %s status" % path)
        check_eq(body, b"", "HEAD %s has no body" % path)
        check_eq(r.getheader("Content-Type"), gh.get("content-type"),
                 "HEAD %s content type" % path)
    st, h, _ = d.request("HEAD", "/v1/compare")
    check_eq((st, h.get("allow")), (405, "POST"), "no HEAD on a POST route")


@test
def errors_keep_a_keep_alive_connection_open():
    # An error found from the headers of a request without a body (an
    # unknown route, a method, a query parameter, a POST's type) used to
    # be answered before the request was done with, which closed the
    # connection: a client pipelining behind it lost its next request.
    d = daemon()
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    reqs = [b"GET /v1/nope HTTP/1.1\r\nHost: x\r\n\r\n",
            b"DELETE /v1/spaces HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /v1/spaces?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /v1/architectures HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
            b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"]
    s.sendall(b"".join(reqs))  # pipelined
    data = recv_until(s, lambda data: data.count(b"HTTP/1.1 ") == len(reqs))
    got = [int(x) for x in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
    check_eq(got, [404, 405, 400, 415, 200], "every request answered")
    check(b"Connection: close" not in data, "none closes")
    # Two lengths: refused, and the connection closed.
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"POST /v1/compare HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: 2\r\n"
              b"Content-Length: 5\r\n\r\n{}")
    data = recv_until(s)
    check(data.startswith(b"HTTP/1.1 400"), "two lengths: %r" % data[:60])
    check(b"Content-Length" in data.split(b"\r\n\r\n", 1)[1],
          "named: %r" % data[-200:])
    # A length and chunks: refused as well (libmicrohttpd took the
    # chunks), and the connection closed.
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"POST /v1/compare HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: 7\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    data, closed = b"", False
    try:
        while True:
            got = s.recv(65536)
            if not got:
                closed = True
                break
            data += got
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    s.close()
    check(data.startswith(b"HTTP/1.1 400"), "length and chunks: %r"
          % data[:60])
    check(b"Transfer-Encoding" in data.split(b"\r\n\r\n", 1)[1],
          "named: %r" % data[-200:])
    check(closed and data.count(b"HTTP/1.1 ") == 1,
          "one answer, then closed (not left open: %r)" % closed)


@test
def oversized_body_is_413():
    d = daemon()
    big = {"items": [item("x" * 1000) for _ in range(100)]}
    check_error(d.post("/v1/architectures", big), 413, "payload_too_large")
    # A chunked body (no Content-Length) over the limit too.
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"POST /v1/architectures HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"[" + b" " * 30000
    try:
        for _ in range(4):
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        s.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server may close once it has answered
    data = recv_until(s)
    check(data.startswith(b"HTTP/1.1 413"), "chunked answer %r" % data[:60])
    # A length over the limit: the body is read through and dropped, so
    # the client, still sending, gets the 413 (not a reset), and the
    # connection stays open for the next request.
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        body = b"[" + b" " * (3 * 65536)
        s.sendall(b"POST /v1/architectures HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until(s, lambda data: data.count(b"HTTP/1.1 ") == 2 and
                          data.endswith(b"}\n"))
        got = [int(x) for x in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
        check_eq(got, [413, 200], "413, then the next request")
    # A client waiting for "100 Continue" is told at once instead.
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"POST /v1/architectures HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
              b"Content-Length: %d\r\n\r\n" % (3 * 65536))
    data = recv_until(s)
    check(data.startswith(b"HTTP/1.1 413"), "told at once: %r" % data[:60])
    st, _, _ = d.get("/v1/health")
    check_eq(st, 200, "still serving")


@test
def non_json_body_is_415_and_malformed_is_400():
    d = daemon()
    check_error(d.request("POST", "/v1/architectures", raw=b"a=b",
                          headers={"Content-Type":
                                   "application/x-www-form-urlencoded"}),
                415, "unsupported_media_type")
    check_error(d.request("POST", "/v1/architectures", raw=b"{}"), 415)
    # No body and so no type (curl -X POST): the route says what it needs.
    check_error(d.request("POST", "/v1/architectures"), 400,
                "invalid_argument", "body")
    check_error(d.request("POST", "/v1/architectures", raw=b'{"items": [',
                          headers={"Content-Type": "application/json"}),
                400, "invalid_argument", "body")
    check_error(d.request("POST", "/v1/architectures", raw=b"",
                          headers={"Content-Type": "application/json"}),
                400, field="body")
    check_error(d.post("/v1/architectures", [1, 2]), 400, field="body")
    check_error(d.request("POST", "/v1/architectures", raw=b'{"a":1,"a":2}',
                          headers={"Content-Type":
                                   "application/json; charset=utf-8"}),
                400, field="body")
    # Well-formed JSON of the wrong type is not "malformed"; jansson's
    # own words for a NUL, and for 2.0, are not what a client needs.
    js = {"Content-Type": "application/json"}
    for raw in (b"null", b"3", b'"items"'):
        e = check_error(d.request("POST", "/v1/architectures", raw=raw,
                                  headers=js), 400, field="body")
        check("must be a JSON object" in e["message"], e["message"])
    e = check_error(d.request("POST", "/v1/compare",
                              raw=b'{"a": "x\\u0000y", "b": 1}',
                              headers=js), 400, field="body")
    check("must not contain \\u0000" in e["message"] and
          "ALLOW" not in e["message"], e["message"])
    e = check_error(d.post("/v1/rank", {"all": True, "space": "nasbench201",
                                        "top_k": 2.0}), 400, field="top_k")
    check("(2, not 2.0)" in e["message"], e["message"])


def scrape(d):
    """GET /metrics: ({(name, labels): value}, content type)."""
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    check_eq(r.status, 200, "scrape")
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = re.match(r"^([a-z_]+)(\{.*\})? (\S+)$", line)
        check(m, "a sample line: %r" % line)
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out, r.getheader("Content-Type")


@test
def metrics_count_every_answer_by_route_and_status():
    d = daemon()
    before, ctype = scrape(d)
    check(ctype.startswith("text/plain; version=0.0.4"), "type %r" % ctype)
    check_eq(before[("ctnasd_up", "")], 1.0, "up")
    check_eq(before[("ctnasd_http_workers", "")], 4.0, "workers")
    check(before[("process_resident_memory_bytes", "")] > 1e6, "rss")
    for _ in range(3):
        check_eq(d.get("/v1/spaces")[0], 200, "spaces")
    check_eq(d.get("/v1/nowhere")[0], 404, "unmatched")
    check_eq(d.post("/v1/compare", {"a": 1})[0], 400, "a 400")
    after, _ = scrape(d)
    spaces = '{method="GET",route="/v1/spaces",code="200"}'
    unmatched = '{method="",route="",code="404"}'
    bad = '{method="POST",route="/v1/compare",code="400"}'
    scr = '{method="GET",route="/metrics",code="200"}'
    for key, n in ((spaces, 3), (unmatched, 1), (bad, 1), (scr, 1)):
        k = ("ctnasd_http_requests_total", key)
        check_eq(after.get(k, 0) - before.get(k, 0), n, "counted %s" % key)
    # The histogram of a route: cumulative buckets ending in +Inf, which
    # is its count, the sum of its answers by status.
    lab = 'method="GET",route="/v1/spaces"'
    les = [k[1] for k in after
           if k[0] == "ctnasd_http_request_duration_seconds_bucket" and
           k[1].startswith("{" + lab)]
    check_eq(len(les), 14, "every bucket of the route")
    vals = [after[("ctnasd_http_request_duration_seconds_bucket", k)]
            for k in les]
    check(vals == sorted(vals), "cumulative: %r" % vals)
    total = sum(v for k, v in after.items()
                if k[0] == "ctnasd_http_requests_total" and
                k[1].startswith("{" + lab + ","))
    check_eq(vals[-1], total, "+Inf is every answer of the route")
    check_eq(after[("ctnasd_http_request_duration_seconds_count",
                    "{" + lab + "}")], total, "count")
    check(after[("ctnasd_http_request_duration_seconds_sum",
                 "{" + lab + "}")] > 0, "sum")


def documented_routes():
    """(method, path) pairs of api/openapi.yaml (paths: block)."""
    out = []
    path = None
    in_paths = False
    with open(os.path.join(SRCDIR, "api", "openapi.yaml")) as f:
        for line in f:
            if re.match(r"^paths:\s*$", line):
                in_paths = True
                continue
            if in_paths and re.match(r"^\S", line):
                in_paths = False
            if not in_paths:
                continue
            m = re.match(r"^  (/\S*):\s*$", line)
            if m:
                path = m.group(1)
                continue
            m = re.match(r"^    (get|post|put|delete|patch):\s*$", line)
            if m and path:
                out.append((m.group(1).upper(), path))
    return out


def routes_def():
    out = []
    with open(os.path.join(SRCDIR, "src", "routes.def")) as f:
        for m in re.finditer(r'^ROUTE\((\w+), "([^"]+)"', f.read(), re.M):
            out.append((m.group(1), m.group(2)))
    return out


@test
def openapi_documents_exactly_the_served_routes():
    doc = documented_routes()
    check(len(doc) > 0, "no documented routes found")
    check_eq(sorted(doc), sorted(routes_def()), "openapi vs routes.def")
    d = daemon()
    for method, path in doc:
        p = path.replace("{id}", "1")
        body = {} if method in ("POST", "PUT") else None
        st, _, _ = d.request(method, p, body=body)
        check(st not in (404, 405) or "{" in path,
              "%s %s answered %d" % (method, path, st))
        check(st != 500, "%s %s answered 500" % (method, path))


@test
def daemon_survives_and_stops_cleanly():
    global D
    d = daemon()
    st, _, _ = d.get("/v1/health")
    check_eq(st, 200, "alive after every test")
    check_eq(d.stop(), 0, "exit status after SIGTERM")
    check("stopped cleanly" in d.stderr(), "clean stop logged")
    check("Z error " not in d.stderr() and "Sanitizer" not in d.stderr(),
          "no error logged")
    D = None


if __name__ == "__main__":
    main()

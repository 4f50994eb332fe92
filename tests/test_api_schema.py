"""The answers of a real daemon, checked against api/openapi.yaml: every
route is driven over loopback HTTP through a whole session (upload,
train, compare, rank, an ask/tell search, cancel, purge, deletes, error
cases), and each answer's body must validate against the schema the spec
documents for its route and status, with no top-level key the schema does
not name.  A status the spec does not list for the route fails too."""
import copy
import os
import re
import time

from ctnas_testlib import (SRCDIR, Daemon, NB201_OPS, check, check_eq,
                           main, nb201_cell, rng, skip, test)

try:
    import jsonschema
    import yaml
except ImportError:  # scripts/deps.sh installs both (Debian packages)
    jsonschema = yaml = None

STATE = {}


def spec():
    if "spec" not in STATE:
        with open(os.path.join(SRCDIR, "api", "openapi.yaml")) as f:
            STATE["spec"] = yaml.safe_load(f)
    return STATE["spec"]


def resolve(node):
    """A components/responses reference, followed."""
    while isinstance(node, dict) and "$ref" in node and \
            node["$ref"].startswith("#/components/responses/"):
        node = spec()["components"]["responses"][node["$ref"].split("/")[-1]]
    return node


def template_of(path):
    """The spec's path template that matches a concrete path (a literal
    one first: /v1/nac/train before /v1/nac/{id})."""
    if path in spec()["paths"]:
        return path
    for tpl in spec()["paths"]:
        rx = "^" + re.sub(r"\\{[a-z_]+\\}", r"[^/]+", re.escape(tpl)) + "$"
        if re.match(rx, path):
            return tpl
    raise AssertionError("no documented path matches %s" % path)


def schema_for(method, path, status):
    op = spec()["paths"][template_of(path)].get(method.lower())
    if op is None and status == 405:  # a method the path does not have
        return {"$ref": "#/components/schemas/Error"}
    check(op is not None, "%s %s is not documented" % (method, path))
    responses = op["responses"]
    r = responses.get(str(status)) or responses.get("default")
    check(r is not None, "%s %s: status %d is not documented (only %s)"
          % (method, path, status, sorted(responses)))
    r = resolve(r)
    content = r.get("content", {}).get("application/json")
    return content["schema"] if content else None


def strict(node, in_allof, allof_refs):
    """Make every object schema name all its keys (unevaluatedProperties
    false), but not a member of an allOf: there the enclosing schema,
    which sees what every member evaluated, does it."""
    if isinstance(node, list):
        for n in node:
            strict(n, in_allof, allof_refs)
        return
    if not isinstance(node, dict):
        return
    for key, sub in node.items():
        if key == "allOf":
            strict(sub, True, allof_refs)
        elif key == "properties":
            for v in sub.values():
                strict(v, False, allof_refs)
        elif key in ("items", "anyOf", "oneOf", "not",
                     "additionalProperties"):
            strict(sub, False, allof_refs)
    if not in_allof and ("properties" in node or "allOf" in node) and \
            "additionalProperties" not in node and \
            "unevaluatedProperties" not in node:
        node["unevaluatedProperties"] = False


def strict_spec():
    if "strict" not in STATE:
        root = copy.deepcopy(spec())
        comps = root["components"]["schemas"]
        # components used as allOf members are extended by others
        allof_refs = set()

        def collect(node):
            if isinstance(node, dict):
                for m in node.get("allOf", []):
                    if isinstance(m, dict) and "$ref" in m:
                        allof_refs.add(m["$ref"].split("/")[-1])
                for v in node.values():
                    collect(v)
            elif isinstance(node, list):
                for v in node:
                    collect(v)
        collect(root)
        for name, sch in comps.items():
            strict(sch, name in allof_refs, allof_refs)
        STATE["strict"] = root
    return STATE["strict"]


def validate(schema, doc, where):
    # The whole spec is the root, so "#/components/..." references
    # resolve; the top level must name every key it answers.
    root = copy.copy(strict_spec())
    root["allOf"] = [schema]
    root["unevaluatedProperties"] = False
    strict(schema, True, set())
    v = jsonschema.Draft202012Validator(root)
    def flat(errs):
        for e in errs:
            yield e
            yield from flat(e.context or [])
    errors = list(flat(v.iter_errors(doc)))
    if errors:
        # the deepest reason: a oneOf or anyOf that fails hides it
        e = max(errors, key=lambda e: len(e.absolute_path))
        raise AssertionError("%s: %s at /%s" % (
            where, e.message[:300], "/".join(map(str, e.absolute_path))))


def call(d, method, path, body=None, want=None, **kw):
    """One request, its answer checked against the spec: (status, doc)."""
    st, _, doc = d.request(method, path, body=body, **kw)
    if want is not None:
        check_eq(st, want, "%s %s (%r)" % (method, path, doc))
    schema = schema_for(method, path.split("?")[0], st)
    if schema is not None:
        validate(schema, doc, "%s %s -> %d" % (method, path, st))
    STATE.setdefault("seen", set()).add(
        (method, template_of(path.split("?")[0]), st))
    return st, doc


def wait_job(d, path, states, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        _, j = call(d, "GET", path, want=200)
        if j["state"] in states:
            return j
        time.sleep(0.05)
    raise AssertionError("%s still %s" % (path, j["state"]))


def value_of(cell):
    ops = [p.split("~")[0] for p in cell.replace("+", "").split("|") if p]
    w = {"none": 0, "skip_connect": 1, "avg_pool_3x3": 0.5,
         "nor_conv_1x1": 2, "nor_conv_3x3": 3}
    return 50 + 2 * sum(w[o] for o in ops)


def items(cells):
    return [{"space": "nasbench201", "arch": c, "measurements": [
        {"dataset": "syn", "metric": "acc", "value": value_of(c),
         "epochs": 12, "source": "test"}]} for c in cells]


@test
def every_answer_matches_its_documented_schema():
    if jsonschema is None:
        skip("python3-jsonschema and python3-yaml are not installed "
             "(scripts/deps.sh installs them)")
    jsonschema.Draft202012Validator.check_schema(
        {k: v for k, v in spec().items() if k == "components"})
    d = Daemon()
    r = rng(5)
    cells = sorted({nb201_cell([r.choice(NB201_OPS) for _ in range(6)])
                    for _ in range(80)})
    nb101 = {"space": "nasbench101", "arch": {
        "adjacency": [[0, 1, 1], [0, 0, 1], [0, 0, 0]],
        "ops": ["input", "conv3x3-bn-relu", "output"]},
        "measurements": [{"dataset": "syn", "metric": "acc", "value": 0.9}]}
    _, up = call(d, "POST", "/v1/architectures",
                 {"items": items(cells) + [nb101]}, want=201)
    call(d, "POST", "/v1/architectures", {"items": items(cells[:3])},
         want=201)
    call(d, "GET", "/v1/health", want=200)
    call(d, "GET", "/v1/spaces", want=200)
    call(d, "GET", "/metrics", want=200)
    call(d, "GET", "/v1/architectures?space=nasbench201&limit=5", want=200)
    call(d, "GET", "/v1/architectures?dataset=syn&metric=acc"
         "&order=metric_desc&limit=3", want=200)
    first = up["items"][0]["id"]
    _, arch = call(d, "GET", "/v1/architectures/%d" % first, want=200)

    # No comparator yet, then one.
    call(d, "POST", "/v1/compare", {"a": cells[0], "b": cells[1]},
         want=409)
    _, job = call(d, "POST", "/v1/nac/train",
                  {"space": "nasbench201", "dataset": "syn", "epochs": 20,
                   "holdout": 0.2}, want=202)
    wait_job(d, "/v1/jobs/%d" % job["id"], ("succeeded",))
    call(d, "GET", "/v1/jobs?kind=train", want=200)
    call(d, "GET", "/v1/nac", want=200)
    model = wait_job(d, "/v1/jobs/%d" % job["id"],
                     ("succeeded",))["result"]["model_id"]
    call(d, "GET", "/v1/nac/%d" % model, want=200)
    call(d, "DELETE", "/v1/nac/%d" % model, want=409)
    _, spare = call(d, "POST", "/v1/nac/train",
                    {"space": "nasbench201", "dataset": "syn", "epochs": 2,
                     "publish": False}, want=202)
    spare = wait_job(d, "/v1/jobs/%d" % spare["id"],
                     ("succeeded",))["result"]["model_id"]
    call(d, "DELETE", "/v1/nac/%d" % spare, want=200)
    call(d, "GET", "/v1/nac/%d" % spare, want=404)
    call(d, "POST", "/v1/compare", {"a": cells[0], "b": first}, want=200)
    call(d, "POST", "/v1/compare", {"pairs": [[cells[0], cells[1]],
                                              [first, cells[2]]]}, want=200)
    call(d, "POST", "/v1/rank", {"architectures": cells[:10]}, want=200)
    call(d, "POST", "/v1/rank", {"all": True, "space": "nasbench201",
                                 "top_k": 5}, want=200)

    # An ask/tell search: waiting, suggestions, events, continue, answer;
    # published, so its model shows in the model list too.
    _, s = call(d, "POST", "/v1/searches",
                {"space": "nasbench201", "dataset": "syn", "steps": 60,
                 "rounds": 2, "suggestions": 2, "explore_every": 20,
                 "update_every": 20, "publish": True}, want=202)
    sid = s["id"]
    wait_job(d, "/v1/searches/%d" % sid, ("waiting",))
    _, sug = call(d, "GET", "/v1/searches/%d/suggestions?n=2" % sid,
                  want=200)
    call(d, "GET", "/v1/searches/%d/events?since=0" % sid, want=200)
    call(d, "GET", "/v1/jobs/%d" % sid, want=200)
    call(d, "GET", "/v1/searches", want=200)
    call(d, "POST", "/v1/architectures",
         {"items": items([sug["items"][0]["arch"]])}, want=201)
    call(d, "POST", "/v1/searches/%d/continue" % sid, want=202)
    wait_job(d, "/v1/searches/%d" % sid, ("succeeded",))
    call(d, "GET", "/v1/jobs/%d" % sid, want=200)
    call(d, "GET", "/v1/nac", want=200)
    call(d, "POST", "/v1/searches/%d/continue" % sid, {}, want=409)
    call(d, "DELETE", "/v1/searches/%d" % sid, want=409)

    # Cancel a running one, then purge both.
    _, s2 = call(d, "POST", "/v1/searches",
                 {"space": "nasbench201", "dataset": "syn", "steps": 100000},
                 want=202)
    wait_job(d, "/v1/searches/%d" % s2["id"], ("running",))
    call(d, "DELETE", "/v1/searches/%d" % s2["id"], want=202)
    wait_job(d, "/v1/searches/%d" % s2["id"], ("cancelled",))
    call(d, "DELETE", "/v1/searches/%d?purge=true" % s2["id"], want=200)
    call(d, "DELETE", "/v1/jobs/%d?purge=true" % job["id"], want=200)
    call(d, "GET", "/v1/jobs/%d" % job["id"], want=404)

    # Deletes.
    mid = arch["measurements"][0]["id"]
    call(d, "DELETE", "/v1/architectures/%d/measurements/%d"
         % (first, mid), want=200)
    call(d, "DELETE", "/v1/architectures/%d" % first, want=200)

    # Errors, one of each kind.
    call(d, "GET", "/v1/architectures/999999", want=404)
    call(d, "POST", "/v1/architectures", {"items": [{"space": "x"}]},
         want=400)
    call(d, "POST", "/v1/compare", {"a": cells[0]}, want=400)
    call(d, "POST", "/v1/rank", {"architectures": [cells[0]] * 2,
                                 "x": 1}, want=400)
    call(d, "POST", "/v1/nac/train", {"space": "nasbench201"}, want=400)
    call(d, "POST", "/v1/searches", {"space": "nasbench201",
                                     "dataset": "syn", "steps": 0},
         want=400)
    call(d, "GET", "/v1/searches/999999", want=404)
    call(d, "GET", "/v1/searches/999999/suggestions", want=404)
    call(d, "GET", "/v1/searches/1/events?since=-1", want=400)
    call(d, "GET", "/v1/jobs?state=nope", want=400)
    call(d, "POST", "/v1/compare", raw=b"{", want=400,
         headers={"Content-Type": "application/json"})
    call(d, "POST", "/v1/compare", raw=b"a=1", want=415,
         headers={"Content-Type": "text/plain"})
    call(d, "DELETE", "/v1/health", want=405)
    check_eq(d.stop(), 0, "stop")
    # Every route was answered at least once.
    routes = {(m, p) for m, p, _ in STATE["seen"]}
    for p, ops in spec()["paths"].items():
        for m in ops:
            if m in ("get", "post", "delete", "put", "patch"):
                check((m.upper(), p) in routes, "%s %s not exercised"
                      % (m.upper(), p))


if __name__ == "__main__":
    main()

"""ctnas_client - a small Python client for ctnasd, standard library only.

Copy this file next to a notebook or put scripts/ on sys.path:

    from ctnas_client import Client
    c = Client("https://nas-box:8080", token="...", cafile="tls.crt")
    c.upload([{"space": "nasbench201", "arch": cell, "measurements": [
        {"dataset": "cifar10", "metric": "test_accuracy", "value": 93.1}]}])
    c.train("nasbench201", "cifar10", train_size=424)   # waits for the job
    p = c.compare(cell_a, cell_b)                        # P(a beats b)
    s = c.search("nasbench201", "cifar10", rounds=4, suggestions=10)
    s = c.ask_tell(s["id"], train_and_measure)           # your training

The client sends a request again when the daemon answers 503 or 429
(after its Retry-After) and when the connection drops before an answer
(a daemon restart, an idle keep-alive closed): uploads store nothing
twice, compares and ranks only read, the job POSTs carry an
Idempotency-Key made per call, so a resent one answers the job the first
made, and a resent cancel or continue that finds its work done (409) is
taken as done.  It does not resend after a timeout (the daemon may still
be working on the request) or a TLS error.  Any other error answer raises
CtnasError with the status and the daemon's code, message and field.
"""
import http.client
import json
import ssl
import time
import urllib.parse
import uuid

__all__ = ["Client", "CtnasError"]

_ENDED = ("succeeded", "failed", "cancelled")


class CtnasError(Exception):
    """An error answer: status, code, message and field (or None);
    resent: the request had been sent before, on a connection that
    dropped without an answer."""

    def __init__(self, status, code, message, field=None, resent=False):
        super().__init__("%d %s: %s%s" % (
            status, code, message, " (field %s)" % field if field else ""))
        self.status, self.code = status, code
        self.message, self.field = message, field
        self.resent = resent


def _retry_after(r):
    """The seconds a 503 / 429 answer asks to wait (1 without a number)."""
    try:
        return max(0.0, float(r.getheader("Retry-After") or "1"))
    except ValueError:
        return 1.0


def _error(status, text, resent):
    """The CtnasError of an error answer, whether its body is the
    daemon's JSON or not (libmicrohttpd's own pages are HTML)."""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict):
        return CtnasError(status, "http_error",
                          text[:200].decode("utf-8", "replace"),
                          resent=resent)
    return CtnasError(status, err.get("code", "http_error"),
                      err.get("message", ""), err.get("field"), resent)


class Client:
    """One keep-alive connection to a daemon at url (http:// or https://).

    token: the bearer token (--token), or None.  cafile: the certificate
    (or authority) to trust for https, when it is not a public one.
    retries: how many times a request is sent again after a dropped
    connection or a 503 / 429; each wait is the answer's Retry-After (1 s
    without one), at most max_wait seconds."""

    def __init__(self, url="http://127.0.0.1:8080", token=None, cafile=None,
                 timeout=120, retries=5, max_wait=30):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("url must be http://host[:port] or https://...")
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.token, self.timeout = token, timeout
        self.retries, self.max_wait = retries, max_wait
        self.context = None
        if u.scheme == "https":
            self.context = ssl.create_default_context(cafile=cafile)
        self._conn = None

    # -- transport ---------------------------------------------------

    def _connection(self):
        if self._conn is None:
            if self.context is not None:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout,
                    context=self.context)
            else:
                self._conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method, path, body=None, query=None, headers=None):
        """The decoded JSON answer of method path (None for an empty
        one); query: a dict of parameters, None values left out."""
        if query:
            q = {k: ("true" if v is True else "false" if v is False else v)
                 for k, v in query.items() if v is not None}
            if q:
                path += "?" + urllib.parse.urlencode(q)
        h = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        h.update(headers or {})
        resent = False
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                r, text = self._exchange(method, path, data, h)
            except (ssl.SSLError, ssl.CertificateError, TimeoutError):
                # Not a dropped connection: a certificate not trusted, or
                # a daemon still working on it.  Sending again would not
                # help, or would run it twice.
                self.close()
                raise
            except (ConnectionError, http.client.HTTPException, OSError):
                self.close()
                if last:
                    raise
                resent = True
                time.sleep(min(0.2 * 2 ** attempt, self.max_wait))
                continue
            if r.status in (429, 503) and not last:
                time.sleep(min(_retry_after(r), self.max_wait))
                continue
            if r.status >= 400:
                raise _error(r.status, text, resent)
            return json.loads(text) if text else None

    def _exchange(self, method, path, data, headers):
        """One request on the kept-alive connection: (response, body)."""
        c = self._connection()
        try:
            c.request(method, path, body=data, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            # The daemon may have answered and closed before taking the
            # whole body (a 413 for one far over --max-body): read it.
            try:
                r = c.getresponse()
            except (ConnectionError, http.client.HTTPException, OSError):
                r = None
            if r is None:
                raise
        else:
            r = c.getresponse()
        text = r.read()
        if (r.getheader("Connection", "").lower() == "close" or
                r.will_close):
            self.close()
        return r, text

    # -- architectures and measurements ------------------------------

    def health(self):
        return self.request("GET", "/v1/health")

    def upload(self, items, batch=1000):
        """Store architectures with their measurements (dicts as the API
        takes them), batch items a request; their ids, in order."""
        ids = []
        for i in range(0, len(items), batch):
            doc = self.request("POST", "/v1/architectures",
                               {"items": list(items[i:i + batch])})
            ids.extend(it["id"] for it in doc["items"])
        return ids

    def architectures(self, **query):
        """Every stored architecture the filters select (space, dataset,
        metric, order, ...), page after page."""
        query = dict(query)
        while True:
            page = self.request("GET", "/v1/architectures", query=query)
            for it in page["items"]:
                yield it
            if not page.get("next_cursor"):
                return
            query["cursor"] = page["next_cursor"]

    # -- comparators -------------------------------------------------

    def train(self, space, dataset, wait=True, poll=0.5, **options):
        """Train a comparator (options as POST /v1/nac/train takes them);
        with wait, the ended job (CtnasError if it did not succeed), else
        the job as submitted."""
        job = self.request("POST", "/v1/nac/train",
                           dict(options, space=space, dataset=dataset),
                           headers={"Idempotency-Key": str(uuid.uuid4())})
        if not wait:
            return job
        return self._succeeded(self.wait("/v1/jobs/%d" % job["id"], poll))

    def compare(self, a, b, **options):
        """P(a better than b): cells as strings, objects or stored ids."""
        return self.request("POST", "/v1/compare",
                            dict(options, a=a, b=b))["p"]

    def compare_pairs(self, pairs, **options):
        """P(a better than b) of each (a, b)."""
        return self.request("POST", "/v1/compare",
                            dict(options, pairs=[list(p) for p in pairs]))["p"]

    def rank(self, archs=None, **options):
        """Rank archs (or every stored cell with all=True, space=...) by
        mean win probability: the daemon's answer."""
        body = dict(options)
        if archs is not None:
            body["architectures"] = list(archs)
        return self.request("POST", "/v1/rank", body)

    # -- searches ----------------------------------------------------

    def search(self, space, dataset, **options):
        """Start a search job (options as POST /v1/searches takes them);
        the job as submitted."""
        return self.request("POST", "/v1/searches",
                            dict(options, space=space, dataset=dataset),
                            headers={"Idempotency-Key": str(uuid.uuid4())})

    def get_search(self, search_id):
        return self.request("GET", "/v1/searches/%d" % search_id)

    def events(self, search_id, since=0):
        """The daemon's page of progress records after since: items (each
        with its seq), last (the since of the next call) and state."""
        return self.request("GET", "/v1/searches/%d/events" % search_id,
                            query={"since": since})

    def follow(self, search_id, since=0, poll=1.0):
        """Every progress record after since, as the search makes them,
        until it ends."""
        while True:
            page = self.events(search_id, since)
            for ev in page["items"]:
                yield ev
            since = page["last"]
            if not page["items"]:
                if page["state"] in _ENDED:
                    return
                time.sleep(poll)

    def suggestions(self, search_id, n=None):
        return self.request("GET", "/v1/searches/%d/suggestions" % search_id,
                            query={"n": n})["items"]

    def continue_search(self, search_id):
        """Tell a waiting search to go on without the measurements still
        missing; None when a resend found it gone on already."""
        return self._done_if_resent(
            "POST", "/v1/searches/%d/continue" % search_id, {})

    def cancel_search(self, search_id):
        """Cancel a search; None when a resend found it ended already."""
        return self._done_if_resent("DELETE", "/v1/searches/%d" % search_id)

    def _done_if_resent(self, method, path, body=None):
        try:
            return self.request(method, path, body)
        except CtnasError as e:
            # The first sending did it; its answer was lost.
            if e.status == 409 and e.resent:
                return None
            raise

    def wait(self, path, poll=0.5, timeout=None, until=_ENDED):
        """Poll a job or search at path until its state is in until; the
        last answer (TimeoutError after timeout seconds)."""
        deadline = None if timeout is None else time.time() + timeout
        while True:
            job = self.request("GET", path)
            if job["state"] in until:
                return job
            if deadline is not None and time.time() > deadline:
                raise TimeoutError("%s still %s" % (path, job["state"]))
            time.sleep(poll)

    def ask_tell(self, search_id, measure, poll=0.5):
        """Drive an ask/tell search ("rounds") to its end: whenever it
        waits, measure(arch) trains each suggestion and returns its value
        (None when the training failed), the values are uploaded under
        the search's dataset and metric, and a round that could not
        measure them all is told to go on.  The ended search."""
        path = "/v1/searches/%d" % search_id
        while True:
            s = self.wait(path, poll, until=_ENDED + ("waiting",))
            if s["state"] != "waiting":
                return self._succeeded(s)
            p, answered = s["params"], s["progress"]["round"]
            items, missing = [], 0
            # All of the round's suggestions: the round waits for them.
            for sug in self.suggestions(search_id):
                value = measure(sug["arch"])
                if value is None:
                    missing += 1
                    continue
                items.append({"space": p["space"], "arch": sug["arch"],
                              "measurements": [{
                                  "dataset": p["dataset"],
                                  "metric": p["metric"],
                                  "value": float(value)}]})
            self.upload(items)
            if missing or not items:
                self.continue_search(search_id)
            # The job takes the uploads (or the continue) on its next
            # look: wait until it has left the round answered, which a
            # short next round may end before a poll sees it running.
            while True:
                s = self.request("GET", path)
                if (s["state"] != "waiting" or
                        (s["progress"] or {}).get("round", 0) > answered):
                    break
                time.sleep(poll)

    @staticmethod
    def _succeeded(job):
        if job["state"] != "succeeded":
            err = job.get("error") or job["state"]
            if isinstance(err, dict):
                err = err.get("message", str(err))
            raise CtnasError(200, "job_" + job["state"], str(err))
        return job

"""``/metrics``: the running server's counters in the Prometheus text format
(version 0.0.4), read when the page is asked for.

Nothing here counts: the loop, the TTP and HTTP servers, the store and the
group commit keep their own counters where the work happens, and `Metrics`
only reads them, so a scrape costs the loop one pass over the open
connections and no database query.
"""

from texmate_ds import http, ttp


def _label(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def family(name, kind, help_text, samples):
    """One metric family as text lines; `samples` are (labels dict, value),
    or (name suffix, labels dict, value) for a summary's _sum and _count."""
    lines = ["# HELP %s %s" % (name, help_text), "# TYPE %s %s" % (name, kind)]
    for sample in samples:
        suffix, labels, value = sample if len(sample) == 3 else ("",) + tuple(sample)
        text = name + suffix
        if labels:
            text += "{%s}" % ",".join(
                '%s="%s"' % (k, _label(v)) for k, v in sorted(labels.items()))
        lines.append("%s %r" % (text, value))
    return lines


class Metrics:
    """Called with no arguments, returns the page's text."""

    def __init__(self, loop, ttp_server, http_server, store, commits):
        self.loop = loop
        self.ttp = ttp_server
        self.http = http_server
        self.store = store
        self.commits = commits

    def __call__(self):
        ttp_open = sum(isinstance(c, ttp.TTPChannel) for c in self.loop.channels)
        http_open = sum(isinstance(c, http.HTTPChannel) for c in self.loop.channels)
        lines = []
        lines += family("texmate_connections_open", "gauge", "Open connections.",
                        [({"protocol": "ttp"}, ttp_open), ({"protocol": "http"}, http_open)])
        lines += family("texmate_ttp_requests_total", "counter",
                        "TTP requests answered, by app and answer code.",
                        [({"app": app, "code": code}, n)
                         for (app, code), n in sorted(self.ttp.answers.items())])
        lines += family("texmate_http_requests_total", "counter",
                        "HTTP requests answered, by status code.",
                        [({"code": code}, n)
                         for code, n in sorted(self.http.requests_by_status.items())])
        lines += family("texmate_samples_stored_total", "counter",
                        "Samples committed to the database since the server started.",
                        [({}, self.store.samples.stored)])
        lines += family("texmate_commit_seconds", "summary",
                        "Time spent committing the group transaction.",
                        [("_sum", {}, self.commits.commit_seconds),
                         ("_count", {}, self.commits.commits)])
        pool = self.http.pool
        lines += family("texmate_web_work_total", "counter",
                        "Slow web work (graphs, statistics, password hashes) by outcome: done, "
                        "dropped (its client left first), refused (its client had too much "
                        "queued).",
                        [({"outcome": "done"}, pool.done), ({"outcome": "dropped"}, pool.dropped),
                         ({"outcome": "refused"}, pool.refused)])
        lines += family("texmate_bytes_received_total", "counter", "Bytes read from clients.",
                        [({"protocol": "ttp"}, self.ttp.bytes_received.value),
                         ({"protocol": "http"}, self.http.bytes_received.value)])
        lines += family("texmate_bytes_sent_total", "counter", "Bytes written to clients.",
                        [({"protocol": "ttp"}, self.ttp.bytes_sent.value),
                         ({"protocol": "http"}, self.http.bytes_sent.value)])
        return "\n".join(lines) + "\n"

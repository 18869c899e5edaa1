"""The unit page and the data endpoints over real HTTP: the WSGI site on
wsgiref (127.0.0.1, a port the OS picks) in a thread, over a store.Database on
each engine (a temporary file, a new PostgreSQL database). The test keeps its
own connection to the same database, as ``manage`` would, to add units and
samples."""

import csv
import html
import http.client
import io
import json
import math
import re
import statistics
import xml.etree.ElementTree as ET
from urllib.parse import quote, urlencode

import pytest

from texmate_ds import auth, times, ttp
from texmate_ds.store import Axis, GraphOptions

from conftest import WSGISite

SVG = "{http://www.w3.org/2000/svg}"
T0 = times.parse("2024-01-01 00:00:00")
SECOND = 1000000
HOSTILE = '<script>alert("x")</script>'
ENDPOINTS = ("graph.svg", "samples.csv", "samples.json", "stats.json", "last.json")


class Site(WSGISite):
    """A running web UI; `db` is the test's own connection."""

    def get(self, path, method="GET", **headers):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        answer = Answer(response.status, response.headers, response.read())
        conn.close()
        return answer

    def unit(self, code, fields, samples=(), axes=None, **extra):
        unit = self.db.units.add(code, "key", fields, **extra)
        if samples:
            self.db.samples.add(unit, list(samples))
        if axes is not None:
            self.db.units.set_graph_options(unit, GraphOptions(640, 240, tuple(axes)))
        self.db.commit()
        return unit


class Answer:
    def __init__(self, status, headers, raw):
        self.status, self.headers, self.raw = status, headers, raw
        self.text = raw.decode("utf-8")

    def json(self):
        return json.loads(self.text)


@pytest.fixture
def site(tmp_path, engine):
    s = Site(engine, tmp_path / "web.db", LOGIN_REQUIRED=False)
    yield s
    s.stop()


def wave(count, spacing=SECOND, start=T0):
    """Samples of 3 fields: a sine, a ramp, and a constant with holes (None)."""
    return [(start + i * spacing, (math.sin(i / 50), float(i), None if i % 10 == 0 else 2.0))
            for i in range(count)]


def range_query(start, end, **more):
    return urlencode(dict({"from": times.text(start), "to": times.text(end)},
                          **more))


# -- the page -----------------------------------------------------------------

def test_unit_page_shows_a_graph_per_axis_statistics_and_download_links(site):
    site.unit("A1", 3, wave(600), name="Pump " + HOSTILE, description=HOSTILE,
              field_names=["temp " + HOSTILE, "pressure", "flow"],
              axes=[Axis("Temperature " + HOSTILE, (1,)), Axis("Pressure", (2,))])
    page = site.get("/units/A1/?" + range_query(T0, T0 + 599 * SECOND))
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    # the one script is our own file; every name is escaped
    assert re.findall(r"<script[^>]*>", page.text) == ['<script src="/static/graph.js" defer>']
    assert "Pump &lt;script&gt;" in page.text
    assert "600 samples" in page.text
    # one inline graph per configured axis, and one more for the field on
    # none, each drawn at the unit's size and at a phone's
    graphs = re.findall(r"<svg .*?</svg>", page.text, re.S)
    assert len(graphs) == 6
    sizes = []
    for graph in graphs:
        root = ET.fromstring(graph)
        sizes.append((root.get("width"), root.get("height")))
    assert sizes == [("640", "240"), ("360", "200")] * 3
    assert "Temperature &lt;script&gt;" in graphs[0] and "Temperature &lt;script&gt;" in graphs[1]
    assert ">flow</text>" in graphs[4]
    # the values plotted, for the page's script
    readings = [json.loads(html.unescape(r)) for r in re.findall(r'data-readings="([^"]*)"',
                                                                 page.text)]
    assert [r["series"][0]["name"] for r in readings] == [
        "temp " + HOSTILE, "pressure", "flow"]
    assert readings[1]["start"] == T0 and len(readings[1]["t"]) == 600
    assert readings[1]["series"][0]["v"][:3] == [0.0, 1.0, 2.0]
    # statistics: one row per field
    rows = re.findall(r'<tr><th scope="row">(.*?)</th><td class="num">(\d+)</td>', page.text)
    assert rows == [("temp &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;", "600"),
                    ("pressure", "600"), ("flow", "540")]
    # the downloads cover the range shown, in absolute times
    assert 'href="samples.csv?from=2024-01-01+00%3A00%3A00&amp;to=2024-01-01+00%3A09%3A59"' \
        in page.text
    for quick in ("?from=-1h", "?from=-1d", "?from=-1w", "?from=-30d", "?from=-1y"):
        assert 'href="%s"' % quick in page.text
    assert 'href="?from=2024-01-01+00%3A00%3A00&amp;to=2024-01-01+00%3A09%3A59">all</a>' in page.text


def test_fields_without_an_axis_get_one_axis_per_unit_of_measure(site):
    unit = site.unit("M1", 3, wave(60), field_names=["Flow", "Level", "Pressure"])
    site.db.units.change(unit, field_units=("m³/h", "m", "m³/h"))
    site.db.commit()
    page = site.get("/units/M1/?" + range_query(T0, T0 + 59 * SECOND))
    labels = re.findall(r'<text class="axis-label"[^>]*>([^<]*)</text>', page.text)
    assert labels == ["m³/h", "m³/h", "m", "m"]       # two graphs, each twice
    assert re.findall(r'<figure class="graph" aria-label="([^"]*)"', page.text) == [
        "m³/h", "m"]
    svg = ET.fromstring(site.get("/units/M1/graph.svg?" + range_query(T0, T0 + 59 * SECOND)).text)
    texts = ["".join(t.itertext()) for t in svg.iter(SVG + "text")]
    assert {"Flow (m³/h) (left)", "Pressure (m³/h) (left)", "Level (m) (right)"} <= set(texts)


def test_statistics_read_as_an_operator_expects(site):
    """Values as sent with thousands separators, mean and std. dev. to
    about four significant digits (one decimal beyond the data's own at
    most), and the times of day to the second."""
    samples = [(T0 + i * 10 * SECOND + 250000, (60000 + i * 1142.8 + 0.127, 4.2 + i / 1000, i))
               for i in range(30)]
    site.unit("S1", 3, samples, field_names=["Flow", "Pressure", "Count"])
    page = site.get("/units/S1/?" + range_query(T0, T0 + 3600 * SECOND))
    rows = {name: cells for name, cells in re.findall(
        r'<tr><th scope="row">([^<]*)</th>(.*?)</tr>', page.text, re.S)}
    cells = {name: re.findall(r'<td class="num">([^<]*)', rows[name]) for name in rows}
    flow = [60000 + i * 1142.8 + 0.127 for i in range(30)]
    assert cells["Flow"][:3] == ["30", "60,000.127", ttp.format_value(max(flow)).replace(
        "93141", "93,141")]
    assert cells["Flow"][3] == "{:,.0f}".format(statistics.mean(flow))          # 76,571
    assert cells["Flow"][4] == "{:,.0f}".format(statistics.pstdev(flow))
    assert cells["Pressure"][3] == "%.3f" % statistics.mean(4.2 + i / 1000 for i in range(30))
    assert cells["Count"][3:5] == ["14.5", "8.7"]         # whole numbers: one decimal more
    assert "<small>00:00:00</small>" in rows["Flow"] and "00:04:50" in rows["Flow"]


def day_of_samples(site, code, newest, span, spacing=10 * SECOND):
    samples = [(newest - k * spacing, (float(k),)) for k in range(span // spacing + 1)]
    site.unit(code, 1, reversed(samples))
    return samples


def test_a_unit_page_opens_where_the_data_is(site):
    now = times.now() // SECOND * SECOND
    # five minutes of data just now: the page shows those five minutes
    day_of_samples(site, "NEW", now - 30 * SECOND, 300 * SECOND)
    page = site.get("/units/NEW/")
    assert "The last 24 hours hold only 5 min of samples: showing those." in page.text
    assert "31 samples" in page.text
    start, end = re.search(r"<span>(\S+ \S+) to (\S+ \S+): <strong>", page.text).groups()
    assert times.parse(end) - times.parse(start) < 10 * 60 * SECOND
    # a day of data that ended a month ago: the day up to its newest sample
    old = now - 30 * 86400 * SECOND
    day_of_samples(site, "OLD", old, 86400 * SECOND, spacing=600 * SECOND)
    page = site.get("/units/OLD/")
    assert "No samples in the last 24 hours: showing the newest." in page.text
    assert "145 samples" in page.text
    # a full day: the last 24 hours, nothing said
    day_of_samples(site, "DAY", now, 86400 * SECOND, spacing=600 * SECOND)
    page = site.get("/units/DAY/")
    assert re.findall(r'class="notice">[^<]*', page.text) == [] and "144 samples" in page.text
    # a range asked for is the range shown
    page = site.get("/units/NEW/?from=-1d")
    assert 'class="notice"' not in page.text and "31 samples" in page.text


def test_live_mode_is_a_flag_in_the_address(site):
    site.unit("L1", 3, wave(5))
    page = site.get("/units/L1/?from=-1h&live=1")
    assert 'data-live="/events?units=L1"' in page.text
    assert 'href="?from=-1h&amp;">Stop live</a>' in page.text
    assert 'href="?from=-1h&amp;live=1">Live</a>' in site.get("/units/L1/?from=-1h").text
    # a range that does not end now has no live mode
    assert "live-link" not in site.get("/units/L1/?" + range_query(T0, T0 + SECOND)).text
    bad = site.get("/units/L1/?live=yes")
    assert bad.status == 400 and "live: &#x27;yes&#x27; is not 1" in bad.text


def test_unit_page_refusals_are_pages(site):
    site.unit("A1", 1)
    missing = site.get("/units/NOPE/")
    assert missing.status == 404 and "text/html" in missing.headers["Content-Type"]
    bad = site.get("/units/A1/?from=" + quote(HOSTILE))
    assert bad.status == 400 and "is not a time" in bad.text and "<script" not in bad.text
    assert site.get("/units/A1/?fields=1").status == 400   # the page takes from and to only


def test_an_empty_unit_page_says_there_is_no_data(site):
    site.unit("E1", 2)
    page = site.get("/units/E1/")
    assert page.status == 200 and page.text.count("no data in this range") == 2  # wide, phone
    assert ">all</a>" not in page.text


# -- graph.svg ----------------------------------------------------------------

def test_graph_svg_is_xml_laid_out_as_configured(site):
    site.unit("G1", 3, wave(300), field_names=[HOSTILE, "b", "c"],
              axes=[Axis(HOSTILE, (1, 3)), Axis("ramp", (2,))])
    answer = site.get("/units/G1/graph.svg?" + range_query(T0, T0 + 299 * SECOND))
    assert answer.status == 200 and answer.headers["Content-Type"] == "image/svg+xml"
    assert "<script" not in answer.text
    root = ET.fromstring(answer.text)
    assert (root.get("width"), root.get("height")) == ("640", "240")   # the unit's options
    texts = ["".join(t.itertext()) for t in root.iter(SVG + "text")]
    assert {HOSTILE, "ramp", HOSTILE + " (left)", "c (left)", "b (right)"} <= set(texts)
    sized = ET.fromstring(site.get("/units/G1/graph.svg?width=1200&height=500&fields=2").text)
    assert (sized.get("width"), sized.get("height")) == ("1200", "500")
    assert "b" in ["".join(t.itertext()) for t in sized.iter(SVG + "text")]
    assert len(list(sized.iter(SVG + "polyline"))) == 0   # no data in the last 24 h


def test_graph_of_many_samples_is_decimated_and_keeps_the_spike(tmp_path, engine):
    site = Site(engine, tmp_path / "web.db", LOGIN_REQUIRED=False, MAX_PLOT_POINTS=200)
    try:
        samples = [(T0 + i * SECOND, (math.sin(i / 300),)) for i in range(20000)]
        samples[12345] = (samples[12345][0], (1000.0,))
        site.unit("D1", 1, samples)
        root = ET.fromstring(site.get("/units/D1/graph.svg?" + range_query(
            T0, T0 + 19999 * SECOND)).text)
        (line,) = root.iter(SVG + "polyline")
        points = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
        assert len(points) <= 200
        ys = [y for _, y in points]
        texts = ["".join(t.itertext()) for t in root.iter(SVG + "text")]
        assert "1,000" in texts                                 # the axis reaches the spike
        assert sorted(ys)[1] - min(ys) > 100                    # and it stands alone at the top
    finally:
        site.stop()


# -- samples.csv and samples.json ---------------------------------------------

def test_csv_streams_every_row_in_pages(site):
    samples = wave(2500)
    site.unit("C1", 3, samples, field_names=["a", HOSTILE])
    answer = site.get("/units/C1/samples.csv?" + range_query(T0, T0 + 2499 * SECOND))
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert answer.headers["Content-Disposition"] == \
        'attachment; filename="C1_20240101-000000_20240101-004139.csv"'
    assert answer.headers["Content-Length"] is None               # streamed
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == ["id", "timestamp", "a", HOSTILE, "L3"]
    assert len(rows) == 2501
    assert rows[1] == ["1", "2024-01-01 00:00:00", "0", "0", ""]
    assert rows[2500][1:] == ["2024-01-01 00:41:39", ttp.format_value(math.sin(2499 / 50)),
                              "2499", "2"]
    picked = site.get("/units/C1/samples.csv?fields=3,1&" + range_query(T0 + SECOND, T0 + 2 * SECOND))
    assert list(csv.reader(io.StringIO(picked.text))) == [
        ["id", "timestamp", "L3", "a"], ["2", "2024-01-01 00:00:01", "2", ttp.format_value(math.sin(1 / 50))],
        ["3", "2024-01-01 00:00:02", "2", ttp.format_value(math.sin(2 / 50))]]
    head = site.get("/units/C1/samples.csv", method="HEAD")
    assert head.status == 200 and head.raw == b""


def test_json_samples_with_limit_and_fields(site):
    site.unit("J1", 3, wave(1800), field_names=["a", "b", "c"])
    everything = range_query(T0, T0 + 1799 * SECOND)
    data = site.get("/units/J1/samples.json?" + everything).json()
    assert data["unit"] == "J1" and data["fields"] == ["a", "b", "c"]
    assert len(data["samples"]) == 1000                        # the default limit
    assert data["samples"][0] == [1, "2024-01-01 00:00:00", 0.0, 0.0, None]
    more = site.get("/units/J1/samples.json?limit=1500&fields=2&" + everything).json()
    assert more["fields"] == ["b"]
    assert [s[2] for s in more["samples"]] == [float(i) for i in range(1500)]
    assert site.get("/units/J1/samples.json?limit=5000&" + everything).json()["samples"][-1][0] == 1800


# -- stats.json and last.json ---------------------------------------------------

def test_stats_json_matches_the_samples(site):
    samples = wave(1000)
    site.unit("S1", 3, samples)
    start, end = T0 + 100 * SECOND, T0 + 899 * SECOND
    data = site.get("/units/S1/stats.json?fields=1,3&" + range_query(start, end)).json()
    assert (data["unit"], data["from"], data["to"]) == (
        "S1", "2024-01-01 00:01:40", "2024-01-01 00:14:59")
    inside = [(ts, v) for ts, v in samples if start <= ts <= end]
    sine = [v[0] for _, v in inside]
    first, second = data["fields"]
    assert (first["field"], first["name"], first["count"]) == (1, "L1", 800)
    assert (first["min"], first["max"]) == (min(sine), max(sine))
    assert math.isclose(first["mean"], statistics.fmean(sine), abs_tol=1e-12)
    assert math.isclose(first["stddev"], statistics.pstdev(sine), rel_tol=1e-9)
    assert first["first"] == {"timestamp": "2024-01-01 00:01:40", "value": sine[0]}
    assert first["last"] == {"timestamp": "2024-01-01 00:14:59", "value": sine[-1]}
    assert (second["count"], second["stddev"]) == (720, 0.0)
    assert second["first"]["timestamp"] == "2024-01-01 00:01:41"   # 100 is a hole


def test_last_json(site):
    site.unit("L1", 2, [(T0, (1.0, 2.0)), (T0 + SECOND, (3.5, -4.0))], field_names=["x"])
    site.unit("L2", 1)
    assert site.get("/units/L1/last.json").json() == {
        "unit": "L1", "fields": ["x", "L2"], "sample": [2, "2024-01-01 00:00:01", 3.5, -4.0]}
    assert site.get("/units/L2/last.json").json() == {"unit": "L2", "fields": ["L1"], "sample": None}


# -- refusals -----------------------------------------------------------------

@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_unknown_unit_is_404(site, endpoint):
    answer = site.get("/units/NOPE/" + endpoint)
    assert (answer.status, answer.text) == (404, "no such unit\n")


@pytest.mark.parametrize("endpoint,query,reason", [
    ("graph.svg", "from=soon", "from: 'soon' is not a time"),
    ("graph.svg", "width=5", "width: '5' is not a whole number from 100 to 4000"),
    ("graph.svg", "height=99999", "height: '99999' is not a whole number"),
    ("graph.svg", "fields=4", "fields: '4' is not a field number from 1 to 3"),
    ("samples.csv", "from=2024-01-02&to=2024-01-01", "from (2024-01-02 00:00:00) is after to"),
    ("samples.csv", "to=2024-13-01", "to: '2024-13-01' is not a real date"),
    ("samples.csv", "limit=5", "unknown parameter 'limit'"),
    ("samples.json", "limit=0", "limit: '0' is not a whole number from 1 to 100000"),
    ("samples.json", "fields=1,1", "fields: 1 is given twice"),
    ("stats.json", "fields=x", "fields: 'x' is not a field number"),
    ("last.json", "from=-1h", "unknown parameter 'from'; this address takes none"),
    ("samples.json", "from=-1h&from=-2h", "given twice"),
])
def test_bad_parameters_are_400_with_a_reason(site, endpoint, query, reason):
    site.unit("B1", 3, wave(10))
    answer = site.get("/units/B1/%s?%s" % (endpoint, query))
    assert answer.status == 400 and answer.headers["Content-Type"].startswith("text/plain")
    assert reason in answer.text and answer.text.count("\n") == 1


def test_login_required_anonymous_is_refused_and_a_token_reads(tmp_path, engine):
    site = Site(engine, tmp_path / "web.db")
    try:
        site.unit("A1", 3, wave(5))
        user = site.db.accounts.add_user("script", auth.hash_password("not the default"),
                                         all_units=True)
        token = auth.create_api_token(site.db, user.id, "cron")
        site.db.commit()
        for endpoint in ENDPOINTS:
            answer = site.get("/units/A1/" + endpoint)
            assert answer.status == 401
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
            assert site.get("/units/A1/" + endpoint, Authorization="Bearer " + token).status == 200
            assert site.get("/units/A1/" + endpoint, Authorization="Bearer x" + token).status == 401
        page = site.get("/units/A1/")
        assert page.status == 302 and page.headers["Location"].startswith("/login/?next=")
    finally:
        site.stop()

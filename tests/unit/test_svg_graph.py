"""svg_graph without a database: ticks, layout, gaps, escaping, and the
peak-keeping decimation, checked on the SVG as an XML parser reads it."""

import datetime
import math
import random
import xml.etree.ElementTree as ET

import pytest

from texmate_ds import svg_graph

NS = "{http://www.w3.org/2000/svg}"
T0 = 1704067200 * 1000000          # 2024-01-01 00:00:00
SECOND = 1000000
DAY = 86400 * SECOND


def raw_rows(samples):
    """Rows for raw samples [(ts, v1, v2, ...)]: (ts, ts, v1, v1, ...)."""
    return [(ts, ts) + tuple(x for v in values for x in (v, v)) for ts, *values in samples]


def parse(svg):
    return ET.fromstring(svg)


def lines_of(root, series):
    """Polylines and dots of a series: [[(x, y), ...], ...]."""
    color = svg_graph.PALETTE[series]
    group = [g for g in root.iter(NS + "g") if g.get("stroke") == color][0]
    lines = []
    for item in group:
        if item.tag == NS + "polyline":
            lines.append([tuple(map(float, p.split(","))) for p in item.get("points").split()])
        else:
            lines.append([(float(item.get("cx")), float(item.get("cy")))])
    return lines


def texts(root):
    return ["".join(t.itertext()) for t in root.iter(NS + "text")]


# -- numbers ------------------------------------------------------------------

RANGES = [(0, 1), (0, 0.3), (-0.1, 0.27), (0, 1e6), (1e-7, 3e-7), (-5, -4.99),
          (7, 7), (0, 0), (-1e308, 1e308), (123456.7, 123457.1), (0.1, 0.7),
          (-273.15, 1e4), (1e15, 1e15 + 7), (-3e-12, 2e-12)]


@pytest.mark.parametrize("lo,hi", RANGES)
@pytest.mark.parametrize("count", [2, 5, 9])
def test_number_ticks_are_nice_cover_the_range_and_read_well(lo, hi, count):
    bottom, top, ticks = svg_graph.number_ticks(lo, hi, count)
    values = [v for v, _ in ticks]
    assert bottom <= lo and top >= hi and bottom < top
    assert values == sorted(values) and 2 <= len(values) <= 3 * count + 1
    step = values[1] - values[0]
    exponent = math.floor(math.log10(step) + 1e-9)
    assert min(abs(step / 10 ** exponent - m) for m in (1, 2, 5, 10)) < 1e-6
    labels = [text for _, text in ticks]
    assert len(set(labels)) == len(labels)
    digits = max(math.floor(math.log10(abs(v))) for v in values if v) - exponent + 1
    for value, text in ticks:
        assert len(text) <= max(9, digits + 6), text   # sign, point, e+XX
        assert math.isclose(float(text), value, rel_tol=1e-9, abs_tol=step * 1e-6)


def test_numbers_have_no_float_noise():
    _, _, ticks = svg_graph.number_ticks(0, 0.3, 3)
    assert [t for _, t in ticks] == ["0.0", "0.1", "0.2", "0.3"]
    assert svg_graph.format_numbers([-0.0000001, 0.5], 0.5) == ["0.0", "0.5"]
    assert svg_graph.format_numbers([0, 5e5, 1e6], 5e5) == ["0", "500000", "1000000"]
    assert svg_graph.format_numbers([0, 5e11, 1e12], 5e11) == ["0", "5e+11", "1e+12"]
    assert svg_graph.format_numbers([-2e-7, 0, 2e-7], 2e-7) == ["-2e-07", "0", "2e-07"]


# -- time ---------------------------------------------------------------------

SPANS = [1, 999, 900000, 30 * SECOND, 10 * 60 * SECOND, 3600 * SECOND, DAY, 7 * DAY,
         60 * DAY, 400 * DAY, 3000 * DAY, 100000 * DAY]


@pytest.mark.parametrize("span", SPANS)
@pytest.mark.parametrize("start", [T0 - 30 * SECOND, T0 + 12345678901, -DAY // 3])
def test_time_ticks_lie_in_the_range_and_about_count(span, start):
    ticks = svg_graph.time_ticks(start, start + span, 8)
    stamps = [ts for ts, _, _ in ticks]
    assert stamps == sorted(set(stamps))
    assert start <= stamps[0] and stamps[-1] <= start + span
    assert 2 <= len(ticks) <= 10
    assert all(line1 for _, line1, _ in ticks)


def stamp(*args):
    return svg_graph._timestamp(datetime.datetime(*args))


def labels(start, end, count=6):
    return [(line1, line2) for _, line1, line2 in svg_graph.time_ticks(start, end, count)]


def test_time_labels_fit_the_span():
    # seconds, with the date where it changes
    assert labels(stamp(2023, 12, 31, 23, 59, 50), stamp(2024, 1, 1, 0, 0, 10), 4) == [
        ("23:59:50", "2023-12-31"), ("23:59:55", ""), ("00:00:00", "2024-01-01"),
        ("00:00:05", ""), ("00:00:10", "")]
    # hours
    assert labels(stamp(2024, 3, 1), stamp(2024, 3, 2), 4) == [
        ("00:00", "2024-03-01"), ("06:00", ""), ("12:00", ""), ("18:00", ""),
        ("00:00", "2024-03-02")]
    # weeks start on Mondays
    weeks = svg_graph.time_ticks(stamp(2023, 12, 20), stamp(2024, 2, 20), 6)
    assert [(l1, l2) for _, l1, l2 in weeks][:3] == [("Dec 25", "2023"), ("Jan 8", "2024"), ("Jan 22", "")]
    assert {svg_graph._datetime(ts).weekday() for ts, _, _ in weeks} == {0}
    # months, with the year where it changes
    assert labels(stamp(2023, 10, 15), stamp(2024, 6, 1), 8) == [
        ("Nov", "2023"), ("Dec", ""), ("Jan", "2024"), ("Feb", ""), ("Mar", ""),
        ("Apr", ""), ("May", ""), ("Jun", "")]
    assert labels(stamp(2023, 11, 15), stamp(2024, 6, 1), 4) == [
        ("Jan", "2024"), ("Mar", ""), ("May", "")]
    # years
    assert [l1 for l1, _ in labels(stamp(2001, 6, 1), stamp(2031, 6, 1), 4)] == [
        "2010", "2020", "2030"]
    # below a second
    assert labels(T0, T0 + 300000, 3) == [
        ("00:00:00.0", "2024-01-01"), ("00:00:00.1", ""), ("00:00:00.2", ""), ("00:00:00.3", "")]


# -- rendering ----------------------------------------------------------------

def test_svg_is_well_formed_with_size_title_axes_and_legend():
    rows = raw_rows([(T0 + i * 60 * SECOND, i, 100 - i, i * i) for i in range(100)])
    svg = svg_graph.render(rows, [("Temperature", ["in", "out"]), ("Power", ["kW"])],
                           T0, T0 + 100 * 60 * SECOND, 640, 300, "Boiler")
    root = parse(svg)
    assert root.tag == NS + "svg"
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("640", "300", "0 0 640 300")
    assert root.find(NS + "title").text == "Boiler"
    words = texts(root)
    assert {"Temperature", "Power", "in (left)", "out (left)", "kW (right)"} <= set(words)
    for series in range(3):
        (line,) = lines_of(root, series)
        assert len(line) == 100
        for x, y in line:   # inside the plot
            assert svg_graph.AXIS_WIDTH - 0.1 <= x <= 640 - svg_graph.AXIS_WIDTH + 0.1
            assert 0 <= y <= 300


def test_more_axes_go_outwards_and_say_where_they_are():
    rows = raw_rows([(T0 + i * SECOND, i, -i, 2 * i, 3 * i) for i in range(10)])
    axes = [("a", ["A"]), ("b", ["B"]), ("c", ["C"]), ("d", ["D"])]
    root = parse(svg_graph.render(rows, axes, T0, T0 + 10 * SECOND, 800, 300))
    assert {"A (left)", "B (right)", "C (left 2)", "D (right 2)"} <= set(texts(root))
    axis_lines = {line.get("x1") for line in root.iter(NS + "line")
                  if line.get("x1") == line.get("x2") and line.get("stroke") == "#000"}
    w = svg_graph.AXIS_WIDTH
    assert {str(w), str(2 * w), str(800 - 2 * w), str(800 - w)} <= axis_lines


def test_hostile_names_are_escaped_and_stay_well_formed():
    name = '<script>alert("x")</script> & \x01\x1b'
    rows = raw_rows([(T0, 1.0), (T0 + SECOND, 2.0)])
    svg = svg_graph.render(rows, [(name, [name])], T0, T0 + SECOND, 400, 200, name)
    assert "<script" not in svg
    root = parse(svg)
    clean = name.replace("\x01", "\ufffd").replace("\x1b", "\ufffd")
    assert root.find(NS + "title").text == clean
    assert clean in texts(root)


def test_empty_range_says_so():
    root = parse(svg_graph.render([], [("", ["L1"])], T0, T0 + DAY, 400, 200, "x"))
    assert "no data in this range" in texts(root)
    assert lines_of(root, 0) == []


def test_gaps_break_the_line_where_samples_are_missing():
    samples = [(T0 + i * 10 * SECOND, float(i % 7)) for i in range(100)]
    del samples[40:44]          # five spacings' worth: a gap
    del samples[20:21]          # one missed sample: not a gap
    samples[70] = (samples[70][0], None)   # no value: a break
    for lone in (90, 91):       # long pauses before and after sample 90
        samples[lone:] = [(ts + 100 * SECOND, v) for ts, v in samples[lone:]]
    root = parse(svg_graph.render(raw_rows(samples), [("", ["L1"])],
                                  T0, samples[-1][0], 800, 200))
    sizes = [len(line) for line in lines_of(root, 0)]
    assert sizes == [39, 31, 19, 1, 4]   # a lone sample is a dot
    assert sum(sizes) == len(samples) - 1


def test_decimation_columns():
    left, plot = svg_graph._layout_x(1000, 1)
    assert svg_graph.columns(1000, 1, 0) == plot
    assert svg_graph.columns(1000, 2, 0) == 1000 - 2 * svg_graph.AXIS_WIDTH
    assert svg_graph.columns(1000, 1, 500) == 250
    assert svg_graph.columns(1000, 1, 1) == 1


def buckets(samples, start, end, count):
    """What the store's graph query answers, by brute force."""
    width = (end - start) // count + 1
    groups = {}
    for ts, v in samples:
        groups.setdefault((ts - start) // width, []).append((ts, v))
    return [(g[0][0], g[-1][0], min(v for _, v in g), max(v for _, v in g))
            for _, g in sorted(groups.items())]


def test_decimated_series_keeps_every_columns_peak_and_trough():
    random.seed(7)
    n, spacing = 100000, SECOND
    samples = [(T0 + i * spacing, math.sin(i / 5000) + random.random() * 0.1) for i in range(n)]
    for i in random.sample(range(n), 40):   # spikes both ways
        samples[i] = (samples[i][0], random.choice((-1, 1)) * random.uniform(3, 9))
    start, end = T0, T0 + n * spacing
    columns = svg_graph.columns(1000, 1, 0)
    rows = buckets(samples, start, end, columns)
    assert len(rows) <= columns
    svg = svg_graph.render(rows, [("", ["L1"])], start, end, 1000, 400)
    assert len(svg) < 200000
    root = parse(svg)
    (line,) = lines_of(root, 0)
    drawn = {y for _, y in line}
    frame = svg_graph._Frame(1000, 400, start, end, 1, 1, False)   # where render() drew
    bottom, top, _ = svg_graph._axis_range(rows, 0, 1, frame)

    def y(v):
        return float("%.1f" % frame.y(v, bottom, top))
    for _, _, lo, hi in rows:
        assert y(lo) in drawn and y(hi) in drawn
    values = [v for _, v in samples]
    assert min(drawn) == y(max(values)) and max(drawn) == y(min(values))

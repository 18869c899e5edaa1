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
    assert min(abs(step / 10 ** exponent - m) for m in (1, 2, 2.5, 5, 10)) < 1e-6
    labels = [text for _, text in ticks]
    assert len(set(labels)) == len(labels)
    digits = max(math.floor(math.log10(abs(v))) for v in values if v) - exponent + 1
    for value, text in ticks:
        # sign, point, e+XX; or thousands separators
        assert len(text) <= max(svg_graph.LONGEST_PLAIN + 1, digits + 7), text
        assert math.isclose(float(text.replace(",", "")), value, rel_tol=1e-9,
                            abs_tol=step * 1e-6)


@pytest.mark.parametrize("lo,hi,count,expected", [
    (48615.8, 71423.1, 6, (45000, 75000)),    # not from 0, not to 100,000
    (0, 71428, 6, (0, 75000)),
    (0, 71428, 3, (0, 75000)),                # 25,000 steps rather than 50,000
    (3.93, 4.5, 5, (3.9, 4.5)),
    (60.59, 62.35, 4, (60.5, 62.5)),
])
def test_the_axis_fits_the_data_tightly(lo, hi, count, expected):
    bottom, top, ticks = svg_graph.number_ticks(lo, hi, count)
    assert (round(bottom, 9), round(top, 9)) == expected
    assert len(ticks) <= count + 2


def test_numbers_have_no_float_noise_and_thousands_separators():
    _, _, ticks = svg_graph.number_ticks(0, 0.3, 3)
    assert [t for _, t in ticks] == ["0.0", "0.1", "0.2", "0.3"]
    assert svg_graph.format_numbers([-0.0000001, 0.5], 0.5) == ["0.0", "0.5"]
    assert svg_graph.format_numbers([0, 2.5, 5, 7.5], 2.5) == ["0.0", "2.5", "5.0", "7.5"]
    assert svg_graph.format_numbers([0, 25, 50], 25) == ["0", "25", "50"]
    assert svg_graph.format_numbers([0, 5e5, 1e6], 5e5) == ["0", "500,000", "1,000,000"]
    assert svg_graph.format_numbers([-4e4, 0, 4e4], 2e4) == ["-40,000", "0", "40,000"]
    assert svg_graph.format_numbers([0, 5e11, 1e12], 5e11) == ["0", "5e+11", "1e+12"]
    assert svg_graph.format_numbers([0, 2.5e11, 5e11, 7.5e11], 2.5e11) == [
        "0", "2.5e+11", "5e+11", "7.5e+11"]
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

def plot_box(root):
    """(left, top, width, height) of the plot, as the svg says for scripts."""
    return tuple(map(float, root.get("data-plot").split()))


def test_svg_is_well_formed_with_size_title_axes_and_legend():
    rows = raw_rows([(T0 + i * 60 * SECOND, i, 100 - i, i * i) for i in range(100)])
    svg = svg_graph.render(rows, [("Temperature", ["in", "out"]), ("Power", ["kW"])],
                           T0, T0 + 100 * 60 * SECOND, 640, 300, "Boiler")
    root = parse(svg)
    assert root.tag == NS + "svg"
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("640", "300", "0 0 640 300")
    assert (root.get("data-start"), root.get("data-end")) == (str(T0), str(T0 + 6000 * SECOND))
    assert root.find(NS + "title").text == "Boiler"
    words = texts(root)
    assert {"Temperature", "Power", "in (left)", "out (left)", "kW (right)"} <= set(words)
    left, top, width, height = plot_box(root)
    assert 0 < left and left + width < 640 and 0 < top and top + height < 300
    for series in range(3):
        (line,) = lines_of(root, series)
        assert len(line) == 100
        for x, y in line:   # inside the plot
            assert left - 0.1 <= x <= left + width + 0.1
            assert top - 0.1 <= y <= top + height + 0.1


def test_text_is_sized_for_the_width_it_is_drawn_at():
    rows = raw_rows([(T0 + i * SECOND, i * 1000.5) for i in range(10)])
    for width, size in ((360, 12), (800, 12), (1600, 24)):
        root = parse(svg_graph.render(rows, [("m³/h", ["Flow"])], T0, T0 + 10 * SECOND,
                                      width, 300))
        assert float(root.get("font-size")) == size
        # the axis is as wide as its labels: the plot starts after them
        widest = max(len(t) for t in texts(root) if t[:1].isdigit() and "," in t)
        assert plot_box(root)[0] >= widest * svg_graph.CHAR_EMS * size


def test_the_axis_label_stands_beside_the_axis():
    rows = raw_rows([(T0 + i * SECOND, i, 2 * i) for i in range(10)])
    root = parse(svg_graph.render(rows, [("m³/h", ["Flow"]), ("bar", ["Pressure"])],
                                  T0, T0 + 10 * SECOND, 800, 300))
    labels = {t.text: t for t in root.iter(NS + "text") if t.get("class") == "axis-label"}
    assert set(labels) == {"m³/h", "bar"}
    left, _, width, _ = plot_box(root)
    assert float(labels["m³/h"].get("x")) < left < left + width < float(labels["bar"].get("x"))
    assert "rotate(-90" in labels["m³/h"].get("transform")


def test_more_axes_go_outwards_and_say_where_they_are():
    rows = raw_rows([(T0 + i * SECOND, i, -i, 2 * i, 3 * i) for i in range(10)])
    axes = [("a", ["A"]), ("b", ["B"]), ("c", ["C"]), ("d", ["D"])]
    root = parse(svg_graph.render(rows, axes, T0, T0 + 10 * SECOND, 800, 300))
    assert {"A (left)", "B (right)", "C (left 2)", "D (right 2)"} <= set(texts(root))
    axis_lines = sorted(float(line.get("x1")) for line in root.iter(NS + "line")
                        if line.get("x1") == line.get("x2") and line.get("stroke") == "#000")
    left, _, width, _ = plot_box(root)
    c, a, b, d = axis_lines
    assert 0 < c < a == left and left + width == b < d < 800


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
    wide = svg_graph.columns(1000, 1, 0)
    assert 1000 - 2 * svg_graph.AXIS_ESTIMATE_EMS * 12 < wide < 1000
    assert svg_graph.columns(1000, 2, 0) < wide
    assert svg_graph.columns(1000, 1, 500) == 250
    assert svg_graph.columns(1000, 1, 1) == 1


def test_rebucketing_keeps_each_buckets_extremes_and_edges():
    rows = buckets([(T0 + i * SECOND, float(i % 17)) for i in range(1000)], T0,
                   T0 + 1000 * SECOND, 500)
    rows = [r + (None, None) if i % 3 else r + (1.0, 2.0) for i, r in enumerate(rows)]
    narrow = svg_graph.rebucket(rows, T0, T0 + 1000 * SECOND, 100)
    assert len(narrow) <= 100
    assert narrow[0][0] == rows[0][0] and narrow[-1][1] == rows[-1][1]
    assert min(r[2] for r in narrow) == 0 and max(r[3] for r in narrow) == 16
    assert {r[4] for r in narrow} == {1.0} and {r[5] for r in narrow} == {2.0}
    assert svg_graph.rebucket(rows[:50], T0, T0 + 1000 * SECOND, 100) == rows[:50]


def test_readings_are_the_plotted_values_for_a_script():
    rows = [(T0, T0, 1.5, 1.5), (T0 + SECOND, T0 + 3 * SECOND, 2.0, 7.0), (T0 + 4 * SECOND,
            T0 + 4 * SECOND, None, None)]
    assert svg_graph.readings(rows, ["Flow"], T0) == {
        "start": T0, "t": [[0, 0], [1000, 3000], [4000, 4000]],
        "series": [{"name": "Flow", "v": [1.5, [2.0, 7.0], None]}]}


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
    frame = svg_graph._Frame(1000, 400, start, end, 1, False)   # where render() drew
    bottom, top, _ = svg_graph._axis_range(rows, 0, 1, frame)

    def y(v):
        return float("%.1f" % frame.y(v, bottom, top))
    for _, _, lo, hi in rows:
        assert y(lo) in drawn and y(hi) in drawn
    values = [v for _, v in samples]
    assert min(drawn) == y(max(values)) and max(drawn) == y(min(values))

"""Line graphs as hand-built SVG, and the decimation rule that keeps them
small. Pure: no database, no HTTP.

Design:

* Input is already reduced. A caller asks `columns()` how many time buckets
  the graph wants, has the store return one row per bucket (or per sample
  when the range holds few enough), and hands those rows to `render()`.
  A row is ``(first_ts, last_ts, lo_1, hi_1, lo_2, hi_2, ...)``: the first
  and last timestamp in the bucket and, for each plotted series, its least
  and greatest value there (None when the series has no value in it). A raw
  sample is the row ``(ts, ts, v, v, ...)``.
* Peaks and troughs survive decimation: every bucket contributes both its
  minimum and its maximum, drawn at the bucket's first and last timestamp,
  in whichever order continues the line from the previous point more
  directly. With `MAX_PLOT_POINTS` 0 a bucket is one pixel column, so a
  million samples draw as about two points per column with every spike
  where the full data has it.
* Gaps: a line breaks where a series has no value, and where the time from
  one row's last timestamp to the next row's first is more than
  `GAP_FACTOR` times the median of those spacings in the graph (so a
  regularly sampled series is one line, and a pause of a few missed
  samples or more shows). A point with no neighbour on its line is a dot.
* Layout: axis 1 on the left, axis 2 on the right, axis 3 left of axis 1,
  axis 4 right of axis 2, and so on outwards. Each axis gets "nice" ticks
  (1, 2, 2.5 or 5 times a power of ten, whichever covers its own fields'
  range most tightly, so a maximum of 71,428 tops out at 75,000), labelled
  with thousands separators and just the decimals the step needs, and
  its label (the axis label, else its fields' unit of measure) beside
  them. The time axis ticks on whole seconds, minutes, hours, days,
  Monday-aligned weeks, calendar months or years, whichever gives about
  one label per `X_TICK_EMS` text heights, and labels each tick with what
  changes at that step (a second line gives the date or year when it
  changes). With several axes, legend entries say which axis a field is
  on.
* Text is sized for the screen: `font_size` grows with the drawing's
  width, and every length of the layout (margins, axis widths, tick
  spacing, legend rows) is a multiple of it, so a graph drawn 360 wide
  for a phone and one drawn 1600 wide for a wall screen both read at
  about 12 px where they are shown at their own width. The SVG has a
  ``viewBox`` and scales with its container; the page chooses a drawing
  near the width it lands on (web/units.py draws a phone-sized one too).
* A script can read the graph (static/graph.js): the root ``<svg>`` says
  where the plot is (``data-plot``: left, top, width, height) and what
  time span it covers (``data-start``, ``data-end``, microseconds), and
  `readings` gives the plotted values themselves as JSON-ready data.
* All text is escaped, and characters XML 1.0 forbids even escaped are
  replaced, so any unit or field name yields well-formed XML.
"""

import datetime
import html
import math
import re
import statistics

GAP_FACTOR = 3
# Lengths of the layout in text heights (the font size, `font_size`).
MARGIN_EMS = 1.3         # on a side without an axis, and above the title
TITLE_EMS = 1.8
X_LABELS_EMS = 2.9       # two lines of time labels under the plot
LEGEND_EMS = 1.4         # a row of the legend
CHAR_EMS = 0.6           # an average character's width, for layout
X_TICK_EMS = 7           # between time labels, about
Y_TICK_EMS = 3.5         # between value labels, about
AXIS_ESTIMATE_EMS = 5    # an axis's width before its labels are known
TEXT_PX = 12             # the text size of a graph drawn `BASE_WIDTH` wide
BASE_WIDTH = 800
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
           "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")

_SECOND = 1000000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
_EPOCH = datetime.datetime(1970, 1, 1)
_MONDAY = 4 * _DAY       # 1970-01-05, the first Monday after the epoch
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


# -- decimation ---------------------------------------------------------------

def font_size(width):
    """The text size of a graph drawn `width` wide: `TEXT_PX`, and more
    for a drawing wider than `BASE_WIDTH` (shown shrunk on most screens)."""
    return TEXT_PX * max(1.0, width / BASE_WIDTH)


def columns(width, axis_count, max_points):
    """Time buckets for a graph `width` px wide with `axis_count` y axes:
    one per pixel column of the plot when `max_points` is 0 (about two
    points per column), else as many as keep a line to `max_points`."""
    if max_points == 0:
        return _plot_width_estimate(width, axis_count)
    return max(1, max_points // 2)


def _plot_width_estimate(width, axis_count):
    em = font_size(width)
    left = (axis_count + 1) // 2 * AXIS_ESTIMATE_EMS * em or MARGIN_EMS * em
    right = axis_count // 2 * AXIS_ESTIMATE_EMS * em or MARGIN_EMS * em
    return max(1, int(width - left - right))


def rebucket(rows, start, end, count):
    """`rows` (as `render` takes them) merged into at most `count` time
    buckets over start..end, each keeping its rows' first and last time and
    every series' least and greatest value: the same graph, drawn narrower."""
    if len(rows) <= count:
        return rows
    span = max(end - start, 1)
    merged, key = [], None
    for row in rows:
        bucket = min(count - 1, max(0, (row[0] - start) * count // span))
        if bucket != key:
            merged.append(list(row))
            key = bucket
            continue
        into = merged[-1]
        into[1] = row[1]
        for column in range(2, len(row), 2):
            lo, hi = row[column], row[column + 1]
            if lo is not None:
                into[column] = lo if into[column] is None else min(into[column], lo)
                into[column + 1] = hi if into[column + 1] is None else max(into[column + 1], hi)
    return [tuple(row) for row in merged]


# -- numbers ------------------------------------------------------------------

_MANTISSAS = (1, 2, 2.5, 5)


def nice_step(raw):
    """The least of 1, 2, 5 times a power of ten that is >= `raw` (> 0)."""
    power = 10.0 ** math.floor(math.log10(raw))
    for mantissa in (1, 2, 5, 10):
        if mantissa * power >= raw * (1 - 1e-9):
            return mantissa * power
    return 10 * power


def _tightest_step(lo, hi, count):
    """Of the nice steps (1, 2, 2.5, 5 times a power of ten) giving at most
    `count` + 1 intervals over lo..hi, the one whose whole steps cover it
    most tightly (at least two intervals when any step gives them; the
    smaller step, so more labels, of two that cover it as tightly)."""
    raw = hi / count - lo / count   # never overflows, unlike hi - lo
    power = math.floor(math.log10(raw))
    best, best_key = None, None
    for exponent in (power - 1, power, power + 1):
        for mantissa in _MANTISSAS:
            try:
                step = mantissa * 10.0 ** exponent
            except OverflowError:       # beyond 1e308: no such step
                continue
            if step == 0 or not math.isfinite(step):
                continue
            intervals = math.ceil(hi / step) - math.floor(lo / step)
            if intervals > count + 1:
                continue
            key = (intervals < 2, intervals * step, step)
            if best_key is None or key < best_key:
                best, best_key = step, key
    return best if best is not None else nice_step(raw)


def number_ticks(lo, hi, count):
    """About `count` nice ticks covering lo..hi: (bottom, top, [(value,
    label)]), the axis stretched to whole steps. A flat range is widened."""
    if lo == hi:
        pad = abs(lo) / 10 or 1.0
        lo, hi = lo - pad, hi + pad
    step = _tightest_step(lo, hi, count)
    first, last = math.floor(lo / step), math.ceil(hi / step)
    if not math.isfinite(first * step) or not math.isfinite(last * step):
        first, last = math.ceil(lo / step), math.floor(hi / step)
    values = [k * step for k in range(first, last + 1)]
    # k * step can miss lo or hi by a rounding error; the axis must hold both.
    bottom, top = min(values[0], lo), max(values[-1], hi)
    return bottom, top, list(zip(values, format_numbers(values, step)))


def _decimals(step):
    """The fewest decimals that write `step` exactly (2.5: 1, 0.25: 2)."""
    for decimals in range(0, 16):
        if abs(round(step, decimals) - step) <= abs(step) * 1e-9:
            return decimals
    return 16


LONGEST_PLAIN = 11       # characters of a tick label before exponent form
MOST_DECIMALS = 5        # decimals of a tick label before exponent form


def format_numbers(values, step):
    """Labels with thousands separators and just the digits `step` needs
    (0.3, not 0.30000000000000004); all in exponent form when plain ones
    get long."""
    decimals = _decimals(step)
    texts = ["{:,.{}f}".format(v, decimals) for v in values]
    if decimals > MOST_DECIMALS or max(len(t) for t in texts) > LONGEST_PLAIN:
        exponent = math.floor(math.log10(step) + 1e-9)
        extra = _decimals(step / 10.0 ** exponent)   # 2.5e11 needs two digits
        texts = ["%.*g" % (max(1, math.floor(math.log10(abs(v))) - exponent + 1 + extra), v)
                 if v else "0" for v in values]
    return [t.lstrip("-") if float(t.replace(",", "")) == 0 else t for t in texts]


# -- time ---------------------------------------------------------------------

# Fixed steps in microseconds; longer spans tick on calendar months or years.
_TIME_STEPS = [s * _SECOND for s in (1, 2, 5, 10, 15, 30)] + \
    [m * _MINUTE for m in (1, 2, 5, 10, 15, 30)] + \
    [h * _HOUR for h in (1, 2, 3, 6, 12)] + [d * _DAY for d in (1, 2, 7, 14)]
_MONTH_STEPS = (1, 2, 3, 6)


def time_ticks(start, end, count):
    """About `count` ticks in start..end (microseconds): [(ts, line1, line2)].
    line2 (date or year) is given at the first tick and where it changes."""
    raw = max(end - start, 1) / count
    if raw < _SECOND:
        step = max(1, int(nice_step(raw)))
        return _label(_fixed(start, end, step, 0), _subsecond_format(step), _date_text)
    for step in _TIME_STEPS:
        if step >= raw:
            offset = _MONDAY if step % (7 * _DAY) == 0 else 0
            if step < _MINUTE:
                return _label(_fixed(start, end, step, offset), _hms, _date_text)
            if step < _DAY:
                return _label(_fixed(start, end, step, offset), _hm, _date_text)
            return _label(_fixed(start, end, step, offset), _month_day, _year)
    for months in _MONTH_STEPS:
        if months * 30 * _DAY >= raw:
            return _label(_calendar(start, end, months), _month, _year)
    years = max(1, int(nice_step(raw / (365 * _DAY))))
    return _label(_calendar(start, end, 12 * years), _year, _nothing)


def _fixed(start, end, step, offset):
    k = -((offset - start) // step)   # ceil((start - offset) / step)
    ts = offset + k * step
    while ts <= end:
        yield ts
        ts += step


def _calendar(start, end, months):
    """First days of months that are multiples of `months` (from January)."""
    date = _datetime(start)
    index = date.year * 12 + date.month - 1
    index = -(-index // months) * months
    while 1 <= index // 12 <= 9999:
        ts = _timestamp(datetime.datetime(index // 12, index % 12 + 1, 1))
        if ts > end:
            return
        if ts >= start:
            yield ts
        index += months


def _label(stamps, line1, line2):
    ticks = []
    previous = None
    for ts in stamps:
        date = _datetime(ts)
        context = line2(date)
        ticks.append((ts, line1(date), context if context != previous else ""))
        previous = context
    return ticks


def _datetime(ts):
    return _EPOCH + datetime.timedelta(microseconds=ts)


def _timestamp(date):
    return (date - _EPOCH) // datetime.timedelta(microseconds=1)


def _subsecond_format(step):
    decimals = 6 - int(math.floor(math.log10(step) + 1e-9))
    return lambda d: "%s.%s" % (_hms(d), ("%06d" % d.microsecond)[:decimals])


def _hms(d):
    return "%02d:%02d:%02d" % (d.hour, d.minute, d.second)


def _hm(d):
    return "%02d:%02d" % (d.hour, d.minute)


def _month_day(d):
    return "%s %d" % (_MONTHS[d.month - 1], d.day)


def _month(d):
    return _MONTHS[d.month - 1]


def _date_text(d):
    return "%04d-%02d-%02d" % (d.year, d.month, d.day)


def _year(d):
    return "%04d" % d.year


def _nothing(d):
    return ""


# -- layout -----------------------------------------------------------------

class _Frame:
    """Where the plot sits and how values map onto it. Made in two steps:
    the height first (the value axes' ticks depend on it), then `place`
    the plot between the axes once their labels' widths are known."""

    def __init__(self, width, height, start, end, legend_rows, titled):
        self.em = em = font_size(width)
        self.total_width = width
        self.top = MARGIN_EMS * em + (TITLE_EMS * em if titled else 0)
        self.height = max(1.0, height - self.top - X_LABELS_EMS * em
                          - LEGEND_EMS * em * legend_rows - MARGIN_EMS * em / 2)
        self.bottom = self.top + self.height
        self.start, self.span = start, max(end - start, 1)
        self.left, self.width = MARGIN_EMS * em, max(1.0, width - 2 * MARGIN_EMS * em)

    def place(self, axis_widths):
        """Axes alternate left and right, outwards: the plot between them."""
        left = sum(axis_widths[0::2]) or MARGIN_EMS * self.em
        right = sum(axis_widths[1::2]) or MARGIN_EMS * self.em
        self.left, self.width = left, max(1.0, self.total_width - left - right)

    def axis_x(self, index, axis_widths):
        """x of axis `index` and its side (-1 left, +1 right)."""
        closer = sum(axis_widths[index % 2:index:2])
        if index % 2 == 0:
            return self.left - closer, -1
        return self.left + self.width + closer, 1

    def x(self, ts):
        return self.left + (ts - self.start) * self.width / self.span

    def y(self, value, bottom, top):
        return self.bottom - (value - bottom) * self.height / (top - bottom)


def _axis_width(em, ticks, label):
    """Room for the tick marks, the widest tick label and the axis label."""
    widest = max(len(text) for _, text in ticks) * CHAR_EMS * em
    return 4 + 0.5 * em + widest + (1.6 * em if label else 0) + 0.5 * em


# -- rendering ----------------------------------------------------------------

def render(rows, axes, start, end, width, height, title=""):
    """The SVG text of a graph of `rows` (see the module docstring) from
    `start` to `end` (microseconds). `axes` is a list of (label, names):
    one y axis each, its label, and its series' legend names in row order,
    so the series of all axes together are the row's lo/hi pairs. An empty
    `title` leaves the title out (a page that heads the graph itself)."""
    legend = _legend_entries(axes)
    em = font_size(width)
    rows_of_legend = _legend_rows(legend, width, em)
    frame = _Frame(width, height, start, end, len(rows_of_legend), bool(title))
    ranges, series = [], 0
    for label, names in axes:
        ranges.append(_axis_range(rows, series, len(names), frame))
        series += len(names)
    widths = [_axis_width(em, ticks, label) for (label, _), (_, _, ticks) in zip(axes, ranges)]
    frame.place(widths)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'viewBox="0 0 %d %d" font-family="sans-serif" font-size="%s" '
           'data-plot="%.1f %.1f %.1f %.1f" data-start="%d" data-end="%d">'
           % (width, height, width, height, _length(em),
              frame.left, frame.top, frame.width, frame.height, start, end),
           '<rect width="100%" height="100%" fill="#fff"/>']
    if title:
        out.append("<title>%s</title>" % _text(title))
        out.append('<text x="%.1f" y="%.1f" font-size="%s" font-weight="bold">%s</text>'
                   % (frame.left, MARGIN_EMS * em + 0.3 * em, _length(1.25 * em),
                      _text(title)))
    out.extend(_time_axis(frame))
    threshold = _gap_threshold(rows)
    series = 0
    for index, ((label, names), (bottom, top, ticks)) in enumerate(zip(axes, ranges)):
        out.extend(_value_axis(frame, index, widths, label, ticks, bottom, top))
        for offset in range(len(names)):
            out.extend(_series(rows, series + offset, frame, bottom, top, threshold))
        series += len(names)
    if not rows:
        out.append('<text x="%.1f" y="%.1f" text-anchor="middle" fill="#666">'
                   'no data in this range</text>'
                   % (frame.left + frame.width / 2, frame.top + frame.height / 2))
    out.extend(_legend(rows_of_legend, frame))
    out.append("</svg>")
    return "\n".join(out)


def readings(rows, names, start):
    """The plotted values for a script to read (static/graph.js), ready for
    JSON: ``{"start": µs, "t": [[first, last], ...], "series": [{"name",
    "v": [value or [lo, hi] or None, ...]}]}``, times in milliseconds after
    `start`, one entry per row of `rows` (so as many as the graph drew)."""
    return {"start": start,
            "t": [[(row[0] - start) // 1000, (row[1] - start) // 1000] for row in rows],
            "series": [{"name": name,
                        "v": [row[2 + 2 * i] if row[2 + 2 * i] == row[3 + 2 * i]
                              else [row[2 + 2 * i], row[3 + 2 * i]] for row in rows]}
                       for i, name in enumerate(names)]}


def _length(value):
    return ("%.1f" % value).rstrip("0").rstrip(".")


def _text(value):
    return html.escape(_NOT_XML.sub("\ufffd", value), quote=True)


def _gap_threshold(rows):
    spacings = [b[0] - a[1] for a, b in zip(rows, rows[1:])]
    return GAP_FACTOR * statistics.median(spacings) if spacings else None


def _axis_range(rows, first, count, frame):
    columns = range(2 + 2 * first, 2 + 2 * (first + count))
    values = [row[c] for row in rows for c in columns if row[c] is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    return number_ticks(lo, hi, max(2, int(frame.height // (Y_TICK_EMS * frame.em))))


def _series(rows, series, frame, bottom, top, threshold):
    """One polyline per run of the series without a gap; dots for lone points."""
    color = PALETTE[series % len(PALETTE)]
    out = ['<g class="series" stroke="%s" fill="%s">' % (color, color)]
    for run in _runs(rows, 2 + 2 * series, threshold):
        points = [(frame.x(ts), frame.y(value, bottom, top)) for ts, value in run]
        if len(points) == 1:
            out.append('<circle cx="%.1f" cy="%.1f" r="%s" stroke="none"/>'
                       % (points[0] + (_length(frame.em / 6),)))
        else:
            out.append('<polyline fill="none" stroke-width="%s" stroke-linejoin="round" '
                       'points="%s"/>' % (_length(max(1.2, frame.em / 9)),
                                          " ".join("%.1f,%.1f" % p for p in points)))
    out.append("</g>")
    return out


def _runs(rows, lo_column, threshold):
    """The series in column `lo_column` (and its hi beside it) as lists of
    (ts, value) without a gap: a bucket's low and high in the order that
    continues from the point before."""
    runs, run, previous, last_value = [], [], None, None
    for row in rows:
        lo, hi = row[lo_column], row[lo_column + 1]
        if lo is None or (previous is not None and row[0] - previous > threshold):
            if run:
                runs.append(run)
            run = []
        if lo is None:
            previous = None
            continue
        first, second = (lo, hi) if last_value is None or \
            abs(last_value - lo) <= abs(last_value - hi) else (hi, lo)
        run.append((row[0], first))
        if row[1] != row[0] or hi != lo:
            run.append((row[1], second))
        last_value, previous = second, row[1]
    if run:
        runs.append(run)
    return runs


def _time_axis(frame):
    em = frame.em
    out = ['<g stroke="#000"><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/></g>'
           % (frame.left, frame.bottom, frame.left + frame.width, frame.bottom)]
    count = max(2, int(frame.width // (X_TICK_EMS * em)))
    for ts, line1, line2 in time_ticks(frame.start, frame.start + frame.span, count):
        x = frame.x(ts)
        out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>'
                   % (x, frame.top, x, frame.bottom))
        out.append('<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>'
                   % (x, frame.bottom + 1.2 * em, line1))
        if line2:
            out.append('<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555">%s</text>'
                       % (x, frame.bottom + 2.4 * em, line2))
    return out


def _value_axis(frame, index, widths, label, ticks, bottom, top):
    x, side = frame.axis_x(index, widths)
    em = frame.em
    anchor = "end" if side < 0 else "start"
    out = ['<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000"/>'
           % (x, frame.top, x, frame.bottom)]
    for value, text in ticks:
        y = frame.y(value, bottom, top)
        if index == 0:
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>'
                       % (frame.left, y, frame.left + frame.width, y))
        out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000"/>'
                   % (x, y, x + 4 * side, y))
        out.append('<text x="%.1f" y="%.1f" text-anchor="%s">%s</text>'
                   % (x + (4 + 0.4 * em) * side, y + 0.35 * em, anchor, text))
    if label:
        # Upright along the axis's outer edge, reading upwards on the left.
        lx = x + (widths[index] - 0.9 * em) * side
        ly = frame.top + frame.height / 2
        out.append('<text class="axis-label" x="%.1f" y="%.1f" text-anchor="middle" '
                   'dominant-baseline="middle" transform="rotate(%d %.1f %.1f)">%s</text>'
                   % (lx, ly, 90 * side, lx, ly, _text(label)))
    return out


def _legend_entries(axes):
    sides = ("left", "right")
    entries = []
    for index, (_, names) in enumerate(axes):
        where = sides[index % 2] + (" %d" % (index // 2 + 1) if index >= 2 else "")
        for name in names:
            entries.append(name if len(axes) == 1 else "%s (%s)" % (name, where))
    return entries


def _legend_width(text, em):
    return 2.2 * em + CHAR_EMS * em * len(text)


def _legend_rows(entries, width, em):
    """Entries as rows that fit the graph's width: [[(series, text), ...]]."""
    rows, row, used = [], [], 0
    for series, text in enumerate(entries):
        needed = _legend_width(text, em)
        if row and used + needed > width - 2 * MARGIN_EMS * em:
            rows.append(row)
            row, used = [], 0
        row.append((series, text))
        used += needed
    if row:
        rows.append(row)
    return rows


def _legend(rows, frame):
    em = frame.em
    out = []
    y = frame.bottom + X_LABELS_EMS * em + 0.9 * em
    for row in rows:
        x = MARGIN_EMS * em
        for series, text in row:
            color = PALETTE[series % len(PALETTE)]
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" '
                       'stroke-width="2"/>' % (x, y - 0.35 * em, x + 1.5 * em, y - 0.35 * em,
                                               color))
            out.append('<text x="%.1f" y="%.1f">%s</text>' % (x + 1.8 * em, y, _text(text)))
            x += _legend_width(text, em)
        y += LEGEND_EMS * em
    return out

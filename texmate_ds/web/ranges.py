"""The query parameters of the unit page and the data endpoints (web.md,
"Data endpoints"), each read from ``request.query`` (a dict of str) into a
value or refused with `app.HTTPError` 400 and a one-line reason.

* ``from``/``to``: ``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM[:SS[.f]]`` (or ``T``
  between date and time), or ``-N`` with ``min``, ``h``, ``d``, ``w`` or
  ``y`` (365 days) before now. A date alone is the start of that day in
  ``from`` and its last microsecond in ``to``, so ``to=2024-03-01``
  includes the 1st (as ``manage export --to`` does). ``to`` defaults to
  now (rounded up to a whole second), ``from`` to 24 hours before ``to``;
  ``from`` after ``to`` is refused.
* ``fields``: a comma list of 1-based field numbers, each once.
* Integers (``width``, ``height``, ``limit``) within stated bounds.

A parameter sent empty counts as not sent: a browser sends ``to=`` for a
form field left blank. Times are the meters' naive clock in microseconds,
as ttp.py parses and formats them. `parse_time` raises `BadTime` rather
than an HTTP error, so ``manage export --from/--to`` reads the same forms.
"""

import re

from texmate_ds import store, ttp
from texmate_ds.web import app

HOUR = 3600 * 1000000
_UNITS = {"min": 60 * 1000000, "h": HOUR, "d": 24 * HOUR, "w": 7 * 24 * HOUR,
          "y": 365 * 24 * HOUR}
_RELATIVE = re.compile(r"-([0-9]{1,7})(min|h|d|w|y)\Z")
_DATE = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}\Z")
_DATE_TIME = re.compile(r"([0-9]{4}-[0-9]{1,2}-[0-9]{1,2})[ T]"
                        r"([0-9]{1,2}:[0-9]{1,2})(:[0-9]{1,2}(?:\.[0-9]{1,6})?)?\Z")
_NUMBER = re.compile(r"[0-9]{1,9}\Z")
_FORMS = "YYYY-MM-DD[ HH:MM[:SS[.f]]] or -15min, -6h, -7d, -4w, -1y"
FIRST_DAY = ttp.parse_timestamp("0001-01-01 00:00:00")


class BadTime(ValueError):
    """A ``from``/``to`` value that is no time; the message says why."""


def _shown(text):
    """A value for a reason line: quoted, and cut short if long."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _given(query, name):
    return query.get(name) or None


def time_range(query, now=None):
    """(start, end) in microseconds, both included."""
    if now is None:
        # Rounded up to a whole second, so shown ranges and links read cleanly.
        now = -(-store.now_us() // 1000000) * 1000000
    try:
        end = parse_time("to", _given(query, "to"), now, day_end=True)
        text = _given(query, "from")
        start = end - 24 * HOUR if text is None else parse_time("from", text, now)
    except BadTime as exc:
        raise app.HTTPError(400, str(exc)) from None
    if start > end:
        raise app.HTTPError(400, "from (%s) is after to (%s)" % (
            ttp.format_timestamp(start), ttp.format_timestamp(end)))
    return max(start, FIRST_DAY), end


def parse_time(name, text, now, day_end=False):
    """One ``from``/``to`` value (None: now), named `name` in a `BadTime`."""
    if text is None:
        return now
    relative = _RELATIVE.match(text)
    if relative:
        moment = now - int(relative.group(1)) * _UNITS[relative.group(2)]
        if moment < FIRST_DAY:
            raise BadTime("%s: %s reaches before the year 1" % (name, _shown(text)))
        return moment
    if _DATE.match(text):
        return _timestamp(name, text, text + " 00:00:00") + (
            24 * HOUR - 1 if day_end else 0)
    parts = _DATE_TIME.match(text)
    if parts:
        date, hours_minutes, seconds = parts.groups()
        return _timestamp(name, text, "%s %s%s" % (date, hours_minutes, seconds or ":00"))
    raise BadTime("%s: %s is not a time; use %s" % (name, _shown(text), _FORMS))


def _timestamp(name, text, normalized):
    try:
        return ttp.parse_timestamp(normalized)
    except ttp.TTPError:
        raise BadTime("%s: %s is not a real date and time" % (name, _shown(text))) from None


def field_numbers(query, unit):
    """The 1-based field numbers asked for, in the order given; all by default."""
    text = _given(query, "fields")
    if text is None:
        return list(range(1, unit.fields + 1))
    numbers = []
    for part in text.split(","):
        part = part.strip()
        if not _NUMBER.match(part) or not 1 <= int(part) <= unit.fields:
            raise app.HTTPError(400, "fields: %s is not a field number from 1 to %d" % (
                _shown(part), unit.fields))
        if int(part) in numbers:
            raise app.HTTPError(400, "fields: %s is given twice" % part)
        numbers.append(int(part))
    return numbers


def bounded_int(query, name, default, allowed):
    """Integer parameter `name` within range `allowed`, or `default`."""
    text = _given(query, name)
    if text is None:
        return default
    if not _NUMBER.match(text) or int(text) not in allowed:
        raise app.HTTPError(400, "%s: %s is not a whole number from %d to %d" % (
            name, _shown(text), allowed.start, allowed.stop - 1))
    return int(text)

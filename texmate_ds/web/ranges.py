"""The query parameters of the unit page and the data endpoints (docs/web.md,
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
* Flags (``live``): ``1`` or not given.

A parameter sent empty counts as not sent: a browser sends ``to=`` for a
form field left blank. Times are read by `times.moment`, which ``manage
export --from/--to`` uses too, so both take the same forms.
"""

import re

from texmate_ds import times
from texmate_ds.web import app

_NUMBER = re.compile(r"[0-9]{1,9}\Z")


def _given(query, name):
    return query.get(name) or None


def time_range(query, now=None):
    """(start, end) in microseconds, both included."""
    if now is None:
        # Rounded up to a whole second, so shown ranges and links read cleanly.
        now = -(-times.now() // times.SECOND) * times.SECOND
    try:
        end = times.moment("to", _given(query, "to"), now, day_end=True)
        text = _given(query, "from")
        start = end - times.DAY if text is None else times.moment("from", text, now)
    except times.BadTime as exc:
        raise app.HTTPError(400, str(exc)) from None
    if start > end:
        raise app.HTTPError(400, "from (%s) is after to (%s)" % (
            times.text(start), times.text(end)))
    return max(start, times.FIRST_DAY), end


def moment(query, name, day_end=False):
    """The time in parameter `name` (None when not given), as ``from`` and
    ``to`` read it; `day_end`: a date alone is its last microsecond."""
    text = _given(query, name)
    if text is None:
        return None
    try:
        return times.moment(name, text, times.now(), day_end=day_end)
    except times.BadTime as exc:
        raise app.HTTPError(400, str(exc)) from None


def field_numbers(query, unit):
    """The 1-based field numbers asked for, in the order given; by default
    the unit's report fields (all, unless the admin chose some)."""
    text = _given(query, "fields")
    if text is None:
        return unit.reported
    numbers = []
    for part in text.split(","):
        part = part.strip()
        if not _NUMBER.match(part) or not 1 <= int(part) <= unit.fields:
            raise app.HTTPError(400, "fields: %s is not a field number from 1 to %d" % (
                times.quoted(part), unit.fields))
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
            name, times.quoted(text), allowed.start, allowed.stop - 1))
    return int(text)


def flag(query, name):
    """Whether flag `name` is on: ``1``; not given (or empty) is off."""
    text = _given(query, name)
    if text is None:
        return False
    if text != "1":
        raise app.HTTPError(400, "%s: %s is not 1 (on); leave it out for off" % (
            name, times.quoted(text)))
    return True

"""Time in texmate_ds, in one place: every timestamp is parsed and
formatted here.

* A timestamp is an int: microseconds since 1970-01-01 00:00:00 on the
  meter's own clock, naive (no time zone), as meters send it and the store
  keeps it. `now()` is the server's clock on the same scale.
* `parse` reads the protocol's form ``Y-M-D H:M:S[.F]`` (docs/protocol.md: a year of
  one to four digits, two-digit years fill out to 2000, up to six fraction
  digits); `text` writes the exact form back, ``YYYY-MM-DD HH:MM:SS`` plus
  ``.ffffff`` only when the microseconds are not 0. TTP answers, CSV and
  JSON use `text`, so what a meter sent comes back as it was.
* `shown` is for people: to the second, and the fraction only where it is
  asked for (a range shorter than a second); pages never show ``.794411``
  by default.
* `moment` reads what a person types for a range, on the web (``from``,
  ``to``) and in ``manage export``: ``YYYY-MM-DD``, ``YYYY-MM-DD
  HH:MM[:SS[.f]]`` (or ``T`` between), and ``-N`` with ``min``, ``h``,
  ``d``, ``w`` or ``y`` (365 days) before now.

Everything a client can send is checked by bounded, linear patterns, and a
bad value raises `BadTime` with a reason; the protocol turns it into its
``400`` and the web into an HTTP 400.
"""

import datetime
import functools
import logging
import os
import re
import time

SECOND = 1000000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

# The protocol's timestamp, its seven parts as groups: ttp.py builds its
# sample pattern from it. Every repeat is bounded, so it is linear.
PATTERN = r"(\d{1,4})-(\d{1,2})-(\d{1,2}) (\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6}))?"
_TIMESTAMP = re.compile(PATTERN + r"\Z", re.ASCII)
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()

_UNITS = {"min": MINUTE, "h": HOUR, "d": DAY, "w": 7 * DAY, "y": 365 * DAY}
_RELATIVE = re.compile(r"-([0-9]{1,7})(min|h|d|w|y)\Z")
_DATE = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}\Z")
_DATE_TIME = re.compile(r"([0-9]{4}-[0-9]{1,2}-[0-9]{1,2})[ T]"
                        r"([0-9]{1,2}:[0-9]{1,2})(:[0-9]{1,2}(?:\.[0-9]{1,6})?)?\Z")
FORMS = "YYYY-MM-DD[ HH:MM[:SS[.f]]] or -15min, -6h, -7d, -4w, -1y"


class BadTime(ValueError):
    """Text that is no time; the message, when there is one, says why."""


def now():
    """The server's clock, in microseconds since 1970-01-01."""
    return int(time.time() * SECOND)


def from_parts(year, month, day, hour, minute, second, fraction):
    """The matched parts of a timestamp (strings; `fraction` may be None)
    as microseconds. Short years fill out to 2000. BadTime if no such
    moment exists."""
    y = int(year)
    if len(year) < 4:
        y += 2000
    h, mi, s = int(hour), int(minute), int(second)
    if h > 23 or mi > 59 or s > 59:
        raise BadTime()
    try:
        ordinal = datetime.date(y, int(month), int(day)).toordinal()
    except ValueError:
        raise BadTime() from None
    micro = int(fraction.ljust(6, "0")) if fraction else 0
    return ((ordinal - _EPOCH_ORDINAL) * 86400 + h * 3600 + mi * 60 + s) * SECOND + micro


def parse(text):
    """``Y-M-D H:M:S[.F]`` as microseconds; BadTime if it is not one."""
    match = _TIMESTAMP.match(text)
    if not match:
        raise BadTime()
    return from_parts(*match.groups())


FIRST_DAY = parse("0001-01-01 00:00:00")


@functools.lru_cache(maxsize=1024)
def _day_text(days):
    """``YYYY-MM-DD `` of a day counted from 1970-01-01 (samples come in
    runs of the same day, so this is nearly always a cache hit)."""
    date = datetime.date.fromordinal(days + _EPOCH_ORDINAL)
    return "%04d-%02d-%02d " % (date.year, date.month, date.day)


def text(us):
    """``YYYY-MM-DD HH:MM:SS``, plus ``.ffffff`` when microseconds are not 0."""
    days, rest = divmod(us, DAY)
    seconds, micro = divmod(rest, SECOND)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if micro:
        return "%s%02d:%02d:%02d.%06d" % (_day_text(days), h, m, s, micro)
    return "%s%02d:%02d:%02d" % (_day_text(days), h, m, s)


def shown(us, precise=False):
    """A timestamp for people: to the second (cut, never rounded up into
    the next second), or with its microseconds when `precise`."""
    return text(us if precise else us - us % SECOND)


def compact(us):
    """``YYYYMMDD-HHMMSS``, for file names."""
    return text(us - us % SECOND).replace("-", "").replace(":", "").replace(" ", "-")


def moment(name, value, now_us, day_end=False):
    """One typed time (None: `now_us`), named `name` in a `BadTime`. A date
    alone is the start of that day, or with `day_end` its last
    microsecond, so a range ending on the 1st includes the 1st."""
    if value is None:
        return now_us
    relative = _RELATIVE.match(value)
    if relative:
        found = now_us - int(relative.group(1)) * _UNITS[relative.group(2)]
        if found < FIRST_DAY:
            raise BadTime("%s: %s reaches before the year 1" % (name, quoted(value)))
        return found
    if _DATE.match(value):
        return _typed(name, value, value + " 00:00:00") + (DAY - 1 if day_end else 0)
    parts = _DATE_TIME.match(value)
    if parts:
        date, hours_minutes, seconds = parts.groups()
        return _typed(name, value, "%s %s%s" % (date, hours_minutes, seconds or ":00"))
    raise BadTime("%s: %s is not a time; use %s" % (name, quoted(value), FORMS))


def _typed(name, value, normalized):
    try:
        return parse(normalized)
    except BadTime:
        raise BadTime("%s: %s is not a real date and time" % (name, quoted(value))) from None


def quoted(value):
    """A value for a reason line: quoted, and cut short if long."""
    return repr(value if len(value) <= 40 else value[:40] + "...")


def time_scale(variable, environ=None):
    """The factor in the environment variable `variable` by which tests
    shorten a wait that people never need shortened (mail's retries,
    /events' keep-alive): above 0 and at most 1; 1 when unset, and a bad
    value is logged and ignored."""
    text = (os.environ if environ is None else environ).get(variable, "")
    if not text:
        return 1.0
    try:
        scale = float(text)
    except ValueError:
        scale = 0.0
    if not 0 < scale <= 1:
        logging.getLogger("texmate_ds").warning(
            "%s=%r: expected a number above 0 and at most 1; ignored", variable, text)
        return 1.0
    return scale

"""A unit's status at a glance: how long ago the server last heard from
it, and whether that is on time (docs/web.md, "Status at a glance").

* The *age* is the server's clock now minus the unit's ``last_received``
  (when its newest upload came, by the server's clock, as the
  silent-meter alarm counts it): what an operator asks is "when did we
  last hear from it", and the meter's own clock may be off or in another
  time zone. Imported samples are not uploads and do not count.
* Its *interval* is the ``expected_interval`` (seconds) set in the admin,
  else its *usual interval*: the median spacing of the meter's
  timestamps of its newest `NEWEST` samples (`usual_interval`), which
  the store keeps in the units table (``usual_interval``, refreshed as
  samples come: store/samples.py), else `UNKNOWN_INTERVAL` for a unit
  with fewer than two samples.
* `STATES`: ``silent`` when the age is over its silent threshold (its
  ``silent_minutes`` when set, as the silent-meter alarm; else 10 x the
  interval, a minute at least), else ``late`` over 2 x the interval (2 s
  at least, so that a fast meter does not flicker between commits),
  else ``live``; ``never`` for a unit the server never heard from.

The same thresholds are written in SQL for the home page's "problems
first" order (store/units.py, `_status_rank`), built from the constants
here, and a test holds the two to the same answers; the page's script
(static/status.js) only compares an age with the thresholds the page
gives it.
"""

import collections

from texmate_ds.times import DAY, HOUR, MINUTE, SECOND

# Samples whose timestamps give the usual interval: 20 spacings.
NEWEST = 21
UNKNOWN_INTERVAL = MINUTE
LATE_FACTOR, LATE_FLOOR = 2, 2 * SECOND
SILENT_FACTOR, SILENT_FLOOR = 10, MINUTE

# Worst first: the home page's "problems first" order.
STATES = ("silent", "late", "live", "never")
# What the badge says besides its colour.
WORDS = {"silent": "silent", "late": "late", "live": "live", "never": "no samples"}


def usual_interval(timestamps):
    """The median spacing (µs) of `timestamps` (distinct, in any order),
    None with fewer than two. The lower median of an even count, so that
    it is one of the spacings: a meter's gaps of an hour do not halve
    into a half-hour nobody saw."""
    ordered = sorted(timestamps)
    gaps = sorted(b - a for a, b in zip(ordered, ordered[1:]))
    return gaps[(len(gaps) - 1) // 2] if gaps else None


def interval(expected_seconds, usual):
    """The interval (µs) the thresholds are made of."""
    if expected_seconds is not None:
        return expected_seconds * SECOND
    return UNKNOWN_INTERVAL if usual is None else usual


Thresholds = collections.namedtuple("Thresholds", "interval late_after silent_after")


def thresholds(expected_seconds, usual, silent_minutes):
    """The unit's Thresholds (µs): late past `late_after`, silent past
    `silent_after`."""
    every = interval(expected_seconds, usual)
    silent = (silent_minutes * MINUTE if silent_minutes is not None
              else max(SILENT_FACTOR * every, SILENT_FLOOR))
    return Thresholds(every, max(LATE_FACTOR * every, LATE_FLOOR), silent)


def state(age, limits):
    """One of `STATES` for an age (µs; None: never heard from)."""
    if age is None:
        return "never"
    if age > limits.silent_after:
        return "silent"
    return "late" if age > limits.late_after else "live"


def age_text(age):
    """``12 s ago``, ``5 min ago``, ``3 h ago``, ``2 days ago`` (whole
    units, cut; a negative age, from a clock set back, is ``0 s ago``)."""
    age = max(age, 0)
    if age < MINUTE:
        return "%d s ago" % (age // SECOND)
    if age < HOUR:
        return "%d min ago" % (age // MINUTE)
    if age < DAY:
        return "%d h ago" % (age // HOUR)
    days = age // DAY
    return "1 day ago" if days == 1 else "%d days ago" % days


def duration_text(us):
    """A threshold for people: ``45 s``, ``2 min``, ``1.5 h``."""
    if us < MINUTE:
        return "%g s" % round(us / SECOND, 1)
    if us < HOUR:
        return "%g min" % round(us / MINUTE, 1)
    if us < DAY:
        return "%g h" % round(us / HOUR, 1)
    return "%g days" % round(us / DAY, 1)


class Status(collections.namedtuple("Status", "state words heard age limits")):
    """What a page shows of a unit: its state and words, when it was last
    heard from (µs, server clock; None: never), its age then (µs) and its
    Thresholds."""

    __slots__ = ()

    @property
    def age_text(self):
        return "—" if self.age is None else age_text(self.age)

    @property
    def explained(self):
        """The badge's tooltip: the thresholds in words."""
        return "late after %s, silent after %s without an upload" % (
            duration_text(self.limits.late_after), duration_text(self.limits.silent_after))


def status(unit, heard, usual, samples, now):
    """The Status of `unit` (its ``expected_interval`` and ``silent_minutes``)
    last heard from at `heard` (None: never), with usual interval `usual`
    and `samples` stored, at `now` (µs)."""
    limits = thresholds(unit.expected_interval, usual, unit.silent_minutes)
    age = None if heard is None else now - heard
    found = state(age, limits)
    words = WORDS[found]
    if found == "never" and samples:
        words = "never uploaded"  # its samples were imported
    return Status(found, words, heard, age, limits)

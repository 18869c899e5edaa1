"""Range, field and number parameters of the data endpoints: every form
docs/web.md lists, and a one-line 400 for each way to get one wrong."""

import pytest

from texmate_ds import times
from texmate_ds.web import app, ranges

NOW = times.parse("2024-03-10 12:00:00")
HOUR = 3600 * 1000000
DAY = 24 * HOUR


def ts(text):
    return times.parse(text)


def time_range(**query):
    return ranges.time_range(query, now=NOW)


def refused(call, *args, **kwargs):
    with pytest.raises(app.HTTPError) as caught:
        call(*args, **kwargs)
    assert caught.value.status == 400
    assert "\n" not in caught.value.reason
    return caught.value.reason


def test_defaults_are_the_last_24_hours():
    assert time_range() == (NOW - DAY, NOW)
    assert time_range(**{"from": "", "to": ""}) == (NOW - DAY, NOW)   # a blank form
    assert time_range(to="2024-01-02 00:00") == (ts("2024-01-01 0:0:0"), ts("2024-01-02 0:0:0"))


@pytest.mark.parametrize("text,expected", [
    ("2024-03-01", "2024-03-01 00:00:00"),
    ("2024-3-1", "2024-03-01 00:00:00"),
    ("2024-03-01 08:15", "2024-03-01 08:15:00"),
    ("2024-03-01T08:15", "2024-03-01 08:15:00"),
    ("2024-03-01 08:15:30", "2024-03-01 08:15:30"),
    ("2024-03-01T08:15:30.25", "2024-03-01 08:15:30.250000"),
    ("2024-03-01 08:15:30.123456", "2024-03-01 08:15:30.123456"),
])
def test_absolute_forms(text, expected):
    start, _ = time_range(**{"from": text})
    assert times.text(start) == expected


def test_a_date_alone_as_to_includes_that_day():
    assert time_range(**{"from": "2024-03-01", "to": "2024-03-01"}) == (
        ts("2024-03-01 0:0:0"), ts("2024-03-02 0:0:0") - 1)


@pytest.mark.parametrize("text,back", [
    ("-15min", 15 * 60 * 1000000), ("-6h", 6 * HOUR), ("-7d", 7 * DAY),
    ("-4w", 28 * DAY), ("-1y", 365 * DAY), ("-0h", 0),
])
def test_relative_forms_count_back_from_now(text, back):
    assert time_range(**{"from": text}) == (NOW - back, NOW)
    assert time_range(**{"from": "2000-01-01", "to": text}) == (ts("2000-01-01 0:0:0"), NOW - back)


def test_now_defaults_to_the_clock():
    start, end = ranges.time_range({})
    assert 0 <= end - times.now() <= 1000000 and end - start == DAY
    assert end % 1000000 == 0


@pytest.mark.parametrize("query,words", [
    ({"from": "yesterday"}, "from: 'yesterday' is not a time"),
    ({"to": "2024-02-30"}, "to: '2024-02-30' is not a real date"),
    ({"from": "2024-03-01 24:00"}, "not a real date"),
    ({"from": "2024-03-01 10:60"}, "not a real date"),
    ({"from": "24-03-01"}, "not a time"),
    ({"from": "2024-03-01 10"}, "not a time"),
    ({"from": "2024-03-01  10:00"}, "not a time"),
    ({"from": "2024-03-01 10:00:00.1234567"}, "not a time"),
    ({"from": "0000-01-01"}, "not a real date"),
    ({"from": "-5m"}, "not a time"),
    ({"from": "+1h"}, "not a time"),
    ({"from": "-1H"}, "not a time"),
    ({"from": "-9999999y"}, "before the year 1"),
    ({"from": "2024-03-02", "to": "2024-03-01 23:59"}, "from (2024-03-02 00:00:00) is after to"),
    ({"from": "-1h", "to": "-2h"}, "is after to"),
])
def test_bad_times_are_refused_with_a_reason(query, words):
    assert words in refused(ranges.time_range, query, now=NOW)


class FourFields:
    fields = 4
    reported = [1, 2, 3, 4]     # the report fields: all, by default


def test_fields():
    assert ranges.field_numbers({}, FourFields) == [1, 2, 3, 4]
    assert ranges.field_numbers({"fields": ""}, FourFields) == [1, 2, 3, 4]
    assert ranges.field_numbers({"fields": "3"}, FourFields) == [3]
    assert ranges.field_numbers({"fields": "4,1, 2"}, FourFields) == [4, 1, 2]


@pytest.mark.parametrize("text,words", [
    ("0", "'0' is not a field number from 1 to 4"), ("5", "'5'"), ("1,,2", "''"),
    ("a", "'a'"), ("-1", "'-1'"), ("1.0", "'1.0'"), ("\u0663", "'\u0663'"),
    ("1,2,1", "1 is given twice"), ("9" * 5000, "is not a field number"),
])
def test_bad_fields(text, words):
    assert words in refused(ranges.field_numbers, {"fields": text}, FourFields)


def test_bounded_integers():
    pixels = range(100, 4001)
    assert ranges.bounded_int({}, "width", 800, pixels) == 800
    assert ranges.bounded_int({"width": "4000"}, "width", 800, pixels) == 4000
    for bad in ("99", "4001", "-100", "1e3", " 500", "\u0661\u0660\u0660"):
        assert "width: %r is not a whole number from 100 to 4000" % bad == refused(
            ranges.bounded_int, {"width": bad}, "width", 800, pixels)
    long = refused(ranges.bounded_int, {"width": "9" * 5000}, "width", 800, pixels)
    assert long == "width: '%s...' is not a whole number from 100 to 4000" % ("9" * 40)

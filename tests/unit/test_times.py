"""times.py: the one owner of timestamps. The protocol's form is tested in
test_ttp_parsing.py (as meters send it) and the web's range parameters in
test_web_ranges.py; here what people see and type."""

import pytest

from texmate_ds import times

T = times.parse("2024-03-10 12:00:05.794411")


def test_people_see_seconds_unless_asked_for_more():
    assert times.shown(T) == "2024-03-10 12:00:05"
    assert times.shown(T, precise=True) == "2024-03-10 12:00:05.794411"
    # Cut, never rounded into the next second (or the next day).
    assert times.shown(times.parse("2024-03-10 23:59:59.999999")) == "2024-03-10 23:59:59"
    assert times.text(T) == "2024-03-10 12:00:05.794411"


def test_file_names_take_the_compact_form():
    assert times.compact(T) == "20240310-120005"


@pytest.mark.parametrize("typed, expected", [
    ("2024-03-01", "2024-03-01 00:00:00"),
    ("2024-03-01 08:15", "2024-03-01 08:15:00"),
    ("2024-03-01T08:15:30.5", "2024-03-01 08:15:30.500000"),
    ("-15min", "2024-03-10 11:45:05.794411"),
    ("-1y", "2023-03-11 12:00:05.794411"),
])
def test_what_people_type(typed, expected):
    assert times.text(times.moment("from", typed, T)) == expected


def test_a_date_alone_ends_with_its_day():
    assert times.text(times.moment("to", "2024-03-01", T, day_end=True)) \
        == "2024-03-01 23:59:59.999999"


@pytest.mark.parametrize("typed, reason", [
    ("yesterday", "from: 'yesterday' is not a time; use YYYY-MM-DD"),
    ("2024-02-30", "from: '2024-02-30' is not a real date and time"),
    ("-9999999y", "from: '-9999999y' reaches before the year 1"),
    ("1" * 100, "from: '" + "1" * 40 + "...' is not a time"),
])
def test_what_is_no_time_is_refused_with_a_reason(typed, reason):
    with pytest.raises(times.BadTime) as refused:
        times.moment("from", typed, T)
    assert str(refused.value).startswith(reason)

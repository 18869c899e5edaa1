"""Status at a glance: the pure rules (texmate_ds/status.py), the usual
interval the store keeps as samples come, the "problems first" order in
SQL agreeing with the rules, and a display's trend line points."""

import pytest

from texmate_ds import status, store, times
from texmate_ds.times import DAY, HOUR, MINUTE, SECOND
from texmate_ds.web import pages


@pytest.fixture
def st(tmp_path):
    s = store.Database(str(tmp_path / "t.db"))
    s.migrate()
    yield s
    s.close()


# -- the rules ------------------------------------------------------------------

@pytest.mark.parametrize("timestamps, usual", [
    ([], None), ([5], None), ([0, 10], 10),
    ([30, 0, 10, 20], 10),                           # any order
    ([0, 10, 20, 30, 3630], 10),                     # one long gap does not count
    ([0, 10, 30], 10),                               # even count: the lower of the two
    ([0, 1, 2, 1000, 2000, 3000], 998),
])
def test_the_usual_interval_is_the_median_spacing(timestamps, usual):
    assert status.usual_interval(timestamps) == usual


def test_thresholds_come_from_the_expected_interval_else_the_usual_one():
    assert status.thresholds(30, 10 * SECOND, None) == (30 * SECOND, 60 * SECOND, 300 * SECOND)
    assert status.thresholds(None, 10 * SECOND, None) == (10 * SECOND, 20 * SECOND, 100 * SECOND)
    # Unknown: a minute. A silent-meter alarm's wait is the silent threshold.
    assert status.thresholds(None, None, None) == (MINUTE, 2 * MINUTE, 10 * MINUTE)
    assert status.thresholds(None, HOUR, 15) == (HOUR, 2 * HOUR, 15 * MINUTE)
    # Floors: 2 s to be late, a minute to be silent.
    assert status.thresholds(None, 100000, None) == (100000, 2 * SECOND, MINUTE)


def test_states_by_age():
    limits = status.thresholds(10, None, None)       # late after 20 s, silent after 100 s
    assert status.state(None, limits) == "never"
    assert status.state(0, limits) == status.state(20 * SECOND, limits) == "live"
    assert status.state(20 * SECOND + 1, limits) == "late"
    assert status.state(100 * SECOND, limits) == "late"
    assert status.state(100 * SECOND + 1, limits) == "silent"
    # A wait shorter than twice the interval: silent before late.
    assert status.state(2 * MINUTE, status.thresholds(3600, None, 1)) == "silent"


@pytest.mark.parametrize("age, text", [
    (-5 * SECOND, "0 s ago"), (0, "0 s ago"), (12 * SECOND + 999999, "12 s ago"),
    (MINUTE - 1, "59 s ago"), (MINUTE, "1 min ago"), (5 * MINUTE + 59 * SECOND, "5 min ago"),
    (HOUR, "1 h ago"), (3 * HOUR + 59 * MINUTE, "3 h ago"), (DAY, "1 day ago"),
    (2 * DAY + 23 * HOUR, "2 days ago"), (400 * DAY, "400 days ago"),
])
def test_ages_read_as_people_say_them(age, text):
    assert status.age_text(age) == text


def test_a_status_in_words():
    unit = store.Unit(1, "A1", "k", "", "", 1, (), True, None, expected_interval=10)
    now = 1000 * DAY
    late = status.status(unit, now - 30 * SECOND, None, 5, now)
    assert (late.state, late.words, late.age_text) == ("late", "late", "30 s ago")
    assert late.explained == "late after 20 s, silent after 1.7 min without an upload"
    never = status.status(unit, None, None, 0, now)
    assert (never.state, never.words, never.age_text) == ("never", "no samples", "—")
    # Samples that were imported, none uploaded.
    assert status.status(unit, None, None, 3, now).words == "never uploaded"


# -- the usual interval, kept by the store ---------------------------------------

def usual(st, unit):
    return st.units.heard([unit])[unit.id][1]


def test_the_store_measures_the_usual_interval_at_the_commit(st):
    unit = st.units.add("A1", "k", 1)
    st.samples.add(unit, [(0, [1])])
    st.commit()
    assert usual(st, unit) is None                   # one sample: nothing to measure
    st.samples.add(unit, [(10 * SECOND, [1])])
    assert usual(st, unit) is None                   # not before the commit
    st.commit()
    assert usual(st, unit) == 10 * SECOND
    # Then again every MEASURE_EVERY samples, from the newest NEWEST.
    ts = 10 * SECOND
    for _ in range(store.samples.MEASURE_EVERY - 1):
        ts += 30 * SECOND
        st.samples.add(unit, [(ts, [1])])
        st.commit()
    assert usual(st, unit) == 10 * SECOND
    st.samples.add(unit, [(ts + 30 * SECOND, [1])])
    st.commit()
    assert usual(st, unit) == 30 * SECOND


def test_a_new_connection_measures_a_unit_at_its_first_commit(st, tmp_path):
    unit = st.units.add("A1", "k", 1)
    st.samples.add(unit, [(i * MINUTE, [1]) for i in range(5)])
    st.commit()
    st.write("UPDATE units SET usual_interval = NULL")
    st.commit()
    other = store.Database(str(tmp_path / "t.db"))
    other.samples.add(unit, [(5 * MINUTE, [1])])
    other.commit()
    assert usual(other, unit) == MINUTE
    other.close()


def test_deletes_and_imports_measure_at_once(st):
    unit = st.units.add("A1", "k", 1)
    st.samples.add(unit, [(0, [1]), (SECOND, [1]), (2 * SECOND, [1]), (HOUR, [1])])
    st.commit()
    assert usual(st, unit) == SECOND
    st.samples.delete_oldest(unit, 2)
    assert usual(st, unit) == HOUR - 2 * SECOND
    insert = st.samples.stage(1)
    st.executemany(insert, [(2 * HOUR, 1, 5.0), (3 * HOUR, 2, 5.0)])
    st.samples.add_staged(unit)
    st.samples.drop_staged()
    assert usual(st, unit) == HOUR


# -- "problems first" in SQL ----------------------------------------------------

def test_problems_first_agrees_with_the_badges(st):
    """Units in every state, by expected interval, usual interval, the
    silent-meter wait and the floors: the SQL order is the badges' order."""
    now = times.now()
    cases = [  # code, expected s, usual µs, silent minutes, heard ago (None: never)
        ("N1", None, None, None, None), ("L1", None, 10 * SECOND, None, 5 * SECOND),
        ("T1", None, 10 * SECOND, None, 30 * SECOND), ("S1", None, 10 * SECOND, None, 2 * MINUTE),
        ("L2", 3600, 10 * SECOND, None, 30 * MINUTE), ("T2", 60, HOUR, None, 3 * MINUTE),
        ("S2", 3600, None, 5, 6 * MINUTE), ("L3", None, None, None, 90 * SECOND),
        ("T3", None, None, None, 3 * MINUTE), ("S3", None, None, None, 11 * MINUTE),
        ("L4", None, 1000, None, SECOND), ("T4", None, 1000, None, 3 * SECOND),
        ("S4", None, 1000, None, 61 * SECOND), ("N2", 5, None, 1, None),
    ]
    units = {}
    for code, expected, every, minutes, ago in cases:
        unit = st.units.add(code, "k", 1)
        st.write("UPDATE units SET expected_interval = ?, usual_interval = ?,"
                 " silent_minutes = ?, last_received = ? WHERE id = ?",
                 (expected, every, minutes, None if ago is None else now - ago, unit.id))
        units[code] = st.units.get_by_id(unit.id)
    st.commit()
    heard = st.units.heard(units.values())
    badges = {code: status.status(unit, *heard[unit.id], now).state
              for code, unit in units.items()}
    assert badges == {code: {"N": "never", "L": "live", "T": "late", "S": "silent"}[code[0]]
                      for code in units}
    ordered = [unit.code for unit, _, _ in st.units.page(0, 100, order="status", now=now)]
    assert ordered == sorted(units, key=lambda code: (
        status.STATES.index(badges[code]), code))
    # A page of it, with the same search and access rules as any order.
    assert [u.code for u, _, _ in st.units.page(1, 2, "1", order="status", now=now)] == \
        ["T1", "L1"]


# -- a display's trend line -----------------------------------------------------

def test_trend_points_fit_the_box_oldest_left():
    start, end = 0, HOUR
    rows = [(0, 0, 1.0, 1.0), (HOUR // 2, HOUR // 2, None, None), (HOUR, HOUR, 3.0, 3.0)]
    trend = pages.trend_points(rows, 0, start, end)
    assert trend == {"points": "0.0,28.0 120.0,2.0", "low": "1", "high": "3"}
    # A flat line lies mid-height; nothing to draw through one point.
    assert pages.trend_points([(0, 20, 5.0, 7.0, 2.0, 2.0), (30, 30, 1.0, 1.0, 2.0, 2.0)],
                              1, 0, 40)["points"] == "0.0,15.0 60.0,15.0 90.0,15.0"
    assert pages.trend_points([(0, 0, None, None), (9, 9, 1.0, 1.0)], 0, 0, 40) is None


def test_a_buckets_minimum_and_maximum_carry_the_line_on():
    """Rising, each bucket goes low then high; falling, high then low."""
    rising = [(0, 10, 0.0, 1.0), (20, 30, 2.0, 3.0)]
    assert pages.trend_points(rising, 0, 0, 40)["points"] == \
        "0.0,28.0 30.0,19.3 60.0,10.7 90.0,2.0"
    falling = [(0, 10, 2.0, 3.0), (20, 30, 0.0, 1.0)]
    assert pages.trend_points(falling, 0, 0, 40)["points"] == \
        "0.0,2.0 30.0,10.7 60.0,19.3 90.0,28.0"

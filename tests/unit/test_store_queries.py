"""The store's range queries for the web (statistics, graph rows) against
brute force over the same samples, on each engine."""

import math
import random
import statistics

import pytest

T0 = 1704067200 * 1000000
SECOND = 1000000


@pytest.fixture
def st(store_db):
    return store_db


def fill(st, code, samples, fields):
    unit = st.units.add(code, "k", fields)
    st.samples.add(unit, samples)
    st.commit()
    return unit


def test_stats_match_brute_force_and_skip_nulls(st):
    random.seed(3)
    samples = [(T0 + i * SECOND, (random.gauss(5, 2), None if i % 3 else float(i), 7.5))
               for i in range(1000)]
    unit = fill(st, "S1", samples, 3)
    start, end = T0 + 100 * SECOND, T0 + 899 * SECOND     # inclusive bounds
    inside = [(ts, v) for ts, v in samples if start <= ts <= end]
    stats = st.samples.stats(unit, [1, 2, 3], start, end)
    for field, got in zip([1, 2, 3], stats):
        values = [(ts, v[field - 1]) for ts, v in inside if v[field - 1] is not None]
        plain = [v for _, v in values]
        assert got["count"] == len(plain)
        assert (got["min"], got["max"]) == (min(plain), max(plain))
        assert math.isclose(got["mean"], statistics.fmean(plain), rel_tol=1e-12)
        assert math.isclose(got["stddev"], statistics.pstdev(plain), rel_tol=1e-9, abs_tol=1e-12)
        assert (got["first"], got["last"]) == (values[0], values[-1])
    assert stats[2]["stddev"] == 0.0   # flat: never NaN from a tiny negative variance


def test_stats_keep_precision_with_a_large_offset(st):
    samples = [(T0 + i * SECOND, (1e9 + (i % 2) * 0.01,)) for i in range(10000)]
    unit = fill(st, "S2", samples, 1)
    (got,) = st.samples.stats(unit, [1], T0, T0 + 10000 * SECOND)
    assert math.isclose(got["stddev"], 0.005, rel_tol=1e-6)
    assert math.isclose(got["mean"], 1e9 + 0.005, rel_tol=1e-15)


def test_stats_of_an_empty_range_or_field(st):
    unit = fill(st, "S3", [(T0, (1.0, None))], 2)
    assert st.samples.stats(unit, [1], T0 + 1, T0 + SECOND) == [
        {"count": 0, "min": None, "max": None, "mean": None, "stddev": None,
         "first": None, "last": None}]
    one, empty = st.samples.stats(unit, [1, 2], T0, T0)
    assert (one["count"], one["mean"], one["stddev"], one["first"]) == (1, 1.0, 0.0, (T0, 1.0))
    assert empty["count"] == 0 and empty["last"] is None


def test_plot_rows_are_raw_samples_when_few(st):
    samples = [(T0 + i * SECOND, (float(i), -float(i))) for i in range(20)]
    unit = fill(st, "P1", samples, 2)
    rows = st.samples.plot_rows(unit, [2, 1], T0 + SECOND, T0 + 10 * SECOND, columns=5)
    assert rows == [(T0 + i * SECOND, T0 + i * SECOND, -float(i), -float(i), float(i), float(i))
                    for i in range(1, 11)]


def brute_buckets(samples, start, end, columns, field):
    width = (end - start) // columns + 1
    groups = {}
    for ts, values in samples:
        if start <= ts <= end:
            groups.setdefault((ts - start) // width, []).append((ts, values[field - 1]))
    rows = []
    for _, group in sorted(groups.items()):
        values = [v for _, v in group if v is not None]
        rows.append((group[0][0], group[-1][0],
                     min(values) if values else None, max(values) if values else None))
    return rows


def test_plot_rows_keep_every_buckets_extremes(st):
    random.seed(5)
    samples = []
    for i in range(20000):
        if 5000 <= i < 8000:
            continue                                  # a hole: empty buckets
        value = None if 12000 <= i < 12400 else math.sin(i / 700) + random.random() / 10
        if i % 997 == 0:
            value = random.choice((-50.0, 50.0))      # spikes
        samples.append((T0 + i * SECOND, (value,)))
    unit = fill(st, "P2", samples, 1)
    start, end = T0 + 10 * SECOND, T0 + 19990 * SECOND
    rows = st.samples.plot_rows(unit, [1], start, end, columns=300)
    assert rows == brute_buckets(samples, start, end, 300, 1)
    assert len(rows) < 300
    assert any(lo is None for _, _, lo, _ in rows)          # the NULL stretch
    inside = [v for ts, (v,) in samples if start <= ts <= end and v is not None]
    assert min(r[2] for r in rows if r[2] is not None) == min(inside) == -50.0
    assert max(r[3] for r in rows if r[3] is not None) == max(inside) == 50.0


def test_plot_rows_buckets_cover_the_range_ends(st):
    samples = [(T0 + i, (float(i),)) for i in range(1001)]
    unit = fill(st, "P3", samples, 1)
    for columns in (1, 7, 100, 333):
        rows = st.samples.plot_rows(unit, [1], T0, T0 + 1000, columns)
        assert rows[0][0] == T0 and rows[-1][1] == T0 + 1000
        assert len(rows) <= columns
        assert (min(r[2] for r in rows), max(r[3] for r in rows)) == (0.0, 1000.0)


def test_resume_reads_give_only_what_is_committed(store_db):
    """A live stream resuming reads through the loop's connection, which
    sees its own open transaction: `committed()` (a second connection)
    leaves what the transaction added for its commit to publish, and
    reads it once committed."""
    db = store_db
    unit = db.units.add("R1", "k", 1)
    db.samples.add(unit, [(1, (1.0,))])
    db.alarms.add(unit, 5, ("first",))
    db.commit()
    db.samples.add(unit, [(2, (2.0,)), (3, (3.0,))])
    db.alarms.add(unit, 5, ("second",))
    assert [row[1] for _, row in db.committed().samples.after_id_of([unit], 0, 10)] == [1]
    assert [a.data for _, a in db.committed().alarms.after([unit], 0, 10)] == [("first",)]
    db.commit()
    assert [row[1] for _, row in db.committed().samples.after_id_of([unit], 0, 10)] == [1, 2, 3]
    assert len(db.committed().alarms.after([unit], 0, 10)) == 2
    db.samples.add(unit, [(4, (4.0,))])
    db.rollback()
    db.samples.add(unit, [(5, (5.0,))])
    db.commit()
    assert [row[1] for _, row in db.committed().samples.after_id_of([unit], 0, 10)] == [
        1, 2, 3, 5]


def test_resume_reads_see_a_batch_upload_as_uncommitted_too(store_db):
    db = store_db
    unit = db.units.add("R1", "k", 1)
    db.samples.add(unit, [(1, (1.0,)), (2, (2.0,))])
    db.commit()
    db.samples.add(unit, [(2, (2.0,)), (3, (3.0,)), (4, (4.0,))])   # one duplicate
    db.samples.add(unit, [(5, (5.0,))])
    assert [row[1] for _, row in db.committed().samples.after_id_of([unit], 0, 10)] == [1, 2]
    db.commit()
    assert [row[1] for _, row in db.committed().samples.after_id_of([unit], 0, 10)] == [
        1, 2, 3, 4, 5]

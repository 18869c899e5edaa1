"""The store without a server, on each engine (`store_db`: a SQLite file,
a new PostgreSQL database)."""

import select
import time

import pytest

from texmate_ds import loop, store
from texmate_ds.store import units as units_store

from conftest import spoil_commit, sqlite_only


@pytest.fixture
def st(store_db):
    return store_db


def test_unit_cache_forgets_a_rolled_back_unit(st):
    assert st.units.add("R1", "k", 1).code == "R1"  # read back, and cached
    st.rollback()
    assert st.units.get("R1") is None


def test_duplicates_in_and_across_requests(st):
    unit = st.units.add("A1", "k", 1)
    assert st.samples.add(unit, [(1, (1.0,))]) == []
    assert st.samples.add(unit, [(1, (2.0,))]) == [0]
    assert st.samples.add(unit, [(2, (1.0,)), (1, (1.0,)), (3, (1.0,)), (2, (9.0,))]) == [1, 3]
    assert [row[1:] for row in st.samples.between(unit)] == [(1, 1.0), (2, 1.0), (3, 1.0)]


def test_held_uploads_are_written_by_the_next_statement(st, engine):
    a1 = st.units.add("A1", "k", 1)
    b3 = st.units.add("B3", "k", 3)
    st.samples.add(a1, [(1, (1.0,))])
    st.commit()
    first = st.samples.add_later(a1, [(2, (2.0,)), (1, (9.0,)), (2, (9.0,))])
    second = st.samples.add_later(b3, [(5, (1, 2.5, None))])     # ints and floats mixed
    third = st.samples.add_later(a1, [(3, (3.0,)), (2, (9.0,))])
    # SQLite writes each at once; PostgreSQL holds them for one statement.
    held = engine == "postgresql"
    assert [u.duplicates for u in (first, second, third)] == (
        [None] * 3 if held else [[1, 2], [], [1]])
    assert [row[1:] for row in st.samples.between(a1)] == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert [u.result() for u in (first, second, third)] == [[1, 2], [], [1]]
    assert [row[1:] for row in st.samples.between(b3)] == [(5, 1.0, 2.5, None)]
    # Ids follow the uploads' order, whatever their units.
    ids = [st.samples.at(unit, ts)[0] for unit, ts in ((a1, 2), (b3, 5), (a1, 3))]
    assert ids == sorted(ids)
    assert st.units.counts(a1) == (3, 3) and st.units.counts(b3) == (1, 5)
    st.commit()
    assert st.samples.stored == 4


def test_held_uploads_go_with_a_rollback(st):
    a1 = st.units.add("A1", "k", 1)
    st.commit()
    upload = st.samples.add_later(a1, [(1, (1.0,))])
    st.rollback()
    if upload.duplicates is None:
        with pytest.raises(store.StoreError, match="not written"):
            upload.result()
    assert st.samples.count(a1) == 0 and st.units.counts(a1) == (0, None)
    assert st.samples.add(a1, [(1, (1.0,))]) == []
    st.commit()
    assert st.samples.count(a1) == 1


def test_an_upload_in_an_atomic_block_is_written_in_it(st):
    a1 = st.units.add("A1", "k", 1)
    st.samples.add_later(a1, [(1, (1.0,))])
    with pytest.raises(RuntimeError):
        with st.atomic():
            upload = st.samples.add_later(a1, [(2, (1.0,)), (1, (1.0,))])
            assert upload.duplicates == [1]
            raise RuntimeError("undone")
    st.commit()
    assert [row[1] for row in st.samples.between(a1)] == [1]
    assert st.units.counts(a1) == (1, 1)


def test_a_turn_of_more_samples_than_one_statement_takes(st):
    from texmate_ds.store import samples
    a1 = st.units.add("A1", "k", 1)
    count = samples._BATCH_ROWS + 5
    uploads = [st.samples.add_later(a1, [(ts, (float(ts),)), (ts + count, (1.0,))])
               for ts in range(1, count + 1)]
    uploads.append(st.samples.add_later(a1, [(count, (1.0,))]))
    assert [u.result() for u in uploads[-3:]] == [[], [], [0]]
    st.commit()
    assert st.samples.count(a1) == st.units.counts(a1)[0] == 2 * count


def test_uploads_held_at_a_commit_that_fails_are_not_stored(st):
    a1 = st.units.add("A1", "k", 1)
    st.commit()
    refusal = spoil_commit(st)
    st.samples.add_later(a1, [(1, (1.0,))])
    # PostgreSQL sends the held upload with the COMMIT; SQLite wrote it.
    with pytest.raises(store.StoreError, match=refusal):
        st.commit()
    st.rollback()
    assert st.samples.count(a1) == 0 and st.units.counts(a1) == (0, None)


def round_trips(st, work):
    """What `work()` costs the store's connection in round trips: the
    messages that ask PostgreSQL to answer (a Sync ends a statement or a
    pipeline, a Query is one of the simple protocol), read from libpq's
    trace of what it sent."""
    import tempfile

    import psycopg
    with tempfile.TemporaryFile("w+") as trace:
        pgconn = st.dialect._pq
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            work()
        finally:
            pgconn.untrace()
        trace.seek(0)
        sent = [line.split("\t")[2].strip() for line in trace if line.startswith("F\t")]
    return sum(message in ("Sync", "Query") for message in sent)


def test_a_turn_of_uploads_alone_is_one_round_trip(st, engine):
    if engine != "postgresql":
        pytest.skip("PostgreSQL only: SQLite is in the process, with no round trips")
    a1, b3 = st.units.add("A1", "k", 1), st.units.add("B3", "k", 3)
    st.commit()

    def turn(ts):
        st.samples.add_later(a1, [(ts, (1.0,))])
        st.samples.add_later(b3, [(ts, (1, 2, 3))])
        st.commit()
    turn(1)     # a unit's first two samples have its usual interval measured
    turn(2)
    # The BEGIN, the statement writing them and the COMMIT go together.
    assert [round_trips(st, lambda: turn(ts)) for ts in (3, 4)] == [1, 1]
    # A read first takes the BEGIN with it, and writes nothing held.
    assert round_trips(st, lambda: (st.begin(), st.samples.count(a1), st.commit())) == 2
    assert round_trips(st, lambda: (st.begin(), st.rollback())) == 0
    assert st.samples.count(a1) == 4 and st.units.counts(b3) == (4, 4)


def heard(listening, expected):
    """Payloads `listening` receives until `expected` of them came (a
    second more for any beyond), each commit's in order."""
    payloads, deadline = [], time.monotonic() + 10
    while time.monotonic() < deadline:
        wait = 1 if len(payloads) >= expected else deadline - time.monotonic()
        if not select.select([listening], [], [], max(wait, 0))[0]:
            if len(payloads) >= expected:
                break
            continue
        payloads += listening.heard()[1]
    return payloads


def samples_in(payloads):
    """(unit id, ts) of the samples `payloads` tell, in order."""
    from texmate_ds.store import notices
    return [(unit_id, key) for payload in payloads
            for topic, unit_id, keys in notices.decode(payload) if topic == "sample"
            for key in keys]


def test_the_samples_a_commit_stores_are_told_in_id_order_each_once(st, engine):
    if engine != "postgresql":
        pytest.skip("notices cross processes, which share a database on PostgreSQL only")
    from texmate_ds.store import notices
    a1, b3 = st.units.add("A1", "k", 1), st.units.add("B3", "k", 3)
    st.samples.add(a1, [(1, (1.0,))])
    st.commit()
    listening = st.dialect.listening()
    try:
        # Held to the commit, which writes them: a1's stored sample and
        # the repeat are not told, b3's between a1's keep their place.
        st.samples.add_later(a1, [(2, (2.0,)), (1, (9.0,))])
        st.samples.add_later(b3, [(7, (1, 2, 3))])
        st.samples.add_later(a1, [(3, (3.0,)), (2, (9.0,))])
        st.commit()
        assert samples_in(heard(listening, 1)) == [(a1.id, 2), (b3.id, 7), (a1.id, 3)]
        # A savepoint's rollback, and a transaction's, take their samples'
        # notices with them.
        st.samples.add_later(a1, [(4, (4.0,))])
        with pytest.raises(RuntimeError):
            with st.atomic():
                st.samples.add_later(b3, [(8, (1, 2, 3))])
                raise RuntimeError("undone")
        st.commit()
        st.samples.add(a1, [(5, (5.0,))])
        st.rollback()
        # A large turn: cut into payloads under the limit, in id order.
        count = 1000
        st.samples.add_later(b3, [(100 + n, (n, n, n)) for n in range(count)])
        st.commit()
        told = heard(listening, 2)
        assert samples_in(told[:1]) == [(a1.id, 4)]
        assert len(told) > 2 and all(len(p.encode()) <= notices.PAYLOAD_BYTES for p in told)
        assert samples_in(told[1:]) == [(b3.id, 100 + n) for n in range(count)]
    finally:
        listening.close()


def test_migrate_is_idempotent(st):
    assert st.migrate() == (store.SCHEMA_VERSION, store.SCHEMA_VERSION)


def test_units_are_rows_with_their_key_check_and_labels(st):
    unit = st.units.add("A1", "s3cret", 3, name="Pump", field_names=["Flow", "", "Level"])
    assert unit == store.Unit(unit.id, "A1", "s3cret", "Pump", "", 3, ("Flow", "", "Level"),
                              True, None)
    assert unit.check_key("s3cret") and not unit.check_key("s3cre") and not unit.check_key("ü")
    assert [unit.label(i) for i in range(3)] == ["Flow", "L2", "Level"]
    assert st.units.get_by_id(unit.id) == unit and st.units.get_by_id(unit.id + 1) is None
    b = st.units.add("B7", "k", 1, enabled=False, source=unit)
    assert (b.enabled, b.source_id, b.field_names) == (False, unit.id, ())
    # A key with non-ASCII characters (a vendor database may hold one) still compares.
    accented = st.units.add("C3", "clé", 1)
    assert accented.check_key("clé") and not accented.check_key("cle")
    assert st.units.all() == [unit, b, accented] and st.units.count() == 3


def test_store_errors_are_the_stores_own(st):
    unit = st.units.add("A1", "k", 1)
    # Each refused write in a savepoint, as the admin's views make them (on
    # PostgreSQL a failed statement ends the transaction otherwise); the
    # engine's own message.
    with pytest.raises(store.Conflict, match="(?i)unique"), st.atomic():
        st.units.add("A1", "other", 2)
    gone = unit._replace(id=unit.id + 100)
    with pytest.raises(store.NotFound), st.atomic():
        st.units.allow_read(unit, gone)   # a unit that is not there
    with pytest.raises(store.NotFound):
        st.units.graph_options(gone)
    with pytest.raises(store.StoreError, match="(?i)check") as refused, st.atomic():
        st.units.add("B7", "k", 33)       # the schema's CHECK: 1 to 32 fields
    assert type(refused.value) is store.StoreError
    assert issubclass(store.SchemaTooNew, store.StoreError)


def test_read_permissions(st):
    source = st.units.add("S", "k", 1)
    own = st.units.add("O", "k", 1, source=source)
    other = st.units.add("R", "k", 1)
    assert st.units.may_read(own, source) and st.units.may_read(other, other)
    assert not st.units.may_read(other, source)
    st.units.allow_read(other, source)
    st.units.allow_read(other, source)   # twice is once
    assert st.units.may_read(other, source) and not st.units.may_read(source, other)


def test_dl_cursor_walks_a_sources_samples_in_arrival_order(st):
    source, reader = st.units.add("S", "k", 1), st.units.add("R", "k", 1)
    st.samples.add(source, [(20, (2.0,))])
    st.samples.add(source, [(10, (1.0,))])
    assert st.samples.cursor(reader, source) == 0
    first = st.samples.after_id(source, 0)
    assert first[1:] == (20, 2.0)
    st.samples.set_cursor(reader, source, first[0])
    st.samples.set_cursor(reader, source, first[0])   # moves, never duplicates
    assert st.samples.cursor(reader, source) == first[0]
    assert st.samples.after_id(source, first[0])[1:] == (10, 1.0)
    assert (st.samples.first(source)[1], st.samples.last(source)[1]) == (10, 20)
    assert st.samples.at(source, 10)[1:] == (10, 1.0) and st.samples.at(source, 11) is None


def test_sample_counters_follow_commits_and_rollbacks(st):
    unit = st.units.add("A1", "k", 1)
    st.samples.add(unit, [(1, (1.0,))])
    st.samples.add(unit, [(2, (1.0,)), (3, (1.0,))])
    assert (st.samples.uploads_pending, st.samples.pending, st.samples.stored) == (2, 3, 0)
    st.commit()
    assert (st.samples.uploads_pending, st.samples.pending, st.samples.stored) == (0, 0, 3)
    st.samples.add(unit, [(4, (1.0,))])
    st.rollback()
    assert (st.samples.uploads_pending, st.samples.pending, st.samples.stored) == (0, 0, 3)
    assert st.samples.count(unit) == 3


def test_changes_count_this_connections_writes(st, engine):
    before = st.changes
    unit = st.units.add("A1", "k", 1)
    assert st.changes == before + 1
    st.samples.add(unit, [(1, (1.0,))])
    assert st.changes == before + 2
    st.samples.add(unit, [(1, (1.0,))])
    # SQLite writes a sample at once, and a duplicate changes nothing;
    # PostgreSQL counts a sample as it is held for the turn's statement,
    # before anyone knows it is one (and never again when written).
    assert st.changes == before + (3 if engine == "postgresql" else 2)


def test_another_connections_commit_empties_the_unit_cache(st, engine):
    server, other = st, store.Database(st.path)
    server.notice_others()
    other.units.add("A1", "k", 1)
    other.commit()
    assert server.units.get("A1").fields == 1         # cached
    # A write to cached rows says so (on SQLite every commit does).
    other.write("UPDATE units SET fields = 2")
    other.changed_shared()
    other.commit()
    assert server.units.get("A1").fields == 1
    server.notice_others()
    # PostgreSQL's NOTIFY comes a moment after the commit returned, on the
    # socket: looked for again until it is there (5 s at most).
    deadline = time.monotonic() + 5
    while engine == "postgresql" and server.units.get("A1").fields == 1 \
            and time.monotonic() < deadline:
        time.sleep(0.01)
        server.notice_others()
    assert server.units.get("A1").fields == 2
    other.close()


def test_a_code_of_no_unit_is_remembered_until_one_is_added(st, engine):
    server, other = st, store.Database(st.path)
    server.notice_others()
    assert server.units.get("N1") is None
    reads = server.one
    asked = []
    server.one = lambda sql, params=(): asked.append(sql) or reads(sql, params)
    try:
        assert server.units.get("N1") is None       # remembered: not read again
        assert server.units.get("A1") is None and len(asked) == 1   # while this one is read
    finally:
        server.one = reads
    other.units.add("N1", "k", 1)
    other.commit()
    # Another connection's new unit answers the next look (on PostgreSQL
    # once its NOTIFY is on the socket: looked for again, 5 s at most).
    deadline = time.monotonic() + 5
    found = server.units.get("N1")
    while engine == "postgresql" and found is None and time.monotonic() < deadline:
        time.sleep(0.01)
        found = server.units.get("N1")
    assert found is not None and found.code == "N1"
    other.close()


def test_codes_of_no_unit_are_remembered_up_to_a_bound(st):
    for n in range(units_store.MISSING_MAX + 5):
        assert st.units.get("X%d" % n) is None
    assert 0 < len(st.units._missing) <= units_store.MISSING_MAX
    st.units.add("X3", "k", 1)                      # forgotten with the cache
    assert st.units.get("X3").code == "X3"


def test_backup_copies_the_committed_database(st, engine, tmp_path):
    sqlite_only(engine, "SQLite's online backup (on PostgreSQL it names pg_dump:"
                " test_manage.test_backup_refuses_naming_pg_dump)")
    st.units.add("A1", "k", 1)
    st.commit()
    st.backup(str(tmp_path / "copy.db"))
    copy = store.Database(str(tmp_path / "copy.db"))
    assert copy.version == store.SCHEMA_VERSION and copy.units.get("A1") is not None
    with pytest.raises(store.StoreError):
        st.backup(str(tmp_path / "no such folder" / "copy.db"))
    copy.close()


def test_a_newer_schema_is_refused_untouched(st):
    st.dialect.set_schema_version(store.SCHEMA_VERSION + 1)
    with pytest.raises(store.SchemaTooNew, match="upgrade texmate_ds"):
        store.Database(st.path)


class Loop:
    """What GroupCommit uses of the loop: turn hooks, a timer, and the
    guard its after-commit callbacks run under (the real one's, so a
    failing callback is logged here as it is in the server)."""

    def __init__(self):
        self.turn_hooks = []
        self.timers = []

    def call_later(self, delay, fn):
        timer = Timer(delay, fn)
        self.timers.append(timer)
        return timer

    call_guarded = staticmethod(loop.Loop.call_guarded)


class Timer:
    def __init__(self, delay, fn):
        self.delay, self.fn, self.cancelled = delay, fn, False

    def cancel(self):
        self.cancelled = True


def test_group_commit_commits_each_turn_and_reports_a_failed_commit(st, caplog):
    unit = st.units.add("A1", "k", 1)
    commits = store.GroupCommit(st, Loop(), 1, 5)
    ended = []
    st.samples.add(unit, [(1, (1.0,))])
    commits.after_commit(ended.append)
    commits.turn()
    assert ended == [True] and not st.in_transaction and st.samples.count(unit) == 1
    # A commit the database refuses: a row checked only at COMMIT.
    st.samples.add(unit, [(2, (1.0,))])
    refusal = spoil_commit(st)
    commits.after_commit(ended.append)
    commits.turn()
    assert ended == [True, False] and not st.in_transaction
    assert st.samples.count(unit) == 1 and st.samples.stored == 1
    assert "commit failed, 1 uploads rolled back: " + refusal in caplog.text
    assert commits.commits == 2


def test_group_commit_every_n_uploads_or_after_the_delay(st):
    unit = st.units.add("A1", "k", 1)
    st.commit()
    loop = Loop()
    commits = store.GroupCommit(st, loop, 3, 50)
    for ts in (1, 2):
        st.samples.add(unit, [(ts, (1.0,))])
        commits.turn()
    assert st.in_transaction and [t.delay for t in loop.timers] == [0.05]
    st.samples.add(unit, [(3, (1.0,))])
    commits.turn()                      # the third upload: now
    assert not st.in_transaction and loop.timers[0].cancelled
    st.samples.add(unit, [(4, (1.0,))])
    commits.turn()
    loop.timers[-1].fn()                # the delay is up
    assert not st.in_transaction and st.samples.stored == 4

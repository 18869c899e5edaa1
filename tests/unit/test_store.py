"""The store without a server: an in-memory database (or a file, where a
second connection or a reopening is the point)."""

import pytest

from texmate_ds import loop, store


def fresh():
    st = store.Database(":memory:")
    st.migrate()
    return st


def test_unit_cache_forgets_a_rolled_back_unit():
    st = fresh()
    assert st.units.add("R1", "k", 1).code == "R1"  # read back, and cached
    st.rollback()
    assert st.units.get("R1") is None


def test_duplicates_in_and_across_requests():
    st = fresh()
    unit = st.units.add("A1", "k", 1)
    assert st.samples.add(unit, [(1, (1.0,))]) == []
    assert st.samples.add(unit, [(1, (2.0,))]) == [0]
    assert st.samples.add(unit, [(2, (1.0,)), (1, (1.0,)), (3, (1.0,)), (2, (9.0,))]) == [1, 3]
    assert [row[1:] for row in st.samples.between(unit)] == [(1, 1.0), (2, 1.0), (3, 1.0)]


def test_migrate_is_idempotent():
    st = fresh()
    assert st.migrate() == (store.SCHEMA_VERSION, store.SCHEMA_VERSION)


def test_units_are_rows_with_their_key_check_and_labels():
    st = fresh()
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


def test_store_errors_are_the_stores_own():
    st = fresh()
    unit = st.units.add("A1", "k", 1)
    with pytest.raises(store.Conflict, match="UNIQUE"):
        st.units.add("A1", "other", 2)
    gone = unit._replace(id=unit.id + 100)
    with pytest.raises(store.NotFound):
        st.units.allow_read(unit, gone)   # a unit that is not there
    with pytest.raises(store.NotFound):
        st.units.graph_options(gone)
    with pytest.raises(store.StoreError, match="CHECK") as refused:
        st.units.add("B7", "k", 33)       # the schema's CHECK: 1 to 32 fields
    assert type(refused.value) is store.StoreError
    assert issubclass(store.SchemaTooNew, store.StoreError)


def test_read_permissions():
    st = fresh()
    source = st.units.add("S", "k", 1)
    own = st.units.add("O", "k", 1, source=source)
    other = st.units.add("R", "k", 1)
    assert st.units.may_read(own, source) and st.units.may_read(other, other)
    assert not st.units.may_read(other, source)
    st.units.allow_read(other, source)
    st.units.allow_read(other, source)   # twice is once
    assert st.units.may_read(other, source) and not st.units.may_read(source, other)


def test_dl_cursor_walks_a_sources_samples_in_arrival_order():
    st = fresh()
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


def test_sample_counters_follow_commits_and_rollbacks():
    st = fresh()
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


def test_changes_count_this_connections_writes():
    st = fresh()
    before = st.changes
    unit = st.units.add("A1", "k", 1)
    assert st.changes == before + 1
    st.samples.add(unit, [(1, (1.0,))])
    st.samples.add(unit, [(1, (1.0,))])   # a duplicate changes nothing
    assert st.changes == before + 2


def test_another_connections_commit_empties_the_unit_cache(tmp_path):
    path = str(tmp_path / "t.db")
    server, other = store.Database(path), store.Database(path)
    server.migrate()
    server.notice_others()
    other.units.add("A1", "k", 1)
    other.commit()
    assert server.units.get("A1").fields == 1         # cached
    other.execute("UPDATE units SET fields = 2")
    other.commit()
    assert server.units.get("A1").fields == 1
    server.notice_others()
    assert server.units.get("A1").fields == 2
    server.close()
    other.close()


def test_backup_copies_the_committed_database(tmp_path):
    st = store.Database(str(tmp_path / "t.db"))
    st.migrate()
    st.units.add("A1", "k", 1)
    st.commit()
    st.backup(str(tmp_path / "copy.db"))
    copy = store.Database(str(tmp_path / "copy.db"))
    assert copy.version == store.SCHEMA_VERSION and copy.units.get("A1") is not None
    with pytest.raises(store.StoreError):
        st.backup(str(tmp_path / "no such folder" / "copy.db"))
    copy.close()
    st.close()


def test_a_newer_schema_is_refused_untouched(tmp_path):
    path = str(tmp_path / "t.db")
    st = store.Database(path)
    st.dialect.set_schema_version(store.SCHEMA_VERSION + 1)
    st.close()
    with pytest.raises(store.SchemaTooNew, match="upgrade texmate_ds"):
        store.Database(path)


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


def test_group_commit_commits_each_turn_and_reports_a_failed_commit(caplog):
    st = fresh()
    unit = st.units.add("A1", "k", 1)
    commits = store.GroupCommit(st, Loop(), 1, 5)
    ended = []
    st.samples.add(unit, [(1, (1.0,))])
    commits.after_commit(ended.append)
    commits.turn()
    assert ended == [True] and not st.in_transaction and st.samples.count(unit) == 1
    # A commit the database refuses: a foreign key checked only at COMMIT.
    st.execute("PRAGMA defer_foreign_keys = ON")
    st.samples.add(unit, [(2, (1.0,))])
    st.write("INSERT INTO unit_reads VALUES (?, ?)", (unit.id, unit.id + 9))
    commits.after_commit(ended.append)
    commits.turn()
    assert ended == [True, False] and not st.in_transaction
    assert st.samples.count(unit) == 1 and st.samples.stored == 1
    assert "commit failed, 1 uploads rolled back: FOREIGN KEY constraint failed" in caplog.text
    assert commits.commits == 2


def test_group_commit_every_n_uploads_or_after_the_delay():
    st = fresh()
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

"""A store connection PostgreSQL drops (a restart, a network failure, an
operator's pg_terminate_backend) is replaced at the next statement, and
a transaction lost with it never passes for committed: its COMMIT fails,
so the group commit answers 500, never OK, and rolls back; only then do
statements run again, on a new connection. A drop while no transaction
was open costs nothing but the reconnection. Against the test run's real
PostgreSQL, the drop made by pg_terminate_backend as an operator would.
(test_haproxy restarts PostgreSQL under the load of two servers.)
"""

import time

import pytest

from texmate_ds import config, store


@pytest.fixture
def db(postgres_cluster):
    settings = config.Settings(**postgres_cluster.settings_values(postgres_cluster.database()))
    db = store.Database(store.address(settings))
    db.migrate()
    yield db
    db.close()


def drop_connections(cluster, db):
    """pg_terminate_backend of every connection to `db`'s database but ours."""
    with cluster.connect() as su:
        ended = su.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                           " WHERE datname = %s AND pid <> pg_backend_pid()",
                           (db.path.name,)).fetchone()[0]
    assert ended >= 1


def codes(cluster, db):
    """The units' codes, read on a connection of the test's own."""
    with cluster.connect(db.path.name) as conn:
        return {code for (code,) in conn.execute("SELECT code FROM units")}


def test_a_transaction_lost_with_its_connection_fails_its_commit(postgres_cluster, db):
    db.units.add("KEPT", "k", 1, name="KEPT")
    db.commit()
    db.units.add("LOST", "k", 1, name="LOST")
    drop_connections(postgres_cluster, db)
    # Still "in a transaction": the group commit must call commit, and fail.
    assert db.in_transaction
    with pytest.raises(store.StoreError):
        db.commit()
    # Nothing else runs inside what was lost, not even a read.
    with pytest.raises(store.StoreError, match="lost with the transaction"):
        db.units.get("KEPT")
    db.rollback()
    assert not db.in_transaction
    # A new connection, at once: the next transaction commits.
    db.units.add("AFTER", "k", 1, name="AFTER")
    db.commit()
    assert codes(postgres_cluster, db) == {"KEPT", "AFTER"}


def test_a_connection_dropped_while_idle_costs_the_next_write_nothing(postgres_cluster, db):
    db.units.add("U1", "k", 1, name="U1")
    db.commit()
    forgotten = []
    db.on_stale.append(lambda: forgotten.append(True))
    db.notice_others()              # the first call always says stale
    forgotten.clear()
    drop_connections(postgres_cluster, db)
    # Its BEGIN finds the connection dead and goes again on a new one: a
    # BEGIN outside any transaction commits nothing.
    db.units.add("U2", "k", 1, name="U2")
    db.commit()
    assert codes(postgres_cluster, db) == {"U1", "U2"}
    # What others committed while it was away went unheard: caches go.
    db.notice_others()
    assert forgotten


def test_while_postgresql_is_down_statements_fail_at_once_and_then_recover(
        postgres_cluster, db):
    ended = []
    db.on_end.append(ended.append)
    db.units.add("BEFORE", "k", 1, name="BEFORE")
    db.commit()
    db.units.add("LOST", "k", 1, name="LOST")
    postgres_cluster.stop()
    try:
        with pytest.raises(store.StoreError):
            db.commit()
        # The rollback needs no server: the repositories hear of it.
        db.rollback()
        assert ended[-1] is False and not db.in_transaction
        with pytest.raises(store.StoreError, match="no connection"):
            db.units.add("DOWN", "k", 1, name="DOWN")
    finally:
        postgres_cluster.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            db.units.add("AFTER", "k", 1, name="AFTER")
            break
        except store.StoreError:
            # Tried again every RETRY_SECONDS, failing at once between.
            assert time.monotonic() < deadline
            db.rollback()
            time.sleep(0.1)
    db.commit()
    assert codes(postgres_cluster, db) == {"BEFORE", "AFTER"}

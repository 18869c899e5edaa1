"""The store's web UI part: migration 2, sessions, API tokens, unit pages,
graph options, displays."""

import sqlite3

import pytest

from texmate_ds import store, times


@pytest.fixture
def st(tmp_path):
    s = store.Store(str(tmp_path / "t.db"))
    s.syncdb()
    yield s
    s.close()


def test_migration_2_upgrades_a_version_1_database_keeping_its_data(tmp_path):
    path = str(tmp_path / "v1.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(store.MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    conn.execute("INSERT INTO units (code, key, fields, created) VALUES ('A1', 'k', 2, 0)")
    conn.execute("INSERT INTO samples (unit_id, ts, received, v1, v2) VALUES (1, 5, 5, 1.5, 2)")
    conn.close()
    s = store.Store(path)
    assert s.syncdb() == (1, store.SCHEMA_VERSION)
    unit = s.get_unit("A1")
    assert s.last_sample(unit) == (1, 5, 1.5, 2.0)
    assert s.graph_options(unit) == {"width": 800, "height": 300, "axes": []}
    s.close()


def test_sessions_expire_and_are_deleted(st):
    uid = st.add_user("ann", "x")
    st.add_session("h1", uid, "c1", times.now() + 10**9)
    st.add_session("h2", uid, "c2", times.now() + 10**9)
    st.add_session("old", uid, "c3", times.now() - 1)
    assert st.get_session("h1") == (uid, "c1")
    assert st.get_session("old") is None
    st.delete_expired_sessions()
    assert st.conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 2
    st.delete_user_sessions(uid, keep="h1")
    assert st.get_session("h1") and st.get_session("h2") is None
    st.delete_session("h1")
    assert st.get_session("h1") is None


def test_api_tokens(st):
    uid = st.add_user("ann", "x")
    token_id = st.add_api_token(uid, "cron", "hash")
    assert st.get_api_token("hash")["last_used"] is None
    st.touch_api_token(token_id)
    assert st.get_api_token("hash")["last_used"] is not None
    with pytest.raises(sqlite3.IntegrityError):
        st.add_api_token(uid, "cron", "other")
    assert st.get_api_token("hash")["name"] == "cron"
    assert st.delete_api_token(uid, "cron") and not st.delete_api_token(uid, "cron")
    assert st.get_api_token("hash") is None


def test_units_page_counts_samples_and_finds_the_newest(st):
    a = st.add_unit("A1", "k", 1)
    st.add_unit("B7", "k", 1)
    st.add_samples(a, [(30, [1]), (10, [2]), (20, [3])])
    assert st.count_units() == 2
    [(unit, count, newest)] = st.units_page(0, 1)
    assert (unit.code, count, newest) == ("A1", 3, 30)
    [(unit, count, newest)] = st.units_page(1, 1)
    assert (unit.code, count, newest) == ("B7", 0, None)


def test_graph_options_are_checked(st):
    unit = st.add_unit("A1", "k", 3)
    axes = [{"label": "Flow", "fields": [1, 2]}, {"label": "<b>", "fields": [3]}]
    st.set_graph_options(unit, 640, 200, axes)
    assert st.graph_options(unit) == {"width": 640, "height": 200, "axes": axes}
    with pytest.raises(ValueError, match="1 to 3"):
        st.set_graph_options(unit, 640, 200, [{"label": "x", "fields": [4]}])
    with pytest.raises(ValueError, match="width"):
        st.set_graph_options(unit, 50, 200, [])
    assert st.graph_options(unit)["width"] == 640


def test_displays_group_channels_by_unit_in_order(st):
    a = st.add_unit("A1", "k", 4)
    b = st.add_unit("B7", "k", 2)
    display_id = st.add_display("Pumps", 5, [(b, 2), (a, 1), (a, 3)])
    display = st.get_display(display_id)
    assert (display["name"], display["refresh"]) == ("Pumps", 5)
    assert [(u.code, fields) for u, fields in display["channels"]] == [
        ("B7", [2]), ("A1", [1, 3])]
    assert st.get_display(display_id + 1) is None
    assert st.count_displays() == 1
    assert st.displays_page(0, 50) == [{"id": display_id, "name": "Pumps", "refresh": 5}]
    with pytest.raises(ValueError, match="fields 1 to 2"):
        st.add_display("Bad", 5, [(b, 3)])
    with pytest.raises(ValueError, match="twice"):
        st.add_display("Twice", 5, [(b, 1), (b, 1)])
    with pytest.raises(ValueError):
        st.add_display("Empty", 5, [])
    assert st.count_displays() == 1


def test_atomic_undoes_only_its_own_writes(st):
    a = st.add_unit("A1", "k", 1)
    st.add_samples(a, [(1, [1])])  # an upload in the shared transaction
    with pytest.raises(RuntimeError):
        with st.atomic():
            st.add_unit("B7", "k", 1)
            raise RuntimeError
    assert st.get_unit("B7") is None
    with st.atomic():
        st.add_unit("C3", "k", 1)
    assert st.dirty
    st.commit()
    assert [u.code for u in st.list_units()] == ["A1", "C3"]
    assert st.count_samples(a) == 1

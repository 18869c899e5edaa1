"""The store's web UI part: sessions, API tokens, users, unit pages,
graph options, displays, atomic blocks."""

import pytest

from texmate_ds import store, times


@pytest.fixture
def st(store_db):
    return store_db


def count(st, table):
    return st.one("SELECT count(*) FROM %s" % table)[0]


def test_users_are_rows_found_by_id_or_name_in_any_case(st):
    ann = st.accounts.add_user("Ann", "hash", email="ann@example.com", is_staff=True)
    assert ann == store.User(ann.id, "Ann", "hash", "ann@example.com", "", "", True, True,
                             False, False, ann.date_joined, None)
    assert st.accounts.get_user(ann.id) == ann == st.accounts.get_user_by_name("aNN")
    assert st.accounts.get_user(ann.id + 1) is None
    assert st.accounts.get_user_by_name("bob") is None
    with pytest.raises(store.Conflict), st.atomic():
        st.accounts.add_user("ANN", "other")
    assert st.accounts.set_password(ann.id, "new", must_change=True)
    assert not st.accounts.set_password(ann.id + 1, "new")
    st.accounts.record_login(ann.id)
    changed = st.accounts.get_user(ann.id)
    assert (changed.password, changed.must_change_password) == ("new", True)
    assert changed.last_login is not None and st.accounts.count_users() == 1


def test_sessions_expire_and_are_deleted(st):
    uid = st.accounts.add_user("ann", "x").id
    expires = times.now() + 10**9
    st.accounts.add_session("h1", uid, "c1", expires)
    st.accounts.add_session("h2", uid, "c2", expires)
    st.accounts.add_session("old", uid, "c3", times.now() - 1)
    assert st.accounts.get_session("h1") == store.Session("h1", uid, "c1", expires)
    assert st.accounts.get_session("old") is None
    st.accounts.delete_expired_sessions()
    assert count(st, "sessions") == 2
    st.accounts.delete_user_sessions(uid, keep="h1")
    assert st.accounts.get_session("h1") and st.accounts.get_session("h2") is None
    st.accounts.delete_session("h1")
    assert st.accounts.get_session("h1") is None
    st.accounts.add_session("h3", uid, "c3", expires)
    st.accounts.delete_user_sessions(uid)   # keeping none
    assert count(st, "sessions") == 0


def test_api_tokens(st):
    uid = st.accounts.add_user("ann", "x").id
    token_id = st.accounts.add_api_token(uid, "cron", "hash")
    token = st.accounts.get_api_token("hash")
    assert token == store.ApiToken(token_id, uid, "cron", "hash", token.created, None)
    st.accounts.touch_api_token(token_id)
    assert st.accounts.get_api_token("hash").last_used is not None
    with pytest.raises(store.Conflict), st.atomic():
        st.accounts.add_api_token(uid, "cron", "other")
    assert st.accounts.get_api_token("hash").name == "cron"
    assert st.accounts.delete_api_token(uid, "cron") and not st.accounts.delete_api_token(uid, "cron")
    assert st.accounts.get_api_token("hash") is None


def test_units_page_counts_samples_and_finds_the_newest(st):
    a = st.units.add("A1", "k", 1)
    st.units.add("B7", "k", 1)
    st.samples.add(a, [(30, [1]), (10, [2]), (20, [3])])
    assert st.units.count() == 2
    [(unit, n, newest)] = st.units.page(0, 1)
    assert (unit.code, n, newest) == ("A1", 3, 30)
    [(unit, n, newest)] = st.units.page(1, 1)
    assert (unit.code, n, newest) == ("B7", 0, None)


def test_graph_options_are_stored_as_given(st):
    unit = st.units.add("A1", "k", 3)
    assert st.units.graph_options(unit) == store.GraphOptions(800, 300, ())
    options = store.GraphOptions(640, 200, (store.Axis("Flow", (1, 2)), store.Axis("<b>", (3,))))
    st.units.set_graph_options(unit, options)
    assert st.units.graph_options(unit) == options
    # The JSON form existing databases hold.
    assert st.one("SELECT graph_axes FROM units")[0] == (
        '[{"label": "Flow", "fields": [1, 2]}, {"label": "<b>", "fields": [3]}]')


def test_displays_group_channels_by_unit_in_order(st):
    a = st.units.add("A1", "k", 4)
    b = st.units.add("B7", "k", 2)
    display = st.displays.add("Pumps", 5, [(b, 2), (a, 1), (a, 3)])
    assert st.displays.get(display.id) == display
    assert (display.name, display.refresh) == ("Pumps", 5)
    assert [(u.code, fields) for u, fields in st.displays.channels(display)] == [
        ("B7", [2]), ("A1", [1, 3])]
    assert st.displays.get(display.id + 1) is None
    assert st.displays.count() == 1
    assert st.displays.page(0, 50) == [display]


def test_a_display_is_all_or_nothing(st):
    b = st.units.add("B7", "k", 2)
    with pytest.raises(store.Conflict):
        st.displays.add("Twice", 5, [(b, 1), (b, 1)])
    with pytest.raises(store.NotFound):
        st.displays.add("Gone", 5, [(b, 1), (b._replace(id=b.id + 9), 1)])
    assert st.displays.count() == 0 and count(st, "display_channels") == 0


def test_atomic_undoes_only_its_own_writes(st):
    a = st.units.add("A1", "k", 1)
    st.samples.add(a, [(1, [1])])  # an upload in the shared transaction
    with pytest.raises(RuntimeError):
        with st.atomic():
            st.units.add("B7", "k", 1)
            raise RuntimeError
    assert st.units.get("B7") is None
    with st.atomic():
        st.units.add("C3", "k", 1)
    assert st.in_transaction
    st.commit()
    assert [u.code for u in st.units.all()] == ["A1", "C3"]
    assert st.samples.count(a) == 1

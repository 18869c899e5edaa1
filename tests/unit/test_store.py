"""The store without a server: an in-memory database."""

from texmate_ds import store


def fresh():
    st = store.Store(":memory:")
    st.syncdb()
    return st


def test_unit_cache_forgets_a_rolled_back_unit():
    st = fresh()
    assert st.add_unit("R1", "k", 1).code == "R1"  # read back, and cached
    st.rollback()
    assert st.get_unit("R1") is None


def test_duplicates_in_and_across_requests():
    st = fresh()
    unit = st.add_unit("A1", "k", 1)
    assert st.add_samples(unit, [(1, (1.0,))]) == []
    assert st.add_samples(unit, [(1, (2.0,))]) == [0]
    assert st.add_samples(unit, [(2, (1.0,)), (1, (1.0,)), (3, (1.0,)), (2, (9.0,))]) == [1, 3]
    assert [row[1:] for row in st.samples_range(unit)] == [(1, 1.0), (2, 1.0), (3, 1.0)]


def test_syncdb_is_idempotent():
    st = fresh()
    assert st.syncdb() == (store.SCHEMA_VERSION, store.SCHEMA_VERSION)

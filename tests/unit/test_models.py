"""texmate_ds.models (docs/models.md) over a real store.Database on each
engine: what each model offers, that a queryset is one statement
with its slice as LIMIT/OFFSET, and that every lookup it does not offer,
or any value of the wrong type, is refused with a clear error."""

import datetime

import pytest

from texmate_ds import models, store
from texmate_ds.models import Alarm, Sample, Unit, User

T0 = datetime.datetime(2024, 1, 1)
US0 = 1704067200 * 1000000     # T0 in the store's microseconds
SECOND = 1000000
N = 300                        # A1's samples: one a second from T0, L1 = i


@pytest.fixture
def db(store_db):
    db = store_db
    a1 = db.units.add("A1", "k1", 2, name="Pump")
    db.units.add("B7", "k7", 1, enabled=False)
    db.samples.add(a1, [(US0 + i * SECOND, (float(i), None if i % 2 else -1.5))
                        for i in range(N)])
    db.commit()
    models.bind(db)
    yield db
    models.bind(None)


class Statements:
    """Counts the statements the store reads through `db` and the rows
    they return, by wrapping the two calls every repository reads with."""

    def __init__(self, db):
        self.count = 0
        self.rows = 0
        one, every = db.one, db.all

        def counted_one(sql, params=()):
            self.count += 1
            row = one(sql, params)
            self.rows += row is not None
            return row

        def counted_all(sql, params=()):
            self.count += 1
            rows = every(sql, params)
            self.rows += len(rows)
            return rows
        db.one, db.all = counted_one, counted_all


def a1():
    return Unit.objects.get(code="A1")


def ls(values):
    """L1 of each sample."""
    return [sample.values[0] for sample in values]


# -- Unit: what the vendor's OK app uses, and the companions -----------------

def test_the_ok_apps_calls_get_a_unit_check_its_key_and_miss(db):
    unit = Unit.objects.get(code="A1")
    assert isinstance(unit, Unit) and isinstance(unit, store.Unit)
    assert (unit.code, unit.name, unit.fields, unit.pk) == ("A1", "Pump", 2, unit.id)
    assert unit.check_key("k1") and not unit.check_key("k2")
    with pytest.raises(Unit.DoesNotExist, match="no Unit with code='ZZ'"):
        Unit.objects.get(code="ZZ")
    assert issubclass(Unit.DoesNotExist, models.ObjectDoesNotExist)
    assert not issubclass(Unit.DoesNotExist, Sample.DoesNotExist)


def test_a_unit_by_code_comes_from_the_stores_cache(db):
    a1()
    counted = Statements(db)
    for _ in range(3):
        a1()
    assert counted.count == 0


def test_units_by_id_pk_and_filters(db):
    unit = a1()
    assert Unit.objects.get(id=unit.id) == unit == Unit.objects.get(pk=unit.id)
    assert [u.code for u in Unit.objects.all()] == ["A1", "B7"]
    assert [u.code for u in Unit.objects.order_by("-code")] == ["B7", "A1"]
    assert [u.code for u in Unit.objects.filter(enabled=False)] == ["B7"]
    assert [u.code for u in Unit.objects.filter(code__in=["B7", "ZZ"])] == ["B7"]
    assert Unit.objects.filter(fields__gte=2).get().code == "A1"
    assert Unit.objects.count() == 2 and Unit.objects.exists()
    assert Unit.objects.first().code == "A1"
    with pytest.raises(Unit.MultipleObjectsReturned, match="more than one Unit with fields__gt=0"):
        Unit.objects.get(fields__gt=0)
    assert issubclass(Unit.MultipleObjectsReturned, models.MultipleObjectsReturned)


# -- Sample ---------------------------------------------------------------------

def test_a_sample_has_its_unit_timestamp_and_values(db):
    sample = Sample.objects.filter(unit=a1()).first()
    assert sample.unit == a1() and isinstance(sample.unit, Unit)
    assert sample.unit_id == a1().id and sample.pk == sample.id
    assert sample.timestamp == T0 and sample.timestamp.tzinfo is None
    assert sample.values == (0.0, -1.5)
    assert Sample.objects.filter(unit=a1())[1].values == (1.0, None)


def test_a_time_range_matches_its_bounds_exactly(db):
    unit = a1()
    start, end = T0 + datetime.timedelta(seconds=10), T0 + datetime.timedelta(seconds=20)
    assert ls(Sample.objects.filter(unit=unit, timestamp__gte=start, timestamp__lt=end)) == \
        [float(i) for i in range(10, 20)]
    assert ls(Sample.objects.filter(unit=unit, timestamp__gt=start, timestamp__lte=end)) == \
        [float(i) for i in range(11, 21)]
    assert ls(Sample.objects.filter(unit=unit, timestamp=end)) == [20.0]
    # A microsecond off the sample is not it: times compare exactly.
    assert not Sample.objects.filter(unit=unit, timestamp=end + datetime.timedelta(microseconds=1))
    assert ls(Sample.objects.filter(unit=unit).filter(timestamp__lt=start)
              .filter(timestamp__gte=T0 + datetime.timedelta(seconds=8))) == [8.0, 9.0]


def test_microseconds_go_to_the_store_and_back_unchanged(db):
    b7 = Unit.objects.get(code="B7")
    ts = US0 + 123456
    db.samples.add(b7, [(ts, (7.0,))])
    when = T0 + datetime.timedelta(microseconds=123456)
    sample = Sample.objects.get(unit=b7, timestamp=when)
    assert sample.timestamp == when and sample.values == (7.0,)


def test_slices_and_indexes_are_those_of_the_list(db):
    everything = list(Sample.objects.filter(unit=a1()))
    assert ls(everything) == [float(i) for i in range(N)]
    newest_first = everything[::-1]
    qs = Sample.objects.filter(unit=a1()).order_by("-timestamp")
    for a, b in [(0, 10), (5, 8), (290, 400), (10, 5), (None, 3), (297, None), (0, 0),
                 (400, 500)]:
        assert list(qs[a:b]) == newest_first[a:b], (a, b)
        assert qs[a:b].count() == len(newest_first[a:b]), (a, b)
        assert qs[a:b].exists() == bool(newest_first[a:b]), (a, b)
    # A slice of a slice is the slice of that list.
    assert list(qs[10:50][5:8]) == newest_first[10:50][5:8]
    assert list(qs[10:50][35:100]) == newest_first[10:50][35:100]
    assert qs[10:50][3] == newest_first[13]
    assert qs[0] == newest_first[0] and qs[N - 1] == everything[0]
    with pytest.raises(IndexError):
        qs[N]
    assert qs[N:].first() is None


def test_a_slice_reads_only_its_rows_in_one_statement(db):
    unit = a1()
    qs = Sample.objects.filter(unit=unit).order_by("-timestamp")[100:110]
    counted = Statements(db)
    assert ls(qs) == [float(i) for i in range(199, 189, -1)]
    assert (counted.count, counted.rows) == (1, 10)
    ls(qs)
    len(qs)
    assert qs.count() == 10 and qs.exists()    # what it read is kept
    assert counted.count == 1


def test_count_exists_and_index_read_no_more_than_they_need(db):
    qs = Sample.objects.filter(unit=a1(), timestamp__gte=T0 + datetime.timedelta(seconds=50))
    counted = Statements(db)
    assert qs.count() == N - 50
    assert (counted.count, counted.rows) == (1, 1)            # a count(*), no samples
    assert qs.exists() and bool(qs)
    assert (counted.count, counted.rows) == (3, 3)            # a row each
    assert qs[7].values[0] == 57.0
    assert (counted.count, counted.rows) == (4, 4)
    assert qs[10:20].count() == 10 and qs[N:].count() == 0
    assert counted.count == 6


def test_samples_by_id_alone_or_within_their_unit(db):
    sample = Sample.objects.filter(unit=a1())[42]
    assert Sample.objects.get(id=sample.id) == sample == Sample.objects.get(pk=sample.id)
    assert Sample.objects.get(unit=a1(), id=sample.id) == sample
    assert [s.id for s in Sample.objects.filter(unit=a1(), id__in=[sample.id, 10 ** 9])] == \
        [sample.id]
    assert ls(Sample.objects.filter(unit=a1()).order_by("-id")[:2]) == [N - 1.0, N - 2.0]
    with pytest.raises(Sample.DoesNotExist):
        Sample.objects.get(id=10 ** 9)
    with pytest.raises(Sample.DoesNotExist):
        Sample.objects.get(unit=Unit.objects.get(code="B7"), id=sample.id)


def test_sample_queries_name_their_unit(db):
    qs = Sample.objects.filter(timestamp__gte=T0)
    for read in (list, len, Sample.objects.count, qs.count, qs.first):
        with pytest.raises(ValueError, match=r"Sample queries need unit=<a Unit>"):
            read(qs) if read in (list, len) else read()
    # Two units at once match nothing (both must hold), without a read.
    both = Sample.objects.filter(unit=a1()).filter(unit=Unit.objects.get(code="B7"))
    counted = Statements(db)
    assert list(both) == [] and both.count() == 0 and counted.count == 0


def test_the_open_transactions_samples_are_seen(db):
    """The models read the server's own connection: an app sees an upload
    as soon as the upload's producer stored it, before the group commit."""
    db.samples.add(a1(), [(US0 + N * SECOND, (1000.0, None))])
    assert db.in_transaction
    assert Sample.objects.filter(unit=a1()).order_by("-timestamp")[0].values == (1000.0, None)


# -- Alarm ------------------------------------------------------------------------

def test_alarms_with_their_units_times_and_state(db):
    unit = a1()
    first = db.alarms.add(unit, 3, ["2024-01-01 00:00:05", "high"], meter_ts=US0 + 5 * SECOND,
                          received=US0 + 60 * SECOND)
    db.alarms.add(unit, 7, ["no time"], received=US0 + 120 * SECOND)
    db.alarms.add(Unit.objects.get(code="B7"), 1, [], received=US0 + 90 * SECOND)
    db.alarms.acknowledge(first, "ops", "seen")
    alarm = Alarm.objects.get(id=first.id)
    assert (alarm.unit, alarm.kind, alarm.level, alarm.data) == (unit, "meter", 3,
                                                                ("2024-01-01 00:00:05", "high"))
    assert alarm.timestamp == T0 + datetime.timedelta(seconds=5)
    assert alarm.received == T0 + datetime.timedelta(seconds=60)
    assert isinstance(alarm.acknowledged, datetime.datetime) and not alarm.active
    assert (alarm.acknowledged_by, alarm.note, alarm.unit_id, alarm.pk) == (
        "ops", "seen", unit.id, first.id)
    assert [a.level for a in Alarm.objects.all()] == [3, 1, 7]          # by received
    assert [a.level for a in Alarm.objects.order_by("-level")] == [7, 3, 1]
    assert [a.level for a in Alarm.objects.filter(unit=unit)] == [3, 7]
    assert [a.level for a in Alarm.objects.filter(unit=unit, acknowledged__isnull=True)] == [7]
    assert [a.level for a in Alarm.objects.filter(timestamp=None)] == [1, 7]
    assert [a.level for a in Alarm.objects.filter(timestamp__isnull=False)] == [3]
    assert Alarm.objects.filter(level__in=[1, 7], received__lt=T0 + datetime.timedelta(
        seconds=100)).get().unit.code == "B7"
    assert Alarm.objects.filter(unit=unit, level__gte=5).count() == 1


def test_alarms_come_with_their_units_in_one_statement(db):
    for level in range(5):
        db.alarms.add(a1(), level, [])
    qs = Alarm.objects.order_by("-received")[:4]
    counted = Statements(db)
    assert [a.unit.code for a in qs] == ["A1"] * 4
    assert (counted.count, counted.rows) == (1, 4)


# -- User -----------------------------------------------------------------------

def test_users_without_their_passwords(db):
    db.accounts.add_user("Admin", "sha1$$secret", email="a@example.com", is_staff=True,
                         is_superuser=True, first_name="Ada")
    db.accounts.add_user("ops", "h", email="ops@example.com")
    db.accounts.record_login(db.accounts.get_user_by_name("ops").id)
    admin = User.objects.get(username="admin")     # usernames compare without case
    assert (admin.username, admin.email, admin.first_name, admin.is_staff,
            admin.is_superuser, admin.is_active) == ("Admin", "a@example.com", "Ada", True,
                                                     True, True)
    assert isinstance(admin.date_joined, datetime.datetime) and admin.last_login is None
    assert not hasattr(admin, "password") and "secret" not in repr(admin)
    assert [u.username for u in User.objects.all()] == ["Admin", "ops"]
    assert [u.username for u in User.objects.filter(is_staff=False)] == ["ops"]
    assert [u.username for u in User.objects.filter(last_login__isnull=False)] == ["ops"]
    assert User.objects.filter(username__in=("OPS", "nobody")).get().email == "ops@example.com"
    with pytest.raises(User.DoesNotExist):
        User.objects.get(email="nobody@example.com")
    with pytest.raises(models.FieldError, match="cannot filter User by 'password'"):
        User.objects.filter(password="sha1$$secret")


# -- what is refused, and how -----------------------------------------------------

@pytest.mark.parametrize("build, error, message", [
    (lambda: Sample.objects.filter(timestamp__year=2024), models.FieldError,
     r"Sample.timestamp has no lookup 'year' \(timestamp__year\); it has exact, gt, gte, lt, lte"),
    (lambda: Sample.objects.filter(unit__code="A1"), models.FieldError,
     r"Sample.unit has no lookup 'code' \(unit__code\)"),
    (lambda: Sample.objects.filter(value=1), models.FieldError,
     r"cannot filter Sample by 'value' \(value\); its fields are id, pk, timestamp, unit"),
    (lambda: Unit.objects.filter(code__contains="A"), models.FieldError,
     r"Unit.code has no lookup 'contains'"),
    (lambda: Unit.objects.filter(enabled__in=[True]), models.FieldError,
     r"Unit.enabled has no lookup 'in'"),
    (lambda: Sample.objects.order_by("values"), models.FieldError,
     r"cannot order Sample by 'values'; by id, pk, timestamp"),
    (lambda: Sample.objects.order_by("--timestamp"), models.FieldError, r"'--timestamp'"),
    (lambda: Unit.objects.order_by("code", "-name"), models.FieldError,
     r"order_by takes one field here, not 2"),
    (lambda: Unit.objects.order_by(1), TypeError, r"order_by wants a field name, not int"),
    (lambda: Sample.objects.filter(unit="A1"), TypeError,
     r"unit: wants a Unit \(from Unit.objects.get\), not str 'A1'"),
    (lambda: Sample.objects.filter(timestamp__gte="2024-01-01"), TypeError,
     r"timestamp__gte: wants a datetime.datetime, not str '2024-01-01'"),
    (lambda: Sample.objects.filter(timestamp__gte=datetime.date(2024, 1, 1)), TypeError,
     r"wants a datetime.datetime, not date"),
    (lambda: Sample.objects.filter(timestamp=T0.replace(tzinfo=datetime.timezone.utc)),
     ValueError, r"timestamp: wants a naive datetime \(no tzinfo\)"),
    (lambda: Sample.objects.filter(timestamp=None), TypeError, r"timestamp: wants a datetime"),
    (lambda: Unit.objects.filter(id="1"), TypeError, r"id: wants an int, not str '1'"),
    (lambda: Unit.objects.filter(id=True), TypeError, r"id: wants an int, not bool True"),
    (lambda: Unit.objects.filter(id=2 ** 63), ValueError, r"id: 9223372036854775808 is out"),
    (lambda: Unit.objects.filter(enabled=1), TypeError, r"enabled: wants True or False"),
    (lambda: Unit.objects.filter(code=None), TypeError, r"code: wants a str, not NoneType"),
    (lambda: Unit.objects.get(code=["A1"]), TypeError, r"code: wants a str, not list"),
    (lambda: Unit.objects.filter(code__in="A1"), TypeError,
     r"code__in: wants a list, tuple or set, not str 'A1'"),
    (lambda: Unit.objects.filter(id__in=[1, "2"]), TypeError, r"id__in: wants an int, not str"),
    (lambda: Unit.objects.filter(id__in=list(range(901))), ValueError,
     r"id__in: 901 values, more than 900"),
    (lambda: Alarm.objects.filter(acknowledged__isnull=None), TypeError,
     r"acknowledged__isnull: wants True or False"),
    (lambda: Unit.objects.filter(name__isnull=True), models.FieldError,
     r"Unit.name has no lookup 'isnull'"),
])
def test_lookups_not_offered_and_wrong_values_are_refused_where_written(db, build, error,
                                                                       message):
    counted = Statements(db)
    with pytest.raises(error, match=message):
        build()
    assert counted.count == 0


def test_slicing_is_refused_where_django_refuses_it(db):
    qs = Sample.objects.filter(unit=a1())
    with pytest.raises(ValueError, match="Negative indexing is not supported."):
        qs[-1]
    with pytest.raises(ValueError, match="Negative indexing"):
        qs[-5:]
    with pytest.raises(ValueError, match="take no step"):
        qs[::2]
    with pytest.raises(TypeError, match="must be ints"):
        qs["1"]
    with pytest.raises(TypeError, match="must be ints"):
        qs[1.0:2]
    with pytest.raises(ValueError, match="out of range"):
        qs[2 ** 62:]
    with pytest.raises(TypeError, match="Cannot filter a query once a slice has been taken."):
        qs[:5].filter(timestamp__gte=T0)
    with pytest.raises(TypeError, match="Cannot reorder a query once a slice has been taken."):
        qs[:5].order_by("-timestamp")
    assert qs[:1].get() == qs[0]
    with pytest.raises(Sample.MultipleObjectsReturned):
        qs[:5].get()


def test_objects_are_read_only_and_have_no_save(db):
    unit = a1()
    with pytest.raises(AttributeError):
        unit.name = "Other"
    sample = Sample.objects.filter(unit=unit)[0]
    with pytest.raises(AttributeError):
        sample.values = (1.0, 2.0)
    for model in (Unit, Sample, Alarm, User):
        assert not hasattr(model, "save") and not hasattr(model.objects, "create")


def test_before_the_server_binds_a_store_reads_say_so(db):
    qs = Unit.objects.filter(code="A1")    # building reads nothing
    models.bind(None)
    with pytest.raises(RuntimeError, match="used before the server bound its store"):
        list(qs)
    with pytest.raises(RuntimeError, match="bound its store"):
        Unit.objects.get(code="A1")

"""Django-shaped models for TTP apps written for the vendor's Data Server 3
(docs/models.md): `Unit`, `Sample`, `Alarm` and `User`, each with
``objects.get(...)``, ``objects.filter(...)``, ``DoesNotExist`` and the
small part of Django's queryset API listed there.

The vendor's App Guide has one listing, the OK app: it calls
``Unit.objects.get(code=...)``, catches ``Unit.DoesNotExist`` and calls
``unit.check_key(key)``, and runs here with only its import line changed
to ``from texmate_ds.models import Unit``. The guide names no field of a
Sample, an Alarm or a User; theirs are this project's (docs/models.md),
kept to what the store holds and named the Django way.

Design:

* A queryset is lazy and never changes: ``filter``, ``order_by`` and
  slicing make new ones, and nothing is read until one is iterated,
  indexed, counted or tested. Then it is ONE statement of a store
  repository (`Units.query`, `Samples.query`, `Alarms.query`,
  `Accounts.query_users`, or their counts) with the slice as its LIMIT
  and OFFSET: ``[:10]`` of a million samples reads ten rows. An iterated
  queryset keeps its rows, as Django's does, so a second pass reads
  nothing; ``bool()`` asks `exists` (one row) rather than read them all.
* Every lookup is checked where it is written, against the model's
  fields and the lookups each has (exact, in, gt, gte, lt, lte, isnull):
  one not offered is a `FieldError` naming it, never ignored; a value of
  the wrong type a TypeError, out of range a ValueError, never an error
  from deep in SQL.
* Objects are read-only rows (namedtuples, as the store's are), each
  made whole when its statement is read: no attribute runs a query.
  There is no ``save()``: the guide shows no app saving anything, and
  the manual says samples and alarms are never changed once added. An
  app that writes uses ``server.store`` as the bundled apps do.
* Times are naive ``datetime.datetime`` values: ``timestamp`` is the
  meter's clock (a sample's; an alarm's ``d0`` when it read as a time),
  the other times the server's, in UTC. The store's integer microseconds
  (`texmate_ds.times`) become datetimes and back here, exactly.
* Vendor apps reach the models with no store in hand, so this is the one
  place with process-wide state: the server `bind`s its store, the
  loop's own connection, at start. The models are therefore for code
  the loop runs (a producer, ``run_before``/``run_after``, ``start``, a
  subscription's callback), and see what that connection sees, the open
  transaction's uploads included; another thread gets a StoreError.
  New apps should use ``server.store`` instead.
"""

import collections
import datetime
import reprlib

from texmate_ds import store as _store
from texmate_ds.store.sql import MAX_IN

_bound = None


def bind(store):
    """Make `store` (a store.Database) the one the models read: the server
    binds its own at start (tests bind theirs; None unbinds)."""
    global _bound
    _bound = store


def _store_now():
    if _bound is None:
        raise RuntimeError("texmate_ds.models used before the server bound its store")
    return _bound


class ObjectDoesNotExist(Exception):
    """get() found nothing; every model's ``DoesNotExist`` is one."""


class MultipleObjectsReturned(Exception):
    """get() found more than one; every model's ``MultipleObjectsReturned`` is one."""


class FieldError(ValueError):
    """A lookup or an ordering the models do not offer."""


# -- values: each kind checks what an app gives and returns what the store
# compares (checked here, so a wrong type never reaches SQL).

_LARGEST = 2 ** 63 - 1           # the store's integers are 64-bit
_EPOCH = datetime.datetime(1970, 1, 1)
_MICROSECOND = datetime.timedelta(microseconds=1)


def _shown(value):
    return "%s %s" % (type(value).__name__, reprlib.repr(value))


def _int(lookup, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s: wants an int, not %s" % (lookup, _shown(value)))
    if not -_LARGEST - 1 <= value <= _LARGEST:
        raise ValueError("%s: %d is out of range" % (lookup, value))
    return value


def _text(lookup, value):
    if not isinstance(value, str):
        raise TypeError("%s: wants a str, not %s" % (lookup, _shown(value)))
    return value


def _flag(lookup, value):
    if not isinstance(value, bool):
        raise TypeError("%s: wants True or False, not %s" % (lookup, _shown(value)))
    return int(value)


def _time(lookup, value):
    """A naive datetime as the store's microseconds. An aware one is
    refused: the meter's clock has no time zone, and a conversion would
    quietly shift a range by hours."""
    if not isinstance(value, datetime.datetime):
        raise TypeError("%s: wants a datetime.datetime, not %s" % (lookup, _shown(value)))
    if value.tzinfo is not None:
        raise ValueError("%s: wants a naive datetime (no tzinfo), not %s" % (lookup, value))
    return (value - _EPOCH) // _MICROSECOND


def _unit(lookup, value):
    if not isinstance(value, _store.Unit):
        raise TypeError("%s: wants a Unit (from Unit.objects.get), not %s"
                        % (lookup, _shown(value)))
    return value


def _when(us):
    """The store's microseconds (or None) as a naive datetime."""
    return None if us is None else _EPOCH + datetime.timedelta(microseconds=us)


# A kind of field: how its values are checked, and the lookups it has.
_Kind = collections.namedtuple("_Kind", "check lookups")
_INT = _Kind(_int, ("exact", "in", "gt", "gte", "lt", "lte"))
_TEXT = _Kind(_text, ("exact", "in"))
_FLAG = _Kind(_flag, ("exact",))
_TIME = _Kind(_time, ("exact", "gt", "gte", "lt", "lte"))
_UNIT = _Kind(_unit, ("exact",))
_COMPARE = {"exact": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}

# A field a lookup names: the store's column, its kind, and whether it may
# be empty (then it has ``isnull``, and ``=None`` means that).
_Field = collections.namedtuple("_Field", "column kind nullable", defaults=(False,))


def _condition(model, lookup, value):
    """``name[__lookup]=value`` as the store's (column, op, value)."""
    name, _, op = lookup.partition("__")
    op = op or "exact"
    field = model._lookups.get(name)
    if field is None:
        raise FieldError("cannot filter %s by %r (%s); its fields are %s" % (
            model.__name__, name, lookup, ", ".join(sorted(model._lookups))))
    if field.nullable and (op == "isnull" or (op == "exact" and value is None)):
        if op == "isnull" and not isinstance(value, bool):
            raise TypeError("%s: wants True or False, not %s" % (lookup, _shown(value)))
        return field.column, "null", True if value is None else value
    if op not in field.kind.lookups:
        raise FieldError("%s.%s has no lookup %r (%s); it has %s" % (
            model.__name__, name, op, lookup,
            ", ".join(field.kind.lookups + (("isnull",) if field.nullable else ()))))
    if op == "in":
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise TypeError("%s: wants a list, tuple or set, not %s" % (lookup, _shown(value)))
        if len(value) > MAX_IN:
            raise ValueError("%s: %d values, more than %d" % (lookup, len(value), MAX_IN))
        return field.column, "in", tuple(field.kind.check(lookup, item) for item in value)
    return field.column, _COMPARE[op], field.kind.check(lookup, value)


def _stored(conditions):
    """Conditions as the store takes them: a Unit by its id."""
    return [(column, op, value.id if isinstance(value, _store.Unit) else value)
            for column, op, value in conditions]


def _index(value, default):
    """A slice bound: a non-negative int (None: `default`)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("QuerySet indices and slice bounds must be ints, not %s" % _shown(value))
    if value < 0:
        raise ValueError("Negative indexing is not supported.")
    if value > _LARGEST // 2:
        raise ValueError("QuerySet index %d is out of range" % value)
    return value


class QuerySet:
    """The rows of `model` that every lookup given so far matches, in one
    order, maybe sliced; read by one statement when first needed."""

    def __init__(self, model, conditions=(), order=None, low=0, high=None):
        self.model = model
        self._conditions = conditions
        self._order = order or model._default_order
        # The slice as Django keeps it: rows low..high (None: to the end).
        self._low = low
        self._high = high
        self._rows = None

    def _clone(self, conditions=None, order=None, low=None, high=None):
        return QuerySet(self.model, self._conditions if conditions is None else conditions,
                        order or self._order, self._low if low is None else low,
                        self._high if high is None else high)

    @property
    def _sliced(self):
        return self._low != 0 or self._high is not None

    # -- building

    def all(self):
        return self._clone()

    def filter(self, **lookups):
        """Those of the rows that every lookup also matches."""
        if self._sliced:
            raise TypeError("Cannot filter a query once a slice has been taken.")
        return self._clone(self._conditions + tuple(
            _condition(self.model, lookup, value) for lookup, value in lookups.items()))

    def order_by(self, *names):
        """The rows sorted by one field (``-name``: descending; none: the
        model's default). Each sorts uniquely, by itself or then by id."""
        if self._sliced:
            raise TypeError("Cannot reorder a query once a slice has been taken.")
        if len(names) > 1:
            raise FieldError("order_by takes one field here, not %d: %s" % (
                len(names), ", ".join(map(repr, names))))
        if not names:
            return self._clone(order=self.model._default_order)
        name = names[0]
        if not isinstance(name, str):
            raise TypeError("order_by wants a field name, not %s" % _shown(name))
        if name.lstrip("-") not in self.model._orders or name.startswith("--"):
            raise FieldError("cannot order %s by %r; by %s" % (
                self.model.__name__, name, ", ".join(sorted(self.model._orders))))
        return self._clone(order=name)

    def __getitem__(self, key):
        """``[a:b]``: a queryset of those rows (a LIMIT and OFFSET when
        read); ``[i]``: that row (IndexError past the end)."""
        if isinstance(key, slice):
            if key.step is not None:
                raise ValueError("QuerySet slices take no step")
            low, high = self._limits(_index(key.start, 0), _index(key.stop, None))
            sliced = self._clone(low=low, high=high)
            if self._rows is not None:
                sliced._rows = self._rows[key]
            return sliced
        index = _index(key, None)
        if index is None:
            raise TypeError("QuerySet indices must be ints or slices, not None")
        if self._rows is not None:
            return self._rows[index]
        rows = self._read(*self._limits(index, index + 1))
        if not rows:
            raise IndexError("QuerySet index out of range")
        return rows[0]

    def _limits(self, start, stop):
        """(low, high) of rows start..stop of this slice."""
        low, high = self._low, self._high
        if stop is not None:
            high = low + stop if high is None else min(high, low + stop)
        if start:
            low = low + start if high is None else min(high, low + start)
        return low, high

    # -- reading

    def _read(self, low, high):
        name = self._order.lstrip("-")
        order = ("-" if self._order != name else "") + self.model._orders[name]
        return self.model._read(_store_now(), self._conditions, order,
                                None if high is None else high - low, low)

    def _all_rows(self):
        if self._rows is None:
            self._rows = self._read(self._low, self._high)
        return self._rows

    def __iter__(self):
        return iter(self._all_rows())

    def __len__(self):
        return len(self._all_rows())

    def __bool__(self):
        return self.exists()

    def count(self):
        """How many rows, by a count in the store (the rows unread)."""
        if self._rows is not None:
            return len(self._rows)
        left = max(0, self.model._count(_store_now(), self._conditions) - self._low)
        return left if self._high is None else min(left, self._high - self._low)

    def exists(self):
        """Is there a row? One read at most."""
        if self._rows is not None:
            return bool(self._rows)
        return self._high != self._low and bool(self._read(self._low, self._low + 1))

    def first(self):
        """The first row, or None."""
        for row in self[:1]:
            return row
        return None

    def get(self, **lookups):
        """The one row the lookups match: ``DoesNotExist`` for none,
        ``MultipleObjectsReturned`` for more (two rows are read at most)."""
        rows = list((self.filter(**lookups) if lookups else self)[:2])
        asked = ", ".join("%s=%s" % (lookup, reprlib.repr(value))
                          for lookup, value in lookups.items()) or "the query's lookups"
        if not rows:
            raise self.model.DoesNotExist("no %s with %s" % (self.model.__name__, asked))
        if len(rows) > 1:
            raise self.model.MultipleObjectsReturned(
                "more than one %s with %s" % (self.model.__name__, asked))
        return rows[0]


class Manager:
    """``Model.objects``: where querysets begin, each over all the rows."""

    def __set_name__(self, model, name):
        self.model = model

    def all(self):
        return QuerySet(self.model)

    def filter(self, **lookups):
        return self.all().filter(**lookups)

    def order_by(self, *names):
        return self.all().order_by(*names)

    def get(self, **lookups):
        return self.all().get(**lookups)

    def count(self):
        return self.all().count()

    def exists(self):
        return self.all().exists()

    def first(self):
        return self.all().first()


class _Model:
    """What every model has: `pk` (its id), and its own ``DoesNotExist``
    and ``MultipleObjectsReturned``, so that ``except Unit.DoesNotExist``
    catches a Unit's only. A model names `_lookups` ({name: _Field}),
    `_orders` ({name: the store's column}), `_default_order`, and reads
    with ``_read(store, conditions, order, limit, offset)`` and
    ``_count(store, conditions)``."""

    __slots__ = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, base in (("DoesNotExist", ObjectDoesNotExist),
                           ("MultipleObjectsReturned", MultipleObjectsReturned)):
            setattr(cls, name, type(name, (base,), {
                "__module__": __name__, "__qualname__": "%s.%s" % (cls.__name__, name)}))

    @property
    def pk(self):
        return self.id


class _UnitManager(Manager):
    def get(self, **lookups):
        # An app like OK looks its unit up by code on every request: through
        # the store's cache of units by code, without a statement.
        if len(lookups) == 1 and "code" in lookups:
            code = _text("code", lookups["code"])
            unit = _store_now().units.get(code)
            if unit is None:
                raise Unit.DoesNotExist("no Unit with code=%s" % reprlib.repr(code))
            return Unit._make(unit)
        return super().get(**lookups)


class Unit(_Model, _store.Unit):
    """A meter: every column of the store's Unit (code, key, name,
    description, fields, field_names, enabled, ...), `pk`, and
    ``check_key(key)``."""

    __slots__ = ()
    _lookups = {"id": _Field("id", _INT), "pk": _Field("id", _INT),
                "code": _Field("code", _TEXT), "name": _Field("name", _TEXT),
                "fields": _Field("fields", _INT), "enabled": _Field("enabled", _FLAG)}
    _orders = {"code": "code", "name": "name", "fields": "fields", "id": "id", "pk": "id"}
    _default_order = "code"
    objects = _UnitManager()

    @staticmethod
    def _read(store, conditions, order, limit, offset):
        return [Unit._make(unit)
                for unit in store.units.query(_stored(conditions), order, limit, offset)]

    @staticmethod
    def _count(store, conditions):
        return store.units.count_matching(_stored(conditions))


class Sample(_Model, collections.namedtuple("Sample", "id unit timestamp values")):
    """A sample: its `unit` (a Unit), `timestamp` (the meter's, a naive
    datetime), `values` (a float per field, None for an empty one), and
    `id` as ``dl`` shows it. Queries name their unit: ``unit=...``."""

    __slots__ = ()
    _lookups = {"id": _Field("id", _INT), "pk": _Field("id", _INT),
                "unit": _Field("unit_id", _UNIT), "timestamp": _Field("ts", _TIME)}
    _orders = {"timestamp": "ts", "id": "id", "pk": "id"}
    _default_order = "timestamp"
    objects = Manager()

    @property
    def unit_id(self):
        return self.unit.id

    @staticmethod
    def _unit_of(store, conditions):
        """(unit, the other conditions); unit None when `unit=` names two.
        A unit's samples are read a unit at a time (its fields are its
        columns); without ``unit=`` only ``get(id=...)`` can find one."""
        units = {value.id: value for column, _, value in conditions if column == "unit_id"}
        rest = [condition for condition in conditions if condition[0] != "unit_id"]
        if units:
            return (Unit._make(units.popitem()[1]) if len(units) == 1 else None), rest
        if len(rest) == 1 and rest[0][:2] == ("id", "="):
            found = store.samples.get_by_id(rest[0][2])
            unit = found and store.units.get_by_id(found[0])
            return unit and Unit._make(unit), rest
        raise ValueError("Sample queries need unit=<a Unit> (or get(id=...) alone): "
                         "a unit's samples are read a unit at a time")

    @staticmethod
    def _read(store, conditions, order, limit, offset):
        unit, rest = Sample._unit_of(store, conditions)
        if unit is None:
            return []
        return [Sample(row[0], unit, _when(row[1]), row[2:])
                for row in store.samples.query(unit, rest, order, limit, offset)]

    @staticmethod
    def _count(store, conditions):
        unit, rest = Sample._unit_of(store, conditions)
        return 0 if unit is None else store.samples.count_matching(unit, rest)


class Alarm(_Model, collections.namedtuple("Alarm", "id unit kind level data timestamp received "
                                            "acknowledged acknowledged_by note")):
    """An alarm: its `unit`, `kind` (meter, silent or back), `level`,
    `data` (the ``al`` items, text), `timestamp` (the meter's time when
    ``d0`` read as one, else None), `received` and `acknowledged` (the
    server's; None: active), `acknowledged_by` and `note`."""

    __slots__ = ()
    _lookups = {"id": _Field("id", _INT), "pk": _Field("id", _INT),
                "unit": _Field("unit_id", _UNIT), "kind": _Field("kind", _TEXT),
                "level": _Field("level", _INT), "timestamp": _Field("meter_ts", _TIME, True),
                "received": _Field("received", _TIME),
                "acknowledged": _Field("acknowledged", _TIME, True)}
    _orders = {"received": "received", "level": "level", "id": "id", "pk": "id"}
    _default_order = "received"
    objects = Manager()

    @property
    def unit_id(self):
        return self.unit.id

    @property
    def active(self):
        return self.acknowledged is None

    @staticmethod
    def _read(store, conditions, order, limit, offset):
        units = {}   # one Unit object per unit, however many alarms it has
        return [Alarm(alarm.id, units.setdefault(unit.id, Unit._make(unit)), alarm.kind,
                      alarm.level, alarm.data, _when(alarm.meter_ts), _when(alarm.received),
                      _when(alarm.acknowledged), alarm.acknowledged_by, alarm.note)
                for unit, alarm in store.alarms.query(_stored(conditions), order, limit, offset)]

    @staticmethod
    def _count(store, conditions):
        return store.alarms.count_matching(_stored(conditions))


class User(_Model, collections.namedtuple("User", "id username email first_name last_name is_active "
                                          "is_staff is_superuser date_joined last_login")):
    """A user of the web interface (never their password): `username`
    (compared without case, as signing in does), `email`, names, the
    flags, `date_joined` and `last_login` (the server's time; None: never)."""

    __slots__ = ()
    _lookups = {"id": _Field("id", _INT), "pk": _Field("id", _INT),
                "username": _Field("username", _TEXT), "email": _Field("email", _TEXT),
                "first_name": _Field("first_name", _TEXT),
                "last_name": _Field("last_name", _TEXT),
                "is_active": _Field("is_active", _FLAG), "is_staff": _Field("is_staff", _FLAG),
                "is_superuser": _Field("is_superuser", _FLAG),
                "date_joined": _Field("date_joined", _TIME),
                "last_login": _Field("last_login", _TIME, True)}
    _orders = {"username": "username", "email": "email", "date_joined": "date_joined",
               "id": "id", "pk": "id"}
    _default_order = "username"
    objects = Manager()

    @staticmethod
    def _read(store, conditions, order, limit, offset):
        return [User(user.id, user.username, user.email, user.first_name, user.last_name,
                     user.is_active, user.is_staff, user.is_superuser, _when(user.date_joined),
                     _when(user.last_login))
                for user in store.accounts.query_users(conditions, order, limit, offset)]

    @staticmethod
    def _count(store, conditions):
        return store.accounts.count_users_matching(conditions)

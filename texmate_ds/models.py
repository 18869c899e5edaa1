"""A small facade so TTP apps written for the vendor's Data Server 3 run
unchanged but for their import line: ``from texmate_ds.models import Unit``
gives ``Unit.objects.get(code=...)``, ``Unit.DoesNotExist`` and
``unit.check_key(key)``.

Vendor apps reach the models without being handed a store, so this is the
one place with process-wide state: the server `bind`s its store at start.
New apps should use ``server.store.units`` instead.
"""

from texmate_ds import store as _store

_bound = None


def bind(store):
    global _bound
    _bound = store


class _UnitManager:
    def get(self, code=None, id=None):
        if _bound is None:
            raise RuntimeError("texmate_ds.models used before the server bound its store")
        unit = _bound.units.get(code) if code is not None else _bound.units.get_by_id(id)
        if unit is None:
            raise Unit.DoesNotExist("no unit %r" % (code if code is not None else id))
        return unit


class Unit(_store.Unit):
    __slots__ = ()

    class DoesNotExist(Exception):
        pass

    objects = _UnitManager()

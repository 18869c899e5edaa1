"""Multiple-meter displays: a named page showing chosen fields (channels)
of several units, reloading every `refresh` seconds.

What makes a display valid (a name, channels the units have, none twice)
is the callers' rule (`texmate_ds.rules`); the schema refuses a channel
twice (Conflict) and a unit that is gone (NotFound) by itself.
"""

import collections

from texmate_ds import times
from texmate_ds.store.sql import filters, searching
from texmate_ds.store.units import COLUMNS_AS_U, Unit

Display = collections.namedtuple("Display", "id name refresh created")
_SELECT = "SELECT id, name, refresh, created FROM displays"


class Displays:
    def __init__(self, db):
        self.db = db

    def add(self, name, refresh, channels):
        """The new Display; `channels` are (Unit, 1-based field) in display
        order. All or nothing."""
        created = times.now()
        with self.db.atomic():
            display_id = self.db.insert("displays", name=name, refresh=refresh, created=created)
            self._add_channels(display_id, channels)
        return Display(display_id, name, refresh, created)

    def change(self, display, name, refresh, channels):
        """Set the display's name, refresh and channels (as `add`)."""
        with self.db.atomic():
            self.db.write("UPDATE displays SET name = ?, refresh = ? WHERE id = ?",
                          (name, refresh, display.id))
            self.db.execute("DELETE FROM display_channels WHERE display_id = ?", (display.id,))
            self._add_channels(display.id, channels)
        return self.get(display.id)

    def delete(self, display):
        self.db.write("DELETE FROM displays WHERE id = ?", (display.id,))

    def find(self, search=None, offset=0, limit=100):
        """(how many in all, [Display] of this page by name) named like `search`."""
        where, params = filters(searching(self.db.dialect, ("name",), search))
        total = self.db.one("SELECT count(*) FROM displays WHERE " + where, params)[0]
        return total, [Display(*row) for row in self.db.all(
            _SELECT + " WHERE %s ORDER BY name, id LIMIT ? OFFSET ?" % where,
            params + [limit, offset])]

    def _add_channels(self, display_id, channels):
        self.db.executemany(
            "INSERT INTO display_channels (display_id, position, unit_id, field)"
            " VALUES (?, ?, ?, ?)",
            [(display_id, position, unit.id, field)
             for position, (unit, field) in enumerate(channels)])

    def get(self, display_id):
        """The Display, or None."""
        row = self.db.one(_SELECT + " WHERE id = ?", (display_id,))
        return Display(*row) if row else None

    def channels(self, display):
        """[(Unit, [1-based fields])]: a unit's fields together, units in
        display order."""
        channels = {}
        for row in self.db.all(
                "SELECT %s, c.field FROM display_channels c JOIN units u ON u.id = c.unit_id"
                " WHERE c.display_id = ? ORDER BY c.position" % COLUMNS_AS_U, (display.id,)):
            unit_id = row[0]
            if unit_id not in channels:
                channels[unit_id] = (Unit.from_row(row[:-1]), [])
            channels[unit_id][1].append(row[-1])
        return list(channels.values())

    def fields_shown(self, unit):
        """The 1-based fields of `unit` that some display shows."""
        return {field for (field,) in self.db.all(
            "SELECT DISTINCT field FROM display_channels WHERE unit_id = ?", (unit.id,))}

    def count(self):
        return self.db.one("SELECT count(*) FROM displays")[0]

    def page(self, offset, limit):
        """[Display] by name."""
        return [Display(*row) for row in self.db.all(
            _SELECT + " ORDER BY name, id LIMIT ? OFFSET ?", (limit, offset))]

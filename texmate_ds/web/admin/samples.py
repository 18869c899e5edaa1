"""Samples in the admin: a unit's samples, newest first, with a date
filter, a read-only view of each, and three ways to delete (docs/web.md,
"Samples and Alarms").

* Paging is by keyset, not by number: ``before=TS`` is the page of
  samples older than TS, ``after=TS`` the one newer, ``oldest=1`` the
  last page. Each is an index walk from its edge, so the last page of ten
  million samples comes as fast as the first (an OFFSET would step over
  every row before it). The count shown is the one the units table keeps.
* Deleting, selected, all or old, and ``ALLOW_SAMPLE_DELETION``: as for
  every unit's rows (`per_unit.UnitRows`).
"""

import collections
from urllib.parse import urlencode

from texmate_ds import chores, times
from texmate_ds.web import app, forms, ranges
from texmate_ds.web.admin.options import Column, Listing, row_id
from texmate_ds.web.admin.per_unit import UnitRows

Sample = collections.namedtuple("Sample", "id unit ts received values")


class SampleAdmin(UnitRows):
    name = "samples"
    description = "What meters uploaded, unit by unit: view, delete, import from CSV."
    singular = "sample"
    plural = "samples"
    paging_params = ("before", "after", "oldest")
    columns = (Column("id", "Id", None, "num"), Column("ts", "Timestamp", None, "exact"))
    switch = "ALLOW_SAMPLE_DELETION"
    step = chores.DeleteSamples

    def count_all(self, store, unit):
        return store.units.counts(unit)[0]

    def count_before(self, store, unit, before):
        return store.samples.count(unit, before)

    def list_columns(self, request, query):
        unit = self._unit(request, query.given["unit"])
        if unit is None:
            return self.columns
        return self.columns + tuple(Column(str(i), unit.titled(i), None, "num")
                                    for i in range(unit.fields))

    def list_links(self, request):
        if not request.access.may(self.name, "add"):
            return []
        unit = request.query.get("unit")
        return [(request.url_for("admin_samples_import") + ("?" + urlencode({"unit": unit})
                                                            if unit else ""),
                 "Import samples from a CSV file")]

    def get(self, request, pk):
        if row_id(pk) is None:
            return None
        found = request.store.samples.get_by_id(row_id(pk))
        if found is None:
            return None
        unit = request.store.units.get_by_id(found[0])
        if unit is None or not request.access.sees(unit):
            return None
        row = found[2]
        return Sample(row[0], unit, row[1], found[1], row[2:2 + unit.fields])

    def describe(self, sample):
        return "%s at %s" % (sample.unit.code, times.text(sample.ts))

    def cell(self, request, row, name):
        if name in ("id", "ts"):
            return getattr(row, name)
        value = row.values[int(name)]
        return "—" if value is None else "%.10g" % value

    def find(self, request, query):
        unit = self._unit(request, query.given["unit"])
        if unit is None:
            return Listing([], None)
        start = ranges.moment(query.given, "from")
        end = ranges.moment(query.given, "to", day_end=True)
        edge = {}
        for param in ("before", "after"):
            text = query.given[param]
            if text:
                if not (text.lstrip("-").isdigit() and len(text) < 21):
                    raise app.HTTPError(400, "%s: a timestamp in microseconds" % param)
                edge[param] = int(text)
        samples = request.store.samples
        size = self.page_size
        if query.given["oldest"]:
            rows = samples.oldest_page(unit, size, start, end)
        else:
            rows = samples.newest_page(unit, size, start, end, **edge)
        listed = [Sample(r[0], unit, r[1], None, r[2:]) for r in rows]
        total = request.store.units.counts(unit)[0] if start is None and end is None else None
        if not rows:
            return Listing([], total, first=query.string(before=None, after=None, oldest=None))

        def near(**changes):
            base = dict(before=None, after=None, oldest=None, p=None)
            base.update(changes)
            return query.string(**base)
        newer = samples.newest_page(unit, 1, start, end, after=rows[0][1])
        older = samples.newest_page(unit, 1, start, end, before=rows[-1][1])
        return Listing(listed, total,
                       first=near() if newer else None,
                       previous=near(after=str(rows[0][1])) if newer else None,
                       next=near(before=str(rows[-1][1])) if older else None,
                       last=near(oldest="1") if older else None)

    def form(self, request, sample):
        fields = [forms.Text("unit", "Unit"), forms.Text("timestamp", "Timestamp"),
                  forms.Text("received", "Received")] + [
            forms.Text("v%d" % (i + 1), sample.unit.titled(i)) for i in range(sample.unit.fields)]
        initial = {"unit": sample.unit.described, "timestamp": times.text(sample.ts),
                   "received": times.text(sample.received)}
        initial.update(("v%d" % (i + 1), "—" if v is None else repr(v))
                       for i, v in enumerate(sample.values))
        return forms.Form(fields, initial)

    def delete(self, request, sample):
        request.store.samples.delete_ids(sample.unit, [sample.id])

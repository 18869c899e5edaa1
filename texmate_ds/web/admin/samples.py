"""Samples in the admin: a unit's samples, newest first, with a date
filter, a read-only view of each, and three ways to delete (docs/web.md,
"Samples and Alarms").

* Paging is by keyset, not by number: ``before=TS`` is the page of
  samples older than TS, ``after=TS`` the one newer, ``oldest=1`` the
  last page. Each is an index walk from its edge, so the last page of ten
  million samples comes as fast as the first (an OFFSET would step over
  every row before it). The count shown is the one the units table keeps.
* "Delete selected" writes a log entry per sample; "Delete ALL" and
  "Delete old" one entry in all, with the count, after a confirmation
  page. Both are chores (`texmate_ds.chores`): oldest first, a chunk per
  loop turn, each committed with that turn's uploads, so meters are
  answered meanwhile; the list shows their progress.
* ``ALLOW_SAMPLE_DELETION: no`` takes every delete away: the actions and
  links vanish and their URLs answer 403, for superusers too.
"""

import collections
from urllib.parse import urlencode

from texmate_ds import chores, times
from texmate_ds.web import app, forms, html, ranges
from texmate_ds.web.admin.options import Column, Filter, Listing, ModelAdmin
from texmate_ds.web.admin.units import describe as describe_unit

Sample = collections.namedtuple("Sample", "id unit ts received values")


class SampleAdmin(ModelAdmin):
    name = "samples"
    description = "What meters uploaded, unit by unit: view, delete, import from CSV."
    singular = "sample"
    plural = "samples"
    read_only = True
    paging_params = ("before", "after", "oldest")
    columns = (Column("id", "Id", None, "num"), Column("ts", "Timestamp", None, "exact"))

    def allows(self, request, action, row=None):
        if action == "delete" and not request.settings.ALLOW_SAMPLE_DELETION:
            return False
        return action != "change" and request.access.may(self.name, action)

    def filters(self, request):
        units = [(u.code, u.code + (" (%s)" % u.name if u.name else ""))
                 for u in request.store.units.all() if request.access.sees(u)]
        return [Filter("unit", "Unit", [("", "choose a unit")] + units),
                Filter("from", "From", None), Filter("to", "To", None)]

    def _unit(self, request, code):
        unit = request.store.units.get(code) if code else None
        if code and (unit is None or not request.access.sees(unit)):
            raise app.HTTPError(404, "no such unit")
        return unit

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
        if not (pk.isdigit() and len(pk) < 19):
            return None
        found = request.store.samples.get_by_id(int(pk))
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
        initial = {"unit": describe_unit(sample.unit), "timestamp": times.text(sample.ts),
                   "received": times.text(sample.received)}
        initial.update(("v%d" % (i + 1), "—" if v is None else repr(v))
                       for i, v in enumerate(sample.values))
        return forms.Form(fields, initial)

    def delete(self, request, sample):
        request.store.samples.delete_ids(sample.unit, [sample.id])

    # -- deleting many: the tools above the list

    def tools(self, request, query):
        """Forms of their own above the list: delete all, delete old, import."""
        unit = self._unit(request, query.given["unit"])
        if unit is None or not self.allows(request, "delete"):
            return []
        return [
            {"action": "delete_old", "label": "Delete samples older than", "unit": unit.code,
             "input": {"name": "before", "placeholder": "YYYY-MM-DD or -30d"}},
            {"action": "delete_all", "label": "Delete ALL samples of %s" % unit.code,
             "unit": unit.code, "input": None},
        ]

    def tool_delete_all(self, request):
        return self._delete_many(request, None)

    def tool_delete_old(self, request):
        before = ranges.moment(request.form, "before")
        if before is None:
            raise app.HTTPError(400, "before: a date or time (YYYY-MM-DD, -30d...)")
        return self._delete_many(request, before)

    def _delete_many(self, request, before):
        if not self.allows(request, "delete"):
            raise app.HTTPError(403, "you may not delete samples")
        unit = self._unit(request, request.form.get("unit", ""))
        if unit is None:
            raise app.HTTPError(400, "unit: which unit's samples")
        if before is None:
            return self._confirmed(request, unit, None, request.store.units.counts(unit)[0])

        # Counting a million samples older than a date takes a while: off the loop.
        def count(store):
            return store.samples.count(store.units.get(unit.code), before)
        return app.Later(count, lambda total: self._confirmed(request, unit, before, total))

    def _confirmed(self, request, unit, before, count):
        """The confirmation page, or once confirmed the deletion, as a
        chore: a chunk per loop turn, the log's entry when it is over."""
        what = "all {:,} samples of {}".format(count, unit.code) if before is None else \
            "{:,} samples of {} older than {}".format(count, unit.code, times.text(before))
        back = request.url_for("admin_list", self.name) + "?" + urlencode({"unit": unit.code})
        if request.form.get("confirm") != "yes":
            return html.render(request, "admin/delete_many.html", "Delete samples?",
                               model=self, what=what, unit=unit.code, back=back,
                               action="delete_all" if before is None else "delete_old",
                               before=request.form.get("before", ""))
        step = chores.DeleteSamples(request.store, unit, before, count)
        actor = request.user.username

        def done(chore):
            message = "{:,} samples".format(step.deleted) if before is None else \
                "{:,} samples before {}".format(step.deleted, times.text(before))
            if not chore.finished:
                message += " (%s before the end)" % chore.outcome
            request.store.log.record(actor, "delete", self.name, unit.id, describe_unit(unit),
                                     message=message)
        app.run_chore(request, "Deleting %s" % what, step, done)
        html.flash(request, "Deleting %s: a chunk at a time, meters are answered meanwhile."
                   % what)
        return app.redirect(back, 303)

"""What the admin's models of a unit's rows share (samples, alarms):
listed per unit (``unit=CODE``, which a visitor must see), and deleted
selected, all, or older than a date (docs/web.md, "Samples and
Alarms").

* "Delete selected" writes a log entry per row; "Delete ALL" and
  "Delete old" one entry in all, with the count, after a confirmation
  page. Both are chores (`texmate_ds.chores`): oldest first, a chunk per
  loop turn, each committed with that turn's uploads, so meters are
  answered meanwhile; the list shows their progress. Counting the rows
  older than a date runs off the loop.
* The model's `switch` (``ALLOW_SAMPLE_DELETION``, ``ALLOW_ALARM_DELETION``)
  at ``no`` takes every delete away: the actions and links vanish and
  their URLs answer 403, for superusers too.
"""

from urllib.parse import urlencode

from texmate_ds import times
from texmate_ds.web import app, html, ranges
from texmate_ds.web.admin.options import Filter, ModelAdmin


class UnitRows(ModelAdmin):
    """A model of rows each of one unit. A subclass names its `switch`
    setting and its chore `step` (`chores.DeleteSamples` or the like), and
    counts its rows (`count_all`, `count_before`)."""

    read_only = True
    switch = None
    step = None
    # What the unit filter offers for "no unit" (samples need one).
    no_unit = "choose a unit"

    def count_all(self, store, unit):
        raise NotImplementedError

    def count_before(self, store, unit, before):
        raise NotImplementedError

    def allows(self, request, action, row=None):
        if action == "delete" and not getattr(request.settings, self.switch):
            return False
        return action != "change" and request.access.may(self.name, action)

    def filters(self, request):
        units = [(u.code, u.described) for u in request.store.units.all()
                 if request.access.sees(u)]
        return [Filter("unit", "Unit", [("", self.no_unit)] + units),
                Filter("from", "From", None), Filter("to", "To", None)]

    def _unit(self, request, code):
        """The unit `code` names (None for none); 404 for one not seen."""
        unit = request.store.units.get(code) if code else None
        if code and (unit is None or not request.access.sees(unit)):
            raise app.HTTPError(404, "no such unit")
        return unit

    def tools(self, request, query):
        """Forms of their own above the list: delete old, delete all."""
        unit = self._unit(request, query.given["unit"])
        if unit is None or not self.allows(request, "delete"):
            return []
        return [
            {"action": "delete_old", "label": "Delete %s older than" % self.plural,
             "unit": unit.code,
             "input": {"name": "before", "placeholder": "YYYY-MM-DD or -30d"}},
            {"action": "delete_all", "label": "Delete ALL %s of %s" % (self.plural, unit.code),
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
            raise app.HTTPError(403, "you may not delete %s" % self.plural)
        unit = self._unit(request, request.form.get("unit", ""))
        if unit is None:
            raise app.HTTPError(400, "unit: which unit's %s" % self.plural)
        if before is None:
            return self._confirmed(request, unit, None, self.count_all(request.store, unit))

        # Counting a million rows older than a date takes a while: off the loop.
        def count(store):
            return self.count_before(store, store.units.get(unit.code), before)
        return app.Later(count, lambda total: self._confirmed(request, unit, before, total))

    def _confirmed(self, request, unit, before, count):
        """The confirmation page, or once confirmed the deletion, as a
        chore: a chunk per loop turn, the log's entry when it is over."""
        what = "all {:,} {} of {}".format(count, self.plural, unit.code) if before is None \
            else "{:,} {} of {} older than {}".format(count, self.plural, unit.code,
                                                      times.text(before))
        back = request.url_for("admin_list", self.name) + "?" + urlencode({"unit": unit.code})
        if request.form.get("confirm") != "yes":
            return html.render(request, "admin/delete_many.html", "Delete %s?" % self.plural,
                               model=self, what=what, unit=unit.code, back=back,
                               action="delete_all" if before is None else "delete_old",
                               before=request.form.get("before", ""))
        step = self.step(request.store, unit, before, count)
        actor = request.user.username

        def done(chore):
            message = "{:,} {}".format(step.deleted, self.plural) if before is None else \
                "{:,} {} before {}".format(step.deleted, self.plural, times.text(before))
            if not chore.finished:
                message += " (%s before the end)" % chore.outcome
            request.store.log.record(actor, "delete", self.name, unit.id, unit.described,
                                     message=message)
        app.run_chore(request, "Deleting %s" % what, step, done)
        html.flash(request, "Deleting %s: a chunk at a time, meters are answered meanwhile."
                   % what)
        return app.redirect(back, 303)

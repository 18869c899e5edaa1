"""Multiple-meter displays in the admin: a name, a refresh rate, and
channels: rows of a unit and the fields of it to show (``1,3``), in
display order. What makes a display valid is `rules.check_display`, as
for ``manage adddisplay``."""

import re

from texmate_ds import rules
from texmate_ds.web import forms
from texmate_ds.web.admin.options import Column, ModelAdmin, row_id

# Unit rows the form offers at least (and two free beyond those in use).
ROWS = 8
REFRESH = range(1, 86401)
_NUMBERS = re.compile(r"[0-9]{1,2}(?:,[0-9]{1,2}){0,31}")


class DisplayAdmin(ModelAdmin):
    name = "displays"
    description = "Multiple-meter displays: chosen fields of several units on one page."
    singular = "display"
    plural = "displays"
    columns = (Column("name", "Name"), Column("refresh", "Refresh (s)", None, "num"))
    search = "name"

    def get(self, request, pk):
        return None if row_id(pk) is None else request.store.displays.get(row_id(pk))

    def describe(self, display):
        return display.name

    def search_rows(self, request, query, offset, limit):
        return request.store.displays.find(query.q, offset, limit)

    def links(self, request, display):
        return [(request.url_for("display", display.id), "View the display")]

    def delete(self, request, display):
        request.store.displays.delete(display)

    def form(self, request, display):
        units = [(u.code, u.code + (" (%s)" % u.name if u.name else ""))
                 for u in request.store.units.all() if request.access.sees(u)]
        rows = [] if display is None else request.store.displays.channels(display)
        count = max(ROWS, len(rows) + 2)
        fields = [
            forms.Text("name", "Name", required=True, max_length=100),
            forms.Integer("refresh", "Refresh (seconds)", REFRESH,
                          "how often the page reloads without script"),
            forms.Table("channels", "Channels", ["%d" % n for n in range(1, count + 1)],
                       [("channel_unit", "Unit", [("", "—")] + units),
                        ("channel_fields", "Fields", None)],
                       "a unit per row, and which of its fields to show: 1,3", commas=True),
        ]
        initial = {"refresh": 5, "channels": {"channel_unit": (), "channel_fields": ()}}
        if display is not None:
            initial = {"name": display.name, "refresh": display.refresh, "channels": {
                "channel_unit": tuple(unit.code for unit, _ in rows),
                "channel_fields": tuple(",".join(map(str, numbers)) for _, numbers in rows)}}
        return forms.Form(fields, initial)

    def _channels(self, request, form):
        table = form.cleaned["channels"]
        channels = []
        for code, numbers in zip(table["channel_unit"], table["channel_fields"]):
            if not code:
                continue
            numbers = numbers.replace(" ", "")
            if not _NUMBERS.fullmatch(numbers):
                raise ValueError("unit %s: fields as numbers with commas, like 1,3" % code)
            unit = request.store.units.get(code)
            channels.extend((unit, int(n)) for n in numbers.split(","))
        return channels

    def check(self, request, form, display):
        try:
            rules.check_display(form.cleaned["name"], form.cleaned["refresh"],
                                self._channels(request, form))
        except ValueError as exc:
            form.fail("channels", str(exc))

    def save(self, request, form, display):
        st = request.store
        before = None if display is None else self._text(st, display)
        channels = self._channels(request, form)
        name, refresh = form.cleaned["name"], form.cleaned["refresh"]
        if display is None:
            return st.displays.add(name, refresh, channels), {}
        display = st.displays.change(display, name, refresh, channels)
        after = self._text(st, display)
        return display, {key: [before[key], after[key]] for key in after
                         if before[key] != after[key]}

    @staticmethod
    def _text(st, display):
        return {"name": display.name, "refresh": display.refresh,
                "channels": ["%s:%s" % (unit.code, ",".join(map(str, numbers)))
                             for unit, numbers in st.displays.channels(display)]}

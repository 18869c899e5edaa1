"""Units in the admin: the list, and one form for every setting of a unit
(docs/web.md, "Units").

The form keeps the per-field settings together in one table, a row per
field: its name, its unit of measure and the graph axis it is drawn on
(axes are labelled in a second small table). That is the graph options
"edited as a form": nothing to parse. The table has a row for each field
the unit has; a unit given more fields gets their rows once saved ("Save
and continue editing").

What may be configured is `rules`' to say (graph sizes, axes, fields a
display still shows), as for ``manage changeunit``; the log gets every
setting that changed, the key as "(changed)".
"""

import collections

from texmate_ds import chores, rules, store
from texmate_ds.web import app, forms
from texmate_ds.web.admin.options import Column, ModelAdmin, row_id

CODE = r"[A-Za-z0-9]{1,32}"
KEY = r"[\x21-\x7e]{1,64}"
# A silent meter's wait, up to a week; alarm levels as TTP's `al` has them.
SILENT_MINUTES = range(1, 7 * 24 * 60 + 1)
# How often a meter should upload (texmate_ds.status), up to a week too.
EXPECTED_SECONDS = range(1, 7 * 24 * 60 * 60 + 1)
LEVELS = range(0, 100)
# Axes the form offers (a graph with more is unreadable on a phone).
AXES = 4
NEW_UNIT_FIELDS = 4


class Listed(collections.namedtuple("Listed", "unit samples last")):
    """A unit in the change list, with the counts the units table keeps."""

    __slots__ = ()

    @property
    def id(self):
        return self.unit.id


def _settings(st, unit):
    """Every setting of `unit` as the form and the log compare them."""
    options = st.units.graph_options(unit)
    source = st.units.get_by_id(unit.source_id) if unit.source_id else None
    return {
        "code": unit.code, "key": unit.key, "name": unit.name,
        "description": unit.description, "fields": unit.fields, "enabled": unit.enabled,
        "source": source.code if source else "",
        "reads": set(st.units.reads(unit)),
        "field_names": ",".join(unit.field_names), "field_units": ",".join(unit.field_units),
        "report_fields": {str(f) for f in unit.report_fields},
        "graph_width": options.width, "graph_height": options.height,
        "axes": ["%s:%s" % (axis.label, ",".join(map(str, axis.fields)))
                 for axis in options.axes],
        "silent_minutes": unit.silent_minutes, "silent_level": unit.silent_level,
        "webhook_url": unit.webhook_url, "expected_interval": unit.expected_interval,
    }


def _table_initial(unit, options):
    """The field table's value for `unit` as stored."""
    on_axis = {}
    for number, axis in enumerate(options.axes[:AXES], 1):
        for field in axis.fields:
            on_axis.setdefault(field, str(number))
    count = unit.fields
    return {"field_names": tuple(unit.field_names[i] if i < len(unit.field_names) else ""
                                 for i in range(count)),
            "field_units": tuple(unit.measure(i) for i in range(count)),
            "field_axis": tuple(on_axis.get(f, "") for f in range(1, count + 1))}


class UnitAdmin(ModelAdmin):
    name = "units"
    description = "Meters: codes, keys, fields and their names, graphs, who reads whom."
    singular = "unit"
    plural = "units"
    columns = (Column("code", "Code", "code"), Column("name", "Name", "name"),
               Column("fields", "Fields", "fields", "num"),
               Column("last", "Last sample", "last", "time"),
               Column("samples", "Samples", "samples", "num"),
               Column("enabled", "Enabled", "enabled", "bool"))
    search = "code, name or description"
    default_order = "code"
    secret_fields = ("key", "webhook_url")     # a hook's address often holds its token

    def get(self, request, pk):
        st = request.store
        unit = None if row_id(pk) is None else st.units.get_by_id(row_id(pk))
        unit = unit or st.units.get(pk)
        return unit if unit is not None and request.access.sees(unit) else None

    def describe(self, unit):
        return unit.described

    def search_rows(self, request, query, offset, limit):
        seen_by = request.access.seen_by
        st = request.store
        return (st.units.count(query.q, seen_by),
                [Listed(*row) for row in st.units.page(offset, limit, query.q, seen_by,
                                                       query.o or "code")])

    def cell(self, request, row, name):
        if name == "samples":
            return "{:,}".format(row.samples)
        return row.last if name == "last" else getattr(row.unit, name)

    def links(self, request, unit):
        return [(request.url_for("admin_list", "samples") + "?unit=" + unit.code,
                 "Samples (%s)" % "{:,}".format(request.store.units.counts(unit)[0])),
                (request.url_for("unit", unit.code), "Unit page")]

    def dependents(self, request, unit):
        count = request.store.units.counts(unit)[0]
        counts, sourced = request.store.units.dependents(unit)
        lines = ["{:,} samples".format(count),
                 "{:,} alarms".format(request.store.alarms.count(unit))] + [
            "%d %s" % (n, what) for what, n in counts.items() if n]
        if sourced:
            lines.append("%s will read themselves by default (no source)" % ", ".join(sourced))
        return lines

    def delete(self, request, unit):
        """A unit with many samples goes as a chore: disabled at once (its
        meter is refused), its samples a chunk per loop turn, then the unit
        with everything else that refers to it, and the log's entry."""
        st = request.store
        count = st.units.counts(unit)[0]
        if count <= chores.DELETE_CHUNK:
            st.units.delete(unit)
            return None
        st.units.change(unit, enabled=False)
        step = chores.DeleteSamples(st, unit, None, count)
        actor = request.user.username

        def done(chore):
            if chore.finished:
                st.units.delete(unit)
                st.log.record(actor, "delete", self.name, unit.id, unit.described,
                              message="with {:,} samples".format(step.deleted))
            else:
                st.log.record(actor, "delete", "samples", unit.id, unit.described,
                              message="{:,} samples, deleting unit {} ({}); it is disabled"
                              .format(step.deleted, unit.code, chore.outcome))
        app.run_chore(request, "Deleting unit %s" % unit.code, step, done)
        return ("Deleting the unit “{}” and its {:,} samples: it is disabled now, and goes "
                "once its samples have, a chunk at a time.".format(unit.described, count))

    # -- the form

    def form(self, request, unit):
        st = request.store
        others = [(u.code, u.described) for u in st.units.all()
                  if (unit is None or u.id != unit.id) and request.access.sees(u)]
        # Its source stays a choice even if this visitor does not see it
        # (else saving the form would quietly change it).
        sources = others + [(u.code, u.described) for u in st.units.all()
                            if unit is not None and u.id == unit.source_id
                            and not request.access.sees(u)]
        count = unit.fields if unit is not None else NEW_UNIT_FIELDS
        numbers = [(str(f), "%d %s" % (f, unit.label(f - 1)) if unit else str(f))
                   for f in range(1, count + 1)]
        fields = [
            forms.Text("code", "Code", "letters and digits, as the meter sends it",
                       required=True, max_length=32, pattern=CODE,
                       pattern_reason="1 to 32 letters and digits"),
            forms.Text("key", "Key", "what the meter sends to prove it is this unit",
                       required=True, max_length=64, pattern=KEY,
                       pattern_reason="1 to 64 printable ASCII characters, no spaces"),
            forms.Text("name", "Name"),
            forms.Text("description", "Description", multiline=True, max_length=2000),
            forms.Integer("fields", "Number of data fields", range(1, store.MAX_FIELDS + 1),
                          "1 to 32 values per sample"),
            forms.Boolean("enabled", "Enabled", "a disabled unit's requests are refused"),
            forms.Table("field_table", "Fields",
                       ["%d" % f for f in range(1, count + 1)],
                       [("field_names", "Name", None), ("field_units", "Unit of measure", None),
                        ("field_axis", "Graph axis",
                         [("", "own")] + [(str(a), "axis %d" % a) for a in range(1, AXES + 1)])],
                       "each field's name and unit of measure (shown on graphs, statistics "
                       "and displays), and the graph axis it is drawn on; fields on no axis "
                       "(\u201cown\u201d) get one per unit of measure"),
            forms.Table("axis_table", "Graph axes", ["axis %d" % a for a in range(1, AXES + 1)],
                       [("axis_label", "Label", None)], "a label for each axis used",
                       commas=True),
            forms.Integer("graph_width", "Graph width (pixels)", rules.GRAPH_PIXELS),
            forms.Integer("graph_height", "Graph height (pixels)", rules.GRAPH_PIXELS),
            forms.Many("report_fields", "Report fields", numbers,
                       "the fields exports and the unit page offer (none ticked: all)"),
            forms.Choice("source", "Source unit", [("", "itself")] + sources,
                         "whose samples a plain dl reads"),
            forms.Many("reads", "Units it may read with dl", others, select=True),
            forms.Integer("expected_interval", "Expected interval (seconds)",
                          EXPECTED_SECONDS, "how often the meter should upload: its status "
                          "is late after twice this, silent after 10 times (or after the "
                          "silent-meter alarm's wait); empty: the usual spacing of its "
                          "newest samples", required=False),
            forms.Integer("silent_minutes", "Silent-meter alarm after (minutes)",
                          SILENT_MINUTES, "with no upload for this long, an alarm is raised "
                          "once, and a \u201cback online\u201d one when data resumes; empty: "
                          "never", required=False),
            forms.Integer("silent_level", "Silent-meter alarm level", LEVELS,
                          "0 to 99 (empty: 1)", required=False),
            forms.Text("webhook_url", "Webhook", "an http(s) address its alarms are posted "
                       "to as JSON (chat, paging); empty: none", max_length=500,
                       pattern=r"https?://[^\s]{1,490}", pattern_reason="an http:// or "
                       "https:// address"),
        ]
        if unit is None:
            initial = {"fields": NEW_UNIT_FIELDS, "enabled": True, "silent_level": 1,
                       "graph_width": 800, "graph_height": 300,
                       "field_table": {"field_names": (), "field_units": (), "field_axis": ()},
                       "axis_table": {"axis_label": ()}}
        else:
            options = st.units.graph_options(unit)
            initial = _settings(st, unit)
            initial["reads"] = {code for code in initial["reads"]
                                if request.access.sees(st.units.get(code))}
            initial["field_table"] = _table_initial(unit, options)
            initial["axis_table"] = {"axis_label": tuple(
                axis.label for axis in options.axes[:AXES])}
        return forms.Form(fields, initial)

    def check(self, request, form, unit):
        self.unique(form, "code", request.store.units.get(form.cleaned["code"]), unit)
        try:
            rules.check_field_count(*self._planned(request, form, unit))
        except ValueError as exc:
            form.fail(None, str(exc))

    def _planned(self, request, form, unit):
        """(the unit as it would be, its graph options, the fields displays show)."""
        data = form.cleaned
        table = data["field_table"]
        count = data["fields"]
        planned = store.Unit(
            unit.id if unit else 0, data["code"], data["key"], data["name"],
            data["description"], count, _trimmed(table["field_names"][:count]),
            data["enabled"], None, _trimmed(table["field_units"][:count]),
            tuple(sorted(int(f) for f in data["report_fields"] if int(f) <= count)))
        labels = data["axis_table"]["axis_label"]
        axes = []
        for number in range(1, AXES + 1):
            on = tuple(f for f, axis in enumerate(table["field_axis"][:count], 1)
                       if axis == str(number))
            if on:
                axes.append(store.Axis(labels[number - 1], on))
        options = store.GraphOptions(data["graph_width"], data["graph_height"], tuple(axes))
        shown = request.store.displays.fields_shown(unit) if unit else set()
        return planned, options, shown

    def save(self, request, form, unit):
        st = request.store
        planned, options, _ = self._planned(request, form, unit)
        data = form.cleaned
        before = {} if unit is None else _settings(st, unit)
        if unit is None:
            unit = st.units.add(planned.code, planned.key, planned.fields)
        source = st.units.get(data["source"]) if data["source"] else None
        unit = st.units.change(
            unit, code=planned.code, key=planned.key, name=planned.name,
            description=planned.description, fields=planned.fields,
            field_names=planned.field_names, field_units=planned.field_units,
            report_fields=planned.report_fields, enabled=planned.enabled,
            source_id=source.id if source else None, silent_minutes=data["silent_minutes"],
            silent_level=1 if data["silent_level"] is None else data["silent_level"],
            webhook_url=data["webhook_url"], expected_interval=data["expected_interval"])
        # Units it reads that this visitor does not see were not offered:
        # they stay as they were.
        hidden = {code for code in (before.get("reads") or ())
                  if not request.access.sees(st.units.get(code))}
        st.units.set_reads(unit, [st.units.get(code) for code in sorted(data["reads"] | hidden)])
        st.units.set_graph_options(unit, options)
        after = _settings(st, unit)
        changes = {name: [before.get(name), value] for name, value in after.items()
                   if before and before.get(name) != value}
        return unit, changes


def _trimmed(cells):
    """Per-field texts without the empty ones at the end (stored shorter)."""
    cells = list(cells)
    while cells and not cells[-1]:
        cells.pop()
    return tuple(cells)


"""The models HTTP apps declare: `TableAdmin`, one `ModelAdmin` for any
app table, made from a declaration in the app's ``admin.py`` (docs/web.md,
"Apps' models").

A declaration is a dict of literals, like a TTP app's ``Extension``, so
an app says what its table is and the admin does the rest with its own
change list, form, delete and log (`views`), as for every model:

    {"name": "note", "table": "notes_note",
     "columns": [{"name": "unit", "label": "Unit", "type": "text", "required": True},
                 {"name": "body", "type": "text", "multiline": True, "max_length": 2000},
                 {"name": "done", "type": "boolean"}],
     "list": ["unit", "body", "done"], "search": ["unit", "body"], "sort": ["unit"]}

`KEYS` and `COLUMN_KEYS` say what each key means; a key not known, a
value of the wrong kind or a name out of shape is a ValueError naming it
(the app fails to load). The model is ``<app>.<name>`` (``notes.note``):
its URL segment, its action log model, and the prefix of its permissions
``notes.note.view``, ``.add``, ``.change``, ``.delete``, which superusers
have and which users and groups are given in their forms like any other
(the registry lists them). Rows are read and written through
``store.app_tables`` with only the declared columns.
"""

from texmate_ds import store
from texmate_ds.store import app_tables
from texmate_ds.web import app, forms
from texmate_ds.web.admin.options import Column, ModelAdmin, row_id

# What a declaration may say: key -> (the type of its value, what it is).
KEYS = {
    "name": (str, "the model's name in the app: lower-case letters, digits and _"),
    "table": (str, "the app's table, <app>_..., with an INTEGER PRIMARY KEY id"),
    "columns": (list, "the columns the form edits, in order (besides id)"),
    "list": (list, "the columns the change list shows (default: all), the first a link"),
    "search": (list, "the text columns ?q= searches (default: none, no search box)"),
    "sort": (list, "the columns the list sorts by (default: none; newest first)"),
    "singular": (str, "the model for people (default: its name)"),
    "plural": (str, "(default: the singular and s)"),
    "description": (str, "a line for the admin's index"),
}
COLUMN_KEYS = {
    "name": (str, "the table's column"),
    "label": (str, "the form's label and the list's heading (default: the name)"),
    "type": (str, "text, integer, boolean or choice (default: text)"),
    "required": (bool, "refuse an empty value (default: no)"),
    "help": (str, "a line under the field"),
    "max_length": (int, "text: the most characters, 1 to 10,000 (default 200)"),
    "multiline": (bool, "text: a box of several lines"),
    "min": (int, "integer: the least value"),
    "max": (int, "integer: the greatest value"),
    "choices": (list, 'choice: [["value", "text"], ...]'),
}
# The keys only one type takes.
_ONLY = {"max_length": "text", "multiline": "text", "min": "integer", "max": "integer",
         "choices": "choice"}
# How the change list shows each type.
_KIND = {"text": "text", "integer": "num", "boolean": "bool", "choice": "text"}
# What forms.Integer reads: nine digits and a sign.
_INTEGERS = 999_999_999
TEXT_LONGEST = 10_000


def _checked(given, keys, where):
    """`given` (a dict) with each key known and its value of its type."""
    if not isinstance(given, dict):
        raise ValueError("%s: expected a dict, not %s" % (where, type(given).__name__))
    for key, value in given.items():
        if key not in keys:
            raise ValueError("%s: unknown key %r (known: %s)" % (where, key, ", ".join(keys)))
        kind = keys[key][0]
        # A list may be written as a tuple; bool is an int to Python, never
        # to a declaration.
        if not isinstance(value, (list, tuple) if kind is list else kind) or (
                kind is int and isinstance(value, bool)):
            raise ValueError("%s: %s: expected %s, not %r" % (where, key, kind.__name__, value))
    return given


class _Field:
    """One declared column, checked: its name, label, type and what its
    type takes."""

    def __init__(self, given, where):
        _checked(given, COLUMN_KEYS, where)
        if "name" not in given:
            raise ValueError("%s: name: required" % where)
        self.name = given["name"]
        where = "%s (%s)" % (where, self.name)
        self.type = given.get("type", "text")
        if self.type not in _KIND:
            raise ValueError("%s: type: one of %s, not %r" % (where, ", ".join(_KIND), self.type))
        for key, only in _ONLY.items():
            if key in given and self.type != only:
                raise ValueError("%s: %s: only for %s columns" % (where, key, only))
        self.label = given.get("label") or self.name.replace("_", " ").capitalize()
        self.required = given.get("required", False)
        self.help = given.get("help", "")
        self.max_length = given.get("max_length", forms.TEXT_MAX)
        if not 1 <= self.max_length <= TEXT_LONGEST:
            raise ValueError("%s: max_length: 1 to %d" % (where, TEXT_LONGEST))
        self.multiline = given.get("multiline", False)
        self.least, self.most = given.get("min", -_INTEGERS), given.get("max", _INTEGERS)
        if not -_INTEGERS <= self.least <= self.most <= _INTEGERS:
            raise ValueError("%s: min and max: from -%d to %d, min first"
                             % (where, _INTEGERS, _INTEGERS))
        self.choices = []
        for pair in given.get("choices", []):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2
                    and all(isinstance(part, str) and part for part in pair)):
                raise ValueError('%s: choices: expected ["value", "text"] pairs, not %r'
                                 % (where, pair))
            self.choices.append(tuple(pair))
        if self.type == "choice" and not self.choices:
            raise ValueError("%s: choices: required for a choice" % where)
        if len({value for value, _ in self.choices}) != len(self.choices):
            raise ValueError("%s: choices: a value is offered twice" % where)

    def form_field(self):
        if self.type == "integer":
            return forms.Integer(self.name, self.label, range(self.least, self.most + 1),
                                 self.help, self.required)
        if self.type == "boolean":
            return forms.Boolean(self.name, self.label, self.help)
        if self.type == "choice":
            offered = self.choices if self.required else [("", "—")] + self.choices
            return forms.Choice(self.name, self.label, offered, self.help, self.required)
        return forms.Text(self.name, self.label, self.help, self.required, self.max_length,
                          multiline=self.multiline)

    def initial(self, value):
        """A stored value as the form starts from it."""
        if self.type == "boolean":
            return bool(value)
        if self.type == "integer":
            return value
        return "" if value is None else str(value)

    def stored(self, cleaned):
        """A form's value as the table keeps it."""
        return int(cleaned) if self.type == "boolean" else cleaned


class TableAdmin(ModelAdmin):
    """An app's table in the admin, as its declaration says (see the
    module docstring); `table` is its `store.app_tables.Table`."""

    def __init__(self, app_name, declaration):
        given = _checked(declaration, KEYS, "model")
        for key in ("name", "table", "columns"):
            if key not in given:
                raise ValueError("model: %s: required" % key)
        model = given["name"]
        if not app_tables.COLUMN.fullmatch(model):
            raise ValueError("model %r: name: lower-case letters, digits and _, from a letter"
                             % model)
        where = "model %s" % model
        self.fields = [_Field(column, "%s: columns[%d]" % (where, index))
                       for index, column in enumerate(given["columns"])]
        if not self.fields:
            raise ValueError("%s: columns: one at least" % where)
        names = [field.name for field in self.fields]
        listed = given.get("list") or names
        searched, sortable = given.get("search", []), given.get("sort", [])
        by_name = {field.name: field for field in self.fields}
        for key, chosen in (("list", listed), ("search", searched), ("sort", sortable)):
            unknown = [name for name in chosen if name not in by_name]
            if unknown:
                raise ValueError("%s: %s: %r is not one of its columns" % (where, key, unknown[0]))
        if any(by_name[name].type not in ("text", "choice") for name in searched):
            raise ValueError("%s: search: text and choice columns only" % where)
        try:
            self.table = app_tables.declare(app_name, given["table"], names, searched, sortable)
        except ValueError as exc:
            raise ValueError("%s: %s" % (where, exc)) from None
        self.by_name = by_name
        self.name = "%s.%s" % (app_name.lower(), model)
        self.singular = given.get("singular") or model.replace("_", " ")
        self.plural = given.get("plural") or self.singular + "s"
        self.description = given.get("description", "")
        self.columns = tuple(Column(name, by_name[name].label,
                                    name if name in sortable else None,
                                    _KIND[by_name[name].type]) for name in listed)
        self.search = ", ".join(by_name[name].label.lower() for name in searched) or None

    # -- rows

    def get(self, request, pk):
        found = row_id(pk)
        return None if found is None else request.store.app_tables.get(self.table, found)

    def describe(self, row):
        """The first listed column's text, else the row's number."""
        text = str(self.cell(None, row, self.columns[0].name) or "").strip()
        text = " ".join(text.split())
        if not text or self.columns[0].kind == "bool":
            return "%s %d" % (self.singular, row.id)
        return text if len(text) <= 60 else text[:57] + "..."

    def search_rows(self, request, query, offset, limit):
        return request.store.app_tables.find(self.table, query.q, query.o, offset, limit)

    def cell(self, request, row, name):
        field, value = self.by_name[name], getattr(row, name)
        if field.type == "choice":
            return dict(field.choices).get(value, value)
        return bool(value) if field.type == "boolean" else value

    # -- forms

    def form(self, request, row):
        initial = {} if row is None else {
            field.name: field.initial(getattr(row, field.name)) for field in self.fields}
        return forms.Form([field.form_field() for field in self.fields], initial)

    def save(self, request, form, row):
        values = {field.name: field.stored(form.cleaned[field.name]) for field in self.fields}
        tables = request.store.app_tables
        try:
            if row is None:
                return tables.add(self.table, values), {}
            saved = tables.change(self.table, row.id, values)
        except store.Conflict as exc:
            raise app.HTTPError(409, "a %s with these values exists already (%s)"
                                % (self.singular, exc)) from None
        except store.NotFound as exc:
            raise app.HTTPError(400, "it refers to something that is not there (%s)"
                                % exc) from None
        if saved is None:
            raise app.HTTPError(404, "this %s was deleted meanwhile" % self.singular)
        return saved, form.changed()

    def delete(self, request, row):
        try:
            request.store.app_tables.delete(self.table, row.id)
        except store.NotFound as exc:
            raise app.HTTPError(409, "other rows refer to this %s (%s)"
                                % (self.singular, exc)) from None

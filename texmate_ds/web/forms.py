"""Forms: fields that read what a browser (or a script) posted, check it,
and say what is wrong beside the field.

Fields: `Text`, `Password`, `Integer`, `Boolean` (a checkbox), `Choice`
(one of a list), `Many` (checkboxes or a multiple select), `Table` (a row
of inputs per item: a unit's fields).

A `Form` is a list of fields and the values it starts from (`initial`).
``form.bind(params)`` reads each field's value out of the posted
parameters (`app.Params`), and `cleaned` holds the typed values of those
that were right while `errors` maps each wrong field's name to one line
saying why. `Form.fail(name, reason)` adds an error a later check found
(a code already taken). ``form.rows()`` is what ``admin/form.html``
lays out: one dict per field with what the visitor typed kept (a
password never).

A field's `name` is the parameter the form posts, named after the
model's column (``code``, ``is_staff``), so that scripts can fill forms
in. Reading never trusts the browser: a choice that was not offered is
an error like any other, and every text has a length cap.
"""

import re

# Text fields are capped (a form body is 64 KiB in all, and a name of
# that length would help no one).
TEXT_MAX = 200


class Invalid(Exception):
    """A value that cannot be taken; the one-line reason for its field."""


class Field:
    """One input. `label` is shown; `help` is a line under it; `required`
    refuses an empty value; `kind` picks the template's widget."""

    kind = "text"
    lists = False        # the parameter may repeat (checkboxes)

    def __init__(self, name, label, help="", required=False):
        self.name, self.label, self.help, self.required = name, label, help, required

    def read(self, params):
        """The raw value posted: a str (a list for `lists` fields)."""
        return params.getlist(self.name) if self.lists else params.get(self.name, "")

    def clean(self, raw):
        raw = raw.strip()
        if not raw:
            if self.required:
                raise Invalid("this field is required")
            return self.empty()
        return self.convert(raw)

    def empty(self):
        return ""

    def convert(self, raw):
        return raw

    def shown(self, value):
        """`value` (typed, or raw text kept from a refused post) as the
        input shows it."""
        return "" if value is None else str(value)


class Text(Field):
    def __init__(self, name, label, help="", required=False, max_length=TEXT_MAX,
                 pattern=None, pattern_reason="", multiline=False):
        super().__init__(name, label, help, required)
        self.max_length = max_length
        # `pattern` is matched whole against the value: keep it linear.
        self.pattern = re.compile(pattern) if pattern else None
        self.pattern_reason = pattern_reason
        if multiline:
            self.kind = "textarea"

    def convert(self, raw):
        if len(raw) > self.max_length:
            raise Invalid("at most %d characters" % self.max_length)
        if self.pattern is not None and not self.pattern.fullmatch(raw):
            raise Invalid(self.pattern_reason)
        if not raw.isprintable() and self.kind != "textarea":
            raise Invalid("no control characters")
        return raw


class Password(Text):
    kind = "password"

    def clean(self, raw):
        # Spaces are part of a password: not stripped.
        if not raw and self.required:
            raise Invalid("this field is required")
        if len(raw) > self.max_length:
            raise Invalid("at most %d characters" % self.max_length)
        return raw

    def shown(self, value):
        return ""


class Integer(Field):
    kind = "number"

    def __init__(self, name, label, allowed, help="", required=True):
        super().__init__(name, label, help, required)
        self.allowed = allowed   # a range

    def empty(self):
        return None

    def convert(self, raw):
        if not re.fullmatch(r"-?[0-9]{1,9}", raw):
            raise Invalid("a whole number")
        value = int(raw)
        if value not in self.allowed:
            raise Invalid("a number from %d to %d" % (self.allowed.start,
                                                      self.allowed.stop - 1))
        return value


class Boolean(Field):
    """A checkbox: posted (with any value) is True, missing False."""

    kind = "checkbox"

    def clean(self, raw):
        return raw != ""

    def read(self, params):
        return "on" if self.name in params else ""


class Choice(Field):
    """One of `choices`, [(value, text)]; "" is none unless `required`."""

    kind = "select"

    def __init__(self, name, label, choices, help="", required=False):
        super().__init__(name, label, help, required)
        self.choices = [(str(value), text) for value, text in choices]

    def convert(self, raw):
        if raw not in dict(self.choices):
            raise Invalid("not one of the choices")
        return raw


class Many(Field):
    """Any of `choices` (checkboxes, or a multiple select for long lists):
    a set of their values (str)."""

    lists = True

    def __init__(self, name, label, choices, help="", select=False):
        super().__init__(name, label, help)
        self.choices = [(str(value), text) for value, text in choices]
        self.kind = "multiselect" if select else "checkboxes"

    def clean(self, raw):
        offered = {value for value, _ in self.choices}
        chosen = set(raw)
        if not chosen <= offered:
            raise Invalid("not one of the choices: %s" % ", ".join(sorted(chosen - offered))[:80])
        return chosen

    def shown(self, value):
        return value or set()


class Table(Field):
    """Several per-row inputs as one field, laid out as a table: `rows`
    are the rows' names, `columns` (param, heading, choices or None for
    text), each posted once per row in order; the value is {param: tuple
    of the rows' values}. Cells hold 40 characters at most, and no comma
    unless `commas` (values stored comma-joined must not)."""

    kind = "table"
    lists = True

    def __init__(self, name, label, rows, columns, help="", commas=False):
        super().__init__(name, label, help)
        self.row_names = rows
        self.columns = columns
        self.commas = commas

    def read(self, params):
        return {param: params.getlist(param) for param, _, _ in self.columns}

    def clean(self, raw):
        value = {}
        for param, heading, choices in self.columns:
            cells = [cell.strip() for cell in raw[param]][:len(self.row_names)]
            cells += [""] * (len(self.row_names) - len(cells))
            for number, cell in enumerate(cells, 1):
                if len(cell) > 40 or ("," in cell and not self.commas) or not cell.isprintable():
                    raise Invalid("%s %d: at most 40 characters%s" % (
                        heading.lower(), number, "" if self.commas else ", no commas"))
                if choices is not None and cell not in dict(choices):
                    raise Invalid("%s %d: not one of the choices" % (heading.lower(),
                                                                          number))
            value[param] = tuple(cells)
        return value

    def shown(self, value):
        rows = []
        for index, row_name in enumerate(self.row_names):
            cells = []
            for param, heading, choices in self.columns:
                cell = value[param][index] if index < len(value[param]) else ""
                cells.append({"param": param, "heading": heading, "value": cell,
                              "choices": None if choices is None else [
                                  {"value": v, "text": t, "checked": v == cell}
                                  for v, t in choices]})
            rows.append({"name": row_name, "cells": cells})
        return {"headings": [heading for _, heading, _ in self.columns], "rows": rows}


class Form:
    """`fields` with the typed values they start from (`initial`: name ->
    value). Bound to a post, `cleaned` and `errors` tell how it went."""

    def __init__(self, fields, initial=None):
        self.fields = list(fields)
        self.initial = dict(initial or {})
        self.values = dict(self.initial)    # what the inputs show
        self.cleaned = {}
        self.errors = {}
        self.general = []                   # errors of no one field

    def field(self, name):
        return next(field for field in self.fields if field.name == name)

    def bind(self, params):
        """Read and check every field from `params`; True if all are right."""
        for field in self.fields:
            raw = field.read(params)
            self.values[field.name] = raw
            try:
                self.cleaned[field.name] = field.clean(raw)
            except Invalid as reason:
                self.errors[field.name] = str(reason)
        return not self.errors

    def fail(self, name, reason):
        """An error found after `bind` (None: of the whole form)."""
        if name is None:
            self.general.append(reason)
        else:
            self.errors.setdefault(name, reason)

    @property
    def valid(self):
        return not self.errors and not self.general

    def changed(self):
        """{name: [initial, cleaned]} of the fields whose value changed."""
        return {name: [self.initial.get(name), value] for name, value in self.cleaned.items()
                if value != self.initial.get(name)}

    def rows(self):
        """The fields as the template lays them out."""
        rows = []
        for field in self.fields:
            value = self.values.get(field.name)
            shown = value if isinstance(value, str) and field.kind not in (
                "password", "checkboxes", "multiselect") else field.shown(value)
            if field.kind in ("checkboxes", "multiselect"):
                chosen = {str(v) for v in (value or ())}
                shown = [{"value": v, "text": t, "checked": v in chosen}
                         for v, t in field.choices]
            elif field.kind == "select":
                shown = [{"value": v, "text": t, "checked": v == str(value or "")}
                         for v, t in field.choices]
            elif field.kind == "checkbox":
                shown = value not in (False, "", None)
            rows.append({"name": field.name, "label": field.label, "help": field.help,
                         "kind": field.kind, "value": shown, "required": field.required,
                         "error": self.errors.get(field.name, "")})
        return rows

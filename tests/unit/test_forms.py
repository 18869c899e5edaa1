"""Form fields: what each takes, what it refuses and why, and what a
refused form shows again (what was typed, never a password)."""

from texmate_ds.web import forms
from texmate_ds.web.app import Params


def bound(fields, pairs, initial=None):
    form = forms.Form(fields, initial)
    form.bind(Params(pairs, "form"))
    return form


def test_each_field_takes_what_is_right_and_says_why_not():
    fields = [forms.Text("code", "Code", required=True, max_length=5, pattern="[A-Z0-9]+",
                         pattern_reason="capitals and digits"),
              forms.Text("name", "Name"),
              forms.Integer("fields", "Fields", range(1, 33)),
              forms.Boolean("enabled", "Enabled"),
              forms.Choice("source", "Source", [("A1", "A1")]),
              forms.Many("reads", "Reads", [("A1", "A1"), ("B7", "B7")])]
    form = bound(fields, [("code", " A1 "), ("name", ""), ("fields", "4"), ("enabled", "on"),
                          ("source", "A1"), ("reads", "B7"), ("reads", "A1")])
    assert form.valid and form.cleaned == {"code": "A1", "name": "", "fields": 4,
                                           "enabled": True, "source": "A1",
                                           "reads": {"A1", "B7"}}
    form = bound(fields, [("code", "a b"), ("name", "x\x00"), ("fields", "33"),
                          ("source", "Z9"), ("reads", "Z9")])
    assert form.errors == {"code": "capitals and digits", "name": "no control characters",
                           "fields": "a number from 1 to 32", "source": "not one of the choices",
                           "reads": "not one of the choices: Z9"}
    assert bound(fields, [("code", "ABCDEF")]).errors["code"] == "at most 5 characters"
    missing = bound(fields, [])
    assert missing.errors["code"] == "this field is required"
    assert missing.errors["fields"] == "this field is required"
    assert missing.cleaned["enabled"] is False and missing.cleaned["reads"] == set()
    assert bound(fields, [("fields", "4.5")]).errors["fields"] == "a whole number"


def test_a_refused_form_keeps_what_was_typed_but_passwords():
    fields = [forms.Text("name", "Name", required=True), forms.Password("password1", "Pw"),
              forms.Boolean("enabled", "Enabled"),
              forms.Many("reads", "Reads", [("A1", "A1"), ("B7", "B7")])]
    form = bound(fields, [("name", "<b>"), ("password1", " secret "), ("reads", "B7")],
                 {"enabled": True})
    assert form.cleaned["password1"] == " secret "            # spaces are the password's
    rows = {row["name"]: row for row in form.rows()}
    assert rows["name"]["value"] == "<b>" and rows["password1"]["value"] == ""
    assert rows["enabled"]["value"] is False                  # unticked on the post
    assert [c["checked"] for c in rows["reads"]["value"]] == [False, True]
    form.fail("name", "taken")
    form.fail(None, "something of the whole form")
    assert not form.valid and form.general == ["something of the whole form"]
    assert form.changed() == {"name": [None, "<b>"], "password1": [None, " secret "],
                              "enabled": [True, False], "reads": [None, {"B7"}]}


def test_a_table_reads_a_value_per_row_and_keeps_commas_out():
    table = forms.Table("field_table", "Fields", ["1", "2"],
                        [("field_names", "Name", None),
                         ("field_axis", "Axis", [("", "own"), ("1", "axis 1")])])
    form = bound([table], [("field_names", " Flow "), ("field_names", "Level"),
                           ("field_names", "ignored: a row too many"), ("field_axis", "1")])
    assert form.cleaned["field_table"] == {"field_names": ("Flow", "Level"),
                                           "field_axis": ("1", "")}
    form = bound([table], [("field_names", "Flow, total")])
    assert form.errors["field_table"] == "name 1: at most 40 characters, no commas"
    form = bound([table], [("field_axis", ""), ("field_axis", "9")])
    assert form.errors["field_table"] == "axis 2: not one of the choices"
    labels = forms.Table("axis_table", "Axes", ["axis 1"], [("axis_label", "Label", None)],
                         commas=True)
    assert bound([labels], [("axis_label", "Flow, level")]).valid

"""The Administration Control Panel over real HTTP: each model's list,
add, change and delete, the permission matrix, unit visibility, the
deletion switches, the last-superuser rule and the action log."""

import re

import pytest

from texmate_ds import auth

import conftest

PASSWORD = "a long password"
ALL_TABLES = ("units", "samples", "users", "groups", "user_groups", "user_permissions",
              "group_permissions", "user_units", "group_units", "api_tokens", "displays",
              "display_channels", "unit_reads", "action_log")


class Admin(conftest.WSGISite):
    def __init__(self, engine, folder, **settings):
        super().__init__(engine, folder / "admin.db", **settings)
        self.root = self.browser("root", superuser=True)

    def add_user(self, username, staff=True, superuser=False, permissions=(), units=(),
                 all_units=False):
        db = self.db
        user = db.accounts.add_user(username, auth.hash_password(PASSWORD), is_staff=staff,
                                    is_superuser=superuser, all_units=all_units)
        db.accounts.set_permissions("user", user.id, permissions)
        db.accounts.set_units("user", user.id, [db.units.get(code).id for code in units])
        db.commit()
        return user

    def browser(self, username, **flags):
        self.add_user(username, **flags)
        browser = Browser(self.port)
        assert browser.sign_in(username, PASSWORD).status == 303
        return browser

    def unit(self, code, fields=2, samples=0, name=""):
        unit = self.db.units.add(code, "key" + code, fields, name=name)
        if samples:
            self.db.samples.add(unit, [(1_000_000 * (i + 1), tuple(float(i + f)
                                                                   for f in range(fields)))
                                       for i in range(samples)])
        self.db.commit()
        return self.db.units.get(code)

    def snapshot(self):
        """Every row of every table the admin can change."""
        self.db.notice_others()
        return {table: self.db.all("SELECT * FROM %s ORDER BY 1, 2" % table)
                for table in ALL_TABLES}

    def log(self, **filters):
        self.db.notice_others()
        return self.db.log.entries(**filters)


class Browser(conftest.Browser):
    def submit(self, path, fields, page=None):
        """Post `fields` (pairs or a dict) with the CSRF token of the form
        at `page` (default `path`), as a person pressing Save would."""
        pairs = list(fields.items()) if isinstance(fields, dict) else list(fields)
        return self.post(path, [("csrf_token", self.csrf(page or path))] + pairs)


@pytest.fixture
def admin(tmp_path, engine):
    sites = []

    def start(**settings):
        sites.append(Admin(engine, tmp_path / str(len(sites)), **settings))
        return sites[-1]
    yield start
    for site in sites:
        site.stop()


def errors(answer):
    return re.findall(r'<p class="error">([^<]*)</p>', answer.body)


def unit_form(**changes):
    form = {"code": "A1", "key": "secret", "name": "Pump", "description": "", "fields": "2",
            "enabled": "on", "graph_width": "800", "graph_height": "300", "source": ""}
    form.update(changes)
    return [(k, v) for k, v in form.items() if v is not None]


# -- units ---------------------------------------------------------------------

def test_a_unit_is_added_listed_changed_and_deleted_with_a_log_of_each(admin):
    site = admin()
    root = site.root
    answer = root.submit("/admin/units/add/", unit_form() + [
        ("field_names", "Flow"), ("field_names", "Level"),
        ("field_units", "m³/h"), ("field_units", "m"),
        ("field_axis", "1"), ("field_axis", "2"),
        ("axis_label", "Flow, m³/h"), ("axis_label", "Level"), ("report_fields", "2")])
    assert answer.status == 303 and answer.header("Location") == "/admin/units/"
    unit = site.db.units.get("A1")
    assert (unit.name, unit.fields, unit.field_names, unit.field_units, unit.report_fields) == (
        "Pump", 2, ("Flow", "Level"), ("m³/h", "m"), (2,))
    options = site.db.units.graph_options(unit)
    assert [(a.label, a.fields) for a in options.axes] == [("Flow, m³/h", (1,)), ("Level", (2,))]
    listing = root.get("/admin/units/")
    assert listing.status == 200 and "Pump" in listing.body and "The unit “A1 (Pump)” was added." \
        in listing.body

    site.db.samples.add(unit, [(1, (1.0, 2.0)), (2, (1.0, 2.0))])
    site.db.commit()
    form = root.get("/admin/units/%d/change/" % unit.id)
    assert form.status == 200 and 'value="m³/h"' in form.body
    answer = root.submit("/admin/units/A1/change/", unit_form(name="Main pump", key="new-key")
                         + [("field_names", "Flow"), ("field_names", "Level")])
    assert answer.status == 303
    [entry] = site.log(model="units", limit=1)
    assert entry.actor == "root" and entry.action == "change"
    assert entry.changes["name"] == ["Pump", "Main pump"] and entry.changes["key"] == "(changed)"
    assert "secret" not in str(entry) and "new-key" not in str(entry)

    confirm = root.get("/admin/units/A1/delete/")
    assert confirm.status == 200 and "2 samples" in confirm.body
    assert root.submit("/admin/units/A1/delete/", {}, page="/admin/units/A1/delete/").status == 303
    assert site.db.units.get("A1") is None
    assert [e.action for e in site.log(model="units")] == ["delete", "change", "add"]


def test_a_refused_form_says_why_beside_each_field_and_keeps_what_was_typed(admin):
    site = admin()
    site.unit("B7")
    answer = site.root.submit("/admin/units/add/", unit_form(
        code="B 7", fields="40", name="<b>Pump</b>", key="has space"))
    assert answer.status == 400
    assert "1 to 32 letters and digits" in answer.body
    assert "a number from 1 to 32" in answer.body
    assert "printable ASCII" in answer.body
    assert 'value="B 7"' in answer.body and "&lt;b&gt;Pump&lt;/b&gt;" in answer.body
    answer = site.root.submit("/admin/units/add/", unit_form(code="B7"))
    assert answer.status == 400 and "a unit with this code exists already" in errors(answer)
    assert site.db.units.count() == 1


def test_a_unit_cannot_lose_fields_its_displays_show(admin):
    site = admin()
    unit = site.unit("A1", fields=3)
    site.db.displays.add("Plant", 5, [(unit, 3)])
    site.db.commit()
    answer = site.root.submit("/admin/units/A1/change/", unit_form(fields="2"))
    assert answer.status == 400 and "a display shows field(s) 3" in answer.body
    assert site.db.units.get("A1").fields == 3


# -- the permission matrix -----------------------------------------------------

def test_a_staff_user_without_a_permission_gets_403_and_nothing_changes(admin):
    site = admin()
    site.unit("A1", samples=3)
    site.db.displays.add("Plant", 5, [(site.db.units.get("A1"), 1)])
    site.db.commit()
    viewer = site.browser("viewer", permissions=["samples.view"], all_units=True)
    sample_id = site.db.samples.last(site.db.units.get("A1"))[0]
    before = site.snapshot()
    root = site.root
    token = root.csrf("/admin/")
    viewer_token = viewer.csrf("/admin/")
    for model, pk in (("units", "A1"), ("users", "1"), ("groups", None), ("displays", "1"),
                      ("tokens", None)):
        assert viewer.get("/admin/%s/" % model).status == 403, model
        assert viewer.get("/admin/%s/add/" % model).status == 403, model
        assert viewer.post("/admin/%s/add/" % model, {"csrf_token": viewer_token,
                                                       "name": "x", "code": "Z9"}).status == 403
        if pk:
            for page in ("change", "delete"):
                path = "/admin/%s/%s/%s/" % (model, pk, page)
                assert viewer.get(path).status == 403, path
                assert viewer.post(path, {"csrf_token": viewer_token}).status == 403, path
    # What samples.view allows: the list and each sample, read-only.
    assert viewer.get("/admin/samples/?unit=A1").status == 200
    assert viewer.get("/admin/samples/%d/change/" % sample_id).status == 200
    for action in ("delete_selected", "delete_all"):
        assert viewer.post("/admin/samples/", {"csrf_token": viewer_token, "action": action,
                                               "unit": "A1", "selected": str(sample_id),
                                               "confirm": "yes"}).status == 403
    assert viewer.post("/admin/samples/%d/delete/" % sample_id,
                       {"csrf_token": viewer_token}).status == 403
    assert viewer.get("/admin/log/").status == 403
    index = viewer.get("/admin/")
    assert "Samples" in index.body and "Units</a>" not in index.body
    assert site.snapshot() == before
    assert token  # the superuser's token was fetched without changing anything either


def test_the_admin_needs_staff_and_a_csrf_token(admin):
    site = admin()
    anonymous = Browser(site.port)
    answer = anonymous.get("/admin/units/")
    assert answer.status == 302 and answer.header("Location").startswith("/login/?next=")
    plain = site.browser("plain", staff=False, all_units=True)
    assert plain.get("/admin/").status == 403
    before = site.snapshot()
    assert site.root.post("/admin/units/add/", unit_form()).status == 403
    assert site.snapshot() == before


def test_a_permission_given_through_a_group_counts(admin):
    site = admin()
    member = site.browser("member")
    root = site.root
    assert member.get("/admin/units/").status == 403
    answer = root.submit("/admin/groups/add/", [("name", "Engineers"),
                                                ("permissions", "units.view"),
                                                ("permissions", "units.add"), ("all_units", "on")])
    assert answer.status == 303
    group = site.db.accounts.find_groups("Engineers")[1][0]
    user = site.db.accounts.get_user_by_name("member")
    form = root.get("/admin/users/%d/change/" % user.id)
    assert form.status == 200
    answer = root.submit("/admin/users/%d/change/" % user.id, [
        ("username", "member"), ("email", ""), ("first_name", ""), ("last_name", ""),
        ("is_active", "on"), ("is_staff", "on"), ("groups", str(group.id))])
    assert answer.status == 303, errors(answer)
    assert member.get("/admin/units/").status == 200
    assert member.submit("/admin/units/add/", unit_form()).status == 303
    assert member.get("/admin/units/A1/delete/").status == 403


# -- users ---------------------------------------------------------------------

def test_users_are_added_with_two_passwords_and_changed(admin):
    site = admin()
    root = site.root
    answer = root.submit("/admin/users/add/", {"username": "ann", "password1": "one pass",
                                               "password2": "another", "email": "a@x.org"})
    assert answer.status == 400 and "the two passwords differ" in errors(answer)
    assert 'value="ann"' in answer.body and "one pass" not in answer.body
    answer = root.submit("/admin/users/add/", {"username": "ann", "password1": PASSWORD,
                                               "password2": PASSWORD, "email": "a@x.org"})
    assert answer.status == 303
    ann = site.db.accounts.get_user_by_name("ann")
    assert answer.header("Location") == "/admin/users/%d/change/" % ann.id
    assert auth.check_password(PASSWORD, ann.password) and not ann.is_staff
    [entry] = site.log(model="users", limit=1)
    assert (entry.action, entry.object_repr) == ("add", "ann")
    assert PASSWORD not in str(entry) and ann.password not in str(entry)
    listing = root.get("/admin/users/?q=ANN")
    table = listing.body.split("<tbody>")[1]
    assert listing.status == 200 and "a@x.org" in table and ">root<" not in table


def test_a_new_password_ends_the_users_other_sessions(admin):
    site = admin()
    ann_browser = site.browser("ann", staff=False, all_units=True)
    ann = site.db.accounts.get_user_by_name("ann")
    path = "/admin/users/%d/password/" % ann.id
    answer = site.root.submit(path, {"password1": "x", "password2": "y"})
    assert answer.status == 400 and "the two passwords differ" in errors(answer)
    answer = site.root.submit(path, {"password1": "new secret", "password2": "new secret"})
    assert answer.status == 303
    assert ann_browser.get("/").status == 302           # signed out
    [entry] = site.log(model="users", limit=1)
    assert entry.changes == {"password": "(changed)"}
    assert Browser(site.port).sign_in("ann", "new secret").status == 303


def test_nobody_deletes_themselves_or_the_last_active_superuser(admin):
    site = admin()
    root = site.root
    me = site.db.accounts.get_user_by_name("root")
    assert root.get("/admin/users/%d/delete/" % me.id).status == 403
    answer = root.submit("/admin/users/%d/change/" % me.id, [
        ("username", "root"), ("is_active", "on"), ("is_staff", "on")])  # no is_superuser
    assert answer.status == 400 and "last active superuser" in answer.body
    assert site.db.accounts.get_user(me.id).is_superuser
    other = site.browser("other", superuser=True)
    assert other.submit("/admin/users/%d/delete/" % me.id, {},
                        page="/admin/users/%d/delete/" % me.id).status == 303
    other_id = site.db.accounts.get_user_by_name("other").id
    assert other.get("/admin/users/%d/delete/" % other_id).status == 403


def test_a_staff_user_may_not_raise_themselves(admin):
    site = admin()
    manager = site.browser("manager", permissions=["users.view", "users.change"])
    me = site.db.accounts.get_user_by_name("manager")
    answer = manager.submit("/admin/users/%d/change/" % me.id, [
        ("username", "manager"), ("is_active", "on"), ("is_staff", "on"),
        ("is_superuser", "on"), ("permissions", "units.delete")])
    assert answer.status == 400
    assert "only a superuser makes or unmakes one" in answer.body
    assert "only a superuser gives or takes permissions" in answer.body
    root_id = site.db.accounts.get_user_by_name("root").id
    assert manager.get("/admin/users/%d/change/" % root_id).status == 200   # a read-only view
    assert manager.post("/admin/users/%d/change/" % root_id,
                        {"csrf_token": manager.csrf("/admin/"), "username": "x"}).status == 403
    assert not site.db.accounts.get_user(me.id).is_superuser


def test_an_api_token_is_shown_once_and_revoked(admin):
    site = admin()
    site.unit("A1")
    ann = site.add_user("ann", staff=False, all_units=True)
    answer = site.root.submit("/admin/tokens/add/", {"user": str(ann.id), "name": "cron"})
    assert answer.status == 200
    secret = re.search(r'<code class="secret">([^<]+)</code>', answer.body).group(1)
    assert Browser(site.port).get("/units/A1/last.json",
                                  Authorization="Bearer " + secret).status == 200
    listing = site.root.get("/admin/tokens/?user=%d" % ann.id)
    assert "cron" in listing.body and secret not in listing.body
    token = site.db.accounts.api_token_named(ann.id, "cron")
    path = "/admin/tokens/%d/delete/" % token.id
    assert site.root.submit(path, {}, page=path).status == 303
    assert Browser(site.port).get("/units/A1/last.json",
                                  Authorization="Bearer " + secret).status == 401
    assert [e.action for e in site.log(model="tokens")] == ["delete", "add"]


# -- unit visibility -----------------------------------------------------------

def without_tokens(body):
    """A page without its CSRF tokens' values: random text, which may hold
    a unit's code by chance."""
    return re.sub(r'(name="csrf_token" value=")[^"]*"', r'\1"', body)


def test_a_user_sees_only_their_units_everywhere(admin):
    site = admin()
    a1, b7 = site.unit("A1", samples=2), site.unit("B7", samples=2, name="Secret")
    display = site.db.displays.add("Plant", 5, [(a1, 1), (b7, 1)])
    site.db.commit()
    ann = site.browser("ann", permissions=["samples.view", "units.view"], units=["A1"])
    home = without_tokens(ann.get("/").body)
    assert "A1" in home and "B7" not in home and "Secret" not in home
    for endpoint in ("", "graph.svg", "samples.csv", "samples.json", "stats.json", "last.json"):
        assert ann.get("/units/A1/" + endpoint).status == 200, endpoint
        assert ann.get("/units/B7/" + endpoint).status == 404, endpoint
        assert ann.get("/units/NOPE/" + endpoint).status == 404, endpoint
    shown = without_tokens(ann.get("/views/%d/" % display.id).body)
    assert "A1" in shown and "B7" not in shown
    assert "B7" not in without_tokens(ann.get("/admin/units/").body)
    assert ann.get("/admin/units/B7/change/").status == 404
    assert ann.get("/admin/samples/?unit=B7").status == 404
    other_sample = site.db.samples.last(b7)[0]
    assert ann.get("/admin/samples/%d/change/" % other_sample).status == 404
    assert "B7" in site.root.get("/").body


# -- samples -------------------------------------------------------------------

def test_samples_page_by_keyset_newest_first_and_are_never_editable(admin):
    site = admin()
    unit = site.unit("A1", samples=250)
    root = site.root
    first = root.get("/admin/samples/?unit=A1")
    assert first.status == 200 and "250 samples" in first.body
    ids = [int(i) for i in re.findall(r'name="selected" value="(\d+)"', first.body)]
    assert len(ids) == 100 and ids == sorted(ids, reverse=True)
    older = re.search(r'href="\?([^"]+)">older', first.body).group(1).replace("&amp;", "&")
    second = root.get("/admin/samples/?" + older)
    assert [int(i) for i in re.findall(r'name="selected" value="(\d+)"', second.body)][0] == \
        ids[-1] - 1
    last = root.get("/admin/samples/?unit=A1&oldest=1")
    last_ids = [int(i) for i in re.findall(r'name="selected" value="(\d+)"', last.body)]
    assert last_ids == list(range(100, 0, -1))
    assert ">older" not in last.body and "newer</a>" in last.body
    detail = root.get("/admin/samples/%d/change/" % ids[0])
    assert detail.status == 200 and "<input" not in detail.body.split("<main>")[1]
    assert root.post("/admin/samples/%d/change/" % ids[0],
                     {"csrf_token": root.csrf("/admin/")}).status == 403
    assert root.get("/admin/samples/add/").status == 404
    assert site.db.units.counts(unit) == (250, 250_000_000)


def test_deleting_selected_old_and_all_samples(admin):
    site = admin()
    unit = site.unit("A1", samples=30)
    root = site.root
    newest = [row[0] for row in site.db.samples.newest_page(unit, 3)]
    form = [("action", "delete_selected")] + [("selected", str(i)) for i in newest]
    confirm = root.submit("/admin/samples/", form, page="/admin/samples/?unit=A1")
    assert confirm.status == 200 and "Are you sure" in confirm.body
    done = root.submit("/admin/samples/", form + [("confirm", "yes")], page="/admin/")
    assert done.status == 303
    assert site.db.units.counts(unit) == (27, 27_000_000)
    assert len(site.log(model="samples")) == 3                      # one entry each

    old = [("action", "delete_old"), ("unit", "A1"), ("before", "1970-01-01 00:00:11")]
    confirm = root.submit("/admin/samples/", old, page="/admin/samples/?unit=A1")
    assert confirm.status == 200 and "10 samples of A1 older than" in confirm.body
    assert root.submit("/admin/samples/", old + [("confirm", "yes")], page="/admin/").status == 303
    assert site.db.units.counts(unit) == (17, 27_000_000)
    [entry] = site.log(model="samples", limit=1)
    assert entry.message == "10 samples before 1970-01-01 00:00:11"

    everything = [("action", "delete_all"), ("unit", "A1"), ("confirm", "yes")]
    assert root.submit("/admin/samples/", everything, page="/admin/").status == 303
    assert site.db.units.counts(unit) == (0, None)
    assert len(site.log(model="samples")) == 5


def test_with_deletion_switched_off_nobody_deletes_samples(admin):
    site = admin(ALLOW_SAMPLE_DELETION=False)
    unit = site.unit("A1", samples=5)
    root = site.root
    page = root.get("/admin/samples/?unit=A1")
    assert page.status == 200 and "Delete" not in page.body and 'name="selected"' not in page.body
    sample = site.db.samples.last(unit)[0]
    token = root.csrf("/admin/")
    for form in ({"action": "delete_selected", "selected": str(sample), "confirm": "yes"},
                 {"action": "delete_all", "unit": "A1", "confirm": "yes"},
                 {"action": "delete_old", "unit": "A1", "before": "-1d", "confirm": "yes"}):
        assert root.post("/admin/samples/", dict(form, csrf_token=token)).status == 403, form
    assert root.get("/admin/samples/%d/delete/" % sample).status == 403
    assert root.post("/admin/samples/%d/delete/" % sample, {"csrf_token": token}).status == 403
    assert site.db.units.counts(unit)[0] == 5


# -- displays and the log ------------------------------------------------------

def test_a_display_is_added_changed_and_deleted(admin):
    site = admin()
    site.unit("A1", fields=3)
    site.unit("B7")
    root = site.root
    answer = root.submit("/admin/displays/add/", [
        ("name", "Plant"), ("refresh", "5"), ("channel_unit", "A1"), ("channel_fields", "1,3"),
        ("channel_unit", "B7"), ("channel_fields", "9")])
    assert answer.status == 400 and "unit B7 has fields 1 to 2, not 9" in answer.body
    answer = root.submit("/admin/displays/add/", [
        ("name", "Plant"), ("refresh", "5"), ("channel_unit", "A1"), ("channel_fields", "1,3"),
        ("channel_unit", "B7"), ("channel_fields", "2")])
    assert answer.status == 303
    _, [display] = site.db.displays.find()
    assert [(u.code, f) for u, f in site.db.displays.channels(display)] == [
        ("A1", [1, 3]), ("B7", [2])]
    answer = root.submit("/admin/displays/%d/change/" % display.id, [
        ("name", "Plant floor"), ("refresh", "10"), ("channel_unit", "B7"),
        ("channel_fields", "1,2")])
    assert answer.status == 303
    [entry] = site.log(model="displays", limit=1)
    assert entry.changes == {"name": ["Plant", "Plant floor"], "refresh": [5, 10],
                             "channels": [["A1:1,3", "B7:2"], ["B7:1,2"]]}
    path = "/admin/displays/%d/delete/" % display.id
    assert root.submit(path, {}, page=path).status == 303
    assert site.db.displays.count() == 0


def test_the_log_filters_by_user_model_and_date(admin):
    site = admin()
    site.root.submit("/admin/units/add/", unit_form())
    site.root.submit("/admin/groups/add/", {"name": "Ops"})

    def table(query):
        answer = site.root.get("/admin/log/" + query)
        assert answer.status == 200
        return answer.body.split("<tbody>")[1]
    assert "A1 (Pump)" in table("?model=units") and "Ops" not in table("?model=units")
    assert "Ops" in table("?actor=root&from=-1d")
    assert "Ops" not in table("?to=2000-01-01") and "Ops" not in table("?actor=someone")
    unit = site.db.units.get("A1")
    form = site.root.get("/admin/units/A1/change/").body
    assert "/admin/log/?model=units&amp;object=%d" % unit.id in form
    assert "A1 (Pump)" in table("?model=units&object=%d" % unit.id)
    assert "A1 (Pump)" not in table("?model=units&object=999")
    assert site.root.get("/admin/log/?from=yesterday").status == 400
    assert site.root.get("/admin/log/?evil=1").status == 400


# -- CSV import ------------------------------------------------------------------

def upload(browser, path, fields, filename, content):
    """Post a multipart form with one file, as a browser does."""
    boundary = "----txmtest7d1f"
    parts = []
    for name, value in [("csrf_token", browser.csrf(path))] + list(fields):
        parts.append('--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
                     % (boundary, name, value))
    body = "".join(parts).encode() + (
        '--%s\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\n'
        "Content-Type: text/csv\r\n\r\n" % (boundary, filename)).encode() + content + (
        "\r\n--%s--\r\n" % boundary).encode()
    return browser.post(path, body,
                        **{"Content-Type": "multipart/form-data; boundary=" + boundary})


def csv_rows(first, count):
    lines = ["id,timestamp,Flow,Level"] + [
        ",2024-03-01 00:%02d:%02d,%d.5,%d" % ((first + i) // 60, (first + i) % 60, i, i)
        for i in range(count)]
    return ("\r\n".join(lines) + "\r\n").encode()


def test_a_csv_file_is_imported_whole_or_not_at_all(admin):
    site = admin()
    unit = site.unit("A1")
    root = site.root
    path = "/admin/samples/import/"
    assert "Import samples" in root.get("/admin/samples/?unit=A1").body
    answer = upload(root, path, [("unit", "A1"), ("duplicates", "skip")], "a.csv",
                    csv_rows(0, 100))
    assert answer.status == 200 and "Imported 100 samples into A1" in answer.body
    assert site.db.units.counts(unit)[0] == 100
    [entry] = site.log(model="samples", limit=1)
    assert (entry.actor, entry.message) == ("root", "100 imported from a.csv")

    bad = csv_rows(100, 10).replace(b",5.5,5", b",1e999,5")
    for content, why in ((bad, "row 7: a value is out of range"),
                         ("id,timestamp,Flow,Level\r\n,2024-03-01 01:00:00,Débit,1\r\n"
                          .encode("latin-1"), "row 2: not UTF-8"),
                         (b"", "the file is empty"),
                         (b"id,timestamp,Flow\r\n", "the header has 3 columns; expected 4")):
        answer = upload(root, path, [("unit", "A1"), ("duplicates", "skip")], "b.csv", content)
        assert answer.status == 400 and why in answer.body, why
        assert "nothing imported" in answer.body
    assert site.db.units.counts(unit)[0] == 100

    again = csv_rows(90, 20)            # ten stored already, ten new
    answer = upload(root, path, [("unit", "A1"), ("duplicates", "refuse")], "c.csv", again)
    assert answer.status == 409 and "10 duplicate timestamp(s)" in answer.body
    assert "2024-03-01 00:01:30" in answer.body and "stored already" in answer.body
    assert site.db.units.counts(unit)[0] == 100
    answer = upload(root, path, [("unit", "A1"), ("duplicates", "skip")], "c.csv", again)
    assert answer.status == 200 and "Imported 10 samples" in answer.body
    assert site.db.units.counts(unit)[0] == 110


def test_importing_needs_samples_add_and_the_unit(admin):
    site = admin()
    site.unit("A1")
    site.unit("B7")
    viewer = site.browser("viewer", permissions=["samples.view"], all_units=True)
    assert viewer.get("/admin/samples/import/").status == 403
    assert "Import samples" not in viewer.get("/admin/samples/?unit=A1").body
    adder = site.browser("adder", permissions=["samples.view", "samples.add"], units=["A1"])
    answer = upload(adder, "/admin/samples/import/", [("unit", "B7"), ("duplicates", "skip")],
                    "a.csv", csv_rows(0, 3))
    assert answer.status == 400 and "not one of the choices" in answer.body
    assert site.db.units.counts(site.db.units.get("B7"))[0] == 0


def test_units_of_measure_and_report_fields_reach_the_pages(admin):
    site = admin()
    site.root.submit("/admin/units/add/", unit_form(fields="3") + [
        ("field_names", "Flow"), ("field_names", "Level"), ("field_names", "Spare"),
        ("field_units", "m³/h"), ("field_units", "m"), ("field_units", ""),
        ("report_fields", "1"), ("report_fields", "2")])
    unit = site.db.units.get("A1")
    site.db.samples.add(unit, [(10 ** 15, (1.0, 2.0, 3.0))])
    display = site.db.displays.add("Plant", 5, [(unit, 1)])
    site.db.commit()
    page = site.root.get("/units/A1/?from=2001-01-01&to=2010-01-01")
    assert "Flow (m³/h)" in page.body and "Level (m)" in page.body and "Spare" not in page.body
    header = site.root.get("/units/A1/samples.csv?from=2001-01-01&to=2010-01-01").body
    assert header.splitlines()[0] == "id,timestamp,Flow,Level"
    stats = site.root.get("/units/A1/stats.json?from=2001-01-01&to=2010-01-01&fields=3").body
    assert '"name": "Spare"' in stats and '"measure": ""' in stats
    assert "m³/h</span>" in site.root.get("/views/%d/" % display.id).body


def test_a_staff_user_gives_no_more_than_they_have(admin):
    site = admin()
    site.unit("A1")
    b7 = site.unit("B7")
    group = site.db.accounts.add_group("Powerful")
    site.db.accounts.set_permissions("group", group.id, ["units.delete"])
    site.db.commit()
    manager = site.browser("manager", permissions=["users.view", "users.change", "tokens.add",
                                                    "tokens.view"], units=["A1"])
    ann = site.add_user("ann", staff=False)
    path = "/admin/users/%d/change/" % ann.id
    base = [("username", "ann"), ("is_active", "on")]
    for extra, why in (([("all_units", "on")], "you cannot give all"),
                       ([("units", str(b7.id))], "only units you see yourself"),
                       ([("groups", str(group.id))], "only a superuser gives or takes groups")):
        answer = manager.submit(path, base + extra)
        assert answer.status == 400 and why in answer.body, why
    a1 = site.db.units.get("A1")
    assert manager.submit(path, base + [("units", str(a1.id))]).status == 303
    root = site.db.accounts.get_user_by_name("root")
    answer = manager.submit("/admin/tokens/add/", {"user": str(root.id), "name": "mine"})
    assert answer.status == 400 and "not one of the choices" in answer.body
    me = site.db.accounts.get_user_by_name("manager")
    assert manager.submit("/admin/tokens/add/", {"user": str(me.id), "name": "mine"}).status \
        == 200
    site.db.notice_others()
    assert site.db.accounts.grants(site.db.accounts.get_user(ann.id)).unit_ids == {a1.id}


def test_a_unit_with_many_samples_goes_as_a_chore_and_is_logged_once(admin):
    site = admin()
    site.unit("A1", samples=1200)
    path = "/admin/units/A1/delete/"
    answer = site.root.submit(path, {}, page=path)
    assert answer.status == 303
    assert "1,200 samples" in site.root.get("/admin/units/").body     # the notice
    site.db.notice_others()
    assert site.db.units.get("A1") is None
    [entry] = site.log(model="units")
    assert (entry.action, entry.message) == ("delete", "with 1,200 samples")


def test_a_field_without_a_name_stays_without_one_when_saved(admin):
    site = admin()
    unit = site.db.units.add("A1", "key", 3, field_names=("Flow", "", "Temp"))
    site.db.commit()
    form = site.root.get("/admin/units/A1/change/").body
    names = re.findall(r'name="field_names" value="([^"]*)"', form)
    assert names == ["Flow", "", "Temp"]
    answer = site.root.submit("/admin/units/A1/change/", unit_form(fields="3") + [
        ("field_names", n) for n in names])
    assert answer.status == 303
    site.db.notice_others()
    assert site.db.units.get_by_id(unit.id).field_names == ("Flow", "", "Temp")


# -- alarms, the outbox, mailing lists -----------------------------------------

def test_alarms_are_listed_acknowledged_and_shown_on_the_home_page(admin):
    site = admin()
    a1, b7 = site.unit("A1"), site.unit("B7")
    first = site.db.alarms.add(a1, 2, ["2009-1-16 15:30:45", "high"])
    second = site.db.alarms.add(b7, 5, ["low"])
    site.db.commit()
    root = site.root
    home = root.get("/").body
    assert "state=active" in home and 'class="alarm"' in home
    listing = root.get("/admin/alarms/")
    assert listing.status == 200 and "high" in listing.body and "low" in listing.body
    assert "low" not in root.get("/admin/alarms/?unit=A1").body
    page = root.get("/admin/alarms/%d/change/" % first.id)
    assert page.status == 200 and "2009-1-16 15:30:45" in page.body and "Acknowledge" in page.body
    path = "/admin/alarms/%d/acknowledge/" % first.id
    assert root.submit(path, {"note": "valve closed"}).status == 303
    site.db.notice_others()
    done = site.db.alarms.get(first.id)
    assert (done.acknowledged_by, done.note, done.active) == ("root", "valve closed", False)
    [entry] = site.log(model="alarms", limit=1)
    assert entry.changes == {"acknowledged": [None, "root"]} and entry.message == "valve closed"
    assert "high" not in root.get("/admin/alarms/?state=active").body
    assert "high" in root.get("/admin/alarms/?state=acknowledged").body
    answer = root.submit("/admin/alarms/", [("action", "acknowledge_selected"),
                                            ("selected", str(second.id))], page="/admin/alarms/")
    assert answer.status == 303
    assert site.db.alarms.active_counts() == {}
    viewer = site.browser("viewer", permissions=["alarms.view"], units=["A1"])
    assert "low" not in viewer.get("/admin/alarms/").body
    assert viewer.get("/admin/alarms/%d/change/" % second.id).status == 404
    assert viewer.post(path, {"csrf_token": viewer.csrf("/admin/")}).status == 403


def test_alarms_are_deleted_as_samples_are_and_the_switch_holds(admin):
    site = admin(ALLOW_ALARM_DELETION=False)
    a1 = site.unit("A1")
    alarm = site.db.alarms.add(a1, 1, [])
    site.db.commit()
    root = site.root
    token = root.csrf("/admin/")
    assert "Delete" not in root.get("/admin/alarms/?unit=A1").body
    for form in ({"action": "delete_selected", "selected": str(alarm.id), "confirm": "yes"},
                 {"action": "delete_all", "unit": "A1", "confirm": "yes"}):
        assert root.post("/admin/alarms/", dict(form, csrf_token=token)).status == 403
    site2 = admin()
    a1 = site2.unit("A1")
    for _ in range(3):
        site2.db.alarms.add(a1, 1, [])
    site2.db.commit()
    everything = [("action", "delete_all"), ("unit", "A1")]
    confirm = site2.root.submit("/admin/alarms/", everything, page="/admin/alarms/")
    assert confirm.status == 200 and "all 3 alarms of A1" in confirm.body
    assert site2.root.submit("/admin/alarms/", everything + [("confirm", "yes")],
                             page="/admin/alarms/").status == 303
    site2.db.notice_others()
    assert site2.db.alarms.count(a1) == 0
    assert site2.log(model="alarms", limit=1)[0].message == "3 alarms"


def test_the_outbox_lists_messages_and_queues_them_again(admin):
    site = admin()
    a1 = site.unit("A1")
    alarm = site.db.alarms.add(a1, 1, [])
    letter_id = site.db.outbox.add(alarm.id, "email", "ann@x.org", "A1 level 1", "body")
    site.db.outbox.attempted(site.db.outbox.get(letter_id), "failed", "550 no such user")
    site.db.commit()
    listing = site.root.get("/admin/outbox/?state=failed")
    assert listing.status == 200 and "550 no such user" in listing.body
    assert "ann@x.org" in site.root.get("/admin/outbox/?alarm=%d" % alarm.id).body
    detail = site.root.get("/admin/outbox/%d/change/" % letter_id).body
    assert "Attempt 1" in detail and "failed: 550 no such user" in detail
    assert site.root.get("/admin/outbox/add/").status == 404
    b7 = site.unit("B7")
    other = site.db.outbox.add(site.db.alarms.add(b7, 1, []).id, "email", "bob@x.org", "B7", "b")
    site.db.commit()
    viewer = site.browser("viewer", permissions=["outbox.view"], units=["A1"])
    assert "ann@x.org" in viewer.get("/admin/outbox/").body
    assert "bob@x.org" not in viewer.get("/admin/outbox/").body
    assert viewer.get("/admin/outbox/%d/change/" % other).status == 404
    answer = site.root.submit("/admin/outbox/", [("action", "retry_selected"),
                                                 ("selected", str(letter_id))],
                              page="/admin/outbox/")
    assert answer.status == 303
    site.db.notice_others()
    assert site.db.outbox.get(letter_id).state == "queued"


def test_a_mailing_list_is_edited_and_sent_a_test_message(admin):
    site = admin()
    a1 = site.unit("A1")
    ann = site.db.accounts.add_user("ann", "x", email="ann@x.org")
    site.db.accounts.add_user("bob", "x")                        # no address: not offered
    site.db.commit()
    form = site.root.get("/admin/mailinglists/A1/change/").body
    assert "ann &lt;ann@x.org&gt;" in form and "bob" not in form
    assert site.root.submit("/admin/mailinglists/%d/change/" % a1.id,
                            [("users", str(ann.id))]).status == 303
    site.db.notice_others()
    assert site.db.alarms.recipients(a1) == ["ann@x.org"]
    answer = site.root.submit("/admin/mailinglists/", [("action", "send_test"),
                                                       ("selected", str(a1.id))],
                              page="/admin/mailinglists/")
    assert answer.status == 303
    site.db.notice_others()
    [letter] = site.db.outbox.find()
    assert (letter.recipient, letter.subject) == ("ann@x.org", "Test message for A1")


def test_a_units_silent_alarm_and_webhook_are_set_in_its_form(admin):
    site = admin()
    site.unit("A1")
    answer = site.root.submit("/admin/units/A1/change/", unit_form(
        silent_minutes="15", silent_level="3", webhook_url="ftp://nope"))
    assert answer.status == 400 and "an http:// or https:// address" in answer.body
    answer = site.root.submit("/admin/units/A1/change/", unit_form(
        silent_minutes="15", silent_level="3", webhook_url="https://chat.example/hook/T0K3N"))
    assert answer.status == 303
    site.db.notice_others()
    unit = site.db.units.get("A1")
    assert (unit.silent_minutes, unit.silent_level, unit.webhook_url) == (
        15, 3, "https://chat.example/hook/T0K3N")
    [entry] = site.log(model="units", limit=1)
    assert entry.changes["webhook_url"] == "(changed)" and "T0K3N" not in str(entry)


def test_alarm_messages_are_checked_when_saved_and_used(admin):
    site = admin()
    a1 = site.unit("A1", name="Pump")
    site.db.commit()
    path = "/admin/mailinglists/A1/change/"
    bad = [("message_level", "2"), ("message_subject", "{{ unit }} alarm"),
           ("message_body", "line one\n{% if data.0 %}{{ user.password }}{% endif %}")]
    answer = site.root.submit(path, bad)
    assert answer.status == 400 and "message 1: body, line 2: unknown name" in answer.body
    assert "line one" in answer.body                               # kept as typed
    manual = "{% if data.0 %}The localtime for this Alarm was {{ data.0 }}{% endif %}"
    good = [("message_level", "2"), ("message_subject", "{{ unit }}: level {{ level }}"),
            ("message_body", manual), ("message_level", ""), ("message_subject", "every"),
            ("message_body", "any level")]
    assert site.root.submit(path, good).status == 303
    site.db.notice_others()
    assert site.db.alarms.message(a1, 2).body == manual
    assert site.db.alarms.message(a1, 7).subject == "every"
    [entry] = site.log(model="mailinglists", limit=1)
    assert entry.changes == {"messages": [[], ["every level", "level 2"]]}
    twice = good + [("message_level", "2"), ("message_subject", "x"), ("message_body", "y")]
    assert "a second message for level 2" in site.root.submit(path, twice).body

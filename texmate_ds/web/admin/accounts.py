"""Users, groups and API tokens in the admin (docs/web.md, "Users").

Rules beyond the permissions, so that nobody locks the site out or
raises themselves:

* nobody deletes themselves, and the last active superuser is never
  deleted, deactivated or made an ordinary user;
* only a superuser changes a superuser, makes one, or gives permissions;
  a staff user with ``users.change`` edits the rest of other users'
  accounts (names, flags, groups, unit access);
* a new password is hashed off the loop (`ModelAdmin.work`) and ends the
  user's other sessions; the log says "(changed)", never the hash.

A token's secret is shown once, on the page that creates it, and stored
as its digest only.
"""

import collections

from texmate_ds import auth
from texmate_ds.web import app, forms, html
from texmate_ds.web.admin.options import Column, Filter, ModelAdmin, row_id
from texmate_ds.web.admin.views import record

USERNAME = r"[\w.@+-]{1,150}"


def _permission_choices(request):
    # The action is after the last dot: an app's model has one of its own
    # (notes.note.view).
    return [(code, "%s: %s" % (plural, code.rsplit(".", 1)[1]))
            for _, plural, codes in request.site.admin.permissions() for code in codes]


def _unit_choices(request):
    return [(str(u.id), u.code + (" (%s)" % u.name if u.name else ""))
            for u in request.store.units.all()]


def _access_fields(request):
    """The fields users and groups share: permissions and unit access."""
    return [
        forms.Many("permissions", "Permissions", _permission_choices(request),
                   "what this may do in the admin, per model"),
        forms.Boolean("all_units", "All units", "sees every unit, present and future"),
        forms.Many("units", "Units", _unit_choices(request),
                   "the units seen, when not all", select=True),
    ]


def _access_initial(st, owner, owner_id):
    return {"permissions": st.accounts.permissions(owner, owner_id),
            "units": {str(i) for i in st.accounts.units_of(owner, owner_id)}}


def _save_access(st, owner, owner_id, data):
    st.accounts.set_permissions(owner, owner_id, data["permissions"])
    st.accounts.set_units(owner, owner_id, [int(i) for i in data["units"]])


def _check_grants(request, form):
    """What a non-superuser may not give, not even to themselves: any
    permission or group (a group carries permissions), and unit access
    beyond their own."""
    access = request.access
    if access.superuser:
        return
    data, initial = form.cleaned, form.initial
    for name, what in (("permissions", "permissions"), ("groups", "groups")):
        if name in data and data[name] != initial.get(name, set()):
            form.fail(name, "only a superuser gives or takes %s" % what)
    if data.get("all_units") and not initial.get("all_units") and access.seen_by is not None:
        form.fail("all_units", "you see only some units: you cannot give all")
    added = {int(i) for i in data.get("units", ())} - {int(i) for i in initial.get("units", ())}
    unseen = [i for i in added if not access.sees_id(i)]
    if unseen:
        form.fail("units", "you can give only units you see yourself")


def _password_fields():
    return [forms.Password("password1", "Password", required=True),
            forms.Password("password2", "Password again", "the same, to be sure",
                           required=True)]


def _check_passwords(form):
    first, second = form.cleaned.get("password1"), form.cleaned.get("password2")
    if first is None or second is None:
        return
    if first != second:
        form.fail("password2", "the two passwords differ")
        return
    try:
        auth.check_new_password(first)
    except ValueError as exc:
        form.fail("password1", str(exc))


class UserAdmin(ModelAdmin):
    name = "users"
    description = "People who sign in: their flags, groups, permissions and units."
    singular = "user"
    plural = "users"
    columns = (Column("username", "Username", "username"), Column("email", "Email", "email"),
               Column("full_name", "Name"), Column("is_staff", "Staff", "is_staff", "bool"),
               Column("is_superuser", "Superuser", "is_superuser", "bool"),
               Column("is_active", "Active", "is_active", "bool"),
               Column("last_login", "Last sign-in", "last_login", "time"))
    search = "username, email or name"
    default_order = "username"
    secret_fields = ("password",)
    continue_after_add = True

    def get(self, request, pk):
        st = request.store
        user = st.accounts.get_user(row_id(pk)) if row_id(pk) is not None else None
        return user or st.accounts.get_user_by_name(pk)

    def describe(self, user):
        return user.username

    def search_rows(self, request, query, offset, limit):
        return request.store.accounts.find_users(query.q, offset, limit,
                                                 query.o or "username")

    def cell(self, request, user, name):
        if name == "full_name":
            return " ".join(part for part in (user.first_name, user.last_name) if part)
        return getattr(user, name)

    def allows(self, request, action, user=None):
        if not request.access.may(self.name, action):
            return False
        if user is None or request.access.superuser:
            return action != "delete" or user is None or user.id != request.user.id
        # Only a superuser touches a superuser.
        return not user.is_superuser and (action != "delete" or user.id != request.user.id)

    def links(self, request, user):
        links = [(request.url_for("admin_user_password", str(user.id)), "Change password")]
        if request.access.may("tokens", "view"):
            links.append((request.url_for("admin_list", "tokens") + "?user=" + str(user.id),
                          "API tokens"))
        return links

    def dependents(self, request, user):
        tokens = len(request.store.accounts.api_tokens(user.id))
        return ["%d API token(s)" % tokens] if tokens else []

    def delete(self, request, user):
        if self._last_superuser(request, user):
            raise app.HTTPError(403, "%s is the last active superuser" % user.username)
        request.store.accounts.delete_user(user.id)

    @staticmethod
    def _last_superuser(request, user):
        return (user.is_superuser and user.is_active
                and request.store.accounts.count_active_superusers(besides=user.id) == 0)

    # -- forms

    def form(self, request, user):
        st = request.store
        username = forms.Text("username", "Username", "letters, digits and @ . + - _",
                              required=True, max_length=150, pattern=USERNAME,
                              pattern_reason="letters, digits and @ . + - _ only")
        if user is None:
            return forms.Form([username] + _password_fields() + [
                forms.Text("email", "Email address", max_length=254)])
        groups = [(str(g.id), g.name) for g in st.accounts.find_groups(limit=1000)[1]]
        fields = [username, forms.Text("email", "Email address", max_length=254),
                  forms.Text("first_name", "First name"), forms.Text("last_name", "Last name"),
                  forms.Boolean("is_active", "Active", "may sign in"),
                  forms.Boolean("is_staff", "Staff", "may enter this admin"),
                  forms.Boolean("is_superuser", "Superuser",
                                "may do everything, whatever the permissions say"),
                  forms.Many("groups", "Groups", groups)] + _access_fields(request)
        initial = {name: getattr(user, name) for name in (
            "username", "email", "first_name", "last_name", "is_active", "is_staff",
            "is_superuser", "all_units")}
        initial["groups"] = {str(g) for g in st.accounts.groups_of(user.id)}
        initial.update(_access_initial(st, "user", user.id))
        return forms.Form(fields, initial)

    def check(self, request, form, user):
        data = form.cleaned
        self.unique(form, "username", request.store.accounts.get_user_by_name(data["username"]),
                    user)
        if user is None:
            _check_passwords(form)
            return
        _check_grants(request, form)
        if data["is_superuser"] != user.is_superuser and not request.access.superuser:
            form.fail("is_superuser", "only a superuser makes or unmakes one")
        if self._last_superuser(request, user) and not (data["is_superuser"]
                                                        and data["is_active"]):
            form.fail("is_superuser" if not data["is_superuser"] else "is_active",
                      "%s is the last active superuser: make another one first"
                      % user.username)

    def work(self, form, row):
        if row is None:
            return lambda: auth.hash_password(form.cleaned["password1"])
        return None

    def save(self, request, form, user):
        st = request.store
        data = form.cleaned
        if user is None:
            user = st.accounts.add_user(data["username"], form.worked, email=data["email"])
            return user, {}
        settings = {name: data[name] for name in (
            "username", "email", "first_name", "last_name", "is_active", "is_staff",
            "is_superuser", "all_units")}
        user = st.accounts.change_user(user.id, **settings)
        st.accounts.set_groups(user.id, [int(g) for g in data["groups"]])
        _save_access(st, "user", user.id, data)
        if not user.is_active:
            st.accounts.delete_user_sessions(user.id)
        return user, form.changed()


class GroupAdmin(ModelAdmin):
    name = "groups"
    description = "Permissions and unit access given to several users at once."
    singular = "group"
    plural = "groups"
    columns = (Column("name", "Name", "name"), Column("all_units", "All units", None, "bool"))
    search = "name"
    default_order = "name"

    def get(self, request, pk):
        return None if row_id(pk) is None else request.store.accounts.get_group(row_id(pk))

    def describe(self, group):
        return group.name

    def search_rows(self, request, query, offset, limit):
        return request.store.accounts.find_groups(query.q, offset, limit, query.o or "name")

    def form(self, request, group):
        fields = [forms.Text("name", "Name", required=True, max_length=150)] + \
            _access_fields(request)
        initial = {}
        if group is not None:
            initial = {"name": group.name, "all_units": group.all_units}
            initial.update(_access_initial(request.store, "group", group.id))
        return forms.Form(fields, initial)

    def check(self, request, form, group):
        self.unique(form, "name", request.store.accounts.get_group_by_name(form.cleaned["name"]),
                    group)
        _check_grants(request, form)

    def save(self, request, form, group):
        st = request.store
        data = form.cleaned
        if group is None:
            group = st.accounts.add_group(data["name"], data["all_units"])
        else:
            group = st.accounts.change_group(group.id, data["name"], data["all_units"])
        _save_access(st, "group", group.id, data)
        return group, form.changed()

    def delete(self, request, group):
        request.store.accounts.delete_group(group.id)


Token = collections.namedtuple("Token", "id user_id name created last_used username")


class TokenAdmin(ModelAdmin):
    """API tokens: created (the secret shown once), listed, revoked; never
    changed (a changed secret is a new token)."""

    name = "tokens"
    description = "Secrets scripts send as Authorization: Bearer, per user."
    singular = "API token"
    plural = "API tokens"
    columns = (Column("name", "Name"), Column("username", "User"),
               Column("created", "Created", None, "time"),
               Column("last_used", "Last used", None, "time"))
    search = "name or username"

    def allows(self, request, action, row=None):
        return action != "change" and request.access.may(self.name, action)

    def filters(self, request):
        return [Filter("user", "User", [(str(u.id), u.username)
                                        for u in request.store.accounts.all_users()])]

    def _token(self, st, token):
        user = st.accounts.get_user(token.user_id)
        return Token(token.id, token.user_id, token.name, token.created, token.last_used,
                     user.username if user else "?")

    def get(self, request, pk):
        token = None if row_id(pk) is None else request.store.accounts.api_token(row_id(pk))
        return self._token(request.store, token) if token else None

    def describe(self, token):
        return "%s of %s" % (token.name, token.username)

    def search_rows(self, request, query, offset, limit):
        user = query.given["user"]
        if user and row_id(user) is None:
            raise app.HTTPError(400, "user: a user id")
        total, tokens = request.store.accounts.find_api_tokens(
            int(user) if user else None, query.q, offset, limit)
        return total, [self._token(request.store, t) for t in tokens]

    def form(self, request, token):
        # A token signs in as its user: only a superuser makes one for
        # someone else (it could be a superuser's).
        users = [(str(u.id), u.username) for u in request.store.accounts.all_users()
                 if request.access.superuser or u.id == request.user.id]
        fields = [forms.Choice("user", "User", users, required=True),
                  forms.Text("name", "Name", "what the token is for (cron, grafana...)",
                             required=True, max_length=100)]
        initial = {"user": request.query.get("user", "")}
        if token is not None:
            initial = {"user": str(token.user_id), "name": token.name}
        return forms.Form(fields, initial)

    def check(self, request, form, token):
        user = request.store.accounts.get_user(int(form.cleaned["user"]))
        if request.store.accounts.api_token_named(user.id, form.cleaned["name"]):
            form.fail("name", "%s has a token of this name already" % user.username)

    def save(self, request, form, token):
        st = request.store
        user_id = int(form.cleaned["user"])
        secret = auth.create_api_token(st, user_id, form.cleaned["name"])
        token = self._token(st, st.accounts.api_token_named(user_id, form.cleaned["name"]))
        record(request, self, "add", token)
        return html.render(request, "admin/token.html", "API token created", model=self,
                           token=token, secret=secret), {}

    def delete(self, request, token):
        request.store.accounts.delete_api_token(token.user_id, token.name)


# -- the password form ---------------------------------------------------------

@app.page
def user_password(request, pk):
    """Set a user's password (twice): hashed off the loop; the user's other
    sessions end (all of them, for someone else's password)."""
    model = request.site.admin.lookup("users")
    user = model.get(request, pk)
    if user is None:
        raise app.HTTPError(404, "no such user")
    if not model.allows(request, "change", user):
        raise app.HTTPError(403, "you may not change %s" % user.username)
    form = forms.Form(_password_fields())
    if request.method == "POST" and form.bind(request.form):
        _check_passwords(form)
        if form.valid:
            return app.Later(lambda store: auth.hash_password(form.cleaned["password1"]),
                             lambda hashed: _password_set(request, model, user, hashed))
    status = 400 if request.method == "POST" else 200
    return html.render(request, "admin/password.html", "Change password: %s" % user.username,
                       status=status, model=model, form=form, fields=form.rows(),
                       crumb=user.username)


def _password_set(request, model, user, hashed):
    st = request.store
    st.accounts.set_password(user.id, hashed)
    keep = request.session.key_hash if request.session and user.id == request.user.id else None
    st.accounts.delete_user_sessions(user.id, keep=keep)
    record(request, model, "change", user, {"password": None})
    html.flash(request, "The password of %s was changed." % user.username)
    return app.redirect(request.url_for("admin_change", "users", str(user.id)), 303)

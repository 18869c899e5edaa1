"""The Administration Control Panel under ``/admin/`` (docs/web.md).

Written once, as the Django admin is: `options.ModelAdmin` is a model's
declaration (its columns, search, filters, form, permissions), `views`
the one change list, form, delete confirmation and log writer that serve
every model, and `ADMIN` the registry the views look models up in. Each
model's module holds only what is truly its own: `units` (the per-field
table and the graph axes), `accounts` (users, groups, API tokens, the
password form and the last-superuser rule), `samples` (keyset paging,
large deletes; `per_unit` what they share with alarms), `imports` (CSV
files into a unit), `alarms` (alarms and their acknowledgement, the
outbox, mailing lists), `displays`; and `tables`, the one model for
every table an HTTP app declares in its ``admin.py``.

URLs (route names in brackets): ``/admin/`` [admin_index],
``/admin/<model>/`` [admin_list] with bulk actions posted to it,
``/admin/<model>/add/`` [admin_add], ``/admin/<model>/<pk>/change/``
[admin_change], ``/admin/<model>/<pk>/delete/`` [admin_delete],
``/admin/log/`` [admin_log], ``/admin/users/<pk>/password/``
[admin_user_password], ``/admin/samples/import/``
[admin_samples_import] (a CSV upload, up to 256 MiB) and
``/admin/alarms/<pk>/acknowledge/`` [admin_alarm_ack]. Every one is behind `app.staff`: only staff
enter, and what they may do is their permissions' (``units.change``).

`ADMIN` holds the built-in models; a site's `Site.admin` is it
`extended` with the HTTP apps' (``notes.note``), which `plugins` makes
from each app's declarations.
"""

from texmate_ds.web import app
from texmate_ds.web.admin import (
    accounts,
    alarms,
    displays,
    imports,
    samples,
    units,
    views,
)
from texmate_ds.web.admin.options import AdminSite

ADMIN = AdminSite()
for _model in (units.UnitAdmin(), samples.SampleAdmin(), alarms.AlarmAdmin(),
               displays.DisplayAdmin(), alarms.MailingListAdmin(), alarms.OutboxAdmin(),
               accounts.UserAdmin(), accounts.GroupAdmin(), accounts.TokenAdmin()):
    ADMIN.register(_model)
del _model

_FORM = ("GET", "POST")
ROUTES = app.group("/admin", [
    app.Route("/", views.index, "admin_index"),
    app.Route("/log/", views.log, "admin_log"),
    app.Route("/users/<pk>/password/", accounts.user_password, "admin_user_password", _FORM),
    app.Route("/samples/import/", imports.import_samples, "admin_samples_import", _FORM,
              files=True, body_limit=imports.IMPORT_BYTES),
    app.Route("/alarms/<pk>/acknowledge/", alarms.acknowledge, "admin_alarm_ack", _FORM),
    app.Route("/<model>/", views.change_list, "admin_list", _FORM),
    app.Route("/<model>/add/", views.add, "admin_add", _FORM),
    app.Route("/<model>/<pk>/change/", views.change, "admin_change", _FORM),
    app.Route("/<model>/<pk>/delete/", views.delete, "admin_delete", _FORM),
], app.staff)

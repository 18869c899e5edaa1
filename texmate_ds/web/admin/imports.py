"""CSV import of a unit's samples from the admin: the same import as
``manage import`` (`importer`: the export's own format, all or nothing,
duplicates skipped or refusing the file), from a file uploaded in a
form.

The upload is streamed to a temporary file as it arrives (`multipart`,
up to `IMPORT_BYTES`), never held in memory. The import then runs off
the loop, as an `app.Later`, on the worker's own connection: it stages
the rows in a temporary table there and copies them in with one short
write transaction that also holds the action log's entry, as ``manage
import`` does from its own process, so meters are answered meanwhile.
Needs ``samples.add`` and access to the unit.
"""

from texmate_ds import importer, times
from texmate_ds.web import app, forms, html

IMPORT_BYTES = 256 * 1024 * 1024
DUPLICATES = (("skip", "skip them, import the rest"), ("refuse", "import nothing"))


def _form(request):
    units = [(u.code, u.described) for u in request.store.units.all()
             if request.access.sees(u)]
    return forms.Form([
        forms.Choice("unit", "Unit", units, required=True),
        forms.Choice("duplicates", "Samples already stored (same timestamp)", DUPLICATES,
                     required=True),
    ], {"unit": request.query.get("unit", ""), "duplicates": "skip"})


@app.page
def import_samples(request):
    model = request.site.admin.lookup("samples")
    if not request.access.may("samples", "add"):
        raise app.HTTPError(403, "you may not add samples")
    form = _form(request)
    if request.method == "GET":
        return _page(request, model, form)
    upload = request.files.get("file")
    if form.bind(request.form) and upload is None:
        form.fail(None, "choose a CSV file to import")
    if not form.valid:
        return _page(request, model, form, 400)
    unit = request.store.units.get(form.cleaned["unit"])
    actor, name = request.user.username, upload.filename or "upload"

    def run(store):
        mine = store.units.get(unit.code)
        try:
            return importer.import_csv(
                store, mine, upload.file, form.cleaned["duplicates"],
                on_stored=lambda stored: store.log.record(
                    actor, "add", "samples", mine.id, mine.described,
                    message="%d imported from %s" % (stored, name[:100])))
        except (importer.BadFile, importer.Raced) as exc:
            return exc
    return app.Later(run, lambda result: _done(request, model, form, unit, name, result))


def _done(request, model, form, unit, name, result):
    if isinstance(result, Exception):
        form.fail(None, "%s: %s; nothing imported" % (name, result))
        return _page(request, model, form, 400)
    back = request.url_for("admin_list", "samples") + "?unit=" + unit.code
    listed = [{"row": row, "at": times.text(ts), "note": note} for row, ts, note in result.listed]
    seconds = max(result.seconds, 1e-6)
    return html.render(
        request, "admin/imported.html", "Import into %s" % unit.code, model=model,
        status=200 if result.stored is not None else 409, result=result, listed=listed,
        filename=name, unit=unit, back=back, rate="{:,.0f}".format(result.rows / seconds),
        stored="{:,}".format(result.stored or 0), rows="{:,}".format(result.rows),
        refused=result.stored is None)


def _page(request, model, form, status=200):
    return html.render(request, "admin/import.html", "Import samples from CSV", model=model,
                       status=status, form=form, fields=form.rows(),
                       limit="%d MiB" % (IMPORT_BYTES // (1024 * 1024)))

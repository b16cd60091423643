"""API keys: what lets another system (a live-stream platform, an email tool, a CRM) post
touchpoints to POST /api/v1/touchpoints. A key and its signing secret are shown once, on
the answer to the creation (never through the session cookie, which the browser can
read); Harpoon keeps the key's SHA-256 and the secret encrypted. Owners and admins only.
"""

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError, fields

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.content import translated
from app.admin.lookups import scoped_or_404
from app.extensions import harpoon
from core.forms import FormSchema, text
from core.text import N_
from crm.api_keys import (
    SIGNATURE_TOLERANCE_SECONDS,
    NewKey,
    create_api_key,
    revoke_api_key,
    workspace_keys,
)
from crm.touchpoints import MAX_BATCH
from models import ApiKey

TOUCHPOINTS_PATH = "/api/v1/touchpoints"
OPENAPI_PATH = "/api/v1/openapi.json"


class ApiKeySchema(FormSchema):
    name = text(N_("1 to 100 characters."), high=100, required=True)
    require_signature = fields.Boolean(load_default=False)


@bp.get("/api-keys")
@requires("api_keys.manage")
def api_keys():
    return _page()


@bp.post("/api-keys")
@requires("api_keys.manage")
def api_keys_new():
    values = {
        "name": request.form.get("name", ""),
        "require_signature": request.form.get("require_signature", ""),
    }
    try:
        checked = ApiKeySchema().load(values)
    except ValidationError as exc:
        return _page(values=values, errors=translated(exc), status=400)
    new = create_api_key(
        db(),
        workspace_id(),
        checked["name"],
        require_signature=checked["require_signature"],
        created_by=current_user.id,
    )
    audit(
        db(),
        "api_key.create",
        "api_key",
        new.row.id,
        {
            "name": new.row.name,
            "prefix": new.row.prefix,
            "require_signature": new.row.require_signature,
        },
    )
    db().commit()
    response = make_response(_page(new=new))
    response.headers["Cache-Control"] = "no-store"  # the key is in this answer only
    return response


@bp.post("/api-keys/<int:key_id>/revoke")
@requires("api_keys.manage")
def api_keys_revoke(key_id: int):
    key = scoped_or_404(ApiKey, key_id)
    if revoke_api_key(db(), key.workspace_id, key.id):
        audit(db(), "api_key.revoke", "api_key", key.id, {"name": key.name, "prefix": key.prefix})
        db().commit()
    flash(
        _("Key “%(name)s” revoked: requests with it are refused from now on.", name=key.name),
        "success",
    )
    return redirect(url_for("admin.api_keys"))


def _page(*, new: NewKey | None = None, values: dict | None = None, errors=None, status: int = 200):
    return render_template(
        "admin/api_keys.html",
        keys=workspace_keys(db(), workspace_id()),
        new=new,
        values=values or {},
        errors=errors or {},
        endpoint_url=harpoon().public_url(TOUCHPOINTS_PATH),
        openapi_url=harpoon().public_url(OPENAPI_PATH),
        max_batch=MAX_BATCH,
        tolerance_minutes=SIGNATURE_TOLERANCE_SECONDS // 60,
    ), status

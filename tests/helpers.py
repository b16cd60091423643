"""Small factories and queries shared by the tests."""

import re
from dataclasses import dataclass

from sqlalchemy import select

from crm.channels import workspace_named
from models import Contact, Form, Identity, InboundEvent, Interaction
from outreach.content import create_link
from tests.conftest import OA_CREDS, WECOM_CREDS, harpoon_of
from wechat import simulate


def post_oa(client, channel_id, xml, mode="safe"):
    callback = simulate.oa_message(OA_CREDS, xml, mode=mode)
    response = client.post(callback.path(f"/callbacks/wechat/{channel_id}"), data=callback.body)
    assert response.status_code == 200, response.data
    return response


def post_wecom(client, channel_id, xml):
    callback = simulate.wecom_message(WECOM_CREDS, xml)
    response = client.post(callback.path(f"/callbacks/wecom/{channel_id}"), data=callback.body)
    assert response.status_code == 200, response.data
    return response


def all_of(app, model, *order_by):
    with harpoon_of(app).db.session() as session:
        return list(session.scalars(select(model).order_by(*(order_by or [model.id]))))


def inbox(app):
    return all_of(app, InboundEvent)


def interactions(app):
    return all_of(app, Interaction)


def contacts(app):
    return all_of(app, Contact)


def identities(app):
    return all_of(app, Identity)


@dataclass(frozen=True)
class OpenedForm:
    code: str  # the form's tracked link
    view: str  # the view token of the reader's page
    form_token: str  # the token of the form's rendering


def open_form_outside_wechat(app) -> OpenedForm:
    """A new form (name required; phone and email optional), opened by a reader outside
    WeChat: what their browser then holds."""
    with harpoon_of(app).db.session() as session:
        workspace = workspace_named(session, "acme")
        fields = {"name": "required", "phone": "optional", "email": "optional"}
        form = Form(workspace_id=workspace.id, title="报名", fields=fields, consent_text="我同意")
        session.add(form)
        session.flush()
        code = create_link(session, workspace.id, form_id=form.id).code
        session.commit()
    client = app.test_client()
    landed = client.get(f"/t/{code}")
    page = client.get(landed.location)
    return OpenedForm(
        code=code,
        view=re.search(r"v=([^&\"']+)", landed.location).group(1),
        form_token=re.search(r'name="form_token" value="([^"]+)"', page.text).group(1),
    )

"""Small factories and queries shared by the tests."""

from sqlalchemy import select

from models import Contact, Identity, InboundEvent, Interaction
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

"""Group welcome messages (入群欢迎语): text and an optional link card in the corp's template
library (`externalcontact/group_welcome_template/add`, `edit`, `del`).

WeCom sends a group's welcome itself to each newcomer, but only once the group's owner
has picked a template for the group in the WeCom client: no API puts one on a group.
`notify: 1` asks WeCom to tell the corp's members the template is there to pick. The row
is written after WeCom accepted the template, so its template_id always names one.
"""

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Channel, GroupWelcomeTemplate, utcnow

MAX_NAME = GroupWelcomeTemplate.__table__.c.name.type.length
MAX_TEXT = GroupWelcomeTemplate.__table__.c.text.type.length  # 3000 bytes of UTF-8 in WeCom
MAX_LINK_TITLE = 42  # WeCom allows 128 bytes: 42 Chinese characters
MAX_LINK_DESC = GroupWelcomeTemplate.__table__.c.link_desc.type.length  # 512 bytes
MAX_LINK_URL = GroupWelcomeTemplate.__table__.c.link_url.type.length
NICKNAME = "%NICKNAME%"  # WeCom puts the newcomer's nickname here


def remote_content(values: dict) -> dict:
    """What WeCom keeps of a welcome: its text and link card."""
    content: dict = {}
    if values["text"]:
        content["text"] = {"content": values["text"]}
    if values["link_url"]:
        content["link"] = {
            "title": values["link_title"],
            "url": values["link_url"],
            **({"desc": values["link_desc"]} if values["link_desc"] else {}),
        }
    return content


def create_group_welcome(
    session: Session, channel: Channel, client, values: dict, created_by: int | None
) -> GroupWelcomeTemplate:
    """Add the template to WeCom's library, then its row (flushed, not committed).
    WeChatApiError when WeCom refuses, with nothing stored."""
    answer = client.post(
        "externalcontact/group_welcome_template/add",
        data={**remote_content(values), "notify": 1},
    )
    template = GroupWelcomeTemplate(
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        template_id=answer["template_id"],
        created_by=created_by,
        **values,
    )
    session.add(template)
    session.flush()
    return template


def update_group_welcome(
    session: Session, template: GroupWelcomeTemplate, client, values: dict
) -> None:
    """Edit the template in WeCom when its content changed, then the row (flushed)."""
    current = {name: getattr(template, name) for name in values}
    if remote_content(values) != remote_content(current):
        client.post(
            "externalcontact/group_welcome_template/edit",
            data={"template_id": template.template_id, **remote_content(values)},
        )
    for name, value in values.items():
        setattr(template, name, value)
    template.updated_at = utcnow()
    session.flush()


def delete_group_welcome(session: Session, template: GroupWelcomeTemplate, client) -> None:
    """Remove the template from WeCom's library and the row (flushed)."""
    client.post(
        "externalcontact/group_welcome_template/del",
        data={"template_id": template.template_id},
    )
    session.delete(template)
    session.flush()


def group_welcomes_of(session: Session, workspace_id: int) -> list[GroupWelcomeTemplate]:
    return list(
        session.scalars(
            select(GroupWelcomeTemplate)
            .where(GroupWelcomeTemplate.workspace_id == workspace_id)
            .order_by(GroupWelcomeTemplate.created_at, GroupWelcomeTemplate.id)
        )
    )

"""Connecting an OA or WeCom corp: validation, generated credentials, the callback URL; the
workspace's channels listed."""

import re
import secrets
import string

from sqlalchemy import select
from sqlalchemy.orm import Session, load_only

from core.text import N_
from models import Channel, ChannelKind, MessageMode, Workspace

_ALNUM = string.ascii_letters + string.digits
_TOKEN = re.compile(r"^[A-Za-z0-9]{3,32}$")
_AES_KEY = re.compile(r"^[A-Za-z0-9]{43}$")


class ChannelError(ValueError):
    """A field of a channel is invalid; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def generate_token() -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(32))


def generate_aes_key() -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(43))


def workspace_named(session: Session, name: str) -> Workspace:
    workspace = session.scalar(select(Workspace).where(Workspace.name == name))
    if workspace is None:
        workspace = Workspace(name=name)
        session.add(workspace)
        session.flush()
    return workspace


def add_channel(
    session: Session,
    workspace: Workspace,
    *,
    kind: str,
    name: str,
    app_id: str,
    token: str,
    aes_key: str | None,
    secret: str | None = None,
    message_mode: str = MessageMode.SAFE,
    account_type: str = "",
    agent_id: str | None = None,
    agent_secret: str | None = None,
) -> Channel:
    if kind not in set(ChannelKind):
        raise ChannelError("kind", f"must be one of {', '.join(ChannelKind)}")
    if not app_id.strip():
        raise ChannelError("app_id", N_("is required"))
    if not _TOKEN.match(token):
        raise ChannelError("token", N_("3 to 32 letters or digits"))
    if kind == ChannelKind.WECOM:
        message_mode = MessageMode.SAFE  # WeCom always encrypts
    if message_mode not in set(MessageMode):
        raise ChannelError("message_mode", f"must be one of {', '.join(MessageMode)}")
    if message_mode != MessageMode.PLAIN and not aes_key:
        raise ChannelError("aes_key", N_("is required unless the OA uses plaintext mode"))
    if aes_key and not _AES_KEY.match(aes_key):
        raise ChannelError("aes_key", N_("EncodingAESKey is 43 letters or digits"))
    if session.scalar(
        select(Channel.id).where(
            Channel.workspace_id == workspace.id, Channel.kind == kind, Channel.app_id == app_id
        )
    ):
        raise ChannelError("app_id", N_("already connected in this workspace"))
    channel = Channel(
        workspace_id=workspace.id,
        kind=kind,
        name=name,
        app_id=app_id.strip(),
        account_type=account_type,
        message_mode=message_mode,
        token=token,
        aes_key=aes_key,
        secret=secret,
        agent_id=agent_id,
        agent_secret=agent_secret,
    )
    session.add(channel)
    session.flush()
    return channel


def rotate_aes_key(channel: Channel, new_key: str) -> None:
    """The new key encrypts from now on; the old one still opens callbacks in flight."""
    if not _AES_KEY.match(new_key):
        raise ChannelError("aes_key", N_("EncodingAESKey is 43 letters or digits"))
    channel.previous_aes_key, channel.aes_key = channel.aes_key, new_key


def callback_url(base_url: str, channel: Channel) -> str:
    path = "wechat" if channel.kind == ChannelKind.OA else "wecom"
    return f"{base_url}/callbacks/{path}/{channel.id}"


def workspace_channels(session: Session, workspace_id: int) -> list[Channel]:
    """The workspace's channels, oldest first, with their name and kind only: the secrets
    are neither loaded nor decrypted."""
    return list(
        session.scalars(
            select(Channel)
            .options(load_only(Channel.name, Channel.kind, Channel.created_at))
            .where(Channel.workspace_id == workspace_id)
            .order_by(Channel.created_at, Channel.id)
        )
    )


def channels_table(session: Session, workspace_id: int) -> list[Channel]:
    """The workspace's channels, oldest first, with only what the channels table shows:
    the encrypted credentials are not even loaded."""
    return list(
        session.scalars(
            select(Channel)
            .options(
                load_only(
                    Channel.kind,
                    Channel.name,
                    Channel.app_id,
                    Channel.account_type,
                    Channel.message_mode,
                    Channel.verified_at,
                    Channel.created_at,
                )
            )
            .where(Channel.workspace_id == workspace_id)
            .order_by(Channel.created_at, Channel.id)
        )
    )


def wecom_channel(session: Session, workspace_id: int, channel_id: int) -> Channel | None:
    """The workspace's WeCom corp of this id (None for an OA, another's, or none)."""
    return session.scalar(
        select(Channel).where(
            Channel.id == channel_id,
            Channel.workspace_id == workspace_id,
            Channel.kind == ChannelKind.WECOM,
        )
    )


def workspace_channel_ids(session: Session, workspace_id: int) -> list[int]:
    return list(session.scalars(select(Channel.id).where(Channel.workspace_id == workspace_id)))


def channels_of(
    session: Session, workspace_id: int, kind: str, *, by_name: bool = False
) -> list[Channel]:
    """The workspace's channels of a kind: the first connected first, or by name."""
    order = (Channel.name,) if by_name else (Channel.created_at, Channel.id)
    return list(
        session.scalars(
            select(Channel)
            .where(Channel.workspace_id == workspace_id, Channel.kind == kind)
            .order_by(*order)
        )
    )


def channel_names(session: Session, workspace_id: int) -> dict[int, str]:
    return dict(
        session.execute(
            select(Channel.id, Channel.name).where(Channel.workspace_id == workspace_id)
        ).all()
    )


def channel_options(session: Session, workspace_id: int) -> list:
    """(id, name, kind) of every channel of the workspace, by kind then name."""
    return session.execute(
        select(Channel.id, Channel.name, Channel.kind)
        .where(Channel.workspace_id == workspace_id)
        .order_by(Channel.kind, Channel.name)
    ).all()

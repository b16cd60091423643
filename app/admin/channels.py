"""Channels: the workspace's connected OAs and WeCom corps, connecting one, rotating its key."""

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy.exc import IntegrityError
from wtforms import PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.lookups import scoped_or_404
from app.extensions import harpoon
from crm.channels import (
    ChannelError,
    add_channel,
    callback_url,
    channels_table,
    generate_aes_key,
    generate_token,
    rotate_aes_key,
)
from models import Channel, ChannelKind, MessageMode, Workspace

KIND_LABELS = {ChannelKind.OA: _l("Official Account"), ChannelKind.WECOM: _l("WeCom")}
MODE_LABELS = {
    MessageMode.SAFE: _l("Safe mode (encrypted)"),
    MessageMode.COMPATIBLE: _l("Compatible mode"),
    MessageMode.PLAIN: _l("Plaintext mode"),
}
# Plaintext messages carry no signature of their own (app.callbacks); the README says so too.
PLAIN_MODE_RISK = _l(
    "In plaintext mode WeChat signs only the callback URL's query string, not the message: "
    "whoever captures one callback URL can post any message with it while its timestamp is "
    "fresh (5 minutes). Choose safe mode unless the account cannot use it."
)
ACCOUNT_TYPE_LABELS = {"service": _l("Service account"), "subscription": _l("Subscription account")}
# What the OA console calls each mode, so the instructions name the option to pick there.
CONSOLE_MODE_NAMES = {
    MessageMode.SAFE: "安全模式",
    MessageMode.COMPATIBLE: "兼容模式",
    MessageMode.PLAIN: "明文模式",
}


def _strip(value):
    """Values pasted from the consoles often carry spaces or a newline."""
    return value.strip() if isinstance(value, str) else value


def _choices(labels: dict) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in labels.items()]


def _platform_id(label):
    return StringField(
        label,
        filters=[_strip],
        validators=[
            DataRequired(),
            Length(max=64),
            Regexp(r"^[A-Za-z0-9_-]+$", message=_l("Letters and digits only.")),
        ],
    )


class ChannelForm(FlaskForm):
    """What every channel has; the shapes match crm.channels, which stays the authority."""

    name = StringField(_l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=100)])
    token = StringField(
        _l("Token"),
        filters=[_strip],
        validators=[
            Optional(),
            Regexp(r"^[A-Za-z0-9]{3,32}$", message=_l("3 to 32 letters or digits.")),
        ],
    )
    aes_key = StringField(
        _l("EncodingAESKey"),
        filters=[_strip],
        validators=[
            Optional(),
            Regexp(r"^[A-Za-z0-9]{43}$", message=_l("EncodingAESKey is 43 letters or digits")),
        ],
    )

    def credentials(self, needs_aes_key: bool = True) -> dict:
        aes_key = self.aes_key.data or (generate_aes_key() if needs_aes_key else None)
        return {"token": self.token.data or generate_token(), "aes_key": aes_key}


class OAChannelForm(ChannelForm):
    app_id = _platform_id(_l("AppID"))
    secret = PasswordField(
        _l("AppSecret"), filters=[_strip], validators=[DataRequired(), Length(max=128)]
    )
    message_mode = SelectField(
        _l("Message encryption"), choices=_choices(MODE_LABELS), default=MessageMode.SAFE
    )
    account_type = SelectField(
        _l("Account type"), choices=_choices(ACCOUNT_TYPE_LABELS), default="service"
    )

    def channel_fields(self) -> dict:
        plain = self.message_mode.data == MessageMode.PLAIN
        return {
            "name": self.name.data,
            "app_id": self.app_id.data,
            "secret": self.secret.data,
            "message_mode": self.message_mode.data,
            "account_type": self.account_type.data,
            **self.credentials(needs_aes_key=not plain),
        }


class WeComChannelForm(ChannelForm):
    app_id = _platform_id(_l("Corp ID"))
    secret = PasswordField(
        _l("Customer contact secret"),
        filters=[_strip],
        validators=[DataRequired(), Length(max=128)],
    )
    agent_id = StringField(
        _l("AgentId"),
        filters=[_strip],
        validators=[Optional(), Length(max=32), Regexp(r"^\d+$", message=_l("Digits only."))],
    )
    agent_secret = PasswordField(_l("Agent secret"), filters=[_strip], validators=[Length(max=128)])

    def validate_agent_secret(self, field):
        if self.agent_id.data and not field.data:
            raise ValidationError(_l("The app's Secret is needed with its AgentId."))

    def channel_fields(self) -> dict:
        return {
            "name": self.name.data,
            "app_id": self.app_id.data,
            "secret": self.secret.data,
            "agent_id": self.agent_id.data or None,
            "agent_secret": self.agent_secret.data or None,
            **self.credentials(),
        }


NEW_CHANNEL_FORMS = {ChannelKind.OA: OAChannelForm, ChannelKind.WECOM: WeComChannelForm}
# Recorded in the audit trail; secrets, the Token and the EncodingAESKey never are.
AUDITED_FIELDS = ("kind", "name", "app_id", "message_mode", "account_type", "agent_id")


def _labels() -> dict:
    return {
        "kind_labels": KIND_LABELS,
        "mode_labels": MODE_LABELS,
        "plain_mode_risk": PLAIN_MODE_RISK,
        "account_type_labels": ACCOUNT_TYPE_LABELS,
    }


@bp.get("/channels")
@requires("channels.view")
def channels():
    base_url = harpoon().settings.public_base_url
    rows = channels_table(db(), workspace_id())
    return render_template(
        "admin/channels.html",
        channels=[(channel, callback_url(base_url, channel)) for channel in rows],
        **_labels(),
    )


@bp.route("/channels/new/<any(oa, wecom):kind>", methods=["GET", "POST"])
@requires("channels.manage")
def channels_new(kind: str):
    form = NEW_CHANNEL_FORMS[kind]()
    if form.validate_on_submit():
        workspace = db().get(Workspace, workspace_id())
        try:
            channel = add_channel(db(), workspace, kind=kind, **form.channel_fields())
        except ChannelError as exc:
            db().rollback()
            form[exc.field].errors.append(_(exc.message))
        except IntegrityError:  # the same form submitted twice at once
            db().rollback()
            form.app_id.errors.append(_("Already connected in this workspace."))
        else:
            audit(
                db(),
                "channel.create",
                "channel",
                channel.id,
                {name: getattr(channel, name) for name in AUDITED_FIELDS},
            )
            db().commit()
            flash(
                _(
                    "%(name)s is connected. Now paste its callback settings in the console.",
                    name=channel.name,
                ),
                "success",
            )
            return redirect(url_for("admin.channels_detail", channel_id=channel.id))
    return render_template("admin/channels_new.html", form=form, kind=kind, **_labels())


@bp.get("/channels/<int:channel_id>")
@requires("channels.view")
def channels_detail(channel_id: int):
    channel = scoped_or_404(Channel, channel_id)
    return render_template(
        "admin/channels_detail.html",
        channel=channel,
        callback_url=callback_url(harpoon().settings.public_base_url, channel),
        console_mode_name=CONSOLE_MODE_NAMES.get(channel.message_mode, ""),
        **_labels(),
    )


@bp.post("/channels/<int:channel_id>/rotate-aes-key")
@requires("channels.manage")
def channels_rotate_aes_key(channel_id: int):
    channel = scoped_or_404(Channel, channel_id)
    rotate_aes_key(channel, generate_aes_key())
    audit(db(), "channel.rotate_aes_key", "channel", channel.id, {"name": channel.name})
    db().commit()
    harpoon().channels.invalidate(channel.id)
    flash(
        _(
            "A new EncodingAESKey is ready: paste it in the console. "
            "Callbacks encrypted with the previous key are still accepted."
        ),
        "success",
    )
    return redirect(url_for("admin.channels_detail", channel_id=channel.id))

"""The push pages' forms: a push's content, audience, schedule and fallback <-> the push
row, and the workspace's push settings (approval threshold, test followers)."""

from zoneinfo import ZoneInfo

from flask import g
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from sqlalchemy.orm import Session
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from app.admin.labels import error_messages
from models import Channel, EmailTemplate, Material, Push, SavedSegment
from outreach import pushes

CONTENT_TYPES = [
    SelectChoice("text", _l("Text")),
    SelectChoice("news", _l("Article")),
    SelectChoice("image", _l("Image")),
    SelectChoice("template", _l("Template message")),
    SelectChoice("email", _l("Email message")),
]


def zone() -> ZoneInfo:
    """The workspace's time zone: a push's schedule is typed and shown in it."""
    return ZoneInfo(g.get("workspace_timezone") or "Asia/Shanghai")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _key_values(text: str) -> dict[str, str]:
    """Template data typed one "key: value" per line."""
    data = {}
    for line in (text or "").splitlines():
        if line.strip():
            key, sep, value = line.partition(":")
            if not sep or not key.strip():
                raise ValidationError(_("Write each line as key: value."))
            data[key.strip()] = value.strip()
    return data


class PushForm(FlaskForm):
    name = StringField(_l("Name"), filters=[_strip], validators=[DataRequired(), Length(max=100)])
    channel = SelectField(_l("Official Account"), choices=[], default="")
    audience = SelectField(_l("Audience"), choices=[], default="")
    content_type = RadioField(_l("Content"), choices=CONTENT_TYPES, default="text")
    text = TextAreaField(_l("Text"), filters=[_strip])
    material = SelectField(
        _l("From the library"),
        choices=[],
        default="",
        description=_l(
            "An article or image of the library: its media_id is had when the push is sent."
        ),
    )
    media_id = StringField(
        _l("media_id"),
        filters=[_strip],
        description=_l("The article's or image's media_id in the Official Account's library."),
    )
    title = StringField(_l("Title"), filters=[_strip])
    description = StringField(_l("Summary"), filters=[_strip])
    url = StringField(_l("Link"), filters=[_strip])
    picurl = StringField(_l("Cover image URL"), filters=[_strip])
    template_id = StringField(_l("Template ID"), filters=[_strip])
    template_data = TextAreaField(_l("Template data"), filters=[_strip])
    email_template = SelectField(_l("Email template"), choices=[], default="")
    schedule = RadioField(
        _l("When"),
        choices=[SelectChoice("now", _l("As soon as it is sent")), SelectChoice("at", _l("At"))],
        default="now",
    )
    send_at = DateTimeLocalField(_l("Send at"), validators=[Optional()])
    prefer_service_window = BooleanField(
        _l("Followers in their customer-service window get a service message (sparing their 4)")
    )
    fallback = BooleanField(_l("Followers past this month's 4 get a template message"))
    fallback_template_id = StringField(_l("Fallback template ID"), filters=[_strip])
    fallback_data = TextAreaField(_l("Fallback template data"), filters=[_strip])
    fallback_url = StringField(_l("Fallback link"), filters=[_strip])

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        # send_at is Optional(): its own inline check never sees it empty
        if self.schedule.data == "at" and self.send_at.data is None:
            self.send_at.errors = [*self.send_at.errors, _("Choose the date and time.")]
            return False
        return valid

    def validate_channel(self, field):
        if self.content_type.data != "email" and not field.data:
            raise ValidationError(_("Required."))

    def validate_template_data(self, field):
        _key_values(field.data)

    def validate_fallback_data(self, field):
        _key_values(field.data)

    def validate_fallback_template_id(self, field):
        if self.fallback.data and not field.data:
            raise ValidationError(_("Required."))


class SettingsForm(FlaskForm):
    threshold = IntegerField(
        _l("Approval needed above"),
        validators=[DataRequired(), NumberRange(min=1, max=100_000_000)],
    )
    testers = TextAreaField(
        _l("Test followers (openids, one per line)"),
        filters=[_strip],
        validators=[Length(max=20_000)],
    )


def push_form(
    channels: list[Channel],
    segments: list[SavedSegment],
    library: list[Material] = (),
    templates: list[EmailTemplate] = (),
    **kwargs,
) -> PushForm:
    """The form offering the workspace's OAs, email templates, saved segments (or every
    follower) and its library's articles and images."""
    form = PushForm(**kwargs)
    form.material.choices = [SelectChoice("", _("None: a media_id typed below"))] + [
        SelectChoice(str(m.id), f"{_('Article') if m.kind == 'article' else _('Image')}：{m.name}")
        for m in library
    ]
    form.channel.choices = [SelectChoice(str(c.id), c.name) for c in channels] or [
        SelectChoice("", _("No Official Account"))  # an email push needs none
    ]
    form.email_template.choices = [SelectChoice("", _("Choose a template"))] + [
        SelectChoice(str(t.id), t.name) for t in templates
    ]
    form.audience.choices = [SelectChoice("", _("Every follower"))] + [
        SelectChoice(str(s.id), s.name) for s in segments
    ]
    return form


def _content(form: PushForm) -> dict | None:
    """The validated content, or None with its errors shown on the form's fields."""
    raw = {"type": form.content_type.data}
    for name in ("text", "media_id", "title", "description", "url", "picurl", "template_id"):
        raw[name] = form[name].data
    chosen_material = form.material.data or ""
    if form.content_type.data in ("news", "image") and chosen_material:
        if not chosen_material.isdigit():
            form.material.errors = [
                *form.material.errors,
                _("Not an item of this workspace's library."),
            ]
            return None
        raw["material_id"] = int(chosen_material)
    if raw["type"] == "email":
        chosen = form.email_template.data or ""
        raw["email_template_id"] = int(chosen) if chosen.isdigit() else None
    try:
        raw["data"] = _key_values(form.template_data.data)
    except ValidationError:  # the field's own validator shows it
        raw["data"] = {"": ""}
    try:
        content = pushes.clean_content(raw)
    except SchemaError as exc:
        for key, messages in exc.messages.items():
            names = {
                "type": "content_type",
                "data": "template_data",
                "material_id": "material",
                "email_template_id": "email_template",
            }
            target = form[names.get(key, key)]
            target.errors = [*target.errors, *error_messages(messages)]
        return None
    return content


def fill(session: Session, push: Push, form: PushForm) -> bool:
    """The form into the push; False when a field is wrong (its message is on the form)."""
    valid = form.validate_on_submit()
    content = _content(form)
    if not valid or content is None:
        return False
    push.name = form.name.data
    email = content["type"] == "email"  # an email push goes to no OA
    push.channel_id = None if email else int(form.channel.data)
    push.segment_id = int(form.audience.data) if form.audience.data else None
    push.content = content
    try:
        pushes.check_push(session, push)
    except SchemaError as exc:
        names = {
            "channel_id": "channel",
            "segment_id": "audience",
            "content.material_id": "material",
            "email_template_id": "email_template",
        }
        for key, messages in exc.messages.items():
            target = form[names[key]]
            target.errors = [*target.errors, *(_(message) for message in messages)]
        return False
    push.prefer_service_window = form.prefer_service_window.data
    push.fallback_template = (
        {
            "template_id": form.fallback_template_id.data,
            "data": _key_values(form.fallback_data.data),
            "url": form.fallback_url.data or "",
        }
        if form.fallback.data
        else None
    )
    if form.schedule.data == "at":
        push.scheduled_at = form.send_at.data.replace(tzinfo=zone())
    else:
        push.scheduled_at = None
    return True


def form_of(
    push: Push,
    channels: list[Channel],
    segments: list[SavedSegment],
    library: list[Material] = (),
    templates: list[EmailTemplate] = (),
) -> PushForm:
    """The form showing a saved push, to edit it."""
    content = push.content or {}
    fallback = push.fallback_template or {}
    local = push.scheduled_at.astimezone(zone()).replace(tzinfo=None) if push.scheduled_at else None
    return push_form(
        channels,
        segments,
        library,
        templates,
        formdata=None,
        name=push.name,
        channel=str(push.channel_id or ""),
        email_template=str(content.get("email_template_id", "")),
        audience=str(push.segment_id or ""),
        content_type=content.get("type", "text"),
        template_data="\n".join(f"{k}: {v}" for k, v in content.get("data", {}).items()),
        schedule="at" if local else "now",
        send_at=local,
        prefer_service_window=push.prefer_service_window,
        fallback=bool(fallback),
        fallback_template_id=fallback.get("template_id", ""),
        fallback_data="\n".join(f"{k}: {v}" for k, v in fallback.get("data", {}).items()),
        fallback_url=fallback.get("url", ""),
        material=str(content.get("material_id") or ""),
        **{
            k: v
            for k, v in content.items()
            if k not in ("type", "data", "material_id", "email_template_id")
        },
    )

"""The QR code pages' forms: a new code (its kind, scene and validity, which WeChat fixes
for good), what Harpoon alone keeps of a code (name, tags, welcome), and a renewal."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext
from flask_wtf import FlaskForm
from wtforms import (
    IntegerField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Optional

from app.admin.labels import TAG_GROUP_LABELS, error_messages, tag_label
from crm.tags import TagBook
from models import QrCode, TagGroup
from outreach.qr_codes import MAX_EXPIRE_SECONDS

DAY_SECONDS = 86_400
MAX_EXPIRE_DAYS = MAX_EXPIRE_SECONDS // DAY_SECONDS
# Where each of outreach.qr_codes' error keys shows on the form.
ERROR_FIELDS = {"permanent": "validity", "expire_seconds": "expire_days"}
# Source and interest tags first: they are what a code usually gives.
TAG_GROUP_ORDER = [
    TagGroup.SOURCE,
    TagGroup.INTEREST,
    *(group for group in TagGroup if group not in (TagGroup.SOURCE, TagGroup.INTEREST)),
]
AUDITED_FIELDS = ("name", "tag_ids", "welcome_reply")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class QrCodeEditForm(FlaskForm):
    """What Harpoon alone keeps of a code; outreach.qr_codes checks it."""

    name = StringField(_l("Name"), filters=[_strip])
    tag_ids = SelectMultipleField(_l("Tags"), choices=[], coerce=int)
    welcome_reply = TextAreaField(_l("Welcome reply"), filters=[_strip])

    def __init__(self, *args, book: TagBook, **kwargs):
        super().__init__(*args, **kwargs)
        self.tag_ids.choices = _tag_choices(book)


class QrCodeForm(QrCodeEditForm):
    """A new code: also its kind, scene and validity, which WeChat fixes for good."""

    validity = RadioField(
        _l("Kind"),
        choices=[
            SelectChoice("temporary", _l("Temporary")),
            SelectChoice("permanent", _l("Permanent")),
        ],
        default="temporary",
    )
    scene_kind = RadioField(
        _l("Scene"),
        choices=[
            SelectChoice("number", lazy_pgettext("scene", "Number")),
            SelectChoice("text", lazy_pgettext("scene", "Text")),
        ],
        default="number",
    )
    scene = StringField(_l("Scene value"), filters=[_strip])
    expire_days = IntegerField(
        _l("Valid for (days)"), default=MAX_EXPIRE_DAYS, validators=[Optional()]
    )


class RenewForm(FlaskForm):
    expire_days = IntegerField(
        _l("Valid for (days)"), default=MAX_EXPIRE_DAYS, validators=[Optional()]
    )


def _tag_choices(book: TagBook) -> list[SelectChoice]:
    choices = []
    for group in TAG_GROUP_ORDER:
        optgroup = str(TAG_GROUP_LABELS[group])
        tags = sorted(book.in_group(group), key=lambda tag: tag_label(tag).casefold())
        choices += [SelectChoice(tag.id, tag_label(tag), optgroup=optgroup) for tag in tags]
    return choices


def scene_value(form: QrCodeForm) -> int | str | None:
    """The scene as outreach.qr_codes takes it: an int for a number (None: the next free
    one), a str for a text."""
    if form.scene_kind.data == "text":
        return form.scene.data or ""
    if not form.scene.data:
        return None
    if not form.scene.data.isascii() or not form.scene.data.isdigit():
        form.scene.errors = [*form.scene.errors, _("A number scene is a whole number.")]
        return None
    return int(form.scene.data)


def expire_seconds(days: int | None, permanent: bool) -> int | None:
    if permanent:
        return None
    return None if days is None else days * DAY_SECONDS


def show_input_errors(form: FlaskForm, messages: dict) -> None:
    """outreach.qr_codes' refusals, translated, on the fields they concern."""
    for key, errors in messages.items():
        name = ERROR_FIELDS.get(key, key)
        shown = [_(message) for message in error_messages(errors)]
        if name in form:
            form[name].errors = [*form[name].errors, *shown]
        else:
            form.form_errors.extend(shown)


def audited(code: QrCode) -> dict:
    return {name: getattr(code, name) for name in AUDITED_FIELDS}

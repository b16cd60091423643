"""The library's forms: an upload (image or file), and an article, link card or
mini-program card <-> the material's values."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import RadioField, SelectChoice, SelectField, StringField, TextAreaField

from models import Material, MaterialKind


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class UploadForm(FlaskForm):
    kind = RadioField(
        _l("Kind"),
        choices=[
            SelectChoice(MaterialKind.IMAGE, _l("Image")),
            SelectChoice(MaterialKind.FILE, _l("File")),
        ],
        default=MaterialKind.IMAGE,
    )
    name = StringField(_l("Name"), filters=[_strip])
    file = FileField(_l("File"), validators=[FileRequired(_l("Choose a file."))])


class CardForm(FlaskForm):
    """Every card's fields; a kind's page shows its own (the others stay empty)."""

    name = StringField(_l("Name"), filters=[_strip])
    title = StringField(_l("Title"), filters=[_strip])
    author = StringField(_l("Author"), filters=[_strip])
    digest = TextAreaField(_l("Summary"), filters=[_strip])
    body = TextAreaField(_l("Body"), filters=[_strip])
    url = StringField(_l("Link"), filters=[_strip])
    cover = SelectField(_l("Cover image"), choices=[], default="")
    appid = StringField(_l("Mini-program AppID"), filters=[_strip])
    page_path = StringField(_l("Page path"), filters=[_strip])


# Where each of save_card's error keys shows on the form.
CARD_ERROR_FIELDS = {"cover_id": "cover"}


def card_form(covers: list[Material], material: Material | None = None, **kwargs) -> CardForm:
    if material is not None:
        kwargs.setdefault("formdata", None)
        for name in ("name", "title", "author", "digest", "body", "url", "appid", "page_path"):
            kwargs.setdefault(name, getattr(material, name) or "")
        kwargs.setdefault("cover", str(material.cover_id or ""))
    form = CardForm(**kwargs)
    form.cover.choices = [SelectChoice("", _l("No cover"))] + [
        SelectChoice(str(image.id), image.name) for image in covers
    ]
    return form


def card_values(form: CardForm) -> dict:
    values = {
        name: form[name].data
        for name in ("name", "title", "author", "digest", "body", "url", "appid", "page_path")
    }
    values["cover_id"] = int(form.cover.data) if form.cover.data.isdigit() else None
    return values

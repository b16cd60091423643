"""The contact pages' forms: a tag to add or remove (one contact, or many from the list),
and the account a person works for."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from app.admin import db
from app.admin.labels import CODE_GROUPS, TAG_GROUP_LABELS
from crm.tags import MAX_TAG_NAME, TagBook
from models import Tag, TagGroup

MAX_BULK = 500  # contacts one bulk tag change may touch


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class TagForm(FlaskForm):
    """An existing tag (or a role / seniority code), or the name of a new manual tag."""

    tag = SelectField(_l("Tag"), choices=[], default="")
    new_tag = StringField(
        _l("Or a new manual tag"),
        filters=[_strip],
        validators=[Optional(), Length(max=MAX_TAG_NAME)],
    )

    def validate_tag(self, field):
        if field.data and self.new_tag.data:
            raise ValidationError(_l("Pick a tag or type a new one, not both."))
        if not field.data and not self.new_tag.data:
            raise ValidationError(_l("Pick a tag or type a new one."))

    def chosen(self, book: TagBook, *, create: bool = True) -> Tag | None:
        """The tag meant; created on first use unless `create` is False (then None)."""
        if self.new_tag.data:
            group, name = TagGroup.MANUAL, self.new_tag.data
        elif self.tag.data.isascii() and self.tag.data.isdigit():
            return book.by_id(int(self.tag.data))
        else:
            group, _sep, name = self.tag.data.partition(":")
        if create:
            return book.get(db(), group, name)
        return next((tag for tag in book.in_group(group) if tag.name == name), None)


class BulkTagForm(TagForm):
    operation = SelectField(
        _l("Action"),
        choices=[
            SelectChoice("add", _l("Add the tag")),
            SelectChoice("remove", _l("Remove the tag")),
        ],
        default="add",
    )

    def validate_new_tag(self, field):
        if self.operation.data == "remove":
            raise ValidationError(_l("Only an existing tag can be removed."))


class AccountNameForm(FlaskForm):
    account_name = StringField(
        _l("Account"), filters=[_strip], validators=[DataRequired(), Length(max=200)]
    )


def tag_choices(book: TagBook) -> list[SelectChoice]:
    """The workspace's tags by group, role and seniority codes first in their own order
    (they are offered by their codes even before anyone holds one)."""
    choices = [SelectChoice("", _("Choose a tag"))]
    for group in TagGroup:
        tags = {tag.name: tag for tag in book.in_group(group)}
        codes = CODE_GROUPS.get(group, {})
        options = [
            (str(tags[code].id) if code in tags else f"{group}:{code}", str(label))
            for code, label in codes.items()
        ]
        options += sorted(
            ((str(tag.id), tag.name) for name, tag in tags.items() if name not in codes),
            key=lambda option: option[1].casefold(),
        )
        optgroup = str(TAG_GROUP_LABELS[group])
        choices += [SelectChoice(value, label, optgroup=optgroup) for value, label in options]
    return choices

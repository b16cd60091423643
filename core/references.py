"""Ids a document names, checked to belong to the workspace when it is saved.

Each kind of document declares its id-bearing fields once (`declare`): the dotted path
of the field ("nodes.*.trigger.tag_id", "*" standing for every item of a list) and the
`Target` it names. `unknown_references` checks a document against its declaration with
one query per target, and answers the mistakes keyed by the concrete path
("nodes.2.trigger.tag_id"), the way forms and editors show field errors;
`check_references` raises them as a ValidationError. `DECLARED` holds every
declaration, so a test can make sure each field has its tenancy case.
"""

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from marshmallow import ValidationError
from sqlalchemy import BigInteger, select
from sqlalchemy.orm import Session

from core.text import N_
from models import (
    Account,
    Channel,
    Contact,
    Content,
    CustomerGroup,
    EmailTemplate,
    Form,
    Material,
    SavedSegment,
    Staff,
    Tag,
    User,
)


@dataclass(frozen=True)
class Target:
    """What an id names: the row of `model` whose `key` column holds it (its id, or a
    staff member's WeCom userid), a model whose rows carry `workspace_id`."""

    model: type
    message: str
    key: str = "id"

    def accepts(self, value) -> bool:
        if self.key != "id":
            return isinstance(value, str) and value != ""
        return isinstance(value, int) and not isinstance(value, bool)


TAG = Target(Tag, N_("Not a tag of this workspace."))
NOT_WORKSPACE_TAGS = N_("Not tags of this workspace.")  # a list of tags has one message
SEGMENT = Target(SavedSegment, N_("Not a segment of this workspace."))
CHANNEL = Target(Channel, N_("Not a channel of this workspace."))
CONTENT = Target(Content, N_("Not content of this workspace."))
FORM = Target(Form, N_("Not a form of this workspace."))
STAFF = Target(Staff, N_("Not a staff member of this workspace."), key="userid")
USER = Target(User, N_("Not a user of this workspace."))
CONTACT = Target(Contact, N_("Not a contact of this workspace."))
ACCOUNT = Target(Account, N_("Not an account of this workspace."))
MATERIAL = Target(Material, N_("Not an item of this workspace's library."))
CUSTOMER_GROUP = Target(CustomerGroup, N_("Not a customer group of this workspace."), key="chat_id")
NOT_WORKSPACE_GROUPS = N_("Not customer groups of this workspace.")
EMAIL_TEMPLATE = Target(EmailTemplate, N_("Not an email template of this workspace."))


@dataclass(frozen=True)
class Reference:
    """A field of a document holding an id (or a list of ids) of `target`."""

    path: str
    target: Target
    message: str | None = None  # instead of the target's, where the form words it its way


DECLARED: dict[str, tuple[Reference, ...]] = {}


def declare(document: str, *references: Reference) -> tuple[Reference, ...]:
    """Registers the id-bearing fields of a kind of document; returns them."""
    DECLARED[document] = references
    return references


def unknown_references(
    session: Session, workspace_id: int, document: Mapping, references: tuple[Reference, ...]
) -> dict[str, list[str]]:
    """path -> [message] for every id the document names that the workspace does not hold.
    A value of the wrong type ("abc" for a row id) holds nothing either: it is refused here
    with the same message, whatever the document's own validation makes of it."""
    named: list[tuple[str, Reference, object]] = [
        (path, reference, value)
        for reference in references
        for path, value in _values_at(document, reference.path.split("."), [])
    ]
    wanted: dict[Target, set] = defaultdict(set)
    for _path, reference, value in named:
        if reference.target.accepts(value):
            wanted[reference.target].add(value)
    held = {
        target: _held(session, workspace_id, target, values) for target, values in wanted.items()
    }
    errors: dict[str, list[str]] = {}
    for path, reference, value in named:
        target = reference.target
        if not target.accepts(value) or value not in held[target]:
            message = reference.message or reference.target.message
            if message not in errors.setdefault(path, []):
                errors[path].append(message)
    return errors


def check_references(
    session: Session, workspace_id: int, document: Mapping, references: tuple[Reference, ...]
) -> None:
    """A ValidationError keyed by path when the document names what the workspace does not
    hold."""
    errors = unknown_references(session, workspace_id, document, references)
    if errors:
        raise ValidationError(errors)


def fits_column(key, value: int) -> bool:
    """Whether `value` fits the integer column `key` (e.g. `Contact.id`): a larger number is
    no row's id, and the database refuses it (PostgreSQL for the column's type, SQLite past
    64 bits)."""
    largest = 2**63 if isinstance(key.type, BigInteger) else 2**31
    return abs(value) < largest


def _held(session: Session, workspace_id: int, target: Target, values: set) -> set:
    model = target.model
    key = getattr(model, target.key)
    values = {value for value in values if not isinstance(value, int) or fits_column(key, value)}
    if not values:
        return set()
    return set(
        session.scalars(select(key).where(model.workspace_id == workspace_id, key.in_(values)))
    )


def _values_at(data, parts: list[str], at: list[str]) -> Iterator[tuple[str, object]]:
    """(concrete path, value) for each place the path reaches; a list found at the end
    gives each of its items under the list's own path."""
    if not parts:
        for value in data if isinstance(data, list | tuple) else [data]:
            yield ".".join(at), value
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        if isinstance(data, Mapping):
            items = data.items()
        elif isinstance(data, list | tuple):
            items = enumerate(data)
        else:
            return
        for key, item in items:
            yield from _values_at(item, rest, [*at, str(key)])
    elif isinstance(data, Mapping) and data.get(head) is not None:
        yield from _values_at(data[head], rest, [*at, head])


def scoped_get(session: Session, model: type, row_id: int | None, workspace_id: int):
    """The workspace's row of `model` with this id; None for none, or another workspace's."""
    row = session.get(model, row_id) if row_id is not None else None
    return row if row is not None and row.workspace_id == workspace_id else None

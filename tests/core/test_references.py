"""core.references: an id-bearing field holding anything but an id of the workspace is
refused, a value of the wrong type included."""

import pytest
from marshmallow import ValidationError

from core.references import NOT_WORKSPACE_TAGS, TAG, Reference, unknown_references
from crm.channels import workspace_named
from crm.rule_config import rule_tag
from models import Tag
from tests.helpers import harpoon_of

REFERENCES = (Reference("tag_id", TAG), Reference("tag_ids", TAG, NOT_WORKSPACE_TAGS))


@pytest.fixture
def tagged(app):
    """(session, workspace id, the id of one of its tags)."""
    with harpoon_of(app).db.session() as session:
        workspace_id = workspace_named(session, "acme").id
        tag = Tag(workspace_id=workspace_id, group="interest", name="云")
        session.add(tag)
        session.commit()
        yield session, workspace_id, tag.id


@pytest.mark.parametrize(
    "wrong", ["abc", "１２", "", 1.0, True, None, [[1]], {"id": 1}, 2**31, -(2**40), 2**70]
)
def test_a_value_of_the_wrong_type_is_an_unknown_reference(tagged, wrong):
    session, workspace_id, tag_id = tagged
    document = {"tag_id": wrong if wrong is not None else tag_id, "tag_ids": [tag_id, wrong]}
    errors = unknown_references(session, workspace_id, document, REFERENCES)
    assert errors["tag_ids"] == [NOT_WORKSPACE_TAGS]
    if wrong is not None:
        assert errors["tag_id"] == [TAG.message]
    assert (
        unknown_references(
            session, workspace_id, {"tag_id": tag_id, "tag_ids": [tag_id]}, REFERENCES
        )
        == {}
    )


@pytest.mark.parametrize("wrong", ["abc", "１２", str])
def test_a_tag_rule_naming_no_tag_id_is_refused_before_any_lookup(tagged, wrong):
    session, workspace_id, _tag_id = tagged
    with pytest.raises(ValidationError) as refused:
        rule_tag(session, workspace_id, wrong)
    assert refused.value.messages == {"tag_id": [TAG.message]}

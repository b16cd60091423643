"""The action and condition registries cover every kind a journey document may name, and
only the actions that leave the database are committed before their call."""

from journeys.actions import ACTIONS, is_external
from journeys.conditions import CONDITIONS
from journeys.model import ACTION_KINDS, CONDITION_KINDS


def test_every_kind_a_document_may_name_is_registered():
    assert set(ACTIONS) == set(ACTION_KINDS)
    assert set(CONDITIONS) == set(CONDITION_KINDS)


def test_messages_emails_and_webhooks_are_the_external_actions():
    external = {kind for kind in ACTION_KINDS if is_external(kind)}
    assert external == {"cs_message", "template_message", "webhook", "send_material", "send_email"}
    assert not is_external("no_such_action")

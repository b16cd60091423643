"""Journey test fixtures."""

import pytest

from models import Workspace
from tests.helpers import harpoon_of


@pytest.fixture
def ws(app):
    """A workspace of its own; its id."""
    with harpoon_of(app).db.session() as session:
        workspace = Workspace(name="acme")
        session.add(workspace)
        session.commit()
        return workspace.id

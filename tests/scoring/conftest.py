"""A database session and a workspace for the scoring tests."""

import pytest

from crm.channels import workspace_named
from tests.helpers import harpoon_of


@pytest.fixture
def db(app):
    with harpoon_of(app).db.session() as session:
        yield session


@pytest.fixture
def workspace_id(db):
    workspace = workspace_named(db, "acme")
    db.commit()
    return workspace.id

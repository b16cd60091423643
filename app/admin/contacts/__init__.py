"""Contacts: who has reached the workspace's channels, what each did, their tags and account.

The labels of interactions and the tag filter serve other pages too (journeys, tags).
"""

from app.admin.contacts import views  # noqa: F401  (registers the routes on the admin bp)
from app.admin.contacts.presenters import INTERACTION_LABELS, tag_filter_options

__all__ = ["INTERACTION_LABELS", "tag_filter_options"]

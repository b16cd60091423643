"""Journeys: the list with live counts; the editor (settings, goals, and the nodes with
their type's fields); the journey page (a graph of a version with its counts per node,
the same counts in a table, the version history, go live / pause / resume / archive);
moving enrolments between versions; and a contact's journey history, which the contact
page shows through the `journey_history` template global.

views.py holds the routes, forms.py the editor's form <-> the journey document,
presenters.py what the pages show; journeys.definitions decides versions and states.
"""

from app.admin.journeys import views  # noqa: F401  (its routes register on the shared bp)

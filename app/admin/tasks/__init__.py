"""Tasks: what salespeople should do, by when (MQA, surges, routing, journeys, task rules,
by hand); closed done or skipped with a note; and the task rules marketers keep."""

from app.admin.tasks import views  # noqa: F401  (registers the routes on the admin bp)

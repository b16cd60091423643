"""Routing: the rules that give hot accounts without an owner to salespeople, the
first-touch SLA, and the recent assignments with their SLA status (sales.routing)."""

from app.admin.routing import views  # noqa: F401  (registers the routes on the admin bp)

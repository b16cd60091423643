"""Tier programs: each tier's menu with budgets and spend, and the order queue where
marketing approves, rejects, executes and cancels what sales ticked (revenue.programs)."""

from app.admin.programs import views  # noqa: F401  (registers the routes on the admin bp)

"""Accounts: target companies and the ones contacts revealed, with their buying committee."""

from app.admin.accounts import views  # noqa: F401  (registers the routes on the admin bp)

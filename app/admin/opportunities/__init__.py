"""Opportunities: the list with its totals, one opportunity with its history, the form, the
pipeline's stages and the import of a file."""

from app.admin.opportunities import imports, views  # noqa: F401  (registers the routes)

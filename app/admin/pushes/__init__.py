"""Pushes: write content for a segment of an OA's followers, preview it on test followers,
send it now or at a time (an admin approves a large one), and read its delivery report."""

from app.admin.pushes import views  # noqa: F401  (registers the routes on the admin bp)

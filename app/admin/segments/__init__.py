"""Segments: saved filters over the workspace's contacts, reused by pushes and journeys.

The form covers every filter of outreach.segments.Segment. As the marketer edits it,
htmx posts it to the preview, which answers with the count and a sample of contacts, or
with the mistakes beside their inputs (out-of-band swaps); nothing is saved until Save.
"""

from app.admin.segments import views  # noqa: F401  (registers the routes on the admin bp)

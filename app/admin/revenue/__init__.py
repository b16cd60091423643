"""Revenue (营收): the lifecycle KPIs of a period against the one before, pipeline and won
revenue over time, win rate and sales cycle, the lifecycle funnel and NPS, filtered by
tier, owner and dates."""

from app.admin.revenue import views  # noqa: F401  (registers the routes on the admin bp)

"""Attribution: the pipeline and won revenue each content item, push, journey, code, form,
campaign... influenced under a chosen model (revenue.influence), and a content item's
value chain from its readers to signed revenue."""

from app.admin.attribution import views  # noqa: F401  (registers the routes on the admin bp)

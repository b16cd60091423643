"""The material library (素材库): images and files uploaded once, articles, link and
mini-program cards, each one's state on every connected OA and WeCom corp, and an
"upload now" that hands the uploads to a job."""

from app.admin.materials import views  # noqa: F401  (registers the routes on the admin bp)

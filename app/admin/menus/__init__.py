"""OA menus: per Official Account, the draft editor (the default menu and one conditional
menu per tag), publishing with a confirmation, preview as a follower, and the history
with rollback. The menus themselves live in outreach.menus."""

from app.admin.menus import views  # noqa: F401  (registers the routes on the admin bp)

"""WeCom customer groups (客户群): the list, a group's page (members by account and role,
joins and leaves, its people's activity), and a corp's "sync now".

The domain is sales.groups; these pages read what the sync and the events recorded.
"""

from app.admin.groups import views  # noqa: F401  (registers the routes on the admin bp)

"""Email: templates (a sandboxed editor with a live preview and a test send), the
workspace's own SMTP server, and the addresses no longer mailed (suppressions).

Sending itself (journey steps, pushes) is the senders'; these pages prepare and watch.
"""

from app.admin.email import views  # noqa: F401  (registers the routes on the admin bp)

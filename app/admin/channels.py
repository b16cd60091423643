"""Admin page: channels (views registered on app.admin.bp)."""

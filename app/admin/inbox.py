"""Admin page: inbox (views registered on app.admin.bp)."""

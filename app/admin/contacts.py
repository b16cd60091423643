"""Admin page: contacts (views registered on app.admin.bp)."""

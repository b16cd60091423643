"""Admin page: audit (views registered on app.admin.bp)."""

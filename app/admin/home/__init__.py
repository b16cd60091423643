"""The sales home (我的工作台): a salesperson's hot accounts, what changed since yesterday,
their tasks due and their customers reading today; phone-first, for WeCom's webview."""

from app.admin.home import views  # noqa: F401  (registers the routes on the admin bp)

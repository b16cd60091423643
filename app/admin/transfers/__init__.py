"""Customer transfers (客户继承): a salesperson's WeCom customers handed to another, in
service or after they left, chosen one by one or by account, tracked per customer.

The domain is sales.transfers; these pages choose, confirm, queue the send job and show
each customer's status to the end.
"""

from app.admin.transfers import views  # noqa: F401  (registers the routes on the admin bp)

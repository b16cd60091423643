"""WeCom sales pages: 联系我 codes with their adds, and the staff who receive them.

A code lives in WeCom and in Harpoon: sales.contact_ways changes both, WeCom
first, so a refusal leaves nothing behind. Staff come from a sync job; the
admin maps each one to the user they sign in as, which links them to accounts.
"""

from app.admin.wecom import views  # noqa: F401  (registers the routes on the admin bp)

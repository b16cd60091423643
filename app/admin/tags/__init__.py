"""Tags: the workspace's tags by group, the rules that apply them, the title dictionary, sync.

views.py holds the routes, forms.py the tag, rule and synonym forms, presenters.py what
each tab shows; the reads and writes are crm's (tags, rules, tag_stats, title_synonyms).
"""

from app.admin.tags import views  # noqa: F401  (its routes register on the shared bp)

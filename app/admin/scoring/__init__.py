"""Scoring: marketers edit the workspace's scoring model section by section (rules,
weights, MQA rules, tiers and fit, stages and surge), preview what a change does to the
accounts before saving it, and restore an older version.

Every save stores a new version of the whole model (scoring.engine.save_model) and asks
for the job that brings the scores in line: a rescore of history when the rules or the
lead half-life changed (the ledger depends on them), else a refresh of every account.
"""

from app.admin.scoring import views  # noqa: F401  (registers the routes on the admin bp)

"""Stages, journey definitions, enrollment and step execution (built in Step 8)."""

"""Lead and account scoring, MQA, tiers and intent surges (built in Step 6)."""

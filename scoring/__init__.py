"""Lead and account scoring, MQA, tiers, intent surges and stages."""

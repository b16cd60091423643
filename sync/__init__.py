"""Keeping WeChat and WeCom in step: enrichment (who a follower or customer is) and tag sync."""

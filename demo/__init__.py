"""The demo: a workspace with an ICP list, rules, a scoring model, content and channels,
seeded onto the sandbox platform so `make run` shows the whole system."""

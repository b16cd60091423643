"""Pieces with no domain: they import nothing of ours above config."""

"""Pieces with no domain: outbound requests to configured addresses."""

"""Pieces with no domain: message marking and the workspace check of ids documents name."""

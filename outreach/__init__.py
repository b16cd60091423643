"""Segments, tag-based menus, pushes, channel QR codes and tracked links (Step 7)."""

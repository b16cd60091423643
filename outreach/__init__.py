"""Segments, tag-based menus, pushes, channel QR codes, content and tracked links, forms,
email."""

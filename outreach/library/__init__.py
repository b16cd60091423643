"""The content library: editing content items, forms and tracked links; their statistics;
advocacy (who brings readers by sharing)."""

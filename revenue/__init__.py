"""Opportunities, attribution and lifecycle KPIs."""

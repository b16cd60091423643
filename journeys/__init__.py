"""Journeys: definitions and versions, the reactions the drain calls, triggers, the runner."""

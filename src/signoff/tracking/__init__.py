"""Experiment tracking: what task runs logged (params, metrics, tags, models)."""

"""Statistics shared by the report and the triggers: drift, quality metrics, curves."""

"""What user code imports: the task-side API (and, later, flow definitions in Python)."""

"""The ``signoff`` command line."""

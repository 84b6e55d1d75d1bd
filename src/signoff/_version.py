"""The package version (one place; imported without loading the rest of signoff)."""

__version__ = "0.1.0"

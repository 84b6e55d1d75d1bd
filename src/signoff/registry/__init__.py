"""Model registry: model files per flavor, signatures, digests (the service side of models)."""
